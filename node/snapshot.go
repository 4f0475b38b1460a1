package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
	"github.com/barrel-db/barrel/index"
	"github.com/barrel-db/barrel/node/internal/layout"
	bsync "github.com/barrel-db/barrel/sync"
)

// Snapshot catch-up (docs/design.md, Snapshots). A pull from before this
// node's horizon (history it folded or purged, or bases it installed from
// a snapshot itself) is answered with bsync.ErrSnapshotNeeded; the puller
// then installs this node's snapshot: for every document, its folded base
// and the changes kept after it. The installer:
//
//   - takes the base of a document it does not hold;
//   - merges only the kept changes of a document whose frontier it holds
//     (it is within the horizon for that document);
//   - replaces a document whose frontier it lacks (it was away longer than
//     the horizon) and re-issues its own edits the snapshot does not
//     cover as new changes on top (rebase): they are kept, merged by the
//     usual rules against what the others did meanwhile;
//   - drops a document the snapshot does not list when everything it got
//     from others is older than the server's purge clock (the document was
//     deleted and its tombstone purged), re-issuing its own later edits.
//
// A base carries no signature: it is trusted as the server's word, so
// with access control on, only a snapshot from a peer that may write the
// database is installed.

var (
	_ bsync.SnapshotStore = syncStore{}
	_ bsync.Horizoner     = syncStore{}
)

// Horizon implements bsync.Horizoner: the compaction horizon, and the
// highest seq of a base installed from a peer other than remote (remote
// has those documents' history itself: its own changes skip it anyway).
func (s syncStore) Horizon(ctx context.Context, db string, remote peer.ID) (uint64, error) {
	d, err := s.db(db)
	if err != nil {
		return 0, err
	}
	h := d.horizon.Load()
	d.bases.Lock()
	defer d.bases.Unlock()
	for p, seq := range d.bases.from {
		if p != remote {
			h = max(h, seq)
		}
	}
	return h, nil
}

func (d *DB) basesFrom(p peer.ID) uint64 {
	d.bases.Lock()
	defer d.bases.Unlock()
	return d.bases.from[p]
}

func (d *DB) setBasesFrom(p peer.ID, seq uint64) {
	d.bases.Lock()
	defer d.bases.Unlock()
	if d.bases.from == nil {
		d.bases.from = map[peer.ID]uint64{}
	}
	d.bases.from[p] = seq
}

// loadBases reads, per source peer, the highest seq of a base installed
// from its snapshots.
func (d *DB) loadBases() error {
	prefix := d.keys.Meta(layout.MetaBasesFrom)
	return d.store.Range(prefix, datastore.PrefixEnd(prefix), false, func(k, v []byte) (bool, error) {
		if len(v) != 8 {
			return false, fmt.Errorf("open db %s: corrupt %s", d.name, layout.MetaBasesFrom)
		}
		d.setBasesFrom(peer.ID(k[len(prefix):]), binary.BigEndian.Uint64(v))
		return true, nil
	})
}

// OpenSnapshot implements bsync.SnapshotStore.
func (s syncStore) OpenSnapshot(ctx context.Context, db string, remote peer.ID, after string, f *bsync.Filter) (bsync.Snapshot, error) {
	d, err := s.db(db)
	if err != nil {
		return nil, err
	}
	match, err := d.filterFunc(f)
	if err != nil {
		return nil, err
	}
	sn, err := d.store.Snapshot()
	if err != nil {
		return nil, err
	}
	ds := &docSnapshot{d: d, sn: sn, after: after, match: match}
	if v, err := sn.Get(d.keys.Meta(layout.MetaSeq)); err == nil && len(v) == 8 {
		ds.head.Seq = binary.BigEndian.Uint64(v)
	} else if err != nil && !errors.Is(err, datastore.ErrNotFound) {
		_ = sn.Close()
		return nil, err
	}
	if v, err := sn.Get(d.keys.Meta(layout.MetaPurged)); err == nil {
		if err := crdt.Unmarshal(v, &ds.head.Purged); err != nil {
			_ = sn.Close()
			return nil, fmt.Errorf("purge clock: %w", err)
		}
	} else if !errors.Is(err, datastore.ErrNotFound) {
		_ = sn.Close()
		return nil, err
	}
	return ds, nil
}

