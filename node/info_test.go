package node

import (
	"testing"

	"github.com/barrel-db/barrel/node/internal/layout"
)

func info(t *testing.T, d *DB) DBInfo {
	t.Helper()
	i, err := d.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestInfoCounters: documents, revisions and tombstones follow writes,
// deletes, recreation and compaction, and survive a restart.
func TestInfoCounters(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	n := openRetained(t, dir)
	d := dbOf(t, n)
	for i := range 3 {
		mustPut(t, d, "a", map[string]any{"v": i}, "")
	}
	mustPut(t, d, "b", map[string]any{"v": 1}, "")
	mustPut(t, d, "c", map[string]any{"v": 1}, "")
	for _, id := range []string{"b", "c"} {
		if _, err := d.Delete(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, d, "c", map[string]any{"v": 2}, "")
	check := func(when string, docs, revs, tombs int64) {
		t.Helper()
		got := info(t, d)
		if got.DocCount != docs || got.Revisions != revs || got.Tombstones != tombs {
			t.Fatalf("%s: got %d docs, %d revisions, %d tombstones; want %d, %d, %d",
				when, got.DocCount, got.Revisions, got.Tombstones, docs, revs, tombs)
		}
	}
	check("after writes", 2, 8, 1)
	if got := info(t, d); got.LastCompaction != nil {
		t.Fatalf("info: %+v; want no compaction yet", got)
	}
	st, err := d.Compact(ctx, foldAll)
	if err != nil || st.Tombstones != 1 {
		t.Fatalf("compact: %+v, %v", st, err)
	}
	check("after compaction", 2, 0, 0)
	if got := info(t, d); got.LastCompaction == nil || got.LastCompaction.Folded != st.Folded || got.DiskBytes == 0 {
		t.Fatalf("info after compaction: %+v, want bytes on disk and the last compaction %+v", got, st)
	}
	if h, err := d.History(ctx, "a"); err != nil || len(h) != 1 || !h[0].Compacted || h[0].Folded != 3 || h[0].Rev != mustGet(t, d, "a").Rev {
		t.Fatalf("history of a fully folded document: %+v, %v", h, err)
	}
	mustPut(t, d, "a", map[string]any{"v": 9}, "")
	if _, err := d.Delete(ctx, "c", ""); err != nil {
		t.Fatal(err)
	}
	check("after writes on the fold", 1, 2, 1)
	reopen := func() {
		t.Helper()
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		var err error
		if n, err = Open(ctx, Config{DataDir: dir, Durability: "batch", Logger: discardLogger()}); err != nil {
			t.Fatal(err)
		}
		d = dbOf(t, n)
	}
	reopen()
	defer func() { n.Close() }()
	check("after a restart", 1, 2, 1)

	// A database written before the counters existed counts them once.
	b := d.store.NewWriteBatch()
	b.Delete(d.keys.Meta(layout.MetaRevisions))
	b.Delete(d.keys.Meta(layout.MetaTombs))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	reopen()
	check("after counting from the store", 1, 2, 1)
}
