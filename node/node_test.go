package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
)

func openTestNode(t *testing.T, dir string, mod func(*Config)) *Node {
	t.Helper()
	cfg := Config{DataDir: dir}
	if mod != nil {
		mod(&cfg)
	}
	n, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func testDB(t *testing.T) (*Node, *DB) {
	t.Helper()
	n := openTestNode(t, t.TempDir(), nil)
	if err := n.CreateDB(t.Context(), "db"); err != nil {
		t.Fatal(err)
	}
	db, err := n.DB("db")
	if err != nil {
		t.Fatal(err)
	}
	return n, db
}

func mustPut(t *testing.T, db *DB, id string, body map[string]any, rev string) string {
	t.Helper()
	res, err := db.Put(t.Context(), id, body, rev)
	if err != nil {
		t.Fatalf("put %s: %v", id, err)
	}
	return res.Rev
}

func mustGet(t *testing.T, db *DB, id string) Document {
	t.Helper()
	doc, err := db.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return doc
}

func TestPutGetPath(t *testing.T) {
	_, db := testDB(t)
	rev := mustPut(t, db, "p1", map[string]any{"name": "Berlin", "locations": map[string]any{"country": "Germany"}, "n": 1.0}, "")
	doc := mustGet(t, db, "p1")
	if doc.Rev != rev {
		t.Errorf("rev: got %s, want %s", doc.Rev, rev)
	}
	want := map[string]any{"name": "Berlin", "locations": map[string]any{"country": "Germany"}, "n": int64(1)}
	if diff := cmp.Diff(want, doc.Body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	v, err := db.GetPath(t.Context(), "p1", "/locations/country")
	if err != nil || v != "Germany" {
		t.Errorf("GetPath: got %v, %v; want Germany", v, err)
	}
	for _, tc := range []struct {
		path string
		want error
	}{{"/nope", ErrNotFound}, {"bad", ErrInvalid}, {"/locations/country/x", ErrNotFound}} {
		if _, err := db.GetPath(t.Context(), "p1", tc.path); !errors.Is(err, tc.want) {
			t.Errorf("GetPath(%q): got %v, want %v", tc.path, err, tc.want)
		}
	}
	if _, err := db.Get(t.Context(), "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get missing: got %v, want ErrNotFound", err)
	}
}

func TestRejectedWritesChangeNothing(t *testing.T) {
	_, db := testDB(t)
	mustPut(t, db, "a", map[string]any{"x": 1}, "")
	before, _ := db.Info(t.Context())
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"reserved field", func() error { _, err := db.Put(t.Context(), "a", map[string]any{"_x": 1}, ""); return err }, ErrInvalid},
		{"empty id", func() error { _, err := db.Put(t.Context(), "", map[string]any{}, ""); return err }, ErrInvalid},
		{"unknown rev", func() error {
			_, err := db.Put(t.Context(), "a", map[string]any{"x": 2}, fmt.Sprintf("%064x", 7))
			return err
		}, ErrRevMismatch},
		{"malformed rev", func() error { _, err := db.Put(t.Context(), "a", map[string]any{"x": 2}, "1-abc"); return err }, ErrRevMismatch},
		{"patch missing", func() error { _, err := db.Patch(t.Context(), "zz", Patch{Merge: map[string]any{"a": 1}}); return err }, ErrNotFound},
		{"delete missing", func() error { _, err := db.Delete(t.Context(), "zz", ""); return err }, ErrNotFound},
		{"incr non-number", func() error { _, err := db.Patch(t.Context(), "a", Patch{Incr: map[string]any{"/x": "s"}}); return err }, ErrInvalid},
		{"atomic bulk with one bad", func() error {
			_, err := db.Bulk(t.Context(), []DocOp{{ID: "b", Body: map[string]any{"y": 1}}, {ID: "a", Body: map[string]any{}, Rev: fmt.Sprintf("%064x", 1)}}, true)
			return err
		}, ErrTxAborted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			after, _ := db.Info(t.Context())
			if after != before {
				t.Fatalf("store changed: before %+v, after %+v", before, after)
			}
		})
	}
}