// docSnapshot lists a database's documents from a store snapshot.
type docSnapshot struct {
	d       *DB
	sn      *datastore.Snapshot
	head    bsync.SnapshotHead
	after   string
	match   func(string) (bool, error)
	aclSent bool            // every session starts with the _acl document, if any
	hist    *datastore.Iter // over every history key, sought per document
	done    bool
}

func (s *docSnapshot) Head() bsync.SnapshotHead { return s.head }

func (s *docSnapshot) Close() {
	if s.hist != nil {
		_ = s.hist.Close()
	}
	_ = s.sn.Close()
}

// snapshotBatchBytes is the most bytes of documents a snapshot batch
// gathers (one document may alone be up to the frame limit): a batch is
// installed in one exclusive step of the receiver's writer, so it stays
// short.
var snapshotBatchBytes = 1 << 20 // a variable so tests can make batches small

func (s *docSnapshot) Next(ctx context.Context, maxBytes int) ([]bsync.SnapshotDoc, error) {
	if s.done {
		return nil, nil
	}
	prefix := s.d.keys.Docs()
	lo := prefix
	if s.after != "" {
		lo = datastore.PrefixEnd(s.d.keys.Doc(s.after))
	}
	var out []bsync.SnapshotDoc
	size := 0
	if !s.aclSent {
		s.aclSent = true
		if _, err := s.sn.Get(s.d.keys.Doc(ACLDocID)); err == nil {
			sd, err := s.doc(ACLDocID)
			if err != nil {
				return nil, err
			}
			out, size = append(out, sd), sd.Size()
		} else if !errors.Is(err, datastore.ErrNotFound) {
			return nil, err
		}
	}
	err := s.sn.Range(lo, datastore.PrefixEnd(prefix), false, func(k, _ []byte) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		doc, _, err := tuple.ReadString(k[len(prefix):])
		if err != nil {
			return false, err
		}
		if doc == ACLDocID {
			return true, nil // sent first
		}
		if ok, err := s.match(doc); err != nil || !ok {
			s.after = doc
			return err == nil, err
		}
		sd, err := s.doc(doc)
		if err != nil {
			return false, err
		}
		n := sd.Size()
		if n > maxBytes {
			return false, fmt.Errorf("%w: document %s needs %d bytes", bsync.ErrFrameTooLarge, doc, n)
		}
		if len(out) > 0 && size+n > min(maxBytes, snapshotBatchBytes) {
			return false, nil
		}
		out = append(out, sd)
		size += n
		s.after = doc
		return true, nil
	})
	if len(out) == 0 {
		s.done = true
	}
	if err == nil && len(out) == 1 && out[0].Doc == ACLDocID && !s.done {
		return out, nil // the _acl document alone; documents follow
	}
	return out, err
}

