package node

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
	"github.com/barrel-db/barrel/index"
	"github.com/barrel-db/barrel/node/internal/changes"
	"github.com/barrel-db/barrel/node/internal/commit"
	"github.com/barrel-db/barrel/node/internal/layout"
	bsync "github.com/barrel-db/barrel/sync"
)

// maxClockDrift bounds how far ahead of local time a received change's clock
// may pull this node's HLC. A peer with a clock far in the future still
// merges deterministically; it just does not drag every later local stamp.
const maxClockDrift = time.Hour

// syncFeed is bsync's Feed on this database (sync_adapters.go).
func (d *DB) syncFeed(ctx context.Context, since uint64, limit int, f *bsync.Filter) ([]bsync.Entry, uint64, error) {
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	match, err := d.filterFunc(f)
	if err != nil {
		return nil, 0, err
	}
	last := since
	scanned := 0
	var out []bsync.Entry
	base := d.keys.Feeds()
	lo := tuple.AppendUint64(slices.Clone(base), since+1)
	err = d.store.Range(lo, datastore.PrefixEnd(base), false, func(k, v []byte) (bool, error) {
		seq, _, err := tuple.ReadUint64(k[len(base):])
		if err != nil {
			return false, err
		}
		var e layout.FeedEntry
		if err := crdt.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("feed entry %d: %w", seq, err)
		}
		last = seq
		scanned++
		ok, err := match(e.Doc)
		if err != nil {
			return false, err
		}
		if ok {
			out = append(out, bsync.Entry{Seq: seq, ID: e.Rev, Doc: e.Doc, From: peer.ID(e.From)})
		}
		// A filter that skips most entries must not make one call scan the
		// whole feed: stop after 10 pages' worth and report how far it got.
		return len(out) < limit && scanned < 10*limit, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, last, nil
}

// filterFunc compiles a partial-view filter into a document test on the
// current body.
func (d *DB) filterFunc(f *bsync.Filter) (func(doc string) (bool, error), error) {
	if f == nil || (f.IDPrefix == "" && len(f.Where) == 0) {
		return func(string) (bool, error) { return true, nil }, nil
	}
	conds := make([]index.Cond, len(f.Where))
	for i, c := range f.Where {
		v, err := crdt.Normalize(c.Value)
		if err != nil {
			return nil, invalid("query", "filter: %v", err)
		}
		conds[i] = index.Cond{Path: c.Path, Op: c.Op, Value: v}
		if err := conds[i].Validate(); err != nil {
			return nil, invalid("query", "filter: %v", err)
		}
	}
	return func(doc string) (bool, error) {
		if len(doc) < len(f.IDPrefix) || doc[:len(f.IDPrefix)] != f.IDPrefix {
			return false, nil
		}
		if len(conds) == 0 {
			return true, nil
		}
		st, _, err := d.readView(doc)
		if err != nil {
			return false, err
		}
		// A deleted document passes if it ever could: its tombstone must
		// reach the view that holds it.
		body := st.Body
		for _, c := range conds {
			if !index.Match(body, c) {
				return false, nil
			}
		}
		return true, nil
	}, nil
}

// syncHas is bsync's Has on this database (sync_adapters.go).
func (d *DB) syncHas(ctx context.Context, ids []crdt.ID) ([]bool, error) {
	var err error
	out := make([]bool, len(ids))
	for i, id := range ids {
		if out[i], err = d.store.Has(d.keys.Change(id)); err != nil {
			return nil, err
		}
		if !out[i] {
			if out[i], err = d.rejected(id); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// syncChanges is bsync's Changes on this database (sync_adapters.go).
func (d *DB) syncChanges(ctx context.Context, ids []crdt.ID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	r := changes.NewReader(d.keys, d.store.Get)
	for i, id := range ids {
		v, err := r.Encoded(id)
		if errors.Is(err, datastore.ErrNotFound) {
			return nil, fmt.Errorf("change %s: %w", id, bsync.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("change %s: %w", id, err)
		}
		out[i] = v
	}
	return out, nil
}

// syncApply is bsync's Apply on this database (sync_adapters.go).
func (d *DB) syncApply(ctx context.Context, from peer.ID, changes []*crdt.Change) (int, error) {
	n, err := d.applyFrom(ctx, from, changes)
	d.wantBlobs(from, changes) // blobs the applied changes reference (blob_replica.go)
	return n, err
}

// syncCheckpoint is bsync's Checkpoint on this database (sync_adapters.go).
func (d *DB) syncCheckpoint(ctx context.Context, remote peer.ID) (uint64, error) {
	d.checkpoints.Lock()
	if d.checkpoints.readAt == nil {
		d.checkpoints.readAt = map[peer.ID]uint64{}
	}
	d.checkpoints.readAt[remote] = d.checkpoints.epoch
	d.checkpoints.Unlock()
	// Read after the epoch: a reset in between makes this pull's
	// SetCheckpoint a no-op, whichever of the two checkpoints it read.
	v, err := d.store.Get(d.keys.Checkpoint([]byte(remote)))
	if errors.Is(err, datastore.ErrNotFound) {
		return 0, nil
	}
	if err != nil || len(v) != 8 {
		return 0, fmt.Errorf("checkpoint of %s: corrupt or unreadable: %v", remote, err)
	}
	return binary.BigEndian.Uint64(v), nil
}

// syncSetCheckpoint is bsync's SetCheckpoint on this database (sync_adapters.go).
func (d *DB) syncSetCheckpoint(ctx context.Context, remote peer.ID, seq uint64) error {
	d.checkpoints.Lock()
	epoch := d.checkpoints.readAt[remote]
	d.checkpoints.Unlock()
	_, err := d.submitRemote(ctx, &commit.Request{Checkpoint: &commit.Checkpoint{Peer: remote, Seq: seq, Epoch: epoch}})
	return err
}

// applyChanges verifies changes received from a peer (content id, database,
// signature) and applies them through the writer loop, the same path as a
// local write: parents first, skipping changes already held. The changes of
// a transaction are applied together once all have arrived; until then they
// are kept (durably) as pending. A change whose parents are missing gives a
// *bsync.MissingError after the changes before it were applied. It returns
// how many changes were new.
func (d *DB) applyChanges(ctx context.Context, changes []*crdt.Change) (int, error) {
	return d.applyFrom(ctx, "", changes)
}

func (d *DB) applyFrom(ctx context.Context, from peer.ID, changes []*crdt.Change) (int, error) {
	for _, c := range changes {
		if c.DB != d.name {
			return 0, invalid("change", "change %s is for database %q, not %q", c.ID(), c.DB, d.name)
		}
	}
	if bad, err := verifyAll(changes); err != nil {
		// A peer that sends a forged change is refused the whole batch; its
		// id is not recorded as rejected, since an honest change can have
		// the same id with a valid signature.
		d.node.metrics.rejected.WithLabelValues(d.name, rejectSignature).Add(float64(bad))
		return 0, err
	}
	partial := d.Replication().filter() != nil
	// A transaction's changes by an author who may not write are refused
	// before anything of them is kept pending (issue 16): a non-writer must
	// not make this node store, or hold in memory, what it will refuse.
	refused, err := d.refuseNonWriters(ctx, from, changes, partial)
	if err != nil {
		return 0, err
	}
	applied := 0
	var run []*crdt.Change
	flushRun := func() error {
		if len(run) == 0 {
			return nil
		}
		n, err := d.submitRemote(ctx, &commit.Request{Remote: run, From: from})
		applied += n
		run = nil
		return err
	}
	for _, c := range changes {
		if c.Tx == nil || c.Tx.Count == 1 || partial {
			// A partial view holds only some documents of a transaction, so
			// it applies the part it holds.
			run = append(run, c)
			continue
		}
		if refused[c.ID()] {
			continue
		}
		if err := flushRun(); err != nil {
			return applied, err
		}
		g, err := d.addPending(from, c)
		if err != nil {
			return applied, err
		}
		if g == nil {
			continue
		}
		n, err := d.submitRemote(ctx, &commit.Request{Remote: g.changes, Atomic: true, Unpend: g.unpend, From: from})
		applied += n
		if err != nil {
			return applied, err
		}
		d.dropPending(c.Tx.ID, g)
	}
	return applied, flushRun()
}

// submitRemote hands received changes (or a checkpoint) to the writer.
// Replication waits for room instead of failing: the puller is the one
// place where back-pressure should slow the sender, not drop its data.
func (d *DB) submitRemote(ctx context.Context, r *commit.Request) (int, error) {
	resp := d.writer.Submit(ctx, r, true)
	return resp.Applied, resp.Err
}

// verifyAll checks every signature, on all cores: verification is the
// CPU cost of receiving. Changes signed as one Merkle group share a signed
// message, which is verified once. It returns how many signed messages
// failed.
func verifyAll(changes []*crdt.Change) (int, error) {
	type signed struct {
		author, msg, sig string
	}
	first := map[signed]int{} // signed message -> index of its first change
	var unique []int
	for i, c := range changes {
		k := signed{string(c.Author), string(c.SignedMessage()), string(c.Sig)}
		if _, ok := first[k]; !ok {
			first[k] = i
			unique = append(unique, i)
		}
	}
	errs := make([]error, len(unique))
	commit.Parallel(len(unique), func(j int) {
		errs[j] = changes[unique[j]].Verify(verifyChange)
	})
	bad, firstErr := 0, error(nil)
	for _, err := range errs {
		if err != nil {
			bad++
			firstErr = cmp.Or(firstErr, err)
		}
	}
	if firstErr != nil {
		return bad, invalid("change", "%v", firstErr)
	}
	return 0, nil
}
