package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/barrel-db/barrel/crdt"
	"github.com/libp2p/go-libp2p/core/peer"
)

// request is one call waiting for the writer goroutine.
type request struct {
	docs   []docWrite
	atomic bool
	remote []*crdt.Change // changes received from a peer, parents first
	from   []byte         // that peer
	unpend [][]byte       // pending-transaction keys the remote changes settle
	// checkpoint, when set, is the whole request: a sync checkpoint, written
	// by the writer so that it lands after every change it covers
	// (DESIGN.md invariant 3) and never after a reset of the checkpoints.
	checkpoint *checkpointWrite
	reply      chan response // buffered 1
}

type checkpointWrite struct {
	peer  peer.ID
	seq   uint64
	epoch uint64 // d.checkpoints.epoch when the pull read its checkpoint
}

type docWrite struct {
	id     string
	body   map[string]any // Put
	rev    string         // base revision; "" means the current heads
	patch  *Patch
	del    bool
	acl    bool         // written by SetACL: the only local write allowed to ACLDocID
	attach *attachWrite // set or delete one attachment
}

type response struct {
	results []BulkResult
	applied int // remote changes that were new
	err     error
}

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
	return d.writeOne(ctx, docWrite{id: id, body: nb, rev: rev})
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
	return d.writeOne(ctx, docWrite{id: id, patch: np, rev: p.Rev})
}

// Delete deletes a document (a tombstone change). ErrNotFound if it does not
// exist or is already deleted.
func (d *DB) Delete(ctx context.Context, id, rev string) (Result, error) {
	return d.writeOne(ctx, docWrite{id: id, rev: rev, del: true})
}

// Bulk writes several documents in one request. With atomic, either every
// document is written or none is (ErrTxAborted, with each document's own
// error in its result), and the changes carry one transaction tag so that
// every peer applies them together. Without atomic each document succeeds or
// fails on its own and the error is nil.
func (d *DB) Bulk(ctx context.Context, docs []DocOp, atomic bool) ([]BulkResult, error) {
	ws := make([]docWrite, len(docs))
	seen := make(map[string]bool, len(docs))
	var results []BulkResult
	var bad bool
	for i, op := range docs {
		ws[i] = docWrite{id: op.ID, rev: op.Rev, del: op.Delete}
		var err error
		if !op.Delete {
			ws[i].body, err = normalizeBody(op.Body)
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
		var good []docWrite
		var idx []int
		for i, r := range results {
			if r.Error == nil {
				good = append(good, ws[i])
				idx = append(idx, i)
			}
		}
		if len(good) > 0 {
			res, err := d.submit(ctx, &request{docs: good})
			if err != nil {
				return nil, err
			}
			for j, i := range idx {
				results[i] = res[j]
			}
		}
		return results, nil
	}
	return d.submit(ctx, &request{docs: ws, atomic: atomic})
}

func (d *DB) writeOne(ctx context.Context, w docWrite) (Result, error) {
	res, err := d.submit(ctx, &request{docs: []docWrite{w}})
	if err != nil {
		return Result{}, err
	}
	if res[0].Error != nil {
		return Result{}, res[0].Error
	}
	return Result{ID: res[0].ID, Rev: res[0].Rev}, nil
}

// submit queues a request and waits for its answer. A full queue answers
// ErrOverloaded at once: back-pressure reaches the caller instead of an
// unbounded queue.
func (d *DB) submit(ctx context.Context, r *request) ([]BulkResult, error) {
	r.reply = make(chan response, 1)
	select {
	case <-d.quit:
		return nil, ErrClosed
	default:
	}
	select {
	case d.queue <- r:
	default:
		d.node.metrics.overloads.WithLabelValues(d.name).Inc()
		return nil, ErrOverloaded
	}
	select {
	case resp := <-r.reply:
		return resp.results, resp.err
	case <-ctx.Done():
		// The write may still commit; the caller gave up waiting.
		return nil, ctx.Err()
	}
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

func newTxID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("node: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// errorResult marks every result with err, keeping the ids.
func errorResults(ws []docWrite, err error) []BulkResult {
	out := make([]BulkResult, len(ws))
	for i, w := range ws {
		out[i] = BulkResult{ID: w.id, Error: err}
	}
	return out
}
