package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// SnapshotStore is a Store that also serves and installs snapshots: a
// database's current state, document by document (its folded base and
// the changes kept after it), instead of its whole history. A server
// whose history was compacted answers a pull from before its horizon with
// ErrSnapshotNeeded; the client then installs its snapshot and pulls on
// from the snapshot's position (docs/sync-protocol.md, "Snapshots").
type SnapshotStore interface {
	Store
	// OpenSnapshot takes a consistent view of db for remote, listing the
	// documents (that pass f) after the id after, in id order.
	OpenSnapshot(ctx context.Context, db string, remote peer.ID, after string, f *Filter) (Snapshot, error)
	// SnapshotProgress returns the document id up to which a snapshot of
	// db from p was installed by an interrupted session ("": none).
	SnapshotProgress(ctx context.Context, db string, p peer.ID) (after string, err error)
	// InstallSnapshot verifies and installs one batch of documents of p's
	// snapshot, listed after the id after, and records the progress in the
	// same atomic write. partial says the client asked for a filter.
	InstallSnapshot(ctx context.Context, db string, p peer.ID, head SnapshotHead, after string, docs []SnapshotDoc, partial bool) error
	// FinishSnapshot ends an install after the last batch: the documents
	// after the id after, the checkpoint for p (the first session's
	// head.Seq), and the progress record.
	FinishSnapshot(ctx context.Context, db string, p peer.ID, head SnapshotHead, after string, partial bool) error
}

// Horizoner is an optional interface of a Store: the feed sequence before
// which a pull from remote cannot be served from history (compacted, or
// bases installed from a snapshot of some other peer). The server answers
// a pull from before it with ErrSnapshotNeeded.
type Horizoner interface {
	Horizon(ctx context.Context, db string, remote peer.ID) (uint64, error)
}

// Snapshot is a server's open view of a database.
type Snapshot interface {
	Head() SnapshotHead
	// Next returns the next documents, about maxBytes of them (at least
	// one; ErrFrameTooLarge if one alone is larger), or none at the end.
	Next(ctx context.Context, maxBytes int) ([]SnapshotDoc, error)
	Close()
}

