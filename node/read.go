package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
	"github.com/barrel-db/barrel/index"
	"github.com/barrel-db/barrel/node/internal/changes"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// readView loads what readers need of a document (crdt.DecodeView: no
// merge bookkeeping); a document that does not exist gives an empty state.
func (d *DB) readView(id string) (*crdt.State, uint64, error) {
	return d.read(id, crdt.DecodeView)
}

// readState loads a document's full state, for the writer.
func (d *DB) readState(id string) (*crdt.State, uint64, error) {
	return d.read(id, crdt.DecodeState)
}

func (d *DB) read(id string, decode func([]byte) (*crdt.State, error)) (*crdt.State, uint64, error) {
	v, err := d.store.Get(d.keys.Doc(id))
	if errors.Is(err, datastore.ErrNotFound) {
		return crdt.NewState(), 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read document %s: %w", id, err)
	}
	seq, enc, err := layout.ParseDocRecord(v)
	if err != nil {
		return nil, 0, fmt.Errorf("read document %s: %w", id, err)
	}
	st, err := decode(enc)
	if err != nil {
		return nil, 0, fmt.Errorf("read document %s: %w", id, err)
	}
	return st, seq, nil
}

// Flush writes the node's memtables to sstables, so that DiskBytes counts
// every key written so far: for benchmarks and tools that measure the
// store's growth (it costs a write of the memtables, never needed for
// durability).
func (d *DB) Flush() error {
	if err := d.store.Flush(); err != nil {
		return fmt.Errorf("flush %s: %w", d.name, err)
	}
	return nil
}

// readChange loads a stored change. ErrNotFound if this database lacks it.
func (d *DB) readChange(id crdt.ID) (*crdt.Change, error) {
	c, err := changes.NewReader(d.keys, d.store.Get).Change(id)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, fmt.Errorf("change %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read change %s: %w", id, err)
	}
	return c, nil
}

// historyIDs lists a document's change ids in local order.
func (d *DB) historyIDs(doc string) ([]crdt.ID, error) {
	prefix := d.keys.History(doc)
	var ids []crdt.ID
	err := d.store.Range(prefix, datastore.PrefixEnd(prefix), false, func(k, v []byte) (bool, error) {
		id, err := d.historyID(prefix, k, v)
		if err != nil {
			return false, fmt.Errorf("history of %s: %w", doc, err)
		}
		ids = append(ids, id)
		return true, nil
	})
	return ids, err
}

// historyID is the change the history entry k = v under prefix names.
func (d *DB) historyID(prefix, k, v []byte) (crdt.ID, error) {
	seq, _, err := tuple.ReadUint64(k[len(prefix):])
	if err != nil {
		return crdt.ID{}, err
	}
	return changes.HistoryID(d.store.Get, d.keys, seq, v)
}

func (d *DB) checkOpen() error {
	select {
	case <-d.quit:
		return ErrClosed
	default:
		return nil
	}
}

// Info returns the database's counts (live documents, revisions kept,
// tombstones), its last sequence number, its estimated bytes on disk and
// its last compaction.
func (d *DB) Info(ctx context.Context) (DBInfo, error) {
	if err := d.checkOpen(); err != nil {
		return DBInfo{}, err
	}
	info := DBInfo{Name: d.name, DocCount: d.count.Load(), UpdateSeq: d.seq.Load(),
		Revisions: d.revisions.Load(), Tombstones: d.tombstones.Load()}
	lo, hi := d.keys.All()
	var err error
	if info.DiskBytes, err = d.store.EstimateDiskUsage(lo, hi); err != nil {
		return DBInfo{}, fmt.Errorf("info of %s: %w", d.name, err)
	}
	if info.LastCompaction, err = d.LastCompaction(); err != nil {
		return DBInfo{}, fmt.Errorf("info of %s: %w", d.name, err)
	}
	return info, nil
}

// Retention is the retention the node compacts this database with when
// Compact is given none.
func (d *DB) Retention() Retention { return d.node.cfg.retention() }

// Get reads a document with its revision, heads and conflicts. A deleted
// document is returned with Deleted set; one that never existed gives
// ErrNotFound.
func (d *DB) Get(ctx context.Context, id string) (Document, error) {
	if err := d.checkOpen(); err != nil {
		return Document{}, err
	}
	st, seq, err := d.readView(id)
	if err != nil {
		return Document{}, err
	}
	if !st.Exists() {
		return Document{}, fmt.Errorf("document %s: %w", id, ErrNotFound)
	}
	return render(id, st, seq), nil
}

