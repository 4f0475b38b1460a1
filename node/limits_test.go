package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/barrel-db/barrel/crdt"
)

// limitDoc is one write at or just past a limit.
type limitDoc struct {
	id    string
	limit string // the limit it is at or past
	past  bool
	put   map[string]any // a Put body, or
	patch *Patch         // a Patch of a small existing document
}

func nestedBody(levels int) map[string]any {
	var v any = "leaf"
	for range levels - 1 {
		v = map[string]any{"k": v}
	}
	return map[string]any{"k": v}
}

func arrayBody(n int) map[string]any {
	a := make([]any, n)
	for i := range a {
		a[i] = i
	}
	return map[string]any{"a": a}
}

func objectBody(n int) map[string]any {
	m := make(map[string]any, n)
	for i := range n {
		m[fmt.Sprint(i)] = i
	}
	return map[string]any{"o": m}
}

// sizedBody is a body of exactly n bytes of canonical CBOR, in strings
// within MaxStringBytes.
func sizedBody(n int) map[string]any {
	body := map[string]any{}
	left := n - 1
	for i := 0; left > 0; i++ {
		k := fmt.Sprintf("s%02d", i)
		over := 1 + len(k) + 5
		size := max(min(crdt.MaxStringBytes, left-over), 1<<16)
		body[k] = strings.Repeat("x", size)
		left -= over + size
	}
	return body
}

// incrPath is a JSON pointer of n tokens.
func incrPath(n int) string { return strings.Repeat("/p", n) }

func limitDocs() []limitDoc {
	var out []limitDoc
	add := func(limit string, at, past func() (map[string]any, *Patch)) {
		for i, f := range []func() (map[string]any, *Patch){at, past} {
			body, patch := f()
			out = append(out, limitDoc{id: fmt.Sprintf("%s-%v", limit, i == 1), limit: limit, past: i == 1, put: body, patch: patch})
		}
	}
	put := func(b func() map[string]any) func() (map[string]any, *Patch) {
		return func() (map[string]any, *Patch) { return b(), nil }
	}
	add(crdt.LimitDepth, put(func() map[string]any { return nestedBody(crdt.MaxDepth) }), put(func() map[string]any { return nestedBody(crdt.MaxDepth + 1) }))
	add(crdt.LimitArrayElements, put(func() map[string]any { return arrayBody(crdt.MaxArrayElements) }), put(func() map[string]any { return arrayBody(crdt.MaxArrayElements + 1) }))
	add(crdt.LimitObjectKeys, put(func() map[string]any { return objectBody(crdt.MaxObjectKeys) }), put(func() map[string]any { return objectBody(crdt.MaxObjectKeys + 1) }))
	add(crdt.LimitStringBytes, put(func() map[string]any { return map[string]any{"s": strings.Repeat("x", crdt.MaxStringBytes)} }),
		put(func() map[string]any { return map[string]any{"s": strings.Repeat("x", crdt.MaxStringBytes+1)} }))
	add(crdt.LimitPathBytes, put(func() map[string]any { return map[string]any{strings.Repeat("k", crdt.MaxPathBytes-1): 1} }),
		put(func() map[string]any { return map[string]any{strings.Repeat("k", crdt.MaxPathBytes): 1} }))
	add(crdt.LimitDocBytes, put(func() map[string]any { return sizedBody(crdt.MaxDocBytes) }), put(func() map[string]any { return sizedBody(crdt.MaxDocBytes + 1) }))
	// An increment's path counts towards the depth: the body it leaves is
	// as deep as the path (before, a 4 KiB path of 2,000 levels was
	// accepted and left a state no reader could decode).
	add(crdt.LimitDepth+"-incr", func() (map[string]any, *Patch) {
		return nil, &Patch{Incr: map[string]any{incrPath(crdt.MaxDepth): 1}}
	}, func() (map[string]any, *Patch) {
		return nil, &Patch{Incr: map[string]any{incrPath(crdt.MaxDepth + 1): 1}}
	})
	return out
}

