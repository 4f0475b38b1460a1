package couch

import (
	"slices"
	"testing"
)

func mustRev(t *testing.T, s string) Rev {
	t.Helper()
	v, err := ParseRev(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPresentIsLinear: each move of a document's heads makes a child of
// the revision shown before, whose ancestry holds it, and showing the same
// heads again changes nothing.
func TestPresentIsLinear(t *testing.T) {
	r1, moved := present(nil, []string{"c1"}, false)
	if !moved || r1.Gen != 1 {
		t.Fatalf("first presentation: %+v moved=%v", r1, moved)
	}
	if again, moved := present(r1, []string{"c1"}, false); moved || again != r1 {
		t.Fatal("the same heads made a new revision")
	}
	r2, _ := present(r1, []string{"c3", "c2"}, false)
	if r2.Gen != 2 || !slices.Equal(r2.Anc, []string{r1.Hash}) || !slices.Equal(r2.Heads, []string{"c2", "c3"}) {
		t.Fatalf("second revision %+v: want gen 2, parent %s, sorted heads", r2, r1.Hash)
	}
	if !r2.has(mustRev(t, r1.rev())) || !r2.has(mustRev(t, r2.rev())) {
		t.Fatal("the tree lost a revision it showed")
	}
	if heads, ok := r2.base([]Rev{mustRev(t, r1.rev())}); !ok || !slices.Equal(heads, []string{"c1"}) {
		t.Fatalf("an edit of the first revision has base %v %v, want [c1]", heads, ok)
	}
	r3, _ := present(r2, []string{"c4"}, true)
	if !r3.Deleted || r3.revisions().Start != 3 || len(r3.revisions().IDs) != 3 {
		t.Fatalf("tombstone revision %+v", r3)
	}
	// Deterministic: the same steps name the same revisions.
	s1, _ := present(nil, []string{"c1"}, false)
	s2, _ := present(s1, []string{"c2", "c3"}, false)
	if s2.rev() != r2.rev() {
		t.Fatalf("same steps, revisions %s and %s", s2.rev(), r2.rev())
	}
}

// TestPushedLinear: a client's revision written with no concurrent change
// becomes the current one, with the client's own ancestry, so the client
// has nothing to pull back.
func TestPushedLinear(t *testing.T) {
	r1, _ := present(nil, []string{"c1"}, false)
	v := Rev{Gen: 2, Hash: "aaaa"}
	r := pushed(r1, v, []string{r1.Hash}, "c2", []string{"c2"}, false)
	if r.rev() != "2-aaaa" || len(r.Closed) != 0 || !slices.Equal(r.Heads, []string{"c2"}) {
		t.Fatalf("after a linear push: %+v", r)
	}
	if !r.has(v) || !r.has(mustRev(t, r1.rev())) {
		t.Fatal("the pushed revision or its parent is not known")
	}
	// A client's new document with its own history.
	n := pushed(nil, Rev{Gen: 3, Hash: "cc"}, []string{"bb", "aa"}, "x", []string{"x"}, false)
	if n.rev() != "3-cc" || !n.has(Rev{Gen: 1, Hash: "aa"}) || n.has(Rev{Gen: 1, Hash: "bb"}) {
		t.Fatalf("new document %+v: its ancestry is wrong", n)
	}
}

// TestPushedConcurrent: a client's revision merged with a concurrent
// change is closed by a deleted child, and the current revision moves on
// to the merge as a child of what was shown: the client ends with one
// live leaf, the merged document.
func TestPushedConcurrent(t *testing.T) {
	r1, _ := present(nil, []string{"c1"}, false)
	v := Rev{Gen: 2, Hash: "bbbb"}
	r := pushed(r1, v, []string{r1.Hash}, "c2", []string{"c2", "cx"}, false)
	if r.Gen != 2 || r.Anc[0] != r1.Hash || !slices.Equal(r.Heads, []string{"c2", "cx"}) {
		t.Fatalf("merged revision %+v: want a child of %s at the merged heads", r, r1.rev())
	}
	if len(r.Closed) != 1 || r.Closed[0].Gen != 3 || r.Closed[0].Anc[0] != "bbbb" {
		t.Fatalf("closing leaf %+v: want the deleted child of 2-bbbb", r.Closed)
	}
	leaves := r.leaves()
	if len(leaves) != 2 || leaves[0] != r.rev() || leaves[1] != r.Closed[0].rev() {
		t.Fatalf("leaves %v", leaves)
	}
	if !r.has(v) || !r.has(mustRev(t, r.Closed[0].rev())) {
		t.Fatal("the pushed revision or its closing leaf is not known")
	}
	if heads, ok := r.base([]Rev{v}); !ok || !slices.Equal(heads, []string{"c2"}) {
		t.Fatalf("an edit of the pushed revision has base %v %v, want [c2]", heads, ok)
	}
	// Pushing it again changes nothing (the caller skips what has says is here).
	again := pushed(r, v, []string{r1.Hash}, "c2", []string{"c2", "cx"}, false)
	if len(again.Closed) != 1 || again.rev() != r.rev() {
		t.Fatalf("a repeated push moved the record: %+v", again)
	}
}

// TestRecordBounds: however many edits, a record keeps bounded lists.
func TestRecordBounds(t *testing.T) {
	var r *record
	for i := range 500 {
		r, _ = present(r, []string{string(rune('a'+i%26)) + string(rune('a'+i/26))}, false)
		r = pushed(r, Rev{Gen: r.Gen + 1, Hash: revHash("x", []string{r.Hash})}, append([]string{r.Hash}, r.Anc...), "n", []string{"n", "m"}, false)
	}
	if len(r.Anc) > keepAncestry || len(r.Known) > keepKnown || len(r.Closed) > keepClosed {
		t.Fatalf("record grew: %d ancestors, %d known, %d closed", len(r.Anc), len(r.Known), len(r.Closed))
	}
	if n := len(r.encode()); n > 16<<10 {
		t.Fatalf("record of %d bytes", n)
	}
}
