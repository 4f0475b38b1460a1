package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/history"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// History compaction (docs/design.md, Compaction): a document's changes
// older than the retention horizon are folded into a base state
// (crdt.FoldHistory), the tombstone of a document deleted before the
// horizon is removed, and the store's own compaction returns the space.

// Retention says how much history a database keeps. A change is folded
// only when it is both older than KeepFor and followed by at least
// KeepRevisions newer revisions of its document; a deleted document's
// tombstone goes once its delete is older than KeepFor.
type Retention struct {
	KeepRevisions int           `koanf:"keep_revisions"` // newest revisions kept per document
	KeepFor       time.Duration `koanf:"keep_for"`       // history younger than this is kept: the horizon
	TombstonesFor time.Duration `koanf:"tombstones_for"` // a tombstone younger than this is kept; 0: KeepFor
	Interval      time.Duration `koanf:"interval"`       // background compaction period; 0: on demand only
}

// DefaultRetention keeps ten revisions per document and thirty days of
// history, and compacts every hour. The horizon must be longer than any
// peer stays offline: a peer that returns after it resyncs from a snapshot.
var DefaultRetention = Retention{KeepRevisions: 10, KeepFor: 30 * 24 * time.Hour, Interval: time.Hour}

func (r Retention) validate() error {
	if r.KeepRevisions < 0 || r.KeepFor < 0 || r.TombstonesFor < 0 || r.Interval < 0 {
		return fmt.Errorf("retention: keep_revisions, keep_for, tombstones_for and interval must not be negative")
	}
	return nil
}

// CompactionStats reports one compaction of a database.
type CompactionStats struct {
	Docs        int // documents examined
	Folded      int // changes folded into base states
	Tombstones  int
	BytesBefore uint64 // the database's estimated bytes on disk
	BytesAfter  uint64
	Took        time.Duration
	At          time.Time
}

// Work per exclusive step, so that writes wait at most one step.
const ()

// readFold loads a document's folded base; nil when none.
func (d *DB) readFold(doc string) (*crdt.State, crdt.HLC, error) {
	r, err := d.readFoldRecord(doc)
	if r == nil || err != nil {
		return nil, crdt.HLC{}, err
	}
	st, err := crdt.DecodeState(r.Base)
	if err != nil {
		return nil, crdt.HLC{}, fmt.Errorf("read base of %s: %w", doc, err)
	}
	return st, r.Clock, nil
}

func (d *DB) readFoldRecord(doc string) (*layout.FoldRecord, error) {
	if !d.anyFold.Load() {
		return nil, nil // nothing folded yet: no lookup on the write path
	}
	v, err := d.store.Get(d.keys.Fold(doc))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read base of %s: %w", doc, err)
	}
	r := new(layout.FoldRecord)
	if err := crdt.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("read base of %s: %w", doc, err)
	}
	return r, nil
}