// TestLimitsRefusedOrUsable writes documents at and just past every
// document limit (docs/design.md, "Limits"). Each is either refused before
// it is acknowledged, with ErrTooLarge naming the limit and nothing
// written, or fully usable: get, list, export (list then get), replicate to
// a second peer byte for byte, compact, and purge. Before the limits were
// checked on write, a document of 100,001 array elements was accepted and
// its state could not be decoded any more: get, list, compact and purge
// failed, and the peer could not pull the change.
func TestLimitsRefusedOrUsable(t *testing.T) {
	ctx := t.Context()
	tn := newTestNet(t, 2)
	tn.createDB("db")
	tn.connect(0, 1)
	d0, d1 := tn.db(0, "db"), tn.db(1, "db")
	var accepted []string
	for _, w := range limitDocs() {
		if raceEnabled && (w.limit == crdt.LimitArrayElements || w.limit == crdt.LimitObjectKeys || w.limit == crdt.LimitDocBytes) {
			// The detector makes the writes of 100,000 elements and 8 MiB
			// 20 times slower (70 s); they check sizes, not concurrency,
			// and run at full size without it.
			continue
		}
		var err error
		var res Result
		if w.patch != nil {
			mustPut(t, d0, w.id, map[string]any{"x": 1}, "")
			res, err = d0.Patch(ctx, w.id, *w.patch)
		} else {
			res, err = d0.Put(ctx, w.id, w.put, "")
		}
		limit := strings.TrimSuffix(w.limit, "-incr")
		if !w.past {
			if err != nil {
				t.Fatalf("%s at the limit: %v", w.id, err)
			}
			accepted = append(accepted, w.id)
			continue
		}
		var le *crdt.LimitError
		if !errors.Is(err, ErrTooLarge) || !errors.As(err, &le) || le.Limit != limit || !strings.Contains(err.Error(), limit) {
			t.Fatalf("%s past the limit: got %v (rev %q), want ErrTooLarge naming %s", w.id, err, res.Rev, limit)
		}
		doc, err := d0.Get(ctx, w.id)
		switch {
		case w.patch != nil && (err != nil || len(doc.Body) != 1):
			t.Fatalf("%s: the refused patch changed the document: %v %v", w.id, doc.Body, err)
		case w.patch == nil && !errors.Is(err, ErrNotFound):
			t.Fatalf("%s: the refused put wrote a document (err %v)", w.id, err)
		}
	}
	// List and export: every document lists and reads back.
	list, err := d0.List(ctx, ListOptions{Limit: MaxListLimit})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	wantN := len(accepted) + 1 // the refused incr's base document
	if len(list) != wantN {
		t.Fatalf("list: %d documents, want %d", len(list), wantN)
	}
	for _, s := range list {
		if _, err := d0.Get(ctx, s.ID); err != nil {
			t.Fatalf("export %s: %v", s.ID, err)
		}
	}
	// Replicate: the second peer pulls every change and holds the same states.
	waitFor(t, "the second peer to pull every document", 60*time.Second, func() bool {
		_, diff := tn.docsAgree("db")
		return diff == "" && tn.converged("db")
	})
	for i, d := range []*DB{d0, d1} {
		if _, err := d.Compact(ctx, &Retention{}); err != nil {
			t.Fatalf("compact on peer %d: %v", i, err)
		}
		for _, id := range accepted {
			if _, err := d.Get(ctx, id); err != nil {
				t.Fatalf("get %s on peer %d after compaction: %v", id, i, err)
			}
		}
	}
	res, err := d0.Purge(ctx, accepted)
	if err != nil || len(res.NotFound) != 0 {
		t.Fatalf("purge: %+v, %v", res, err)
	}
	for _, id := range accepted {
		if _, err := d0.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get %s after purge: %v, want ErrNotFound", id, err)
		}
	}
}

