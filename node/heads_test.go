package node

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestWriteOnHeads: a write on the heads a caller saw (DocOp.Heads) has
// those heads as parents and changes only what differs from the document
// as of them, so it merges with an edit made since; a detached write
// (DocOp.Detached) has no parents and merges with everything; local
// records are kept apart from documents.
func TestWriteOnHeads(t *testing.T) {
	ctx := context.Background()
	_, d := testDB(t)
	r1, err := d.Put(ctx, "x", map[string]any{"a": "1", "b": "1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(ctx, "x", map[string]any{"a": "1", "b": "2"}, ""); err != nil { // an edit since
		t.Fatal(err)
	}
	// A client that saw r1 changes a: b stays as edited since.
	res, err := d.Bulk(ctx, []DocOp{{ID: "x", Body: map[string]any{"a": "client", "b": "1"}, Heads: []string{r1.Rev}}}, false)
	if err != nil || res[0].Error != nil {
		t.Fatalf("write on heads: %v %v", err, res)
	}
	doc, _ := d.Get(ctx, "x")
	if doc.Body["a"] != "client" || doc.Body["b"] != "2" || len(doc.Revs) != 2 {
		t.Fatalf("x = %v with heads %v: want a=client, b=2 and two heads", doc.Body, doc.Revs)
	}
	hist, _ := d.History(ctx, "x")
	for _, h := range hist {
		if h.Rev == res[0].Rev && !slices.Equal(h.Parents, []string{r1.Rev}) {
			t.Fatalf("parents %v, want [%s]", h.Parents, r1.Rev)
		}
	}
	// A detached write: no parents, the same field conflicts, nothing lost.
	res, err = d.Bulk(ctx, []DocOp{{ID: "x", Body: map[string]any{"c": "3"}, Detached: true}}, false)
	if err != nil || res[0].Error != nil {
		t.Fatalf("detached write: %v %v", err, res)
	}
	doc, _ = d.Get(ctx, "x")
	if doc.Body["c"] != "3" || doc.Body["a"] != "client" || len(doc.Revs) != 3 {
		t.Fatalf("after a detached write x = %v heads %v", doc.Body, doc.Revs)
	}
	if res, _ := d.Bulk(ctx, []DocOp{{ID: "x", Body: map[string]any{}, Heads: []string{"nothex"}}}, false); !errors.Is(res[0].Error, ErrRevMismatch) {
		t.Fatalf("bad head: %v, want ErrRevMismatch", res[0].Error)
	}
	if err := d.PutLocal(ctx, map[string][]byte{"k": []byte("v")}, nil); err != nil {
		t.Fatal(err)
	}
	if v, err := d.GetLocal("k"); err != nil || string(v) != "v" {
		t.Fatalf("local record: %q %v", v, err)
	}
	if info, _ := d.Info(ctx); info.DocCount != 1 {
		t.Fatalf("a local record counted as a document: %+v", info)
	}
	if err := d.PutLocal(ctx, nil, []string{"k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GetLocal("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted local record: %v", err)
	}
	if err := d.PutLocal(ctx, map[string][]byte{"": nil}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty key: %v, want ErrInvalid", err)
	}
}

// TestBulkRecords: the records a BulkRecords callback returns are written
// with the writes, from results and states as the writer left them.
func TestBulkRecords(t *testing.T) {
	ctx := context.Background()
	_, d := testDB(t)
	res, err := d.BulkRecords(ctx, []DocOp{{ID: "a", Body: map[string]any{"v": 1}}, {ID: "", Body: map[string]any{}}},
		func(res []BulkResult, state func(string) (DocState, bool)) map[string][]byte {
			st, ok := state("a")
			if !ok || len(st.Heads) != 1 || st.Heads[0] != res[0].Rev || res[1].Error == nil {
				t.Errorf("callback saw %+v %v %+v", st, ok, res)
			}
			return map[string][]byte{"r/a": []byte(res[0].Rev)}
		})
	if err != nil || res[0].Error != nil || res[1].Error == nil {
		t.Fatalf("BulkRecords: %v %+v", err, res)
	}
	if v, err := d.GetLocal("r/a"); err != nil || string(v) != res[0].Rev {
		t.Fatalf("record: %q %v, want %s", v, err, res[0].Rev)
	}
	_, err = d.BulkRecords(ctx, []DocOp{{ID: "b", Body: map[string]any{}}}, func([]BulkResult, func(string) (DocState, bool)) map[string][]byte {
		return map[string][]byte{"big": make([]byte, MaxLocalValueBytes+1)}
	})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("an oversized record: %v, want ErrInvalid", err)
	}
	if _, err := d.GetLocal("big"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the oversized record was written: %v", err)
	}
}
