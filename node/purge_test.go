package node

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// rawKeysWith lists the keys of a database whose key or value contains s.
func rawKeysWith(t *testing.T, d *DB, s string) []string {
	t.Helper()
	lo, hi := d.keys.All()
	var out []string
	err := d.store.Range(lo, hi, false, func(k, v []byte) (bool, error) {
		if bytes.Contains(k, []byte(s)) || bytes.Contains(v, []byte(s)) {
			out = append(out, fmt.Sprintf("%q", k))
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPurge: a purged document is gone from this peer (reads, history,
// queries, the count, every key and value of the store) and the same
// changes offered again by a peer that still holds it, or a peer's later
// edit of it, do not bring it back.
func TestPurge(t *testing.T) {
	ctx := t.Context()
	a, b := openRetained(t, t.TempDir()), openRetained(t, t.TempDir())
	defer a.Close()
	defer b.Close()
	da, dbb := dbOf(t, a), dbOf(t, b)
	const secret = "hunter2-leaked-secret"
	for i := range 5 {
		mustPut(t, da, "leak-doc", map[string]any{"password": secret, "v": i, "kind": "cred"}, "")
	}
	mustPut(t, da, "keep", map[string]any{"kind": "cred", "v": 1}, "")
	mustPut(t, da, "gone-doc", map[string]any{"password": secret}, "")
	if _, err := da.Delete(ctx, "gone-doc", ""); err != nil {
		t.Fatal(err)
	}
	pullAll(t, a, b, "db", 0, 100)
	// Fold part of the history, so a fold record exists too.
	if _, err := da.Compact(ctx, &Retention{KeepRevisions: 2, TombstonesFor: 1000 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if h, err := da.History(ctx, "leak-doc"); err != nil || len(h) != 3 || !h[2].Compacted || h[2].Folded != 3 {
		t.Fatalf("history before the purge: %+v, %v; want 2 kept and the folded base of 3", h, err)
	}
	before := info(t, da)

	res, err := da.Purge(ctx, []string{"leak-doc", "gone-doc", "nope", "leak-doc"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Purged) != "[gone-doc leak-doc]" || fmt.Sprint(res.NotFound) != "[nope]" || res.Changes != 4 {
		t.Fatalf("purge: %+v; want both purged (4 changes kept), nope not found", res)
	}
	if _, err := da.Get(ctx, "leak-doc"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after purge: %v, want ErrNotFound", err)
	}
	if _, err := da.History(ctx, "leak-doc"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("history after purge: %v, want ErrNotFound", err)
	}
	q, err := da.Query(ctx, Query{Where: []Cond{{Path: "/kind", Op: "==", Value: "cred"}}})
	if err != nil || len(q.Docs) != 1 || q.Docs[0].ID != "keep" {
		t.Fatalf("query after purge: %+v, %v; want keep only", q.Docs, err)
	}
	after := info(t, da)
	if after.DocCount != before.DocCount-1 || after.Tombstones != before.Tombstones-1 || after.Revisions != before.Revisions-4 {
		t.Fatalf("info after purge %+v, before %+v: want one document, one tombstone and 4 revisions less", after, before)
	}
	for _, s := range []string{"leak-doc", "gone-doc", secret} {
		if keys := rawKeysWith(t, da, s); len(keys) > 0 {
			t.Fatalf("the store still holds %q in %v", s, keys)
		}
	}
	changes, _, err := da.Changes(ctx, 0, 0)
	if err != nil || len(changes) != 1 || changes[0].ID != "keep" {
		t.Fatalf("feed after purge: %+v, %v; want keep only", changes, err)
	}
	if n := rejectedCount(t, a, "db", rejectPurged); n < 4 {
		t.Fatalf("%v purged changes counted as rejected, want at least 4", n)
	}

	// b still holds both documents and edits one: nothing comes back.
	mustPut(t, dbb, "leak-doc", map[string]any{"password": secret, "v": 99}, "")
	pullAll(t, b, a, "db", 0, 100)
	for _, id := range []string{"leak-doc", "gone-doc"} {
		if _, err := da.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after b offered its changes: %v, want ErrNotFound", id, err)
		}
	}
	if keys := rawKeysWith(t, da, secret); len(keys) > 0 {
		t.Fatalf("the secret came back in %v", keys)
	}
	if got := info(t, da); got.DocCount != after.DocCount || got.Revisions != after.Revisions || got.Tombstones != after.Tombstones {
		t.Fatalf("info after b's offer %+v, want %+v", got, after)
	}
	if n := rejectedCount(t, a, "db", rejectParent); n < 1 {
		t.Fatalf("b's edit of the purged document: %v rejected as rejected_parent, want 1", n)
	}

	// A new document under a purged id is a new document.
	mustPut(t, da, "leak-doc", map[string]any{"v": "fresh"}, "")
	if doc := mustGet(t, da, "leak-doc"); doc.Body["v"] != "fresh" {
		t.Fatalf("recreated: %+v", doc)
	}
}

// TestPurgeInvalid: a bad purge request is refused whole and changes
// nothing.
func TestPurgeInvalid(t *testing.T) {
	_, d := testDB(t)
	mustPut(t, d, "a", map[string]any{"v": 1}, "")
	before := info(t, d)
	tooMany := make([]string, MaxPurgeIDs+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("d%d", i)
	}
	for name, ids := range map[string][]string{
		"none":     nil,
		"too many": tooMany,
		"empty id": {"a", ""},
		"acl":      {"a", ACLDocID},
		"too long": {"a", strings.Repeat("x", 100_000)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := d.Purge(t.Context(), ids); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			if got := mustGet(t, d, "a"); got.Body["v"] != int64(1) {
				t.Fatalf("document changed: %+v", got)
			}
			if got := info(t, d); got.DocCount != before.DocCount || got.Revisions != before.Revisions {
				t.Fatalf("info changed: %+v, want %+v", got, before)
			}
		})
	}
}