// TestRemoteChangePastLimitRefused: a change a peer sends past a writer
// limit (here 100,001 array elements, made without Seal) is refused by id
// and counted under reason "limit", never applied, and the database goes on
// taking changes. Before, such a change could not be decoded, so a pull
// that met it failed every time.
func TestRemoteChangePastLimitRefused(t *testing.T) {
	ctx := t.Context()
	src, _ := testDB(t)
	n, d := testDB(t)
	a := make([]any, crdt.MaxArrayElements+1)
	for i := range a {
		a[i] = int64(i)
	}
	c := &crdt.Change{DB: "db", Doc: "big", Author: []byte(src.peerID), Clock: crdt.HLC{Wall: time.Now().UnixNano()},
		Ops: []crdt.Op{{Kind: crdt.OpSet, Path: "/a", Value: a}}}
	enc, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if c, err = crdt.Decode(enc); err != nil { // computes the id
		t.Fatalf("decode a change past the limit: %v", err)
	}
	if c.Sig, err = src.key.Sign(c.SignedMessage()); err != nil {
		t.Fatal(err)
	}
	if enc, err = c.Encode(); err != nil {
		t.Fatal(err)
	}
	if c, err = crdt.Decode(enc); err != nil {
		t.Fatal(err)
	}
	applied, err := d.applyChanges(ctx, []*crdt.Change{c})
	if err != nil || applied != 0 {
		t.Fatalf("apply: %d applied, %v; want 0, nil", applied, err)
	}
	if gone, err := d.rejected(c.ID()); err != nil || !gone {
		t.Fatalf("change not recorded as rejected: %v %v", gone, err)
	}
	if got := rejectedCount(t, n, "db", rejectLimit); got != 1 {
		t.Fatalf("rejected{reason=limit} = %v, want 1", got)
	}
	if _, err := d.Get(ctx, "big"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get big: %v, want ErrNotFound", err)
	}
	mustPut(t, d, "small", map[string]any{"ok": true}, "")
}

// TestIncrOfNonNumberRefused: a local increment of a path that holds a
// string (or leads through one) is refused with ErrInvalid saying why, and
// changes nothing. Before, the string became the delta silently.
func TestIncrOfNonNumberRefused(t *testing.T) {
	ctx := t.Context()
	_, d := testDB(t)
	rev := mustPut(t, d, "city", map[string]any{"name": "Berlin", "n": 1, "o": map[string]any{"s": "x"}}, "")
	for _, tc := range []struct {
		p    Patch
		want string
	}{
		{Patch{Incr: map[string]any{"/name": 1}}, `cannot increment /name: it holds a string ("Berlin"), not a number`},
		{Patch{Incr: map[string]any{"/name/x": 1}}, `cannot increment /name/x: /name holds a string`},
		{Patch{Incr: map[string]any{"/o": 1}}, `cannot increment /o: it holds an object`},
		{Patch{Merge: map[string]any{"n": "now a string"}, Incr: map[string]any{"/n": 1}}, `cannot increment /n: it holds a string`},
	} {
		_, err := d.Patch(ctx, "city", tc.p)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("patch %+v: got %v, want ErrInvalid with %q", tc.p, err, tc.want)
		}
	}
	if doc := mustGet(t, d, "city"); doc.Rev != rev {
		t.Fatalf("a refused increment wrote revision %s", doc.Rev)
	}
	// A number, a missing path and a merge that makes the number are fine.
	for _, p := range []Patch{
		{Incr: map[string]any{"/n": 2}},
		{Incr: map[string]any{"/new/counter": 1}},
		{Merge: map[string]any{"name": 5}, Incr: map[string]any{"/name": 1}},
	} {
		if _, err := d.Patch(ctx, "city", p); err != nil {
			t.Fatalf("patch %+v: %v", p, err)
		}
	}
	doc := mustGet(t, d, "city")
	if doc.Body["n"] != int64(3) || doc.Body["name"] != int64(6) || len(doc.Conflicts) != 0 {
		t.Fatalf("body %v conflicts %v", doc.Body, doc.Conflicts)
	}
}

