package commit

import (
	"fmt"
	"slices"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/changes"
)

// Group is the state of one group commit: the batch and the documents and
// changes it has touched, so later writes in the group read earlier ones.
type Group struct {
	env     Env
	prev    *Group // the group being committed while this one is prepared, or nil
	batch   *datastore.Batch
	docs    map[string]*docEntry
	changes map[crdt.ID]*crdt.Change
	seq     uint64
	count   int64
	revs    int64 // history entries held
	tombs   int64 // tombstones held
	written int
	others  int // records written besides changes (checkpoints): commit them too
	hlc     crdt.HLC
	digest  crdt.ID // XOR of all change ids held after this group
	nchange uint64
	start   time.Time

	folds map[string]*foldInfo // documents' folds read by this group (nil: whole history)
	snap  *snapState           // set while installing a snapshot (snapshot.go)

	aclChanged bool             // the group wrote a change of _acl: reconsider rejections after it commits
	views      []View           // the documents as merged, when wantViews
	wantViews  bool             // Env.Views as the group started
	unpend     [][]byte         // pending-transaction keys to delete: their transaction is applied
	stored     []changes.Stored // the changes recorded, for finish to store (changes.Write)
	drops      *changes.Dropper // the changes a snapshot install deletes, or nil
	broken     error            // set when the batch holds part of a failed request: commit nothing

	committed chan struct{} // closed when the commit finished; err is then set
	err       error
}

type docEntry struct {
	state *crdt.State
	added []crdt.ID // changes of this document not yet in the store
}

// NewGroup starts a group for an exclusive job (a snapshot install): it
// builds on the store as committed, and CommitNow commits it.
func (w *Writer) NewGroup() *Group { return w.newGroup(nil) }

func (w *Writer) newGroup(prev *Group) *Group {
	c := w.env.Counters()
	g := &Group{
		env:       w.env,
		prev:      prev,
		batch:     w.env.Store().NewWriteBatch(),
		docs:      map[string]*docEntry{},
		changes:   map[crdt.ID]*crdt.Change{},
		seq:       c.Seq,
		count:     c.Count,
		revs:      c.Revs,
		tombs:     c.Tombs,
		start:     time.Now(),
		committed: make(chan struct{}),
		wantViews: w.env.Views(),
	}
	if prev != nil {
		g.seq, g.count = prev.seq, prev.count
		g.revs, g.tombs = prev.revs, prev.tombs
		g.digest, g.nchange = prev.digest, prev.nchange
	} else {
		g.digest, g.nchange = c.Digest, c.NChange
	}
	return g
}

func (g *Group) counters() Counters {
	return Counters{Seq: g.seq, Count: g.count, Revs: g.revs, Tombs: g.tombs, Digest: g.digest, NChange: g.nchange}
}

// Close releases the group's batch (committed or not).
func (g *Group) Close() { g.batch.Close() }

// Batch is the group's batch: an exclusive job adds its own records
// (progress, metadata) to commit with the group.
func (g *Group) Batch() *datastore.Batch { return g.batch }

// load returns a document's state as of this point of the group.
func (g *Group) load(id string) (*docEntry, error) {
	if e, ok := g.docs[id]; ok {
		return e, nil
	}
	if g.prev != nil {
		if pe, ok := g.prev.docs[id]; ok {
			e := &docEntry{state: pe.state, added: slices.Clone(pe.added)}
			g.docs[id] = e
			return e, nil
		}
	}
	st, err := g.env.State(id)
	if err != nil {
		return nil, err
	}
	e := &docEntry{state: st}
	g.docs[id] = e
	return e, nil
}

// baseOf returns a document's folded base: as installed by this group, or
// as stored.
func (g *Group) baseOf(doc string) (*crdt.State, error) {
	if g.snap != nil {
		if b, ok := g.snap.bases[doc]; ok {
			if b == nil {
				return nil, nil
			}
			return b.Clone()
		}
	}
	b, _, err := g.env.Fold(doc)
	return b, err
}

// change returns a change of this database from the group or the store.
func (g *Group) change(id crdt.ID) (*crdt.Change, error) {
	if c, ok := g.changes[id]; ok {
		return c, nil
	}
	if g.prev != nil {
		if c, ok := g.prev.changes[id]; ok {
			return c, nil
		}
	}
	return g.env.Change(id)
}

// has reports whether the database holds a change, counting this group and
// the one being committed.
func (g *Group) has(id crdt.ID) (bool, error) {
	if _, ok := g.changes[id]; ok {
		return true, nil
	}
	if g.snap != nil && g.snap.gone[id] {
		return false, nil
	}
	if g.prev != nil {
		if _, ok := g.prev.changes[id]; ok {
			return true, nil
		}
	}
	return g.env.Store().Has(g.env.Keys().Change(id))
}

// docChanges loads every change of a document: those in the store and those
// written earlier in this group.
func (g *Group) docChanges(doc string, ent *docEntry) ([]*crdt.Change, error) {
	var ids []crdt.ID
	if g.snap == nil || !g.snap.dropped[doc] {
		var err error
		if ids, err = g.env.History(doc); err != nil {
			return nil, err
		}
	}
	ids = append(ids, ent.added...)
	out := make([]*crdt.Change, 0, len(ids))
	for _, id := range ids {
		c, err := g.change(id)
		if err != nil {
			return nil, fmt.Errorf("load change %s of %s: %w", id, doc, err)
		}
		out = append(out, c)
	}
	return out, nil
}
