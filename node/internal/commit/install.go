package commit

import (
	"fmt"
	"slices"

	bsync "github.com/barrel-db/barrel/sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
	"github.com/barrel-db/barrel/index"
	"github.com/barrel-db/barrel/node/internal/acl"
	"github.com/barrel-db/barrel/node/internal/changes"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// SnapDoc is a snapshot document, decoded and verified by the caller.
type SnapDoc struct {
	Doc     string
	Base    []byte      // state encoding, nil: none
	St      *crdt.State // Base decoded
	Rec     []byte      // fold record to store with the base
	Heads   []crdt.ID
	Clock   crdt.HLC
	Authors map[string]crdt.HLC
	Changes []*crdt.Change
}

// BeginInstall makes g a snapshot install (docs/design.md, Snapshots):
// fresh says no local document sorts after the batch's cursor (every one is
// new), anyRejected that the database has rejected or purged changes.
func (g *Group) BeginInstall(fresh, anyRejected bool) {
	g.snap = &snapState{bases: map[string]*crdt.State{}, dropped: map[string]bool{}, gone: map[crdt.ID]bool{},
		fresh: fresh, anyRejected: anyRejected}
	if g.folds == nil {
		g.folds = map[string]*foldInfo{}
	}
}

// Installed reports what the install did: the highest seq given to an
// installed base, and how many own edits it re-issued on the snapshot.
func (g *Group) Installed() (horizon uint64, rebased int) { return g.snap.horizon, g.snap.rebased }

// snapState is what a group installing a snapshot overrides of the store.
type snapState struct {
	bases   map[string]*crdt.State // a document's base as installed (nil: dropped)
	dropped map[string]bool        // documents whose stored history is dropped
	gone    map[crdt.ID]bool       // changes deleted by this group
	horizon uint64                 // highest seq given to an installed base
	rebased int
	fresh   bool // no local document sorts after the batch's cursor: every one is new
	// anyRejected: the database has rejected (or purged) changes, so a
	// document whose heads are among them must not come back.
	anyRejected bool
}

// InstallDoc installs one snapshot document (see the file comment).
func (g *Group) InstallDoc(p peer.ID, sd *SnapDoc) error {
	var ent *docEntry
	var fi *foldInfo
	if g.snap.fresh && sd.Doc != acl.DocID {
		ent = &docEntry{state: crdt.NewState()}
		g.docs[sd.Doc], g.folds[sd.Doc] = ent, nil
	} else {
		var err error
		if ent, err = g.load(sd.Doc); err != nil {
			return err
		}
		if fi, err = g.foldOf(sd.Doc); err != nil {
			return err
		}
	}
	for _, h := range sd.Heads {
		if !g.snap.anyRejected {
			break
		}
		if gone, err := g.env.Rejected(h); err != nil {
			return err
		} else if gone {
			return nil // purged (or rejected) here: a snapshot must not bring it back
		}
	}
	var own []*crdt.Change
	old := &oldCopy{}
	switch {
	case !ent.state.Exists() && fi == nil:
		if sd.Base != nil {
			if err := g.installBase(p, sd); err != nil {
				return err
			}
		}
	case sd.Base == nil:
		// The server keeps the whole history: its changes merge as usual.
	default:
		knows := true
		for _, h := range sd.Heads {
			has, err := g.has(h)
			if err != nil {
				return err
			}
			knows = knows && (has || fi.isFrontier(h))
		}
		if knows {
			break
		}
		kept := map[crdt.ID]bool{}
		for _, c := range sd.Changes {
			kept[c.ID()] = true
		}
		if fi != nil && len(fi.frontier) > 0 && !slices.ContainsFunc(fi.frontier, func(h crdt.ID) bool { return !kept[h] }) {
			// Our base is later on the same history than the server's (two
			// peers folded at different points, and this node installed the
			// other's snapshot): its kept changes up to our frontier are
			// folded here; the rest merge as usual.
			sd.Changes = slices.DeleteFunc(sd.Changes, ancestorsWithin(sd.Changes, fi.frontier))
			break
		}
		// Away longer than the horizon: take the server's document and
		// re-issue our own edits it lacks.
		// Invariant (DESIGN.md 7): only this node's own edits are
		// re-issued, never another author's (re-issued here, an old change
		// of theirs would revert what they acknowledged since).
		mine := g.env.Author()
		var err error
		if own, old, err = g.ownSince(sd.Doc, func(c *crdt.Change) bool {
			return peer.ID(c.Author) == mine && !kept[c.ID()] && c.Clock.Compare(sd.Authors[string(mine)]) > 0
		}); err != nil {
			return err
		}
		if err := g.dropDoc(sd.Doc); err != nil {
			return err
		}
		if err := g.installBase(p, sd); err != nil {
			return err
		}
	}
	if len(sd.Changes) > 0 {
		resp := g.applyRemote(&Request{Remote: sd.Changes, From: p})
		if resp.Err != nil {
			return resp.Err
		}
	}
	return g.rebase(sd.Doc, own, old)
}

// ancestorsWithin reports, for a change of changes, whether it is one of
// ids or an ancestor of one through changes.
func ancestorsWithin(changes []*crdt.Change, ids []crdt.ID) func(*crdt.Change) bool {
	byID := make(map[crdt.ID]*crdt.Change, len(changes))
	for _, c := range changes {
		byID[c.ID()] = c
	}
	anc := map[crdt.ID]bool{}
	stack := slices.Clone(ids)
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if anc[id] {
			continue
		}
		anc[id] = true
		if c := byID[id]; c != nil {
			stack = append(stack, c.Parents...)
		}
	}
	return func(c *crdt.Change) bool { return anc[c.ID()] }
}