// TestSameBaseRev: two clients PUT from the same base revision. Different
// fields: both edits kept. Same field: one deterministic winner, the other
// in _conflicts until a later write resolves it.
func TestSameBaseRev(t *testing.T) {
	_, db := testDB(t)
	base := mustPut(t, db, "d", map[string]any{"a": 1, "b": 1, "c": 1}, "")
	mustPut(t, db, "d", map[string]any{"a": 2, "b": 1, "c": 1}, base)
	mustPut(t, db, "d", map[string]any{"a": 1, "b": 2, "c": 1}, base)
	doc := mustGet(t, db, "d")
	if diff := cmp.Diff(map[string]any{"a": int64(2), "b": int64(2), "c": int64(1)}, doc.Body); diff != "" {
		t.Fatalf("different fields (-want +got):\n%s", diff)
	}
	if len(doc.Conflicts) != 0 || len(doc.Revs) != 2 {
		t.Fatalf("want no conflicts and 2 heads, got %v and %v", doc.Conflicts, doc.Revs)
	}
	r1 := mustPut(t, db, "d", map[string]any{"a": 2, "b": 2, "c": "one"}, doc.Rev)
	mustPut(t, db, "d", map[string]any{"a": 2, "b": 2, "c": "two"}, doc.Rev)
	doc = mustGet(t, db, "d")
	if doc.Body["c"] != "two" {
		t.Fatalf("same field: got c=%v, want the later write", doc.Body["c"])
	}
	want := []Conflict{{Path: "/c", Value: "one", Rev: r1}}
	if diff := cmp.Diff(want, doc.Conflicts); diff != "" {
		t.Fatalf("conflicts (-want +got):\n%s", diff)
	}
	mustPut(t, db, "d", map[string]any{"a": 2, "b": 2, "c": "two"}, "")
	if doc = mustGet(t, db, "d"); len(doc.Conflicts) != 0 || len(doc.Revs) != 1 {
		t.Fatalf("after resolving write: conflicts %v, heads %v", doc.Conflicts, doc.Revs)
	}
}

func TestDeleteRecreatePatch(t *testing.T) {
	_, db := testDB(t)
	mustPut(t, db, "d", map[string]any{"a": 1, "tags": []any{"x"}}, "")
	if _, err := db.Patch(t.Context(), "d", Patch{Merge: map[string]any{"a": nil, "b": "new"}, Incr: map[string]any{"/n": 5}, Add: map[string][]any{"/set": {"q", "p"}}}); err != nil {
		t.Fatal(err)
	}
	doc := mustGet(t, db, "d")
	want := map[string]any{"b": "new", "n": int64(5), "set": []any{"p", "q"}, "tags": []any{"x"}}
	if diff := cmp.Diff(want, doc.Body); diff != "" {
		t.Fatalf("patch (-want +got):\n%s", diff)
	}
	if _, err := db.Delete(t.Context(), "d", ""); err != nil {
		t.Fatal(err)
	}
	if doc = mustGet(t, db, "d"); !doc.Deleted {
		t.Fatal("not deleted")
	}
	if info, _ := db.Info(t.Context()); info.DocCount != 0 {
		t.Fatalf("doc count %d after delete", info.DocCount)
	}
	mustPut(t, db, "d", map[string]any{"fresh": true}, "")
	if diff := cmp.Diff(map[string]any{"fresh": true}, mustGet(t, db, "d").Body); diff != "" {
		t.Fatalf("recreated (-want +got):\n%s", diff)
	}
}