// Compact folds the history of every document as r allows (nil: the node's
// retention), removes old tombstones and reclaims the space. It works in
// steps of a few hundred documents, each run by the writer between two
// group commits, so writes keep flowing while it runs.
func (d *DB) Compact(ctx context.Context, r *Retention) (CompactionStats, error) {
	if err := d.checkOpen(); err != nil {
		return CompactionStats{}, err
	}
	ret := d.node.cfg.retention()
	if r != nil {
		if err := r.validate(); err != nil {
			return CompactionStats{}, invalid("retention", "%v", err)
		}
		ret = *r
	}
	d.compactRun.Lock()
	defer d.compactRun.Unlock()
	start := time.Now()
	lo, hi := d.keys.All()
	if err := d.store.Flush(); err != nil {
		return CompactionStats{}, fmt.Errorf("compact %s: %w", d.name, err)
	}
	before, err := d.store.EstimateDiskUsage(lo, hi)
	if err != nil {
		return CompactionStats{}, fmt.Errorf("compact %s: %w", d.name, err)
	}
	stats := CompactionStats{BytesBefore: before}
	now := d.node.cfg.Now()
	tombs := ret.TombstonesFor
	if tombs == 0 {
		tombs = ret.KeepFor
	}
	h := history.Horizons{History: now.Add(-ret.KeepFor).UnixNano(), Tombstones: now.Add(-tombs).UnixNano(), Keep: ret.KeepRevisions}
	if h.HistorySeq, h.TombstoneSeq, err = history.MarkSeq(historyEnv{d}, now, d.seq.Load(), ret.KeepFor, tombs); err != nil {
		return CompactionStats{}, fmt.Errorf("compact %s: %w", d.name, err)
	}
	after := []byte(nil)
	for {
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		var next []byte
		err := d.writer.Exclusive(ctx, func() error {
			var err error
			next, err = d.compactStep(after, h, &stats)
			return err
		})
		if err != nil {
			return stats, fmt.Errorf("compact %s: %w", d.name, err)
		}
		if next == nil {
			break
		}
		after = next
	}
	if stats.Tombstones > 0 {
		d.reconInvalidate() // documents left without a feed entry
	}
	if stats.Folded > 0 || stats.Tombstones > 0 {
		if err := d.store.Compact(lo, hi); err != nil {
			return stats, fmt.Errorf("compact %s: %w", d.name, err)
		}
	}
	stats.BytesAfter, _ = d.store.EstimateDiskUsage(lo, hi)
	stats.Took, stats.At = time.Since(start), time.Now().UTC()
	if err := d.recordCompaction(&stats); err != nil {
		d.log.Warn("record compaction", "err", err)
	}
	m := d.node.metrics
	m.compactions.WithLabelValues(d.name).Inc()
	m.folded.WithLabelValues(d.name).Add(float64(stats.Folded))
	m.tombstones.WithLabelValues(d.name).Add(float64(stats.Tombstones))
	reclaimed := 0.0 // added even when 0, so the series exists from the first run
	if stats.BytesBefore > stats.BytesAfter {
		reclaimed = float64(stats.BytesBefore - stats.BytesAfter)
	}
	m.reclaimed.WithLabelValues(d.name).Add(reclaimed)
	d.log.Info("compacted", "docs", stats.Docs, "folded", stats.Folded, "tombstones", stats.Tombstones,
		"bytes_before", stats.BytesBefore, "bytes_after", stats.BytesAfter, "took", stats.Took)
	return stats, nil
}

func (d *DB) recordCompaction(s *CompactionStats) error {
	rec, err := crdt.Marshal(s)
	if err != nil {
		return err
	}
	b := d.store.NewWriteBatch()
	defer b.Close()
	b.Set(d.keys.Meta(layout.MetaCompacted), rec)
	return b.Commit()
}

// LastCompaction returns the stats of the database's last compaction, if
// any.
func (d *DB) LastCompaction() (*CompactionStats, error) {
	v, err := d.store.Get(d.keys.Meta(layout.MetaCompacted))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s CompactionStats
	if err := crdt.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("last compaction: %w", err)
	}
	return &s, nil
}

// compactStep runs one step of compaction (history.Step) and commits it
// with the database's metadata. It runs exclusively (no group is being
// prepared or committed). It returns the key to continue after, nil when
// done.
func (d *DB) compactStep(after []byte, h history.Horizons, stats *CompactionStats) ([]byte, error) {
	next, b, res, err := history.Step(historyEnv{d}, after, h)
	if err != nil || b == nil {
		return nil, err
	}
	defer b.Close()
	if res.Folded > 0 || res.Tombstones > 0 {
		if err := d.commitCompaction(b, &res); err != nil {
			return nil, err
		}
	}
	stats.Docs += res.Docs
	stats.Folded += res.Folded
	stats.Tombstones += res.Tombstones
	return next, nil
}

// commitCompaction adds the step's metadata (horizon, purge clock, counts
// of revisions and tombstones) to its batch and commits it.
func (d *DB) commitCompaction(b *datastore.Batch, res *history.Result) error {
	h := max(d.horizon.Load(), res.Horizon)
	b.Set(d.keys.Meta(layout.MetaHorizon), layout.Uint64(h))
	purged := d.purged
	if res.Purged.Compare(purged) > 0 {
		purged = res.Purged
	}
	pb, err := crdt.Marshal(purged)
	if err != nil {
		return err
	}
	b.Set(d.keys.Meta(layout.MetaPurged), pb)
	revs, tombs := d.revisions.Load()-int64(res.Folded), d.tombstones.Load()-int64(res.Tombstones)
	b.Set(d.keys.Meta(layout.MetaRevisions), layout.Uint64(uint64(revs)))
	b.Set(d.keys.Meta(layout.MetaTombs), layout.Uint64(uint64(tombs)))
	if err := b.Commit(); err != nil {
		return err
	}
	d.horizon.Store(h)
	d.purged = purged
	d.revisions.Store(revs)
	d.tombstones.Store(tombs)
	return nil
}

// compactLoop compacts the database every retention interval until ctx
// (the database's) ends.
func (d *DB) compactLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := d.Compact(ctx, nil); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
			d.log.Warn("background compaction failed", "err", err)
		}
	}
}
