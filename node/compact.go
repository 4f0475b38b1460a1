package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
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
const (
	compactStepDocs    = 64
	compactStepChanges = 2_000
)

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
	h := horizons{history: now.Add(-ret.KeepFor).UnixNano(), tombstones: now.Add(-tombs).UnixNano(), keep: ret.KeepRevisions}
	if h.historySeq, h.tombstoneSeq, err = d.markSeq(now, ret.KeepFor, tombs); err != nil {
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

// histEntry is one history key of a document: its local seq and change id.
type histEntry struct {
	seq uint64
	id  crdt.ID
}

// compactStep compacts the documents whose history keys come after the key
// after (nil: from the start), up to a step's worth, in one batch. It runs
// exclusively (no group is being prepared or committed). It returns the
// key to continue after, nil when done.
func (d *DB) compactStep(after []byte, h horizons, stats *CompactionStats) ([]byte, error) {
	prefix := d.keys.Histories()
	lo := prefix
	if after != nil {
		lo = datastore.PrefixEnd(after)
	}
	type docHist struct {
		doc     string
		entries []histEntry
	}
	var docs []docHist
	var last []byte
	n := 0
	err := d.store.Range(lo, datastore.PrefixEnd(prefix), false, func(k, v []byte) (bool, error) {
		doc, rest, err := tuple.ReadString(k[len(prefix):])
		if err != nil {
			return false, err
		}
		seq, _, err := tuple.ReadUint64(rest)
		if err != nil || len(v) != len(crdt.ID{}) {
			return false, fmt.Errorf("history of %s: corrupt entry", doc)
		}
		if len(docs) == 0 || docs[len(docs)-1].doc != doc {
			if len(docs) >= compactStepDocs || n >= compactStepChanges {
				return false, nil
			}
			docs = append(docs, docHist{doc: doc})
			last = d.keys.History(doc)
		}
		e := histEntry{seq: seq}
		copy(e.id[:], v)
		docs[len(docs)-1].entries = append(docs[len(docs)-1].entries, e)
		n++
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, nil
	}
	b := d.store.NewWriteBatch()
	defer b.Close()
	var res compactResult
	for _, dh := range docs {
		stats.Docs++
		if dh.doc == ACLDocID {
			continue // access checks replay its history (acl.go)
		}
		if err := d.compactDoc(b, dh.doc, dh.entries, h, &res); err != nil {
			return nil, err
		}
	}
	if res.folded > 0 || res.tombstones > 0 {
		if err := d.commitCompaction(b, &res); err != nil {
			return nil, err
		}
	}
	stats.Folded += res.folded
	stats.Tombstones += res.tombstones
	return last, nil
}

// horizons are one compaction's limits: a change is folded when its clock
// is at or before history and keep newer revisions follow it; a tombstone
// goes when its delete is at or before tombstones.
type horizons struct {
	history, tombstones int64 // HLC wall times
	keep                int
	// historySeq and tombstoneSeq: the local seq this node had reached
	// keep_for (tombstones_for) ago. A change is folded only if it also
	// arrived before: one received late (from a peer back from a long
	// absence) is not folded at once, which would push the horizon past the
	// checkpoints of peers that synced recently and send them snapshots.
	historySeq, tombstoneSeq uint64
}

// seqMark is one entry of the database's clock-to-seq marks: the local seq
// reached at a time.
type seqMark struct {
	_    struct{} `cbor:",toarray"`
	Wall int64
	Seq  uint64
}

// maxSeqMarks bounds the marks kept (one per compaction run).
const maxSeqMarks = 1024

// markSeq records that the database has reached its current seq now, and
// returns the seqs it had reached keepFor and tombsFor ago (the current
// one for a zero duration; 0 when it has no mark that old yet).
func (d *DB) markSeq(now time.Time, keepFor, tombsFor time.Duration) (uint64, uint64, error) {
	var marks []seqMark
	v, err := d.store.Get(d.keys.Meta(layout.MetaSeqMarks))
	switch {
	case err == nil:
		if err := crdt.Unmarshal(v, &marks); err != nil {
			return 0, 0, fmt.Errorf("seq marks: %w", err)
		}
	case !errors.Is(err, datastore.ErrNotFound):
		return 0, 0, err
	}
	cur := d.seq.Load()
	at := func(age time.Duration) uint64 {
		if age == 0 {
			return cur
		}
		var seq uint64
		for _, m := range marks {
			if m.Wall <= now.Add(-age).UnixNano() {
				seq = max(seq, m.Seq)
			}
		}
		return seq
	}
	hist, tombs := at(keepFor), at(tombsFor)
	marks = append(marks, seqMark{Wall: now.UnixNano(), Seq: cur})
	// Keep the newest mark older than the longest window (it answers for
	// it) and every later one; past maxSeqMarks, every other one.
	oldest := now.Add(-max(keepFor, tombsFor)).UnixNano()
	for len(marks) > 1 && marks[1].Wall <= oldest {
		marks = marks[1:]
	}
	for len(marks) > maxSeqMarks {
		thin := marks[:1]
		for i := 1; i < len(marks); i += 2 {
			thin = append(thin, marks[i])
		}
		marks = append(thin, marks[len(marks)-1])
	}
	enc, err := crdt.Marshal(marks)
	if err != nil {
		return 0, 0, err
	}
	b := d.store.NewWriteBatch()
	defer b.Close()
	b.Set(d.keys.Meta(layout.MetaSeqMarks), enc)
	return hist, tombs, b.Commit()
}

// compactResult accumulates what one step changed.
type compactResult struct {
	folded, tombstones int
	horizon            uint64   // the highest seq whose change was folded or purged
	purged             crdt.HLC // the latest clock of a purged tombstone
}

// compactDoc folds one document's history into the batch, or removes it
// whole when it is a tombstone older than the horizon.
func (d *DB) compactDoc(b *datastore.Batch, doc string, entries []histEntry, h horizons, res *compactResult) error {
	st, recSeq, err := d.readState(doc)
	if err != nil {
		return err
	}
	if !st.Deleted && len(entries) <= h.keep {
		return nil
	}
	old, err := d.readFoldRecord(doc)
	if err != nil {
		return err
	}
	var base *crdt.State
	authors := map[string]crdt.HLC{}
	if old != nil {
		if base, err = crdt.DecodeState(old.Base); err != nil {
			return fmt.Errorf("compact %s: %w", doc, err)
		}
		for _, a := range old.Authors {
			authors[string(a.Author)] = a.Clock
		}
	}
	changes := make([]*crdt.Change, len(entries))
	seqOf := make(map[crdt.ID]uint64, len(entries))
	for i, e := range entries {
		if changes[i], err = d.readChange(e.id); err != nil {
			return fmt.Errorf("compact %s: %w", doc, err)
		}
		seqOf[e.id] = e.seq
	}
	f, err := crdt.FoldHistory(base, changes, func(c *crdt.Change, newer int) bool {
		if st.Deleted && newer == 0 && c.ID() == st.Last {
			return c.Clock.Wall <= h.tombstones && seqOf[c.ID()] <= h.tombstoneSeq // the tombstone goes whole
		}
		return newer >= h.keep && c.Clock.Wall <= h.history && seqOf[c.ID()] <= h.historySeq
	})
	if err != nil {
		return fmt.Errorf("compact %s: %w", doc, err)
	}
	if f == nil {
		return nil
	}
	for _, c := range f.Folded {
		seq := seqOf[c.ID()]
		b.Delete(d.keys.Change(c.ID()))
		b.Delete(d.keys.HistoryEntry(doc, seq))
		if seq != recSeq {
			b.Delete(d.keys.Feed(seq)) // the latest entry stays: the feed still lists the document
		}
		res.horizon = max(res.horizon, seq)
	}
	res.folded += len(f.Folded)
	if old != nil && f.Clock.Compare(old.Clock) < 0 {
		f.Clock = old.Clock
	}
	for _, c := range f.Folded {
		if a := string(c.Author); c.Clock.Compare(authors[a]) > 0 {
			authors[a] = c.Clock
		}
	}
	if st.Deleted && len(f.Kept) == 0 {
		b.Delete(d.keys.Doc(doc))
		b.Delete(d.keys.Fold(doc))
		b.Delete(d.keys.Feed(recSeq))
		res.tombstones++
		if f.Clock.Compare(res.purged) > 0 {
			res.purged = f.Clock
		}
		return nil
	}
	enc, err := f.Base.Encode()
	if err != nil {
		return err
	}
	r := &layout.FoldRecord{Base: enc, Clock: f.Clock}
	for _, a := range slices.Sorted(maps.Keys(authors)) {
		r.Authors = append(r.Authors, layout.AuthorClock{Author: []byte(a), Clock: authors[a]})
	}
	rec, err := crdt.Marshal(r)
	if err != nil {
		return err
	}
	d.anyFold.Store(true)
	b.Set(d.keys.Fold(doc), rec)
	return nil
}

// commitCompaction adds the step's metadata (horizon, purge clock, counts
// of revisions and tombstones) to its batch and commits it.
func (d *DB) commitCompaction(b *datastore.Batch, res *compactResult) error {
	h := max(d.horizon.Load(), res.horizon)
	b.Set(d.keys.Meta(layout.MetaHorizon), layout.Uint64(h))
	purged := d.purged
	if res.purged.Compare(purged) > 0 {
		purged = res.purged
	}
	pb, err := crdt.Marshal(purged)
	if err != nil {
		return err
	}
	b.Set(d.keys.Meta(layout.MetaPurged), pb)
	revs, tombs := d.revisions.Load()-int64(res.folded), d.tombstones.Load()-int64(res.tombstones)
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
