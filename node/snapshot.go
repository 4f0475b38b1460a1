package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
	"github.com/barrel-db/barrel/node/internal/changes"
	"github.com/barrel-db/barrel/node/internal/commit"
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

// syncHorizon is bsync's Horizon on this database (sync_adapters.go).
func (d *DB) syncHorizon(ctx context.Context, remote peer.ID) (uint64, error) {
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

// syncOpenSnapshot is bsync's OpenSnapshot on this database (sync_adapters.go).
func (d *DB) syncOpenSnapshot(ctx context.Context, remote peer.ID, after string, f *bsync.Filter) (bsync.Snapshot, error) {
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
	changes *changes.Reader // the documents' changes, as of sn
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
		seq, _, err := tuple.ReadUint64(s.hist.Key()[len(prefix):])
		if err != nil {
			return sd, fmt.Errorf("history of %s: %w", doc, err)
		}
		id, err := changes.HistoryID(s.sn.Get, d.keys, seq, s.hist.Value())
		if err != nil {
			return sd, fmt.Errorf("history of %s: %w", doc, err)
		}
		if s.changes == nil {
			s.changes = changes.NewReader(d.keys, s.sn.Get)
		}
		body, err := s.changes.Encoded(id)
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

// syncSnapshotProgress is bsync's SnapshotProgress on this database (sync_adapters.go).
func (d *DB) syncSnapshotProgress(ctx context.Context, p peer.ID) (string, error) {
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
type snapDoc = commit.SnapDoc

// syncInstallSnapshot is bsync's InstallSnapshot on this database (sync_adapters.go).
func (d *DB) syncInstallSnapshot(ctx context.Context, p peer.ID, head bsync.SnapshotHead, after string, docs []bsync.SnapshotDoc, partial bool) error {
	in, err := d.decodeSnapshot(docs)
	if err != nil {
		return err
	}
	for i, sd := range in {
		if sd.Doc == ACLDocID && (i > 0 || sd.Base != nil) {
			return d.refuseSnapshot(p, rejectSnapForged, "it carries a base (or a second copy) of %s, which is never folded", ACLDocID)
		}
	}
	if len(in) > 0 && in[0].Doc == ACLDocID {
		if _, err := d.applyFrom(ctx, p, in[0].Changes); err != nil {
			return fmt.Errorf("snapshot from %s: apply %s: %w", p, ACLDocID, err)
		}
		in = in[1:]
	}
	if err := d.mayInstallFrom(p); err != nil {
		return err
	}
	return d.writer.Exclusive(ctx, func() error { return d.install(p, head, after, in, partial) })
}

// syncFinishSnapshot is bsync's FinishSnapshot on this database (sync_adapters.go).
func (d *DB) syncFinishSnapshot(ctx context.Context, p peer.ID, head bsync.SnapshotHead, after string, partial bool) error {
	if err := d.mayInstallFrom(p); err != nil {
		return err
	}
	return d.writer.Exclusive(ctx, func() error { return d.install(p, head, after, nil, partial) })
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
		in := &snapDoc{Doc: sd.Doc, Clock: sd.Clock, Authors: map[string]crdt.HLC{}}
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
			in.Changes = append(in.Changes, c)
		}
		all = append(all, in.Changes...)
		if len(sd.Base) > 0 {
			st, err := crdt.DecodeState(sd.Base)
			if err != nil || len(st.Heads) == 0 {
				return nil, invalid("snapshot", "document %s: bad base (%v)", sd.Doc, err)
			}
			in.Base, in.St, in.Heads = sd.Base, st, st.Heads
			r := &layout.FoldRecord{Base: sd.Base, Clock: sd.Clock}
			for _, a := range sd.Authors {
				r.Authors = append(r.Authors, layout.AuthorClock{Author: a.Author, Clock: a.Clock})
				in.Authors[string(a.Author)] = a.Clock
			}
			var err2 error
			if in.Rec, err2 = crdt.Marshal(r); err2 != nil {
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
	g := d.writer.NewGroup()
	defer g.Close()
	b := g.Batch()
	end := docs == nil
	if len(docs) > 0 {
		fresh, err := d.noDocsAfter(after)
		if err != nil {
			return err
		}
		anyRejected := false
		x := d.keys.Rejections()
		err = d.store.Range(x, datastore.PrefixEnd(x), false, func(_, _ []byte) (bool, error) {
			anyRejected = true
			return false, nil
		})
		if err != nil {
			return err
		}
		g.BeginInstall(fresh, anyRejected)
	} else {
		g.BeginInstall(false, false)
	}
	hi := ""
	listed := map[string]bool{}
	for _, sd := range docs {
		listed[sd.Doc] = true
		if sd.Doc != ACLDocID {
			hi = sd.Doc // the _acl document comes first in every session
		}
	}
	if !end && hi == "" {
		hi = after
	}
	if !partial {
		if err := g.DropAbsent(p, head, after, hi, end, listed); err != nil {
			return err
		}
	}
	for _, sd := range docs {
		if err := g.InstallDoc(p, sd); err != nil {
			return fmt.Errorf("snapshot document %s: %w", sd.Doc, err)
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
		b.Delete(d.keys.SnapProgress([]byte(p)))
		b.Set(d.keys.Checkpoint([]byte(p)), layout.Uint64(seq))
		if head.Purged.Compare(purged) > 0 {
			purged = head.Purged
			pb, err := crdt.Marshal(purged)
			if err != nil {
				return err
			}
			b.Set(d.keys.Meta(layout.MetaPurged), pb)
		}
	} else {
		v, err := crdt.Marshal(&layout.SnapProgress{After: hi, Seq: seq})
		if err != nil {
			return err
		}
		b.Set(d.keys.SnapProgress([]byte(p)), v)
	}
	horizon, rebased := g.Installed()
	based := max(d.basesFrom(p), horizon)
	if based > d.basesFrom(p) {
		b.Set(d.keys.Meta(layout.MetaBasesFrom+string(p)), layout.Uint64(based))
	}
	if err := d.writer.CommitNow(g); err != nil {
		return err
	}
	d.setBasesFrom(p, based)
	d.purged = purged
	if rebased > 0 {
		d.log.Info("snapshot: own edits re-issued on the snapshot", "peer", p, "changes", rebased)
	}
	return nil
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
