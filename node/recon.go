package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
	"github.com/barrel-db/barrel/node/internal/layout"
	bsync "github.com/barrel-db/barrel/sync"
)

// The database's reconciliation set for sync protocol version 2
// (bsync.ReconIndex: one item per document, its id and heads). It lives
// in memory only: built by one scan of the document records on first use,
// then caught up from the changes feed before each use (the documents of
// the entries after the sequence it reflects are read again), so a session
// costs the writes since the last one, not the database. Compaction
// (tombstones removed), purges and snapshot installs change documents
// without a feed entry: they mark it stale, and the next use rebuilds it.
//
// Rejected alternative: index records in the store, written in each
// group's batch. They would survive restarts (no scan on first use) but
// cost a write per document change and a change of store format, for a
// scan that takes about a second per 500,000 documents
// (docs/benchmarks.md, W5).
type reconState struct {
	mu    sync.Mutex // one build or catch-up at a time; guards idx
	idx   *bsync.ReconIndex
	stale atomic.Bool // rebuild on next use
	built atomic.Bool // idx is set: a use only catches it up (reconReady)
}

// reconReady reports whether the reconciliation set is built and not
// stale, so that a session using it does not wait for a scan.
func (d *DB) reconReady() bool { return d.recon.built.Load() && !d.recon.stale.Load() }

// reconInvalidate makes the next use of the reconciliation set rebuild it.
// Compaction, purge and snapshot install call it after they changed
// documents without a feed entry.
func (d *DB) reconInvalidate() { d.recon.stale.Store(true) }

// reconWarm builds the reconciliation set when the database opens on a
// node with networking, so that the first session does not wait for the
// scan. It runs on the database's task group and stops with it.
func (d *DB) reconWarm(ctx context.Context) {
	if d.node.cfg.P2P == nil || d.Replication().Off {
		return
	}
	start := time.Now()
	idx, _, err := d.reconIndex(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		d.log.Warn("build reconciliation set", "err", err)
	case err == nil:
		d.log.Info("reconciliation set built", "docs", idx.Len(), "dur", time.Since(start))
	}
}

// reconIndex returns the database's reconciliation set caught up with the
// feed, and the sequence it reflects.
func (d *DB) reconIndex(ctx context.Context) (*bsync.ReconIndex, uint64, error) {
	if err := d.checkOpen(); err != nil {
		return nil, 0, err
	}
	r := &d.recon
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.idx == nil || r.stale.Swap(false) {
		r.built.Store(false)
		idx, err := d.reconBuild(ctx)
		if err != nil {
			r.idx = nil
			return nil, 0, err
		}
		r.idx = idx
		r.built.Store(true)
	}
	if err := d.reconCatchUp(ctx, r.idx); err != nil {
		r.idx, _ = nil, r.built.Swap(false)
		return nil, 0, err
	}
	return r.idx, r.idx.Seq(), nil
}

// reconBuild scans every document record. The sequence read first is
// the one the index reflects: documents written during the scan are read
// again by the catch-up that follows.
func (d *DB) reconBuild(ctx context.Context) (*bsync.ReconIndex, error) {
	idx := bsync.NewReconIndex()
	seq := d.seq.Load()
	base := d.keys.Docs()
	n := 0
	err := d.store.Range(base, datastore.PrefixEnd(base), false, func(k, v []byte) (bool, error) {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return false, ctx.Err()
		}
		doc, _, err := tuple.ReadString(k[len(base):])
		if err != nil {
			return false, fmt.Errorf("document key: %w", err)
		}
		heads, err := recordHeads(v)
		if err != nil {
			return false, fmt.Errorf("document %s: %w", doc, err)
		}
		idx.Put(doc, heads)
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("build recon index of %s: %w", d.name, err)
	}
	idx.SetSeq(seq)
	return idx, nil
}