// doc reads one document of the snapshot: its fold record and the changes
// of its history, in local order (parents first).
func (s *docSnapshot) doc(doc string) (bsync.SnapshotDoc, error) {
	d := s.d
	sd := bsync.SnapshotDoc{Doc: doc}
	v, err := s.sn.Get(d.keys.Fold(doc))
	switch {
	case err == nil:
		var r layout.FoldRecord
		if err := crdt.Unmarshal(v, &r); err != nil {
			return sd, fmt.Errorf("base of %s: %w", doc, err)
		}
		sd.Base, sd.Clock = r.Base, r.Clock
		for _, a := range r.Authors {
			sd.Authors = append(sd.Authors, bsync.AuthorClock{Author: a.Author, Clock: a.Clock})
		}
	case !errors.Is(err, datastore.ErrNotFound):
		return sd, err
	}
	if s.hist == nil {
		all := d.keys.Histories()
		if s.hist, err = s.sn.Iter(all, datastore.PrefixEnd(all), false); err != nil {
			return sd, err
		}
	}
	prefix := d.keys.History(doc)
	for ok := s.hist.SeekGE(prefix); ok && bytes.HasPrefix(s.hist.Key(), prefix); ok = s.hist.Next() {
		var id crdt.ID
		copy(id[:], s.hist.Value())
		body, err := s.sn.Get(d.keys.Change(id))
		if err != nil {
			return sd, fmt.Errorf("change %s of %s: %w", id, doc, err)
		}
		sd.Changes = append(sd.Changes, body)
	}
	if err := s.hist.Err(); err != nil {
		return sd, err
	}
	if len(sd.Base) == 0 && len(sd.Changes) == 0 {
		return sd, fmt.Errorf("document %s has neither base nor history", doc)
	}
	return sd, nil
}

// SnapshotProgress implements bsync.SnapshotStore.
func (s syncStore) SnapshotProgress(ctx context.Context, db string, p peer.ID) (string, error) {
	d, err := s.db(db)
	if err != nil {
		return "", err
	}
	pr, err := d.snapProgress(p)
	if pr == nil || err != nil {
		return "", err
	}
	return pr.After, nil
}

func (d *DB) snapProgress(p peer.ID) (*layout.SnapProgress, error) {
	v, err := d.store.Get(d.keys.SnapProgress([]byte(p)))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pr := new(layout.SnapProgress)
	if err := crdt.Unmarshal(v, pr); err != nil {
		return nil, fmt.Errorf("snapshot progress of %s: %w", p, err)
	}
	return pr, nil
}

// snapDoc is a snapshot document decoded and verified.
type snapDoc struct {
	doc     string
	base    []byte      // state encoding, nil: none
	st      *crdt.State // base decoded
	rec     []byte      // fold record to store with the base
	heads   []crdt.ID
	clock   crdt.HLC
	authors map[string]crdt.HLC
	changes []*crdt.Change
}

// InstallSnapshot implements bsync.SnapshotStore.
//
// Invariant (DESIGN.md 6): nothing in a snapshot is believed that no
// signature the ACL trusts covers. The _acl document is never folded, so
// a snapshot that carries a base for it is forged and refused whole; its
// changes are applied by the access rules, exactly as in a pull (the
// first one on trust on first use, every later one by an owner or an
// admin as of its parents). Only then is the sender judged, against the
// ACL so established: a base carries no signature, so bases are taken
// only from a peer the ACL trusts to fold for everyone (mayInstallFrom).
func (s syncStore) InstallSnapshot(ctx context.Context, db string, p peer.ID, head bsync.SnapshotHead, after string, docs []bsync.SnapshotDoc, partial bool) error {
	d, err := s.db(db)
	if err != nil {
		return err
	}
	in, err := d.decodeSnapshot(docs)
	if err != nil {
		return err
	}
	for i, sd := range in {
		if sd.doc == ACLDocID && (i > 0 || sd.base != nil) {
			return d.refuseSnapshot(p, rejectSnapForged, "it carries a base (or a second copy) of %s, which is never folded", ACLDocID)
		}
	}
	if len(in) > 0 && in[0].doc == ACLDocID {
		if _, err := d.applyFrom(ctx, p, in[0].changes); err != nil {
			return fmt.Errorf("snapshot from %s: apply %s: %w", p, ACLDocID, err)
		}
		in = in[1:]
	}
	if err := d.mayInstallFrom(p); err != nil {
		return err
	}
	return d.exclusive(ctx, func() error { return d.install(p, head, after, in, partial) })
}