func render(id string, st *crdt.State, seq uint64) Document {
	doc := Document{ID: id, Rev: st.Last.String(), Deleted: st.Deleted, Seq: seq}
	if !st.Deleted {
		doc.Body = st.Body
	}
	for _, h := range st.Heads {
		doc.Revs = append(doc.Revs, h.String())
	}
	for _, c := range st.Conflicts {
		doc.Conflicts = append(doc.Conflicts, Conflict{Path: c.Path, Value: c.Value, Deleted: c.Deleted, Rev: c.Rev.String()})
	}
	return doc
}

// GetPath reads the value at a JSON pointer inside a live document.
// ErrInvalid for a malformed pointer, ErrNotFound when the document or the
// path does not exist.
func (d *DB) GetPath(ctx context.Context, id, path string) (any, error) {
	tokens, err := crdt.ParsePointer(path)
	if err != nil {
		return nil, invalid("path", "%v", err)
	}
	doc, err := d.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if doc.Deleted {
		return nil, fmt.Errorf("document %s: %w", id, ErrNotFound)
	}
	v, ok := crdt.Lookup(doc.Body, tokens)
	if !ok {
		return nil, fmt.Errorf("path %s of %s: %w", path, id, ErrNotFound)
	}
	return v, nil
}

// List returns documents in id order: those with the prefix, after
// StartAfter, at most Limit. Deleted documents only with o.Deleted.
func (d *DB) List(ctx context.Context, o ListOptions) ([]DocSummary, error) {
	if err := d.checkOpen(); err != nil {
		return nil, err
	}
	limit, err := checkLimit(o.Limit)
	if err != nil {
		return nil, err
	}
	base := d.keys.Docs()
	lo := tuple.AppendStringPrefix(slices.Clone(base), o.Prefix)
	hi := datastore.PrefixEnd(lo)
	if o.StartAfter != "" {
		after := append(tuple.AppendString(slices.Clone(base), o.StartAfter), 0) // just past that id's key
		if bytes.Compare(after, lo) > 0 {
			lo = after
		}
	}
	var out []DocSummary
	err = d.store.Range(lo, hi, false, func(k, v []byte) (bool, error) {
		id, _, err := tuple.ReadString(k[len(base):])
		if err != nil {
			return false, err
		}
		if len(v) < 8 {
			return false, fmt.Errorf("list: document %s: corrupt record", id)
		}
		st, err := crdt.DecodeView(v[8:])
		if err != nil {
			return false, fmt.Errorf("list: %w", err)
		}
		if st.Deleted && !o.Deleted {
			return true, nil
		}
		out = append(out, DocSummary{ID: id, Rev: st.Last.String(), Deleted: st.Deleted})
		return len(out) < limit, nil
	})
	return out, err
}

func checkLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultListLimit, nil
	case limit < 0 || limit > MaxListLimit:
		return 0, invalid("query", "limit %d: want 1..%d", limit, MaxListLimit)
	}
	return limit, nil
}