// reconCatchUp reads again the documents of the feed entries after the
// index's sequence.
func (d *DB) reconCatchUp(ctx context.Context, idx *bsync.ReconIndex) error {
	since := idx.Seq()
	if d.seq.Load() <= since {
		return nil
	}
	base := d.keys.Feeds()
	lo := tuple.AppendUint64(slices.Clone(base), since+1)
	last := since
	docs := map[string]bool{}
	err := d.store.Range(lo, datastore.PrefixEnd(base), false, func(k, v []byte) (bool, error) {
		seq, _, err := tuple.ReadUint64(k[len(base):])
		if err != nil {
			return false, err
		}
		var e layout.FeedEntry
		if err := crdt.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("feed entry %d: %w", seq, err)
		}
		docs[e.Doc] = true
		last = seq
		return ctx.Err() == nil, ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("catch up recon index of %s: %w", d.name, err)
	}
	if err := d.eachHeads(slices.Sorted(maps.Keys(docs)), idx.Put); err != nil {
		return fmt.Errorf("catch up recon index of %s: %w", d.name, err)
	}
	idx.SetSeq(last)
	return nil
}

// eachHeads calls fn with the heads of each document of docs (sorted; none
// for a document the database does not hold), read by one iterator that
// seeks from each to the next: after a pull of thousands of documents,
// Pebble continues each seek from the last instead of descending the tree
// per document as a point read does.
func (d *DB) eachHeads(docs []string, fn func(doc string, heads []crdt.ID)) error {
	base := d.keys.Docs()
	it, err := d.store.Iter(base, datastore.PrefixEnd(base), false)
	if err != nil {
		return err
	}
	defer func() { _ = it.Close() }() // its errors are it.Err, returned below
	for _, doc := range docs {
		key := d.keys.Doc(doc)
		if !it.SeekGE(key) || !bytes.Equal(it.Key(), key) {
			if err := it.Err(); err != nil {
				return err
			}
			fn(doc, nil)
			continue
		}
		heads, err := recordHeads(it.Value())
		if err != nil {
			return fmt.Errorf("document %s: %w", doc, err)
		}
		fn(doc, heads)
	}
	return it.Err()
}

// docHeads reads a document's heads (none when the database does not hold
// it).
func (d *DB) docHeads(doc string) ([]crdt.ID, error) {
	v, err := d.store.Get(d.keys.Doc(doc))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return recordHeads(v)
}

// stateHeads decodes only the heads of an encoded crdt.State (its first
// field): reading the body would cost most of a scan.
type stateHeads struct {
	_                              struct{} `cbor:",toarray"`
	Heads                          []crdt.ID
	R1, R2, R3, R4, R5, R6, R7, R8 cbor.RawMessage
}

// recordHeads reads the heads of a document record.
func recordHeads(v []byte) ([]crdt.ID, error) {
	_, enc, err := layout.ParseDocRecord(v)
	if err != nil {
		return nil, err
	}
	if hs, ok := quickHeads(enc); ok {
		return hs, nil
	}
	var s stateHeads
	if err := crdt.Unmarshal(enc, &s); err != nil {
		return nil, fmt.Errorf("decode heads: %w", err)
	}
	return s.Heads, nil
}

// quickHeads reads the heads of an encoded state the way its canonical
// encoding lays them out (an array of 9 whose first element is an array
// of 32-byte strings, fewer than 24 of them), without a CBOR decoder: the
// scan that builds the reconciliation set spends most of its time
// decoding otherwise. ok is false for any other shape: the caller then
// decodes it.
func quickHeads(enc []byte) (heads []crdt.ID, ok bool) {
	if len(enc) < 2 || enc[0] != 0x89 || enc[1] < 0x80 || enc[1] > 0x97 {
		return nil, false
	}
	n := int(enc[1] - 0x80)
	p := enc[2:]
	if len(p) < n*34 {
		return nil, false
	}
	heads = make([]crdt.ID, n)
	for i := range heads {
		if p[0] != 0x58 || p[1] != 32 {
			return nil, false
		}
		copy(heads[i][:], p[2:34])
		p = p[34:]
	}
	return heads, true
}

// syncHeads is bsync's Heads on this database (sync_adapters.go).
func (d *DB) syncHeads(ctx context.Context, docs []string) ([][]crdt.ID, error) {
	out := make([][]crdt.ID, len(docs))
	for i, doc := range docs {
		hs, err := d.docHeads(doc)
		if err != nil {
			return nil, fmt.Errorf("heads of %s: %w", doc, err)
		}
		out[i] = hs
	}
	return out, nil
}
