package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/node/internal/commit"
)

// Put writes a whole document. rev, when set, is the base revision the
// caller read: the change's parents are that revision and only the fields
// that differ from it are written, so concurrent editors of different fields
// keep each other's edits. Without rev the base is the current revision.
// Body keys must not start with '_'. Errors: ErrInvalid, ErrTooLarge (a
// *crdt.LimitError: the document would pass a limit of crdt/limits.go),
// ErrRevMismatch, ErrOverloaded, ErrClosed.
func (d *DB) Put(ctx context.Context, id string, body map[string]any, rev string) (Result, error) {
	nb, err := normalizeBody(body)
	if err != nil {
		return Result{}, err
	}
	return d.writeOne(ctx, commit.DocWrite{ID: id, Body: nb, Rev: rev})
}

// Patch applies a JSON merge patch plus counter increments and set
// additions and removals to an existing document. ErrNotFound if the
// document does not exist or is deleted; ErrInvalid for an increment of a
// path that holds something other than a number (or leads through a
// non-object) in the patched document, which would replace it; ErrTooLarge
// as for Put.
func (d *DB) Patch(ctx context.Context, id string, p Patch) (Result, error) {
	np, err := normalizePatch(p)
	if err != nil {
		return Result{}, err
	}
	return d.writeOne(ctx, commit.DocWrite{ID: id, Patch: np, Rev: p.Rev})
}

// Delete deletes a document (a tombstone change). ErrNotFound if it does not
// exist or is already deleted.
func (d *DB) Delete(ctx context.Context, id, rev string) (Result, error) {
	return d.writeOne(ctx, commit.DocWrite{ID: id, Rev: rev, Delete: true})
}

// Bulk writes several documents in one request. With atomic, either every
// document is written or none is (ErrTxAborted, with each document's own
// error in its result), and the changes carry one transaction tag so that
// every peer applies them together. Without atomic each document succeeds or
// fails on its own and the error is nil.
func (d *DB) Bulk(ctx context.Context, docs []DocOp, atomic bool) ([]BulkResult, error) {
	return d.bulk(ctx, docs, atomic, nil)
}

// DocState is a document's heads and whether it is a tombstone, as a
// BulkRecords callback sees it.
type DocState struct {
	Heads   []string
	Deleted bool
}

// BulkRecords is a non-atomic Bulk that also writes local records (as
// PutLocal) computed from its outcome, in the same commit as the writes:
// durable exactly when they are, so a record never describes a write that
// was lost, nor misses one that was kept. records is called on the
// database's writer once the writes are merged, with one result per
// document and the state of any of them (ok false: not loaded); it must be
// quick and must not call the DB. A record past the bounds of PutLocal is
// not written, and the call returns ErrInvalid after the writes.
func (d *DB) BulkRecords(ctx context.Context, docs []DocOp, records func(res []BulkResult, state func(id string) (DocState, bool)) map[string][]byte) ([]BulkResult, error) {
	var mu sync.Mutex // bad is set on the writer, read here (after a cancelled wait too)
	var bad error
	then := func(full []BulkResult, st func(string) *crdt.State) map[string][]byte {
		state := func(id string) (DocState, bool) {
			s := st(id)
			if s == nil {
				return DocState{}, false
			}
			ds := DocState{Deleted: s.Deleted}
			for _, h := range s.Heads {
				ds.Heads = append(ds.Heads, h.String())
			}
			return ds, true
		}
		out := records(full, state)
		for k, v := range out {
			if len(k) == 0 || len(k) > MaxLocalKeyBytes || len(v) > MaxLocalValueBytes {
				delete(out, k)
				mu.Lock()
				bad = invalid("local record", "key of %d bytes, value of %d: past the bounds", len(k), len(v))
				mu.Unlock()
			}
		}
		return out
	}
	res, err := d.bulk(ctx, docs, false, then)
	mu.Lock()
	defer mu.Unlock()
	if err == nil && bad != nil {
		err = bad
	}
	return res, err
}