// TestConcurrentMaximalDocumentsMerge: two peers write maximal documents to
// one id while apart (an array of MaxArrayElements, then a body of
// MaxDocBytes). Once connected, both hold the merged state, one body plus
// the other in _conflicts (past what one write may leave, which merges may
// do), byte-identical; it reads, lists, compacts, and a local write that
// saw both resolves the conflict.
func TestConcurrentMaximalDocumentsMerge(t *testing.T) {
	if raceEnabled {
		t.Skip("35 s under the race detector; it checks sizes, not concurrency, and runs without it")
	}
	ctx := t.Context()
	tn := newTestNet(t, 2)
	tn.createDB("db")
	d0, d1 := tn.db(0, "db"), tn.db(1, "db")
	for i, d := range []*DB{d0, d1} {
		a := arrayBody(crdt.MaxArrayElements)
		a["a"].([]any)[0] = 1000 + i
		mustPut(t, d, "arr", a, "")
		b := sizedBody(crdt.MaxDocBytes)
		b["s00"] = fmt.Sprint(i) + b["s00"].(string)[1:]
		mustPut(t, d, "big", b, "")
	}
	tn.connect(0, 1)
	waitFor(t, "both peers to hold both writes", 60*time.Second, func() bool {
		_, diff := tn.docsAgree("db")
		return diff == "" && tn.converged("db")
	})
	for i, d := range []*DB{d0, d1} {
		for _, id := range []string{"arr", "big"} {
			doc, err := d.Get(ctx, id)
			if err != nil || len(doc.Conflicts) != 1 || len(doc.Revs) != 2 {
				t.Fatalf("peer %d: get %s: %d conflicts, %d heads, %v; want 1 and 2", i, id, len(doc.Conflicts), len(doc.Revs), err)
			}
		}
		if list, err := d.List(ctx, ListOptions{}); err != nil || len(list) != 2 {
			t.Fatalf("peer %d: list: %v %v", i, list, err)
		}
		if _, err := d.Compact(ctx, &Retention{}); err != nil {
			t.Fatalf("peer %d: compact: %v", i, err)
		}
	}
	st, _, err := d0.readState("big")
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := st.Encode()
	if len(enc) <= crdt.MaxDocBytes {
		t.Fatalf("merged state of %d bytes: the test does not pass the document limit", len(enc))
	}
	// A write that saw both resolves the conflict and is within the limits.
	if _, err := d0.Patch(ctx, "big", Patch{Merge: map[string]any{"s00": "short"}}); err != nil {
		t.Fatalf("patch after the merge: %v", err)
	}
	if doc := mustGet(t, d0, "big"); len(doc.Conflicts) != 0 {
		t.Fatalf("conflicts after a write that saw both: %d", len(doc.Conflicts))
	}
}

// TestRefusedPatchLeavesNoTrace: a patch refused by the size of the
// document it would leave (checked after the merge, which changes the
// cached state in place) leaves the document as it was: the same revision,
// and a later write does not carry the refused fields.
func TestRefusedPatchLeavesNoTrace(t *testing.T) {
	ctx := t.Context()
	_, d := testDB(t)
	body := sizedBody(crdt.MaxDocBytes - 2<<20)
	rev := mustPut(t, d, "doc", body, "")
	huge := map[string]any{"more1": strings.Repeat("y", crdt.MaxStringBytes), "more2": strings.Repeat("y", crdt.MaxStringBytes)}
	_, err := d.Patch(ctx, "doc", Patch{Merge: huge})
	var le *crdt.LimitError
	if !errors.As(err, &le) || le.Limit != crdt.LimitDocBytes {
		t.Fatalf("patch past max_doc_bytes: %v", err)
	}
	if doc := mustGet(t, d, "doc"); doc.Rev != rev {
		t.Fatalf("revision %s after a refused patch, want %s", doc.Rev, rev)
	}
	if _, err := d.Patch(ctx, "doc", Patch{Merge: map[string]any{"small": 1}}); err != nil {
		t.Fatal(err)
	}
	doc := mustGet(t, d, "doc")
	if _, ok := doc.Body["more1"]; ok || doc.Body["small"] != int64(1) || len(doc.Body) != len(body)+1 {
		t.Fatalf("after a refused patch and a small one: %d fields, more1 present %v", len(doc.Body), ok)
	}
	h, err := d.History(ctx, "doc")
	if err != nil || len(h) != 2 {
		t.Fatalf("history: %d revisions (%v), want 2", len(h), err)
	}
}