// FinishSnapshot implements bsync.SnapshotStore.
func (s syncStore) FinishSnapshot(ctx context.Context, db string, p peer.ID, head bsync.SnapshotHead, after string, partial bool) error {
	d, err := s.db(db)
	if err != nil {
		return err
	}
	if err := d.mayInstallFrom(p); err != nil {
		return err
	}
	return d.exclusive(ctx, func() error { return d.install(p, head, after, nil, partial) })
}

// Snapshot refusal reasons (barrel_node_rejected_changes_total).
const (
	rejectSnapNotWriter = "snapshot_not_writer" // the sender may not even write the database
	rejectSnapNotAdmin  = "snapshot_not_admin"  // a writer, but not trusted to fold for everyone
	rejectSnapForged    = "snapshot_forged"     // the snapshot claims what no honest peer sends
)

// mayInstallFrom refuses bases from a peer the ACL does not trust to fold
// for everyone. A base carries no signature: whoever sends it could put
// anything in it, under anyone's name. In open mode (writers "*") every
// peer may write anything anyway, so any peer's bases are as good as its
// writes. With access control on, only the owner and the admins, who may
// rewrite the ACL itself, are trusted with bases; a writer is not, or it
// could plant a document no signature covers, or revert others' writes
// without a trace.
func (d *DB) mayInstallFrom(p peer.ID) error {
	a, err := d.currentACL()
	if err != nil {
		return err
	}
	switch {
	case a.AnyWrite || a.Admin(p):
		return nil
	case a.MayWrite(p, crdt.HLC{Wall: d.node.cfg.Now().UnixNano()}) != "":
		return d.refuseSnapshot(p, rejectSnapNotWriter, "it may not write %s", d.name)
	default:
		return d.refuseSnapshot(p, rejectSnapNotAdmin, "only the owner or an admin of %s is trusted with folded bases", d.name)
	}
}

// refuseSnapshot counts and logs a refused snapshot and returns the error
// that ends the session; the node syncs on from other peers.
func (d *DB) refuseSnapshot(p peer.ID, reason, format string, args ...any) error {
	d.node.metrics.rejected.WithLabelValues(d.name, reason).Inc()
	why := fmt.Sprintf(format, args...)
	d.log.Warn("snapshot refused", "peer", p, "reason", reason, "why", why)
	return fmt.Errorf("snapshot from %s: %w: %s", p, ErrNotAllowed, why)
}

// decodeSnapshot decodes and checks a batch: content ids, signatures,
// documents and bases.
func (d *DB) decodeSnapshot(docs []bsync.SnapshotDoc) ([]*snapDoc, error) {
	out := make([]*snapDoc, len(docs))
	var all []*crdt.Change
	for i, sd := range docs {
		in := &snapDoc{doc: sd.Doc, clock: sd.Clock, authors: map[string]crdt.HLC{}}
		for _, enc := range sd.Changes {
			c, err := crdt.Decode(enc)
			if err != nil {
				return nil, invalid("snapshot", "document %s: %v", sd.Doc, err)
			}
			if c.DB != d.name || c.Doc != sd.Doc {
				return nil, invalid("snapshot", "change %s is for %s/%s, not %s/%s", c.ID(), c.DB, c.Doc, d.name, sd.Doc)
			}
			if err := c.CheckLimits(); err != nil { // as applyRemote refuses it from a pull
				return nil, invalid("snapshot", "document %s: change %s: %v", sd.Doc, c.ID(), err)
			}
			in.changes = append(in.changes, c)
		}
		all = append(all, in.changes...)
		if len(sd.Base) > 0 {
			st, err := crdt.DecodeState(sd.Base)
			if err != nil || len(st.Heads) == 0 {
				return nil, invalid("snapshot", "document %s: bad base (%v)", sd.Doc, err)
			}
			in.base, in.st, in.heads = sd.Base, st, st.Heads
			r := &layout.FoldRecord{Base: sd.Base, Clock: sd.Clock}
			for _, a := range sd.Authors {
				r.Authors = append(r.Authors, layout.AuthorClock{Author: a.Author, Clock: a.Clock})
				in.authors[string(a.Author)] = a.Clock
			}
			var err2 error
			if in.rec, err2 = crdt.Marshal(r); err2 != nil {
				return nil, err2
			}
		}
		out[i] = in
	}
	if bad, err := verifyAll(all); err != nil {
		d.node.metrics.rejected.WithLabelValues(d.name, rejectSignature).Add(float64(bad))
		return nil, err
	}
	return out, nil
}

