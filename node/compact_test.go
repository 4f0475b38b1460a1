package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/barrel-db/barrel/crdt"
)

// foldAll folds every change it can: no revisions kept, no horizon.
var foldAll = &Retention{}

func openRetained(t tb, dir string) *Node {
	n, err := Open(context.Background(), Config{DataDir: dir, Durability: "batch", Logger: discardLogger(),
		Retention: &Retention{KeepFor: 1000 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.CreateDB(context.Background(), "db"); err != nil {
		t.Fatal(err)
	}
	return n
}

func dbOf(t tb, n *Node) *DB {
	d, err := n.DB("db")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func dbBytes(t tb, d *DB) uint64 {
	lo, hi := d.keys.All()
	if err := d.store.Compact(lo, hi); err != nil {
		t.Fatal(err)
	}
	b, err := d.store.EstimateDiskUsage(lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCompactReclaims: 1,000 documents updated 100 times each, then
// compacted, take at most twice the bytes of a store written with only the
// final states, and read exactly as before.
func TestCompactReclaims(t *testing.T) {
	ctx := t.Context()
	const docs, updates = 1000, 100
	body := func(i, u int) map[string]any {
		return map[string]any{"n": u, "name": fmt.Sprintf("doc %d", i), "tags": []any{"a", "b"},
			"locations": map[string]any{"country": fmt.Sprintf("c%d", i%10), "city": "x"}}
	}
	write := func(d *DB, from, to int) {
		for u := from; u < to; u++ {
			ops := make([]DocOp, docs)
			for i := range ops {
				ops[i] = DocOp{ID: fmt.Sprintf("doc-%04d", i), Body: body(i, u)}
			}
			if _, err := d.Bulk(ctx, ops, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	n := openRetained(t, t.TempDir())
	defer n.Close()
	d := dbOf(t, n)
	write(d, 0, updates)
	before := docsOf(t, n, "db")
	full := dbBytes(t, d)

	st, err := d.Compact(ctx, foldAll)
	if err != nil {
		t.Fatal(err)
	}
	if st.Folded != docs*updates || st.Docs != docs {
		t.Fatalf("compaction folded %d revisions of %d documents, want %d of %d", st.Folded, st.Docs, docs*updates, docs)
	}
	compacted := dbBytes(t, d)

	ref := openRetained(t, t.TempDir())
	defer ref.Close()
	write(dbOf(t, ref), updates-1, updates)
	final := dbBytes(t, dbOf(t, ref))
	t.Logf("bytes: full history %d, compacted %d, final states only %d", full, compacted, final)
	if compacted > 2*final {
		t.Errorf("compacted store %d bytes, more than twice the final-states store (%d)", compacted, final)
	}
	after := docsOf(t, n, "db")
	if len(after) != len(before) {
		t.Fatalf("%d documents after compaction, %d before", len(after), len(before))
	}
	for id, b := range before {
		if !bytes.Equal(b, after[id]) {
			t.Fatalf("document %s changed by compaction", id)
		}
	}
	res, err := d.Query(ctx, Query{Where: []Cond{{Path: "/locations/country", Op: "==", Value: "c3"}}, Limit: 1000})
	if err != nil || len(res.Docs) != docs/10 {
		t.Fatalf("query after compaction: %d docs, %v", len(res.Docs), err)
	}
	// A write after the fold merges on the base.
	doc := mustGet(t, d, "doc-0007")
	if _, err := d.Put(ctx, "doc-0007", map[string]any{"n": 1000}, doc.Rev); err != nil {
		t.Fatalf("write on the folded revision: %v", err)
	}
	if got := mustGet(t, d, "doc-0007"); got.Body["n"] != int64(1000) || got.Body["name"] != nil {
		t.Fatalf("after write: %v", got.Body)
	}
}

// TestCompactMergesLikeFullHistory: a change concurrent with the kept
// history of a compacted document merges exactly as on a peer that never
// compacted; an old _rev that was folded is refused clearly.
func TestCompactMergesLikeFullHistory(t *testing.T) {
	ctx := t.Context()
	a, b, ref := openRetained(t, t.TempDir()), openRetained(t, t.TempDir()), openRetained(t, t.TempDir())
	defer a.Close()
	defer b.Close()
	defer ref.Close()
	da, db := dbOf(t, a), dbOf(t, b)
	var revs []string
	for i := range 6 {
		revs = append(revs, mustPut(t, da, "x", map[string]any{"v": i, "w": "a"}, ""))
	}
	pullAll(t, a, b, "db", 0, 100)
	cpA := pullAll(t, a, ref, "db", 0, 100)
	// Concurrent edits: b from the current revision, a from an older kept
	// one.
	mustPut(t, db, "x", map[string]any{"v": 100, "w": "a"}, "")
	mustPut(t, da, "x", map[string]any{"v": 4, "w": "b"}, revs[4])
	st, err := da.Compact(ctx, &Retention{KeepRevisions: 2})
	if err != nil || st.Folded != 5 {
		t.Fatalf("compact: folded %d, %v; want 5 (r0..r4: r5 and the edit from r4 stay)", st.Folded, err)
	}
	if _, err := da.Put(ctx, "x", map[string]any{"v": 1}, revs[1]); !errors.Is(err, ErrRevMismatch) {
		t.Fatalf("write from a folded revision: %v, want ErrRevMismatch", err)
	}
	cpB := pullAll(t, b, a, "db", 0, 100)
	pullAll(t, a, b, "db", cpA, 100)
	pullAll(t, a, ref, "db", cpA, 100)
	pullAll(t, b, ref, "db", 0, 100)
	want := docsOf(t, ref, "db")["x"]
	for name, n := range map[string]*Node{"compacted": a, "b": b} {
		if got := docsOf(t, n, "db")["x"]; !bytes.Equal(got, want) {
			t.Fatalf("%s differs from the peer that kept all history", name)
		}
	}
	if doc := mustGet(t, da, "x"); doc.Body["v"] != int64(100) || doc.Body["w"] != "b" || len(doc.Revs) != 2 {
		t.Fatalf("the concurrent edits of different fields are not both kept: %+v", doc)
	}
	// More writes after the fold and another compaction stay identical.
	mustPut(t, db, "x", map[string]any{"v": 7}, "")
	pullAll(t, b, a, "db", cpB, 100)
	if _, err := da.Compact(ctx, foldAll); err != nil {
		t.Fatal(err)
	}
	pullAll(t, b, ref, "db", 0, 100)
	if !bytes.Equal(docsOf(t, a, "db")["x"], docsOf(t, ref, "db")["x"]) {
		t.Fatal("differs after a second compaction")
	}
}

// TestCompactRejectsStale: a change that did not see the fold point (from
// a peer that was away longer than the horizon) is rejected as stale and
// changes nothing; a deleted document whose tombstone was purged does not
// come back from an old change.
func TestCompactRejectsStale(t *testing.T) {
	ctx := t.Context()
	a, r := openRetained(t, t.TempDir()), openRetained(t, t.TempDir())
	defer a.Close()
	defer r.Close()
	da, dr := dbOf(t, a), dbOf(t, r)
	mustPut(t, da, "x", map[string]any{"v": 1}, "")
	mustPut(t, da, "gone", map[string]any{"v": 1}, "")
	pullAll(t, a, r, "db", 0, 100)
	// r goes away and edits both; a moves on, deletes one, and compacts.
	mustPut(t, dr, "x", map[string]any{"v": 2, "offline": true}, "")
	mustPut(t, dr, "gone", map[string]any{"v": 2}, "")
	mustPut(t, da, "x", map[string]any{"v": 3}, "")
	if _, err := da.Delete(ctx, "gone", ""); err != nil {
		t.Fatal(err)
	}
	st, err := da.Compact(ctx, foldAll)
	if err != nil || st.Tombstones != 1 {
		t.Fatalf("compact: %+v, %v", st, err)
	}
	before := docsOf(t, a, "db")
	if _, ok := before["gone"]; ok {
		t.Fatal("the purged tombstone is still listed")
	}
	pullAll(t, r, a, "db", 0, 100)
	if after := docsOf(t, a, "db"); len(after) != len(before) || !bytes.Equal(after["x"], before["x"]) {
		t.Fatalf("stale changes changed the compacted peer")
	}
	if n := rejectedCount(t, a, "db", "stale"); n < 2 {
		t.Fatalf("%v stale changes counted, want at least 2", n)
	}
}

// TestCompactionInvisible: random writes on 3 peers that exchange changes
// in random batches, with compaction at random points on random peers
// (each time right after a full exchange: every peer is within the
// horizon), end with documents and conflicts byte-identical to a peer that
// received everything and never compacted.
func TestCompactionInvisible(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		nodes := make([]*Node, rapid.IntRange(3, 5).Draw(rt, "peers"))
		for i := range nodes {
			nodes[i] = openRetained(rt, t.TempDir())
			defer nodes[i].Close()
		}
		ref := openRetained(rt, t.TempDir())
		defer ref.Close()
		all := append([]*Node{ref}, nodes...)
		cp := map[[2]*Node]uint64{}
		pull := func(src, dst *Node, batch int) {
			cp[[2]*Node{src, dst}] = pullAll(rt, src, dst, "db", cp[[2]*Node{src, dst}], batch)
		}
		healAll := func() {
			for range 2 {
				for _, dst := range all {
					for _, src := range nodes {
						if src != dst {
							pull(src, dst, 7)
						}
					}
				}
			}
		}
		for step := rapid.IntRange(1, 30).Draw(rt, "steps"); step > 0; step-- {
			n := nodes[rapid.IntRange(0, len(nodes)-1).Draw(rt, "node")]
			switch rapid.IntRange(0, 5).Draw(rt, "op") {
			case 0, 1, 2, 3:
				randomWrite(rt, dbOf(rt, n))
			case 4:
				if src := nodes[rapid.IntRange(0, len(nodes)-1).Draw(rt, "src")]; src != n {
					pull(src, n, rapid.IntRange(1, 5).Draw(rt, "batch"))
				}
			case 5:
				healAll()
				for _, c := range nodes {
					if rapid.Bool().Draw(rt, "compact") {
						if _, err := dbOf(rt, c).Compact(ctx, &Retention{KeepRevisions: rapid.IntRange(0, 3).Draw(rt, "keep"),
							TombstonesFor: 1000 * time.Hour}); err != nil {
							rt.Fatal(err)
						}
					}
				}
			}
		}
		healAll()
		want := docsOf(rt, ref, "db")
		for i, n := range nodes {
			got := docsOf(rt, n, "db")
			if len(got) != len(want) {
				rt.Fatalf("peer %d holds %d docs, the reference %d", i, len(got), len(want))
			}
			for id, v := range want {
				if !bytes.Equal(v, got[id]) {
					rt.Fatalf("peer %d: document %s differs from the peer without compaction", i, id)
				}
			}
		}
	})
}

var _ = crdt.ID{}

// TestCompactWaitsForArrival: a change is folded only when it arrived
// here longer ago than keep_for, whatever its clock says: one received
// late from a peer back from a long absence is kept, so the horizon does
// not jump past the checkpoints of peers that synced meanwhile.
func TestCompactWaitsForArrival(t *testing.T) {
	ctx := t.Context()
	now := time.Unix(1_800_000_000, 0)
	n, err := Open(ctx, Config{DataDir: t.TempDir(), Durability: "batch", Logger: discardLogger(),
		Retention: &Retention{KeepFor: time.Hour}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.CreateDB(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	d := dbOf(t, n)
	for i := range 3 {
		mustPut(t, d, "early", map[string]any{"v": i}, "")
	}
	if st := mustCompact(t, d, nil); st.Folded != 0 {
		t.Fatalf("folded %d changes younger than keep_for", st.Folded)
	}
	// Written after the first mark with the same (old) clock: arrived late.
	for i := range 3 {
		mustPut(t, d, "late", map[string]any{"v": i}, "")
	}
	now = now.Add(2 * time.Hour)
	if st := mustCompact(t, d, nil); st.Folded != 3 {
		t.Fatalf("folded %d changes, want the 3 that arrived before the mark of keep_for ago", st.Folded)
	}
	if h, _ := d.History(ctx, "late"); len(h) != 3 {
		t.Fatalf("the late document kept %d revisions, want 3", len(h))
	}
	now = now.Add(2 * time.Hour)
	if st := mustCompact(t, d, nil); st.Folded != 3 {
		t.Fatalf("folded %d changes, want the 3 late ones once they are old enough here", st.Folded)
	}
}

// TestCompactSurvivesReopen: after a restart the node still knows it holds
// folded documents, and a write from an older kept revision merges on the
// base.
func TestCompactSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	n := openRetained(t, dir)
	d := dbOf(t, n)
	var revs []string
	for i := range 4 {
		revs = append(revs, mustPut(t, d, "x", map[string]any{"v": i, "w": "a"}, ""))
	}
	if st := mustCompact(t, d, &Retention{KeepRevisions: 2}); st.Folded != 2 {
		t.Fatalf("folded %d, want 2", st.Folded)
	}
	n.Close()
	n, err := Open(t.Context(), Config{DataDir: dir, Durability: "batch", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	d = dbOf(t, n)
	if !d.anyFold.Load() {
		t.Fatal("the reopened database does not know it holds folded documents")
	}
	if _, err := d.Put(t.Context(), "x", map[string]any{"v": 2, "w": "b"}, revs[2]); err != nil {
		t.Fatalf("write from a kept revision after reopen: %v", err)
	}
	if got := mustGet(t, d, "x"); got.Body["v"] != int64(3) || got.Body["w"] != "b" || len(got.Revs) != 2 {
		t.Fatalf("after the write: %+v", got)
	}
}
