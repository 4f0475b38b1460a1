package commit

import (
	"fmt"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/index"
	"github.com/barrel-db/barrel/node/internal/acl"
	"github.com/barrel-db/barrel/node/internal/changes"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// prepared is a change ready to apply to its document.
type prepared struct {
	ent    *docEntry
	change *crdt.Change
	from   []byte // the peer a received change came from; nil for local writes
	local  bool   // made by this node's API: checked against the document limits
}

// merged is a change merged into its document and encoded, ready for
// record to give it a sequence number and add it to the batch.
type merged struct {
	p               *prepared
	st              *crdt.State
	enc, stEnc      []byte
	feed            []byte
	del, put        [][]byte
	wasLive, isLive bool
	wasTomb, isTomb bool        // the document was, is a tombstone
	view            *crdt.State // st.View(), when the group carries views
}

// merge does the CPU work of applying a change: the CRDT merge (or replay),
// the encodings and the index delta. It touches only its own document, so
// merges of different documents run in parallel; it reads the group's maps
// but does not write them.
func (g *Group) merge(p *prepared) (*merged, error) {
	c, ent := p.change, p.ent
	wasTomb := ent.state.Exists() && ent.state.Deleted
	var oldBody map[string]any
	if live := LiveBody(ent.state); live != nil {
		oldBody = crdt.Copy(live).(map[string]any) // ApplyNext mutates the state in place
	}
	st := ent.state
	if !st.ApplyNext(c) {
		all, err := g.docChanges(c.Doc, ent)
		if err != nil {
			return nil, err
		}
		base, err := g.baseOf(c.Doc)
		if err != nil {
			return nil, err
		}
		if st, err = crdt.ReplayFrom(base, append(all, c)); err != nil {
			return nil, fmt.Errorf("replay %s: %w", c.Doc, err)
		}
	}
	m := &merged{p: p, st: st, wasLive: oldBody != nil, wasTomb: wasTomb, isTomb: st.Exists() && st.Deleted}
	var err error
	if m.enc, err = c.EncodeSealed(); err != nil {
		return nil, fmt.Errorf("encode change: %w", err)
	}
	if m.stEnc, err = st.Encode(); err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	if p.local {
		if err := checkState(st, len(m.stEnc)); err != nil {
			// ApplyNext changed the entry's state in place: put back the
			// state without this change (the rare path, so a replay).
			if st == ent.state {
				if rerr := g.restore(c.Doc, ent); rerr != nil {
					return nil, fmt.Errorf("restore %s after a refused write: %w", c.Doc, rerr)
				}
			}
			return nil, fmt.Errorf("document %s: %w", c.Doc, err)
		}
	}
	if m.feed, err = crdt.Marshal(&layout.FeedEntry{Doc: c.Doc, Rev: c.ID(), Deleted: st.Deleted, From: p.from}); err != nil {
		return nil, fmt.Errorf("encode feed entry: %w", err)
	}
	newBody := LiveBody(st)
	m.isLive = newBody != nil
	m.del, m.put = index.Diff(g.env.Keys().Index(), c.Doc, oldBody, newBody)
	if g.wantViews {
		m.view = st.View() // Here, on the merging goroutines; st changes in place with the document's next change.
	}
	return m, nil
}

// checkState checks what a local write leaves against the document limits
// (crdt/limits.go): the live body (crdt.CheckBody) and the encoded state,
// which holds the merge bookkeeping and the conflicts besides the body.
// Invariant (DESIGN.md 8): whatever a local write leaves, every reader can
// read; a write past a limit is refused before it is acknowledged. A
// delete is never refused, so that a document past a limit (which merges of
// concurrent writes can make) can always be removed. Changes from peers are
// checked change by change (crdt.Change.CheckLimits, applyRemote), never by
// the state they leave, which depends on the order they arrive in: refusing
// by state would let two peers keep different sets of changes.
func checkState(st *crdt.State, stateBytes int) error {
	if !st.Exists() || st.Deleted {
		return nil
	}
	if err := crdt.CheckBody(st.Body); err != nil {
		return err
	}
	if stateBytes > crdt.MaxStateBytes {
		return &crdt.LimitError{Limit: crdt.LimitStateBytes, Got: int64(stateBytes), Max: crdt.MaxStateBytes}
	}
	return nil
}

// restore recomputes a document's state in the group from its base and
// changes (those of this group included), after a merge that changed it in
// place was refused.
func (g *Group) restore(doc string, ent *docEntry) error {
	all, err := g.docChanges(doc, ent)
	if err != nil {
		return err
	}
	base, err := g.baseOf(doc)
	if err != nil {
		return err
	}
	if len(all) == 0 && base == nil {
		ent.state = crdt.NewState()
		return nil
	}
	st, err := crdt.ReplayFrom(base, all)
	if err != nil {
		return err
	}
	ent.state = st
	return nil
}

// record gives a merged change the next local sequence number and adds
// everything it writes to the group's batch: the change, the feed entry,
// the history entry, the document state and the index delta (the change's
// own record waits for finish, which stores its signing group). Records run
// one at a time, in order.
func (g *Group) record(m *merged) {
	keys, c, ent := g.env.Keys(), m.p.change, m.p.ent
	g.seq++
	id := c.ID()
	b := g.batch
	g.stored = append(g.stored, changes.Stored{Change: c, Enc: m.enc, Seq: g.seq}) // by finish, with its signing group
	b.Set(keys.Feed(g.seq), m.feed)
	b.Set(keys.HistoryEntry(c.Doc, g.seq), nil) // the feed entry names the change (changes.HistoryID)
	b.Set(keys.Doc(c.Doc), layout.DocRecord(g.seq, m.stEnc))
	if m.view != nil {
		g.views = append(g.views, View{Seq: g.seq, Doc: c.Doc, State: m.view, Size: len(m.stEnc)})
	}
	for _, k := range m.del {
		b.Delete(k)
	}
	for _, k := range m.put {
		b.Set(k, nil)
	}
	switch {
	case !m.wasLive && m.isLive:
		g.count++
	case m.wasLive && !m.isLive:
		g.count--
	}
	g.revs++
	switch {
	case !m.wasTomb && m.isTomb:
		g.tombs++
	case m.wasTomb && !m.isTomb:
		g.tombs--
	}
	if c.Doc == acl.DocID {
		g.aclChanged = true
	}
	ent.state = m.st
	ent.added = append(ent.added, id)
	g.changes[id] = c
	g.written++
	for i := range g.digest {
		g.digest[i] ^= id[i]
	}
	g.nchange++
}

// LiveBody is a document's body, nil when it is absent or deleted.
func LiveBody(st *crdt.State) map[string]any {
	if !st.Exists() || st.Deleted {
		return nil
	}
	return st.Body
}
