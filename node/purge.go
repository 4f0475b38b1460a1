package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/node/internal/changes"
	"github.com/barrel-db/barrel/node/internal/history"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// Purge (docs/design.md, Compaction): documents removed with all their
// history on this peer, for data that must be gone.

// MaxPurgeIDs is the most document ids one Purge takes.
const MaxPurgeIDs = 10_000

// rejectPurged is the rejection reason of a purged change: offered again
// by a peer, it is refused.
const rejectPurged = "purged"

// Documents purged per exclusive step, so that writes wait at most one step.
const purgeStepDocs = 256

// PurgeResult reports one Purge.
type PurgeResult struct {
	Purged      []string // ids removed, sorted
	NotFound    []string // ids this database did not hold, sorted
	Changes     int      // changes removed, refused from now on
	BytesBefore uint64
	BytesAfter  uint64
	Took        time.Duration
}

// Purge removes documents and all their history from this database: the
// document record, the folded base, the history, the change bodies, the
// feed entries and the index entries; the blobs their attachments named
// are reclaimed by the next CompactBlobs. Each purged change is recorded as
// rejected, so a peer that offers it again is refused: the document does
// not come back through replication. Purges do not travel to other peers.
// The store then compacts the database's range, so the bytes leave the
// disk rather than stay as tombstones.
//
// ErrInvalid, with nothing changed, for an empty list, more than
// MaxPurgeIDs ids, a malformed id or the ACL document. Ids the database
// does not hold are listed in NotFound. Purge works in steps of a few
// hundred documents run by the writer between group commits; a step is
// atomic, and an error in a later step leaves the earlier ones done (listed
// in the result returned with the error).
func (d *DB) Purge(ctx context.Context, ids []string) (PurgeResult, error) {
	if err := d.checkOpen(); err != nil {
		return PurgeResult{}, err
	}
	switch {
	case len(ids) == 0:
		return PurgeResult{}, invalid("ids", "no document ids to purge")
	case len(ids) > MaxPurgeIDs:
		return PurgeResult{}, invalid("ids", "%d document ids: at most %d per purge", len(ids), MaxPurgeIDs)
	}
	for _, id := range ids {
		if err := crdt.ValidateName("doc id", id); err != nil {
			return PurgeResult{}, invalid("doc id", "%v", err)
		}
		if id == ACLDocID {
			return PurgeResult{}, invalid("doc id", "%s cannot be purged: the database would lose its access control", ACLDocID)
		}
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	start := time.Now()
	lo, hi := d.keys.All()
	res := PurgeResult{Purged: []string{}, NotFound: []string{}}
	res.BytesBefore, _ = d.store.EstimateDiskUsage(lo, hi)
	for len(ids) > 0 {
		step := ids[:min(len(ids), purgeStepDocs)]
		ids = ids[len(step):]
		if err := d.writer.Exclusive(ctx, func() error { return d.purgeStep(step, &res) }); err != nil {
			return res, fmt.Errorf("purge %s: %w", d.name, err)
		}
	}
	if len(res.Purged) > 0 {
		d.reconInvalidate() // documents left without a feed entry
		if err := d.store.Compact(lo, hi); err != nil {
			return res, fmt.Errorf("purge %s: reclaim space: %w", d.name, err)
		}
	}
	res.BytesAfter, _ = d.store.EstimateDiskUsage(lo, hi)
	res.Took = time.Since(start)
	d.log.Info("purged", "docs", len(res.Purged), "not_found", len(res.NotFound), "changes", res.Changes,
		"bytes_before", res.BytesBefore, "bytes_after", res.BytesAfter, "dur", res.Took)
	return res, nil
}

// purgeStep removes a step's documents in one batch. It runs exclusively
// (no group is being prepared or committed), so it may rewrite the
// counters the writer keeps.
func (d *DB) purgeStep(ids []string, res *PurgeResult) error {
	b := d.store.NewWriteBatch()
	defer b.Close()
	count, revs, tombs, purged := d.count.Load(), d.revisions.Load(), d.tombstones.Load(), d.purged
	var done []string
	nchanges, rejected := 0, 0
	drops := changes.NewDropper(d.store, d.keys)
	for _, id := range ids {
		found, n, refused, clock, err := history.PurgeDoc(historyEnv{d}, b, drops, id, rejectPurged)
		if err != nil {
			return err
		}
		if !found.Exists() {
			res.NotFound = append(res.NotFound, id)
			continue
		}
		done = append(done, id)
		nchanges += n
		rejected += refused
		revs -= int64(n)
		switch {
		case found.Deleted:
			tombs--
		default:
			count--
		}
		if clock.Compare(purged) > 0 {
			purged = clock
		}
	}
	if len(done) == 0 {
		return nil
	}
	if err := drops.Finish(b); err != nil {
		return err
	}
	pb, err := crdt.Marshal(purged)
	if err != nil {
		return err
	}
	b.Set(d.keys.Meta(layout.MetaCount), layout.Uint64(uint64(count)))
	b.Set(d.keys.Meta(layout.MetaRevisions), layout.Uint64(uint64(revs)))
	b.Set(d.keys.Meta(layout.MetaTombs), layout.Uint64(uint64(tombs)))
	b.Set(d.keys.Meta(layout.MetaPurged), pb)
	if err := b.Commit(); err != nil {
		return err
	}
	d.count.Store(count)
	d.revisions.Store(revs)
	d.tombstones.Store(tombs)
	d.purged = purged
	res.Purged = append(res.Purged, done...)
	res.Changes += nchanges
	d.node.metrics.rejected.WithLabelValues(d.name, rejectPurged).Add(float64(rejected))
	return nil
}