// install runs on the writer (exclusive): one batch of a snapshot from p
// listed after after (docs nil: the end of the snapshot), in one atomic
// write with the progress.
func (d *DB) install(p peer.ID, head bsync.SnapshotHead, after string, docs []*snapDoc, partial bool) error {
	g := d.newGroup(nil)
	defer g.batch.Close()
	g.snap = &snapState{bases: map[string]*crdt.State{}, dropped: map[string]bool{}, gone: map[crdt.ID]bool{}}
	if g.folds == nil {
		g.folds = map[string]*foldInfo{}
	}
	end := docs == nil
	if len(docs) > 0 {
		fresh, err := d.noDocsAfter(after)
		if err != nil {
			return err
		}
		g.snap.fresh = fresh
		x := d.keys.Rejections()
		err = d.store.Range(x, datastore.PrefixEnd(x), false, func(_, _ []byte) (bool, error) {
			g.snap.anyRejected = true
			return false, nil
		})
		if err != nil {
			return err
		}
	}
	hi := ""
	listed := map[string]bool{}
	for _, sd := range docs {
		listed[sd.doc] = true
		if sd.doc != ACLDocID {
			hi = sd.doc // the _acl document comes first in every session
		}
	}
	if !end && hi == "" {
		hi = after
	}
	if !partial {
		if err := g.dropAbsent(p, head, after, hi, end, listed); err != nil {
			return err
		}
	}
	for _, sd := range docs {
		if err := g.installDoc(p, sd); err != nil {
			return fmt.Errorf("snapshot document %s: %w", sd.doc, err)
		}
	}
	pr, err := d.snapProgress(p)
	if err != nil {
		return err
	}
	seq := head.Seq
	if pr != nil {
		seq = pr.Seq // the first session's position: nothing after it is missed
	}
	purged := d.purged
	if end {
		g.batch.Delete(d.keys.SnapProgress([]byte(p)))
		g.batch.Set(d.keys.Checkpoint([]byte(p)), layout.Uint64(seq))
		if head.Purged.Compare(purged) > 0 {
			purged = head.Purged
			pb, err := crdt.Marshal(purged)
			if err != nil {
				return err
			}
			g.batch.Set(d.keys.Meta(layout.MetaPurged), pb)
		}
	} else {
		v, err := crdt.Marshal(&layout.SnapProgress{After: hi, Seq: seq})
		if err != nil {
			return err
		}
		g.batch.Set(d.keys.SnapProgress([]byte(p)), v)
	}
	based := max(d.basesFrom(p), g.snap.horizon)
	if based > d.basesFrom(p) {
		g.batch.Set(d.keys.Meta(layout.MetaBasesFrom+string(p)), layout.Uint64(based))
	}
	if err := d.commitNow(g); err != nil {
		return err
	}
	d.setBasesFrom(p, based)
	d.purged = purged
	if g.snap.rebased > 0 {
		d.log.Info("snapshot: own edits re-issued on the snapshot", "peer", p, "changes", g.snap.rebased)
	}
	return nil
}

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

// noDocsAfter reports whether the database holds no document whose id
// sorts after after.
func (d *DB) noDocsAfter(after string) (bool, error) {
	prefix := d.keys.Docs()
	lo := prefix
	if after != "" {
		lo = datastore.PrefixEnd(d.keys.Doc(after))
	}
	none := true
	err := d.store.Range(lo, datastore.PrefixEnd(prefix), false, func(k, _ []byte) (bool, error) {
		doc, _, err := tuple.ReadString(k[len(prefix):])
		none = err == nil && doc == ACLDocID // the _acl document comes first in every session
		return none, err
	})
	return none, err
}

