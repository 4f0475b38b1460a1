package sync

import (
	"context"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
)

// diffSlack is what a Diff frame keeps free below the frame limit: one
// more split or document (a document of MaxEntryHeads heads and a
// longest id) always fits.
const diffSlack = crdt.MaxIDBytes + MaxEntryHeads*(32+2) + 1024

// reconSession serves one version 2 stream: ReconHello, then Recon and
// Want requests in order until the client closes its side.
func (s *Server) reconSession(ctx context.Context, c *conn, remote peer.ID) error {
	store, ok := s.store.(ReconStore)
	if !ok {
		return fmt.Errorf("%w: reconciliation is not served", ErrBadRequest)
	}
	m, err := c.read()
	if err == io.EOF {
		return fmt.Errorf("%w: stream closed before hello", ErrBadRequest)
	}
	if err != nil {
		return fmt.Errorf("read recon hello: %w", err)
	}
	h, ok := m.(*reconHelloMsg)
	if !ok {
		return fmt.Errorf("%w: want recon hello, got %T", ErrBadRequest, m)
	}
	if err := s.admit(ctx, c, remote, h.DB, h.Version, ReconVersion, h.MaxFrame); err != nil {
		return err
	}
	if !reconReady(store, h.DB) {
		return fmt.Errorf("%w: %s opened moments ago", ErrReconNotReady, h.DB)
	}
	idx, seq, err := store.ReconIndex(ctx, h.DB)
	if err != nil {
		return fmt.Errorf("recon index of %s: %w", h.DB, err)
	}
	rs := &reconServer{
		store: store, idx: idx, seq: seq, salt: h.Salt,
		ss: &serverSession{s: s, c: c, db: h.DB, remote: remote, budget: s.budget.of(remote)},
	}
	root := Range{}
	f := idx.Fingerprint(root)
	if f.Count == h.Count && f.wire(h.Salt, root) == h.FP {
		if err := c.write(msgDiff, &diffMsg{Seq: seq, InSync: true}); err != nil {
			return err
		}
	} else if err := rs.answer(ctx, &reconMsg{Split: []wireRange{{}}}); err != nil {
		return err
	}
	rounds := 0
	for {
		m, err := c.read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read request: %w", err)
		}
		switch m := m.(type) {
		case *reconMsg:
			// A client gives up after MaxReconRounds: one that keeps
			// asking is not reconciling.
			if rounds++; rounds > MaxReconRounds {
				return fmt.Errorf("%w: more than %d recon rounds", ErrBadRequest, MaxReconRounds)
			}
			err = rs.answer(ctx, m)
		case *wantMsg:
			if len(m.Indices) > 0 {
				return fmt.Errorf("%w: want by index in a reconciliation", ErrBadRequest)
			}
			err = rs.ss.serve(ctx, m)
		case *errorMsg:
			return fmt.Errorf("%w: %w", errRemoteClosed, &RemoteError{Code: m.Code, Text: m.Text})
		default:
			err = fmt.Errorf("%w: unexpected %T", ErrBadRequest, m)
		}
		if err != nil {
			return err
		}
	}
}

// reconServer is the state of one version 2 session.
type reconServer struct {
	store ReconStore
	idx   *ReconIndex
	seq   uint64
	salt  []byte
	ss    *serverSession
}

// answer sends the Diff frames answering one Recon: each split range's 16
// sub-range fingerprints, and for each leaf the documents whose items the
// client's hashes do not match. A leaf of which the server holds more
// than MaxLeafItems items is answered as a split.
func (rs *reconServer) answer(ctx context.Context, m *reconMsg) error {
	c := rs.ss.c
	out := &diffMsg{Seq: rs.seq}
	size := 64
	flush := func(more bool) error {
		out.More = more
		err := c.write(msgDiff, out)
		out, size = &diffMsg{Seq: rs.seq}, 64
		return err
	}
	split := func(r Range) error {
		fs := rs.idx.Children(r)
		if size > c.maxFrame-diffSlack {
			if err := flush(true); err != nil {
				return err
			}
		}
		ch := packChildren(rs.salt, r, &fs)
		out.Splits = append(out.Splits, wireSplit{Depth: r.Depth, Path: r.Path, Children: ch})
		size += len(ch) + 16
		return nil
	}
	for _, w := range m.Split {
		if err := split(Range{Depth: w.Depth, Path: w.Path}); err != nil {
			return err
		}
	}
	for _, l := range m.Leaves {
		r := Range{Depth: l.Depth, Path: l.Path}
		items, ok := rs.idx.items(r, MaxLeafItems)
		if !ok && r.Depth < MaxReconDepth {
			if err := split(r); err != nil {
				return err
			}
			continue
		}
		theirs := make(map[[shortHashBytes]byte]bool, len(l.Hashes)/shortHashBytes)
		for p := l.Hashes; len(p) > 0; p = p[shortHashBytes:] {
			theirs[[shortHashBytes]byte(p[:shortHashBytes])] = true
		}
		var docs []string
		for _, it := range items {
			if !theirs[it.it.short(rs.salt)] {
				docs = append(docs, it.doc)
			}
		}
		if len(docs) == 0 {
			continue
		}
		heads, err := rs.store.Heads(ctx, rs.ss.db, docs)
		if err != nil {
			return fmt.Errorf("heads of %s: %w", rs.ss.db, err)
		}
		if len(heads) != len(docs) {
			return fmt.Errorf("heads of %s: %d answers for %d documents", rs.ss.db, len(heads), len(docs))
		}
		for i, hs := range heads {
			if len(hs) == 0 {
				continue // gone meanwhile
			}
			hs = hs[:min(len(hs), MaxEntryHeads)]
			if size > c.maxFrame-diffSlack {
				if err := flush(true); err != nil {
					return err
				}
			}
			d := wireDoc{Doc: docs[i], Heads: make([]wireID, len(hs))}
			for j, h := range hs {
				d.Heads[j] = wireID(h)
			}
			out.Docs = append(out.Docs, d)
			size += len(docs[i]) + 34*len(hs) + 8
		}
	}
	return flush(false)
}