// snapshotSession serves one snapshot stream: hello, head, documents.
func (s *Server) snapshotSession(ctx context.Context, c *conn, remote peer.ID) error {
	store, ok := s.store.(SnapshotStore)
	if !ok {
		return fmt.Errorf("%w: snapshots are not served", ErrBadRequest)
	}
	m, err := c.readAs(decodeSnapMessage)
	if err != nil {
		return fmt.Errorf("read snapshot hello: %w", err)
	}
	h, ok := m.(*snapHelloMsg)
	if !ok {
		return fmt.Errorf("%w: want snapshot hello, got %T", ErrBadRequest, m)
	}
	if err := s.admit(ctx, c, remote, h.DB, h.Version, SnapshotVersion, h.MaxFrame); err != nil {
		return err
	}
	snap, err := store.OpenSnapshot(ctx, h.DB, remote, h.After, h.Filter)
	if err != nil {
		return fmt.Errorf("snapshot of %s: %w", h.DB, err)
	}
	defer snap.Close()
	head := snap.Head()
	if err := c.write(msgSnapHead, &head); err != nil {
		return err
	}
	for {
		docs, err := snap.Next(ctx, c.maxFrame-frameSlack)
		if err != nil {
			return fmt.Errorf("snapshot of %s: %w", h.DB, err)
		}
		done := len(docs) == 0
		if err := c.write(msgSnapDocs, &snapDocsMsg{Docs: docs, Done: done}); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// SnapshotStats counts what one snapshot install did.
type SnapshotStats struct {
	Docs  int   // documents received and installed
	Bytes int64 // frame bytes received
}

// Snapshot installs p's snapshot of db into the store, resuming after the
// last document an interrupted session installed. The store's checkpoint
// for p then stands at the snapshot's position, and a Pull continues from
// there.
func (c *Client) Snapshot(ctx context.Context, p peer.ID, db string, f *Filter) (st SnapshotStats, err error) {
	start := time.Now()
	defer func() { c.m.session("snapshot", result(ctx, err), time.Since(start).Seconds()) }()
	store, ok := c.store.(SnapshotStore)
	if !ok {
		return st, errors.New("snapshot: the store cannot install snapshots")
	}
	after, err := store.SnapshotProgress(ctx, db, p)
	if err != nil {
		return st, fmt.Errorf("snapshot progress of %s from %s: %w", db, p, err)
	}
	st.Bytes, err = c.stream(ctx, p, SnapshotProtocolID, func(cn *conn) error {
		return c.installSnapshot(ctx, cn, store, p, db, after, f, &st)
	})
	if err != nil {
		return st, fmt.Errorf("snapshot of %s from %s: %w", db, p, err)
	}
	return st, nil
}

func (c *Client) installSnapshot(ctx context.Context, cn *conn, store SnapshotStore, p peer.ID, db, after string, f *Filter, st *SnapshotStats) error {
	err := cn.write(msgSnapHello, &snapHelloMsg{Version: SnapshotVersion, DB: db, After: after, Filter: f, MaxFrame: uint32(c.cfg.MaxFrameBytes)})
	if err != nil {
		return err
	}
	m, err := cn.readAs(decodeSnapMessage)
	if err != nil {
		return fmt.Errorf("read snapshot head: %w", err)
	}
	var head SnapshotHead
	switch m := m.(type) {
	case *SnapshotHead:
		head = *m
	case *errorMsg:
		return &RemoteError{Code: m.Code, Text: m.Text}
	default:
		return fmt.Errorf("%w: want snapshot head, got %T", ErrBadRequest, m)
	}
	// Read ahead: the next frame travels and decodes while this one is
	// installed (at most two frames held).
	type frame struct {
		m   any
		err error
	}
	frames := make(chan frame, 1)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go func() {
		defer close(frames)
		for {
			m, err := cn.readAs(decodeSnapMessage)
			select {
			case frames <- frame{m, err}:
			case <-readCtx.Done():
				return
			}
			if d, ok := m.(*snapDocsMsg); err != nil || !ok || d.Done {
				return
			}
		}
	}()
	for {
		fr, ok := <-frames
		if !ok {
			return fmt.Errorf("%w: snapshot stream ended early", ErrBadRequest)
		}
		m, err := fr.m, fr.err
		if err != nil {
			return fmt.Errorf("read snapshot documents: %w", err)
		}
		var docs *snapDocsMsg
		switch m := m.(type) {
		case *snapDocsMsg:
			docs = m
		case *errorMsg:
			return &RemoteError{Code: m.Code, Text: m.Text}
		default:
			return fmt.Errorf("%w: want snapshot documents, got %T", ErrBadRequest, m)
		}
		if len(docs.Docs) > 0 {
			first, last := docs.Docs[0].Doc, docs.Docs[len(docs.Docs)-1].Doc
			if first == ACLDoc && len(docs.Docs) > 1 {
				first = docs.Docs[1].Doc
			}
			if first != ACLDoc && first <= after {
				return fmt.Errorf("%w: snapshot document %q not after %q", ErrBadRequest, first, after)
			}
			if err := store.InstallSnapshot(ctx, db, p, head, after, docs.Docs, f != nil); err != nil {
				return fmt.Errorf("install: %w", err)
			}
			if last != ACLDoc {
				after = last
			}
			st.Docs += len(docs.Docs)
		}
		if docs.Done {
			return store.FinishSnapshot(ctx, db, p, head, after, f != nil)
		}
		if len(docs.Docs) == 0 {
			return fmt.Errorf("%w: empty snapshot batch before the end", ErrBadRequest)
		}
	}
}

// pullOrSnapshot pulls db from p; when p's history before our checkpoint was
// compacted, it installs p's snapshot first and pulls on from there.
func (c *Client) pullOrSnapshot(ctx context.Context, p peer.ID, db string, f *Filter, prog *progress) (Stats, error) {
	st, err := c.pull(ctx, p, db, f, prog)
	if !errors.Is(err, ErrSnapshotNeeded) {
		return st, err
	}
	if _, ok := c.store.(SnapshotStore); !ok {
		return st, err
	}
	c.log.Info("sync: installing a snapshot", "peer", p, "db", db, "why", err)
	ss, err := c.Snapshot(ctx, p, db, f)
	if err != nil {
		return st, err
	}
	c.log.Info("sync: snapshot installed", "peer", p, "db", db, "docs", ss.Docs, "bytes", ss.Bytes)
	return c.pull(ctx, p, db, f, prog)
}