// installDoc installs one snapshot document (see the file comment).
func (g *group) installDoc(p peer.ID, sd *snapDoc) error {
	var ent *docEntry
	var fi *foldInfo
	if g.snap.fresh && sd.doc != ACLDocID {
		ent = &docEntry{state: crdt.NewState()}
		g.docs[sd.doc], g.folds[sd.doc] = ent, nil
	} else {
		var err error
		if ent, err = g.load(sd.doc); err != nil {
			return err
		}
		if fi, err = g.foldOf(sd.doc); err != nil {
			return err
		}
	}
	for _, h := range sd.heads {
		if !g.snap.anyRejected {
			break
		}
		if gone, err := g.d.rejected(h); err != nil {
			return err
		} else if gone {
			return nil // purged (or rejected) here: a snapshot must not bring it back
		}
	}
	var own []*crdt.Change
	old := &oldCopy{}
	switch {
	case !ent.state.Exists() && fi == nil:
		if sd.base != nil {
			if err := g.installBase(p, sd); err != nil {
				return err
			}
		}
	case sd.base == nil:
		// The server keeps the whole history: its changes merge as usual.
	default:
		knows := true
		for _, h := range sd.heads {
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
		for _, c := range sd.changes {
			kept[c.ID()] = true
		}
		if fi != nil && len(fi.frontier) > 0 && !slices.ContainsFunc(fi.frontier, func(h crdt.ID) bool { return !kept[h] }) {
			// Our base is later on the same history than the server's (two
			// peers folded at different points, and this node installed the
			// other's snapshot): its kept changes up to our frontier are
			// folded here; the rest merge as usual.
			sd.changes = slices.DeleteFunc(sd.changes, ancestorsWithin(sd.changes, fi.frontier))
			break
		}
		// Away longer than the horizon: take the server's document and
		// re-issue our own edits it lacks.
		// Invariant (DESIGN.md 7): only this node's own edits are
		// re-issued, never another author's (re-issued here, an old change
		// of theirs would revert what they acknowledged since).
		mine := g.d.node.peerID
		var err error
		if own, old, err = g.ownSince(sd.doc, func(c *crdt.Change) bool {
			return peer.ID(c.Author) == mine && !kept[c.ID()] && c.Clock.Compare(sd.authors[string(mine)]) > 0
		}); err != nil {
			return err
		}
		if err := g.dropDoc(sd.doc); err != nil {
			return err
		}
		if err := g.installBase(p, sd); err != nil {
			return err
		}
	}
	if len(sd.changes) > 0 {
		resp := g.applyRemote(&request{remote: sd.changes, from: []byte(p)})
		if resp.err != nil {
			return resp.err
		}
	}
	return g.rebase(sd.doc, own, old)
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

// dropAbsent handles the local documents in (after, hi] (to the end when
// end) that the snapshot does not list: one whose changes from others are
// all older than the server's purge clock was deleted and purged there, so
// it is dropped here too, and this node's own later edits re-issued.
func (g *group) dropAbsent(p peer.ID, head bsync.SnapshotHead, after, hi string, end bool, listed map[string]bool) error {
	if head.Purged.Wall == 0 && head.Purged.Logical == 0 {
		return nil // the server purged nothing: it just lacks them, and sync brings them
	}
	d := g.d
	prefix := d.keys.Docs()
	lo := prefix
	if after != "" {
		lo = datastore.PrefixEnd(d.keys.Doc(after))
	}
	top := datastore.PrefixEnd(prefix)
	if !end {
		top = datastore.PrefixEnd(d.keys.Doc(hi))
	}
	var absent []string
	err := d.store.Range(lo, top, false, func(k, _ []byte) (bool, error) {
		doc, _, err := tuple.ReadString(k[len(prefix):])
		if err != nil {
			return false, err
		}
		if !listed[doc] && doc != ACLDocID {
			absent = append(absent, doc)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	mine := d.node.peerID
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
func (g *group) ownSince(doc string, keep func(*crdt.Change) bool) ([]*crdt.Change, *oldCopy, error) {
	ids, err := g.d.historyIDs(doc)
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
	if old.base, _, err = g.d.readFold(doc); err != nil {
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
func (g *group) dropDoc(doc string) error {
	d := g.d
	ent, err := g.load(doc)
	if err != nil {
		return err
	}
	_, recSeq, err := d.readState(doc)
	if err != nil {
		return err
	}
	prefix := d.keys.History(doc)
	err = d.store.Range(prefix, datastore.PrefixEnd(prefix), false, func(k, v []byte) (bool, error) {
		seq, _, err := tuple.ReadUint64(k[len(prefix):])
		if err != nil {
			return false, err
		}
		var id crdt.ID
		copy(id[:], v)
		g.batch.Delete(slices.Clone(k))
		g.batch.Delete(d.keys.Change(id))
		g.batch.Delete(d.keys.Feed(seq))
		g.snap.gone[id] = true
		g.revs--
		return true, nil
	})
	if err != nil {
		return err
	}
	g.batch.Delete(d.keys.Feed(recSeq))
	g.batch.Delete(d.keys.Doc(doc))
	g.batch.Delete(d.keys.Fold(doc))
	if live := liveBody(ent.state); live != nil {
		del, _ := index.Diff(d.keys.Index(), doc, live, nil)
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
func (g *group) installBase(p peer.ID, sd *snapDoc) error {
	d := g.d
	st, base := sd.st, sd.st
	if len(sd.changes) > 0 || !g.snap.fresh {
		// The document's state moves on in this group (kept changes, or
		// re-issued edits) while merges read the base: keep them apart.
		var err error
		if base, err = crdt.DecodeState(sd.base); err != nil {
			return err
		}
	}
	g.seq++
	feed, err := crdt.Marshal(&layout.FeedEntry{Doc: sd.doc, Rev: st.Last, Deleted: st.Deleted, From: []byte(p)})
	if err != nil {
		return err
	}
	g.batch.Set(d.keys.Feed(g.seq), feed)
	g.batch.Set(d.keys.Doc(sd.doc), layout.DocRecord(g.seq, sd.base))
	d.anyFold.Store(true)
	g.batch.Set(d.keys.Fold(sd.doc), sd.rec)
	if live := liveBody(st); live != nil {
		_, put := index.Diff(d.keys.Index(), sd.doc, nil, live)
		for _, k := range put {
			g.batch.Set(k, nil)
		}
		g.count++
	} else if st.Deleted {
		g.tombs++
	}
	g.docs[sd.doc] = &docEntry{state: st}
	g.folds[sd.doc] = &foldInfo{frontier: st.Heads, clock: sd.clock}
	g.snap.bases[sd.doc] = base
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
func (g *group) rebase(doc string, own []*crdt.Change, old *oldCopy) error {
	d := g.d
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
		c := &crdt.Change{DB: d.name, Doc: doc, Parents: slices.Clone(ent.state.Heads),
			Clock: d.clock.Now(d.node.cfg.Now().UnixNano()), Author: []byte(d.node.peerID), Ops: ops}
		if err := c.Seal(d.node.key); err != nil {
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

// commitNow commits a group built by an exclusive job and publishes it as
// the writer's commit does.
func (d *DB) commitNow(g *group) error {
	g.hlc = d.clock.Last()
	err := g.finish()
	if err == nil && g.written == 0 {
		err = g.batch.Commit()
	}
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if g.written > 0 {
		d.publish(g)
	}
	return nil
}