// DropAbsent handles the local documents in (after, hi] (to the end when
// end) that the snapshot does not list: one whose changes from others are
// all older than the server's purge clock was deleted and purged there, so
// it is dropped here too, and this node's own later edits re-issued.
func (g *Group) DropAbsent(p peer.ID, head bsync.SnapshotHead, after, hi string, end bool, listed map[string]bool) error {
	if head.Purged.Wall == 0 && head.Purged.Logical == 0 {
		return nil // the server purged nothing: it just lacks them, and sync brings them
	}
	keys, store := g.env.Keys(), g.env.Store()
	prefix := keys.Docs()
	lo := prefix
	if after != "" {
		lo = datastore.PrefixEnd(keys.Doc(after))
	}
	top := datastore.PrefixEnd(prefix)
	if !end {
		top = datastore.PrefixEnd(keys.Doc(hi))
	}
	var absent []string
	err := store.Range(lo, top, false, func(k, _ []byte) (bool, error) {
		doc, _, err := tuple.ReadString(k[len(prefix):])
		if err != nil {
			return false, err
		}
		if !listed[doc] && doc != acl.DocID {
			absent = append(absent, doc)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	mine := g.env.Author()
	for _, doc := range absent {
		var foreign, oldest crdt.HLC
		all, old, err := g.ownSince(doc, func(*crdt.Change) bool { return true })
		if err != nil {
			return err
		}
		for _, c := range all {
			if peer.ID(c.Author) != mine && c.Clock.Compare(foreign) > 0 {
				foreign = c.Clock
			}
			if oldest.Wall == 0 || c.Clock.Compare(oldest) < 0 {
				oldest = c.Clock
			}
		}
		if foreign.Compare(head.Purged) > 0 || (foreign.Wall == 0 && oldest.Compare(head.Purged) > 0) {
			continue // newer than the purge: the server will get it by sync
		}
		own := slices.DeleteFunc(all, func(c *crdt.Change) bool {
			return peer.ID(c.Author) != mine || c.Clock.Compare(foreign) <= 0
		})
		if err := g.dropDoc(doc); err != nil {
			return err
		}
		if err := g.rebase(doc, own, old); err != nil {
			return err
		}
	}
	return nil
}

// ownSince returns the document's stored changes that keep accepts, in
// replay order, and the local copy they come from (what their author had
// seen: rebase needs it once the copy is dropped).
func (g *Group) ownSince(doc string, keep func(*crdt.Change) bool) ([]*crdt.Change, *oldCopy, error) {
	ids, err := g.env.History(doc)
	if err != nil {
		return nil, nil, err
	}
	old := &oldCopy{changes: make(map[crdt.ID]*crdt.Change, len(ids))}
	var out []*crdt.Change
	for _, id := range ids {
		c, err := g.change(id)
		if err != nil {
			return nil, nil, err
		}
		old.changes[id] = c
		if keep(c) {
			out = append(out, c)
		}
	}
	if old.base, _, err = g.env.Fold(doc); err != nil {
		return nil, nil, err
	}
	slices.SortFunc(out, func(a, b *crdt.Change) int { return a.Clock.Compare(b.Clock) })
	return out, old, nil
}

// oldCopy is a document as this node held it before a snapshot replaced
// it: its changes and its folded base.
type oldCopy struct {
	changes  map[crdt.ID]*crdt.Change
	base     *crdt.State
	reissued map[crdt.ID]crdt.ID // an own change -> the change re-issuing it
}

// saw returns what c had seen in this copy: its ancestors, itself, the
// writes folded into the copy's base, and the re-issues of all of them.
func (o *oldCopy) saw(c *crdt.Change) map[crdt.ID]bool {
	seen := map[crdt.ID]bool{}
	stack := []crdt.ID{c.ID()}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[id] {
			continue
		}
		seen[id] = true
		if x := o.changes[id]; x != nil {
			stack = append(stack, x.Parents...)
		}
	}
	if o.base != nil {
		for _, id := range stateRevs(o.base) {
			seen[id] = true
		}
	}
	for from, to := range o.reissued {
		if seen[from] {
			seen[to] = true
		}
	}
	return seen
}

// stateRevs lists every change a state names as the writer of something.
func stateRevs(st *crdt.State) []crdt.ID {
	var out []crdt.ID
	for _, w := range st.Writers {
		out = append(out, w.Rev)
	}
	for _, elems := range st.Sets {
		for _, tags := range elems {
			out = append(out, tags...)
		}
	}
	if st.Deleted {
		out = append(out, st.DeletedBy)
	}
	return append(out, st.Heads...)
}

// unseenBy lists the writes of st that ops would overwrite, and the
// conflicts a change would resolve, that the change making them had not
// seen (saw).
func unseenBy(st *crdt.State, ops []crdt.Op, saw map[crdt.ID]bool) []crdt.ID {
	var out []crdt.ID
	add := func(id crdt.ID) {
		if !saw[id] {
			out = append(out, id)
		}
	}
	if st.Deleted {
		add(st.DeletedBy)
	}
	for _, cf := range st.Conflicts {
		add(cf.Rev) // a change resolves every conflict it saw, wherever it is
	}
	touches := func(p string) bool {
		for _, op := range ops {
			if op.Kind == crdt.OpDeleteDoc || p == op.Path || isUnderPath(p, op.Path) || isUnderPath(op.Path, p) {
				return true
			}
		}
		return false
	}
	for p, w := range st.Writers {
		if touches(p) {
			add(w.Rev)
		}
	}
	for p, elems := range st.Sets {
		if touches(p) {
			for _, tags := range elems {
				for _, t := range tags {
					add(t)
				}
			}
		}
	}
	return out
}

// isUnderPath reports whether JSON pointer p is strictly inside q.
func isUnderPath(p, q string) bool {
	return len(p) > len(q) && p[len(q)] == '/' && p[:len(q)] == q
}

// dropDoc deletes a document and its whole history in the group's batch.
func (g *Group) dropDoc(doc string) error {
	keys := g.env.Keys()
	ent, err := g.load(doc)
	if err != nil {
		return err
	}
	recSeq, err := g.env.DocSeq(doc)
	if err != nil {
		return err
	}
	prefix := keys.History(doc)
	err = g.env.Store().Range(prefix, datastore.PrefixEnd(prefix), false, func(k, v []byte) (bool, error) {
		seq, _, err := tuple.ReadUint64(k[len(prefix):])
		if err != nil {
			return false, err
		}
		id, err := changes.HistoryID(g.env.Store().Get, keys, seq, v)
		if err != nil {
			return false, fmt.Errorf("history of %s: %w", doc, err)
		}
		g.batch.Delete(slices.Clone(k))
		if g.drops == nil {
			g.drops = changes.NewDropper(g.env.Store(), keys)
		}
		if err := g.drops.Drop(g.batch, id); err != nil {
			return false, err
		}
		g.batch.Delete(keys.Feed(seq))
		g.snap.gone[id] = true
		g.revs--
		return true, nil
	})
	if err != nil {
		return err
	}
	g.batch.Delete(keys.Feed(recSeq))
	g.batch.Delete(keys.Doc(doc))
	g.batch.Delete(keys.Fold(doc))
	if live := LiveBody(ent.state); live != nil {
		del, _ := index.Diff(keys.Index(), doc, live, nil)
		for _, k := range del {
			g.batch.Delete(k)
		}
		g.count--
	}
	if ent.state.Exists() && ent.state.Deleted {
		g.tombs--
	}
	g.docs[doc] = &docEntry{state: crdt.NewState()}
	g.folds[doc] = nil
	g.snap.bases[doc] = nil
	g.snap.dropped[doc] = true
	g.written++
	return nil
}

// installBase writes a snapshot document's base as the document's state
// and fold, with a feed entry (its change is not held: the entry raises
// this node's horizon).
func (g *Group) installBase(p peer.ID, sd *SnapDoc) error {
	keys := g.env.Keys()
	st, base := sd.St, sd.St
	if len(sd.Changes) > 0 || !g.snap.fresh {
		// The document's state moves on in this group (kept changes, or
		// re-issued edits) while merges read the base: keep them apart.
		var err error
		if base, err = crdt.DecodeState(sd.Base); err != nil {
			return err
		}
	}
	g.seq++
	feed, err := crdt.Marshal(&layout.FeedEntry{Doc: sd.Doc, Rev: st.Last, Deleted: st.Deleted, From: []byte(p)})
	if err != nil {
		return err
	}
	g.batch.Set(keys.Feed(g.seq), feed)
	g.batch.Set(keys.Doc(sd.Doc), layout.DocRecord(g.seq, sd.Base))
	g.env.FoldWritten()
	g.batch.Set(keys.Fold(sd.Doc), sd.Rec)
	if live := LiveBody(st); live != nil {
		_, put := index.Diff(keys.Index(), sd.Doc, nil, live)
		for _, k := range put {
			g.batch.Set(k, nil)
		}
		g.count++
	} else if st.Deleted {
		g.tombs++
	}
	g.docs[sd.Doc] = &docEntry{state: st}
	g.folds[sd.Doc] = &foldInfo{frontier: st.Heads, clock: sd.Clock}
	g.snap.bases[sd.Doc] = base
	g.snap.horizon = max(g.snap.horizon, g.seq)
	g.written++
	return nil
}

// rebase re-issues this node's own changes as new changes on top of the
// document as it now stands: same operations, new parents and clock. A
// write of the document's new state that the original change had not
// seen (made by others while this node was away) and that it would
// overwrite is named in the re-issued change (crdt.OpUnseen), so it stays
// in the document's conflicts on every peer instead of being displaced
// without a trace (DESIGN.md invariant 7).
func (g *Group) rebase(doc string, own []*crdt.Change, old *oldCopy) error {
	env := g.env
	for _, orig := range own {
		ent, err := g.load(doc)
		if err != nil {
			return err
		}
		ops := orig.Ops
		if len(orig.Unseen()) > 0 {
			ops = ops[1:] // re-issued before: the unseen writes are named anew
		}
		if ops[0].Kind == crdt.OpDeleteDoc && (!ent.state.Exists() || ent.state.Deleted) {
			continue
		}
		if un, ok := crdt.UnseenOp(unseenBy(ent.state, ops, old.saw(orig))); ok {
			ops = append([]crdt.Op{un}, ops...)
		}
		c := &crdt.Change{DB: env.Name(), Doc: doc, Parents: slices.Clone(ent.state.Heads),
			Clock: env.Clock().Now(env.Now().UnixNano()), Author: []byte(env.Author()), Ops: ops}
		if err := c.Seal(env.Signer()); err != nil {
			return err
		}
		m, err := g.merge(&prepared{ent: ent, change: c})
		if err != nil {
			return err
		}
		g.record(m)
		if old.reissued == nil {
			old.reissued = map[crdt.ID]crdt.ID{}
		}
		old.reissued[orig.ID()] = c.ID()
		g.snap.rebased++
	}
	return nil
}