// bulk is Bulk with an optional callback of BulkRecords, given the results
// of every document (those refused before the writer included).
func (d *DB) bulk(ctx context.Context, docs []DocOp, atomic bool, then func([]BulkResult, func(string) *crdt.State) map[string][]byte) ([]BulkResult, error) {
	ws := make([]commit.DocWrite, len(docs))
	seen := make(map[string]bool, len(docs))
	var results []BulkResult
	var bad bool
	for i, op := range docs {
		ws[i] = commit.DocWrite{ID: op.ID, Rev: op.Rev, Delete: op.Delete, Detached: op.Detached}
		var err error
		for _, h := range op.Heads {
			id, perr := crdt.ParseID(h)
			if perr != nil {
				err = fmt.Errorf("head %q: %w", h, ErrRevMismatch)
				break
			}
			ws[i].Base = append(ws[i].Base, id)
		}
		if err == nil && !op.Delete {
			ws[i].Body, err = normalizeBody(op.Body)
		}
		if err == nil && op.Attachments != nil && !op.Delete {
			var pinned [][32]byte
			ws[i].Attachments, pinned, err = d.attachmentSet(op.Attachments)
			for _, dg := range pinned {
				defer d.blobs.Unpin(dg)
			}
		}
		if err == nil && atomic && seen[op.ID] {
			err = invalid("doc id", "%q appears twice in an atomic bulk", op.ID)
		}
		seen[op.ID] = true
		if err != nil {
			if results == nil {
				results = make([]BulkResult, len(docs))
				for j := range docs {
					results[j].ID = docs[j].ID
				}
			}
			results[i].Error, bad = err, true
		}
	}
	if bad {
		if atomic {
			for i := range results {
				if results[i].Error == nil {
					results[i].Error = ErrTxAborted
				}
			}
			return results, ErrTxAborted
		}
		// Non-atomic: write the good ones, keep the errors of the bad ones.
		var good []commit.DocWrite
		var idx []int
		for i, r := range results {
			if r.Error == nil {
				good = append(good, ws[i])
				idx = append(idx, i)
			}
		}
		if len(good) > 0 {
			r := &commit.Request{Docs: good}
			if then != nil {
				r.Then = func(res []BulkResult, st func(string) *crdt.State) map[string][]byte {
					full := slices.Clone(results)
					for j, i := range idx {
						full[i] = res[j]
					}
					return then(full, st)
				}
			}
			res, err := d.submit(ctx, r)
			if err != nil {
				return nil, err
			}
			for j, i := range idx {
				results[i] = res[j]
			}
		}
		return results, nil
	}
	return d.submit(ctx, &commit.Request{Docs: ws, Atomic: atomic, Then: then})
}

func (d *DB) writeOne(ctx context.Context, w commit.DocWrite) (Result, error) {
	res, err := d.submit(ctx, &commit.Request{Docs: []commit.DocWrite{w}})
	if err != nil {
		return Result{}, err
	}
	if res[0].Error != nil {
		return Result{}, res[0].Error
	}
	return Result{ID: res[0].ID, Rev: res[0].Rev}, nil
}

// submit hands a request of local writes to the writer. A full queue
// answers ErrOverloaded at once: back-pressure reaches the caller instead
// of an unbounded queue.
func (d *DB) submit(ctx context.Context, r *commit.Request) ([]BulkResult, error) {
	resp := d.writer.Submit(ctx, r, false)
	if errors.Is(resp.Err, ErrOverloaded) {
		d.node.metrics.overloads.WithLabelValues(d.name).Inc()
	}
	return resp.Results, resp.Err
}

func normalizeBody(body map[string]any) (map[string]any, error) {
	if body == nil {
		body = map[string]any{}
	}
	for k := range body {
		if strings.HasPrefix(k, "_") {
			return nil, invalid("body", "field %q: names starting with _ are reserved", k)
		}
	}
	v, err := crdt.Normalize(body)
	if err != nil {
		return nil, invalidValue("body", err)
	}
	return v.(map[string]any), nil
}

// invalidValue is the error for a value Normalize refused: a
// *crdt.LimitError as it is (ErrTooLarge), anything else ErrInvalid.
func invalidValue(what string, err error, args ...any) error {
	var le *crdt.LimitError
	if errors.As(err, &le) {
		return le
	}
	if len(args) > 0 {
		return invalid(what, "%s: %v", fmt.Sprint(args...), err)
	}
	return invalid(what, "%v", err)
}

func normalizePatch(p Patch) (*Patch, error) {
	np := &Patch{Rev: p.Rev}
	if p.Merge != nil {
		for k := range p.Merge {
			if strings.HasPrefix(k, "_") {
				return nil, invalid("body", "field %q: names starting with _ are reserved", k)
			}
		}
		v, err := crdt.Normalize(p.Merge)
		if err != nil {
			return nil, invalidValue("body", err)
		}
		np.Merge = v.(map[string]any)
	}
	checkPath := func(path string) error {
		tokens, err := crdt.ParsePointer(path)
		if err != nil || len(tokens) == 0 {
			return invalid("path", "%q: want a JSON pointer like /a/b", path)
		}
		if strings.HasPrefix(tokens[0], "_") {
			return invalid("path", "%q: names starting with _ are reserved", path)
		}
		return nil
	}
	if len(p.Incr) > 0 {
		np.Incr = map[string]any{}
		for path, delta := range p.Incr {
			if err := checkPath(path); err != nil {
				return nil, err
			}
			v, err := crdt.Normalize(delta)
			if err != nil {
				return nil, invalidValue("body", err, "increment of ", path)
			}
			switch v.(type) {
			case int64, float64:
			default:
				return nil, invalid("body", "increment of %s: %v is not a number", path, delta)
			}
			np.Incr[path] = v
		}
	}
	for _, m := range []struct {
		in  map[string][]any
		out *map[string][]any
	}{{p.Add, &np.Add}, {p.Remove, &np.Remove}} {
		if len(m.in) == 0 {
			continue
		}
		*m.out = map[string][]any{}
		for path, elems := range m.in {
			if err := checkPath(path); err != nil {
				return nil, err
			}
			v, err := crdt.Normalize(elems)
			if err != nil {
				return nil, invalidValue("body", err, "set elements of ", path)
			}
			(*m.out)[path] = v.([]any)
		}
	}
	return np, nil
}