func TestChangesFeedAndWait(t *testing.T) {
	_, db := testDB(t)
	for i := range 5 {
		mustPut(t, db, fmt.Sprint("d", i), map[string]any{"i": i}, "")
	}
	got, last, err := db.Changes(t.Context(), 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if last != 5 || len(got) != 2 || got[0].Seq != 3 || got[1].Seq != 4 || got[0].ID != "d2" {
		t.Fatalf("changes since 2 limit 2: %+v last %d", got, last)
	}
	done := make(chan error, 1)
	go func() { done <- db.WaitChanges(t.Context(), 5) }()
	mustPut(t, db, "late", map[string]any{}, "")
	if err := <-done; err != nil {
		t.Fatalf("wait: %v", err)
	}
}

func TestQueryAndList(t *testing.T) {
	_, db := testDB(t)
	var docs []DocOp
	for i := range 30 {
		country := []string{"Germany", "France", "Spain"}[i%3]
		docs = append(docs, DocOp{ID: fmt.Sprintf("p%02d", i), Body: map[string]any{"n": i, "locations": map[string]any{"country": country}}})
	}
	res, err := db.Bulk(t.Context(), docs, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 30 || res[0].Rev == "" {
		t.Fatalf("bulk results %+v", res)
	}
	q, err := db.Query(t.Context(), Query{Where: []Cond{{Path: "/locations/country", Op: "==", Value: "Germany"}, {Path: "/n", Op: ">=", Value: 10}}, OrderBy: "/n", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range q.Docs {
		ids = append(ids, d.ID)
	}
	if diff := cmp.Diff([]string{"p12", "p15", "p18"}, ids); diff != "" {
		t.Fatalf("query (-want +got):\n%s", diff)
	}
	if q.Cursor == "" {
		t.Fatal("want a cursor for the next page")
	}
	list, err := db.List(t.Context(), ListOptions{Prefix: "p1", StartAfter: "p12", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].ID != "p13" || list[2].ID != "p15" {
		t.Fatalf("list: %+v", list)
	}
	if _, err := db.Query(t.Context(), Query{Where: []Cond{{Path: "/n", Op: "~", Value: 1}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad op: got %v, want ErrInvalid", err)
	}
	// Index follows updates and deletes.
	mustPut(t, db, "p00", map[string]any{"locations": map[string]any{"country": "Italy"}}, "")
	db.Delete(t.Context(), "p03", "")
	q, _ = db.Query(t.Context(), Query{Where: []Cond{{Path: "/locations/country", Op: "==", Value: "Germany"}}, Limit: 100})
	if len(q.Docs) != 8 {
		t.Fatalf("after update and delete: %d Germany docs, want 8", len(q.Docs))
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	n := openTestNode(t, dir, nil)
	n.CreateDB(t.Context(), "db")
	db, _ := n.DB("db")
	rev := mustPut(t, db, "a", map[string]any{"x": 1}, "")
	pid := n.Info().PeerID
	n.Close()
	n2 := openTestNode(t, dir, nil)
	if n2.Info().PeerID != pid {
		t.Fatalf("identity changed across restart")
	}
	db2, err := n2.DB("db")
	if err != nil {
		t.Fatal(err)
	}
	if doc := mustGet(t, db2, "a"); doc.Rev != rev {
		t.Fatalf("rev after reopen: %s, want %s", doc.Rev, rev)
	}
	if info, _ := db2.Info(t.Context()); info.UpdateSeq != 1 || info.DocCount != 1 {
		t.Fatalf("info after reopen: %+v", info)
	}
	mustPut(t, db2, "b", map[string]any{}, "")
	if info, _ := db2.Info(t.Context()); info.UpdateSeq != 2 {
		t.Fatalf("seq continues: %+v", info)
	}
}

func TestDBLifecycle(t *testing.T) {
	n := openTestNode(t, t.TempDir(), nil)
	ctx := t.Context()
	if err := n.CreateDB(ctx, "Bad Name"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
	n.CreateDB(ctx, "a")
	if err := n.CreateDB(ctx, "a"); !errors.Is(err, ErrDBExists) {
		t.Fatalf("dup: %v", err)
	}
	db, _ := n.DB("a")
	mustPut(t, db, "x", map[string]any{}, "")
	if err := n.DropDB(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.DB("a"); !errors.Is(err, ErrDBNotFound) {
		t.Fatalf("after drop: %v", err)
	}
	n.CreateDB(ctx, "a")
	db, _ = n.DB("a")
	if _, err := db.Get(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("recreated db is not empty: %v", err)
	}
}

// TestConcurrentWriters: many writers, every acknowledged write readable,
// the feed gapless.
func TestConcurrentWriters(t *testing.T) {
	_, db := testDB(t)
	var wg sync.WaitGroup
	ctx := context.Background()
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, err := db.Put(ctx, fmt.Sprintf("w%d-%d", w, i), map[string]any{"i": i}, ""); err != nil {
					t.Errorf("put: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	info, _ := db.Info(ctx)
	if info.DocCount != 800 || info.UpdateSeq != 800 {
		t.Fatalf("info %+v, want 800 docs and seq 800", info)
	}
	got, _, _ := db.Changes(ctx, 0, 1000)
	for i, c := range got {
		if c.Seq != uint64(i+1) {
			t.Fatalf("feed gap at %d: seq %d", i, c.Seq)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestStoreFormat: a data dir records its store format; one written in
// another format (a newer barrel's) or with an unreadable record is
// refused at Open with ErrStoreFormat, and left as it was.
func TestStoreFormat(t *testing.T) {
	for _, tc := range []struct {
		name   string
		record []byte
	}{
		{"newer format", binary.BigEndian.AppendUint64(nil, layout.Format+1)},
		{"unreadable record", []byte("x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			n := openTestNode(t, dir, nil)
			n.CreateDB(t.Context(), "db")
			db, _ := n.DB("db")
			mustPut(t, db, "a", map[string]any{"x": 1}, "")
			n.Close()
			s, err := datastore.Open(filepath.Join(dir, "store"), datastore.Config{})
			if err != nil {
				t.Fatal(err)
			}
			if v, err := s.Get(layout.FormatKey); err != nil || binary.BigEndian.Uint64(v) != layout.Format {
				t.Fatalf("format record of a new data dir: %x, %v; want %d", v, err, layout.Format)
			}
			b := s.NewWriteBatch()
			b.Set(layout.FormatKey, tc.record)
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
			s.Close()
			if _, err := Open(t.Context(), Config{DataDir: dir}); !errors.Is(err, ErrStoreFormat) {
				t.Fatalf("Open: got %v, want ErrStoreFormat", err)
			}
			s, err = datastore.Open(filepath.Join(dir, "store"), datastore.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if v, _ := s.Get(layout.FormatKey); !bytes.Equal(v, tc.record) {
				t.Fatalf("format record after the refused Open: %x, want %x", v, tc.record)
			}
		})
	}
}