// History returns what a document's history keeps: its revisions newest
// first by local sequence, then, when compaction folded older changes, one
// entry for the folded base (Compacted). ErrNotFound when there is none.
func (d *DB) History(ctx context.Context, id string) ([]Revision, error) {
	if err := d.checkOpen(); err != nil {
		return nil, err
	}
	prefix := d.keys.History(id)
	var revs []Revision
	err := d.store.Range(prefix, datastore.PrefixEnd(prefix), true, func(k, v []byte) (bool, error) {
		seq, _, err := tuple.ReadUint64(k[len(prefix):])
		if err != nil {
			return false, err
		}
		cid, err := changes.HistoryID(d.store.Get, d.keys, seq, v)
		if err != nil {
			return false, fmt.Errorf("history of %s: %w", id, err)
		}
		c, err := d.readChange(cid)
		if err != nil {
			return false, err
		}
		r := Revision{Rev: cid.String(), Seq: seq, Ops: len(c.Ops), Time: time.Unix(0, c.Clock.Wall).UTC(), Author: peer.ID(c.Author).String()}
		for _, p := range c.Parents {
			r.Parents = append(r.Parents, p.String())
		}
		if c.Tx != nil {
			r.Tx = c.Tx.ID
		}
		revs = append(revs, r)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	fold, err := d.readFoldRecord(id)
	if err != nil {
		return nil, err
	}
	if fold != nil {
		base, err := crdt.DecodeView(fold.Base)
		if err != nil {
			return nil, fmt.Errorf("history of %s: base: %w", id, err)
		}
		r := Revision{Rev: base.Last.String(), Parents: []string{}, Time: time.Unix(0, fold.Clock.Wall).UTC(),
			Compacted: true, Folded: base.Count}
		for _, h := range base.Heads {
			r.Heads = append(r.Heads, h.String())
		}
		revs = append(revs, r)
	}
	if len(revs) == 0 {
		return nil, fmt.Errorf("document %s: %w", id, ErrNotFound)
	}
	return revs, nil
}

// Changes returns up to limit feed entries after since, and the database's
// last sequence number.
func (d *DB) Changes(ctx context.Context, since uint64, limit int) ([]Change, uint64, error) {
	if err := d.checkOpen(); err != nil {
		return nil, 0, err
	}
	if limit == 0 {
		limit = MaxListLimit
	}
	if limit < 0 || limit > MaxListLimit {
		return nil, 0, invalid("query", "limit %d: want 1..%d", limit, MaxListLimit)
	}
	last := d.seq.Load()
	base := d.keys.Feeds()
	lo := tuple.AppendUint64(slices.Clone(base), since+1)
	var out []Change
	err := d.store.Range(lo, datastore.PrefixEnd(base), false, func(k, v []byte) (bool, error) {
		seq, _, err := tuple.ReadUint64(k[len(base):])
		if err != nil {
			return false, err
		}
		var e layout.FeedEntry
		if err := crdt.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("feed entry %d: %w", seq, err)
		}
		out = append(out, Change{Seq: seq, ID: e.Doc, Rev: e.Rev.String(), Deleted: e.Deleted})
		return len(out) < limit, nil
	})
	if err != nil {
		return nil, 0, err
	}
	if n := len(out); n > 0 && out[n-1].Seq > last {
		last = out[n-1].Seq
	}
	return out, last, nil
}

// WaitChanges blocks until the database's sequence number passes since, or
// ctx ends (returning its error).
func (d *DB) WaitChanges(ctx context.Context, since uint64) error {
	for {
		ch := d.waitChan()
		if d.seq.Load() > since {
			return nil
		}
		select {
		case <-ch:
		case <-d.quit:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Query finds live documents by conditions on the automatic index of every
// scalar leaf path. ErrInvalid for a malformed query.
func (d *DB) Query(ctx context.Context, q Query) (QueryResult, error) {
	if err := d.checkOpen(); err != nil {
		return QueryResult{}, err
	}
	iq, err := indexQuery(q)
	if err != nil {
		return QueryResult{}, err
	}
	if index.IndexOnly(iq) {
		res := QueryResult{}
		res.Cursor, err = d.queryIndexOnly(iq, func(doc Document) error {
			res.Docs = append(res.Docs, doc)
			return nil
		})
		if res.Docs == nil && err == nil {
			res.Docs = []Document{}
		}
		return res, err
	}
	states := map[string]*crdt.State{}
	seqs := map[string]uint64{}
	load := func(id string) (map[string]any, bool, error) {
		st, seq, err := d.readView(id)
		if err != nil {
			return nil, false, err
		}
		if !st.Exists() || st.Deleted {
			return nil, false, nil
		}
		states[id], seqs[id] = st, seq
		return st.Body, true, nil
	}
	ids, cursor, err := index.Search(d.store, d.keys.Index(), iq, load)
	if err != nil {
		return QueryResult{}, queryError(err)
	}
	res := QueryResult{Cursor: cursor, Docs: make([]Document, 0, len(ids))}
	for _, id := range ids {
		st, ok := states[id]
		if !ok {
			if _, _, err := load(id); err != nil {
				return QueryResult{}, err
			}
			if st, ok = states[id]; !ok {
				continue
			}
		}
		res.Docs = append(res.Docs, render(id, st, seqs[id]))
	}
	return res, nil
}

// queryIndexOnly answers a query the index alone answers (index.IndexOnly:
// one == condition): the page's ids from the index, then each document
// read once, both from one snapshot of the store, so every id is a match
// and no body is checked again. The ids come in document id order (for a
// descending query, the reverse), and one iterator seeks from each to the
// next: Pebble continues a forward seek from where the last one stopped
// instead of descending the tree again, which a point read per document
// cannot do.
func (d *DB) queryIndexOnly(iq index.Query, each func(Document) error) (cursor string, err error) {
	sn, err := d.store.Snapshot()
	if err != nil {
		return "", err
	}
	defer func() { _ = sn.Close() }() // a read-only view: nothing to lose
	ids, cursor, err := index.Search(sn, d.keys.Index(), iq, nil)
	if err != nil {
		return "", queryError(err)
	}
	docs := d.keys.Docs()
	it, err := sn.Iter(docs, datastore.PrefixEnd(docs), false)
	if err != nil {
		return "", err
	}
	defer func() { _ = it.Close() }() // its errors are it.Err, checked below
	for _, id := range ids {
		key := d.keys.Doc(id)
		if !it.SeekGE(key) || !bytes.Equal(it.Key(), key) {
			if err := it.Err(); err != nil {
				return "", fmt.Errorf("read document %s: %w", id, err)
			}
			// The writer keeps the index in the documents' batch: an index
			// key without its document is a damaged store.
			return "", fmt.Errorf("query: %w: the index names document %s, which has no record", ErrCorrupt, id)
		}
		seq, enc, err := layout.ParseDocRecord(it.Value())
		if err != nil {
			return "", fmt.Errorf("read document %s: %w", id, err)
		}
		st, err := crdt.DecodeView(enc)
		if err != nil {
			return "", fmt.Errorf("read document %s: %w", id, err)
		}
		if err := each(render(id, st, seq)); err != nil {
			return "", err
		}
	}
	if err := it.Err(); err != nil {
		return "", fmt.Errorf("read documents: %w", err)
	}
	return cursor, nil
}

// QueryEach is Query handing each document of the page to each as it is
// read, in the page's order, instead of holding the page: a caller that
// writes them out (the HTTP API) holds one at a time for a query the index
// alone answers (one ==), and a page of states otherwise. Every error that
// the query itself can meet (a bad query, a failed index scan) comes
// before the first document; after it, only a failed read of the store or
// each's own error. An error of each stops the query and is returned.
func (d *DB) QueryEach(ctx context.Context, q Query, each func(Document) error) (cursor string, err error) {
	if err := d.checkOpen(); err != nil {
		return "", err
	}
	iq, err := indexQuery(q)
	if err != nil {
		return "", err
	}
	if index.IndexOnly(iq) {
		return d.queryIndexOnly(iq, each)
	}
	res, err := d.Query(ctx, q)
	if err != nil {
		return "", err
	}
	for _, doc := range res.Docs {
		if err := each(doc); err != nil {
			return "", err
		}
	}
	return res.Cursor, nil
}

// QueryIDs is Query answering with the ids of a page only. A query of a
// single == condition without an order is answered from the index alone
// (no document is read); any other reads each candidate as Query does.
func (d *DB) QueryIDs(ctx context.Context, q Query) (ids []string, cursor string, err error) {
	if err := d.checkOpen(); err != nil {
		return nil, "", err
	}
	iq, err := indexQuery(q)
	if err != nil {
		return nil, "", err
	}
	var load index.Loader
	if !index.IndexOnly(iq) {
		load = d.bodyLoader()
	}
	ids, cursor, err = index.Search(d.store, d.keys.Index(), iq, load)
	if err != nil {
		return nil, "", queryError(err)
	}
	return ids, cursor, nil
}

// Count returns how many documents match q's conditions (Limit, Cursor,
// OrderBy and Desc do not matter; no conditions: the live documents). A
// single == condition is counted from the index alone; any other reads
// each candidate, a page at a time.
func (d *DB) Count(ctx context.Context, q Query) (int64, error) {
	if err := d.checkOpen(); err != nil {
		return 0, err
	}
	if len(q.Where) == 0 {
		return d.count.Load(), nil
	}
	iq, err := indexQuery(Query{Where: q.Where})
	if err != nil {
		return 0, err
	}
	var load index.Loader
	if !index.IndexOnly(iq) {
		load = d.bodyLoader()
	}
	n, err := index.Count(d.store, d.keys.Index(), iq, load)
	if err != nil {
		return 0, queryError(err)
	}
	return int64(n), nil
}

// bodyLoader loads a live document's body for index.Search.
func (d *DB) bodyLoader() index.Loader {
	return func(id string) (map[string]any, bool, error) {
		st, _, err := d.readView(id)
		if err != nil {
			return nil, false, err
		}
		if !st.Exists() || st.Deleted {
			return nil, false, nil
		}
		return st.Body, true, nil
	}
}

// indexQuery is q for the index, its values normalized.
func indexQuery(q Query) (index.Query, error) {
	iq := index.Query{OrderBy: q.OrderBy, Desc: q.Desc, Limit: q.Limit, Cursor: q.Cursor}
	for _, c := range q.Where {
		v, err := crdt.Normalize(c.Value)
		if err != nil {
			return index.Query{}, invalid("query", "%v", err)
		}
		iq.Where = append(iq.Where, index.Cond{Path: c.Path, Op: c.Op, Value: v})
	}
	return iq, nil
}

// queryError is what a failed index search answers.
func queryError(err error) error {
	if errors.Is(err, index.ErrBadQuery) {
		// "invalid query: condition 0: ...", not "invalid query: bad query: ...".
		return invalid("query", "%s", strings.TrimPrefix(err.Error(), index.ErrBadQuery.Error()+": "))
	}
	return fmt.Errorf("query: %w", err)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
