package history

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
	"github.com/barrel-db/barrel/node/internal/acl"
	"github.com/barrel-db/barrel/node/internal/changes"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// A step's bounds, so that writes wait at most one step.
const (
	StepDocs    = 64
	StepChanges = 2_000
)

// histEntry is one history key of a document: its local seq and change id.
type histEntry struct {
	seq    uint64
	id     crdt.ID
	inline bool // id was the entry's value (format 1); else the feed entry at seq names it
}

// Step compacts the documents whose history keys come after the key after
// (nil: from the start), up to a step's worth (StepDocs documents or
// StepChanges changes), into one batch, and returns it uncommitted: the
// caller adds its metadata (Result) and commits it, then closes it. It
// must run as an exclusive job of the writer (no group in flight). next is
// the key to continue after, nil when done (b is then nil too).
func Step(env Env, after []byte, h Horizons) (next []byte, b *datastore.Batch, res Result, err error) {
	keys := env.Keys()
	prefix := keys.Histories()
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
	err = env.Store().Range(lo, datastore.PrefixEnd(prefix), false, func(k, v []byte) (bool, error) {
		doc, rest, err := tuple.ReadString(k[len(prefix):])
		if err != nil {
			return false, err
		}
		seq, _, err := tuple.ReadUint64(rest)
		if err != nil || (len(v) != 0 && len(v) != len(crdt.ID{})) {
			return false, fmt.Errorf("history of %s: corrupt entry", doc)
		}
		if len(docs) == 0 || docs[len(docs)-1].doc != doc {
			if len(docs) >= StepDocs || n >= StepChanges {
				return false, nil
			}
			docs = append(docs, docHist{doc: doc})
			last = keys.History(doc)
		}
		e := histEntry{seq: seq, inline: len(v) > 0}
		copy(e.id[:], v)
		docs[len(docs)-1].entries = append(docs[len(docs)-1].entries, e)
		n++
		return true, nil
	})
	if err != nil || len(docs) == 0 {
		return nil, nil, res, err
	}
	b = env.Store().NewWriteBatch()
	drops := changes.NewDropper(env.Store(), keys)
	for _, dh := range docs {
		res.Docs++
		if dh.doc == acl.DocID {
			continue // access checks replay its history (node/internal/acl)
		}
		if err := compactDoc(env, b, drops, dh.doc, dh.entries, h, &res); err != nil {
			b.Close()
			return nil, nil, res, err
		}
	}
	if err := drops.Finish(b); err != nil {
		b.Close()
		return nil, nil, res, err
	}
	return last, b, res, nil
}

// Horizons are one compaction's limits: a change is folded when its clock
// is at or before History and Keep newer revisions follow it; a tombstone
// goes when its delete is at or before Tombstones.
type Horizons struct {
	History, Tombstones int64 // HLC wall times
	Keep                int
	// HistorySeq and TombstoneSeq: the local seq this node had reached
	// keep_for (tombstones_for) ago. A change is folded only if it also
	// arrived before: one received late (from a peer back from a long
	// absence) is not folded at once, which would push the horizon past the
	// checkpoints of peers that synced recently and send them snapshots.
	HistorySeq, TombstoneSeq uint64
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

// MarkSeq records that the database has reached seq cur now, and returns
// the seqs it had reached keepFor and tombsFor ago (cur for a zero
// duration; 0 when it has no mark that old yet).
func MarkSeq(env Env, now time.Time, cur uint64, keepFor, tombsFor time.Duration) (uint64, uint64, error) {
	var marks []seqMark
	v, err := env.Store().Get(env.Keys().Meta(layout.MetaSeqMarks))
	switch {
	case err == nil:
		if err := crdt.Unmarshal(v, &marks); err != nil {
			return 0, 0, fmt.Errorf("seq marks: %w", err)
		}
	case !errors.Is(err, datastore.ErrNotFound):
		return 0, 0, err
	}
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
	b := env.Store().NewWriteBatch()
	defer b.Close()
	b.Set(env.Keys().Meta(layout.MetaSeqMarks), enc)
	return hist, tombs, b.Commit()
}

// Result is what one step did.
type Result struct {
	Docs               int      // documents looked at
	Folded, Tombstones int      // changes folded, tombstones removed
	Horizon            uint64   // the highest seq whose change was folded or purged
	Purged             crdt.HLC // the latest clock of a removed tombstone
}

// compactDoc folds one document's history into the batch, or removes it
// whole when it is a tombstone older than the horizon.
func compactDoc(env Env, b *datastore.Batch, drops *changes.Dropper, doc string, entries []histEntry, h Horizons, res *Result) error {
	keys := env.Keys()
	st, recSeq, err := env.State(doc)
	if err != nil {
		return err
	}
	if !st.Deleted && len(entries) <= h.Keep {
		return nil
	}
	old, err := env.FoldRecord(doc)
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
	held := make([]*crdt.Change, len(entries))
	seqOf := make(map[crdt.ID]uint64, len(entries))
	for i := range entries {
		e := &entries[i]
		if !e.inline {
			if e.id, err = changes.HistoryID(env.Store().Get, keys, e.seq, nil); err != nil {
				return fmt.Errorf("compact %s: %w", doc, err)
			}
		}
		if held[i], err = env.Change(e.id); err != nil {
			return fmt.Errorf("compact %s: %w", doc, err)
		}
		seqOf[e.id] = e.seq
	}
	f, err := crdt.FoldHistory(base, held, func(c *crdt.Change, newer int) bool {
		if st.Deleted && newer == 0 && c.ID() == st.Last {
			return c.Clock.Wall <= h.Tombstones && seqOf[c.ID()] <= h.TombstoneSeq // the tombstone goes whole
		}
		return newer >= h.Keep && c.Clock.Wall <= h.History && seqOf[c.ID()] <= h.HistorySeq
	})
	if err != nil {
		return fmt.Errorf("compact %s: %w", doc, err)
	}
	if f == nil {
		return nil
	}
	for _, c := range f.Folded {
		seq := seqOf[c.ID()]
		if err := drops.Drop(b, c.ID()); err != nil {
			return err
		}
		b.Delete(keys.HistoryEntry(doc, seq))
		if seq != recSeq {
			b.Delete(keys.Feed(seq)) // the latest entry stays: the feed still lists the document
		}
		res.Horizon = max(res.Horizon, seq)
	}
	res.Folded += len(f.Folded)
	if old != nil && f.Clock.Compare(old.Clock) < 0 {
		f.Clock = old.Clock
	}
	for _, c := range f.Folded {
		if a := string(c.Author); c.Clock.Compare(authors[a]) > 0 {
			authors[a] = c.Clock
		}
	}
	if st.Deleted && len(f.Kept) == 0 {
		b.Delete(keys.Doc(doc))
		b.Delete(keys.Fold(doc))
		b.Delete(keys.Feed(recSeq))
		res.Tombstones++
		if f.Clock.Compare(res.Purged) > 0 {
			res.Purged = f.Clock
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
	env.FoldWritten()
	b.Set(keys.Fold(doc), rec)
	return nil
}
