package crdt

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// randomHistory runs steps of random writes (sometimes from an older base
// that allowed accepts) and random deliveries among reps, and returns the
// changes written.
func randomHistory(t *rapid.T, reps []*replica, steps int, allowed func(ID) bool) []*Change {
	var all []*Change
	for step := 0; step < steps; step++ {
		r := reps[rapid.IntRange(0, len(reps)-1).Draw(t, "who")]
		if rapid.IntRange(0, 2).Draw(t, "action") == 2 && len(all) > 0 {
			for k := rapid.IntRange(1, len(all)).Draw(t, "deliver"); k > 0; k-- {
				r.receive(t, all[rapid.IntRange(0, len(all)-1).Draw(t, "which")])
			}
			continue
		}
		ops := []Op{genOp(t)}
		if ops[0].Kind != OpDeleteDoc && rapid.Bool().Draw(t, "more") {
			if op := genOp(t); op.Kind != OpDeleteDoc {
				ops = append(ops, op)
			}
		}
		var base []ID
		if rapid.IntRange(0, 4).Draw(t, "oldbase") == 0 {
			var ids []ID
			for id := range r.known {
				if allowed(id) {
					ids = append(ids, id)
				}
			}
			if len(ids) > 0 {
				slices.SortFunc(ids, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
				base = []ID{rapid.SampledFrom(ids).Draw(t, "base")}
			}
		}
		all = append(all, r.write(t, int64(rapid.IntRange(0, 1000).Draw(t, "wall")), base, ops))
	}
	return all
}

func heal(t *rapid.T, reps []*replica, all []*Change) {
	for _, r := range reps {
		for _, c := range rapid.Permutation(all).Draw(t, "order") {
			r.receive(t, c)
		}
	}
}

func mustEncode(t *rapid.T, s *State) []byte {
	b, err := s.Encode()
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// randomFold folds at a random acceptable cut point, if any.
func randomFold(t *rapid.T, base *State, kept []*Change) *Fold {
	f, err := FoldHistory(base, kept, func(*Change, int) bool { return rapid.Bool().Draw(t, "fold") })
	if err != nil {
		t.Fatalf("fold: %v", err)
	}
	return f
}

// TestFoldIsInvisible: random histories on 3-5 replicas, folded at random
// cut points (once, then again after more writes), merge to the same bytes
// as the whole history, also for changes written after the fold that are
// concurrent with each other: every peer within the horizon (it saw the
// fold point) merges exactly as without compaction.
func TestFoldIsInvisible(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		reps := make([]*replica, rapid.IntRange(3, 5).Draw(t, "replicas"))
		for i := range reps {
			reps[i] = newReplica(i)
		}
		any := func(ID) bool { return true }
		all := randomHistory(t, reps, rapid.IntRange(1, 30).Draw(t, "steps"), any)
		heal(t, reps, all)

		base, kept := (*State)(nil), all
		folded := map[ID]bool{}
		if f := randomFold(t, nil, all); f != nil {
			base, kept = f.Base, f.Kept
			for _, c := range f.Folded {
				folded[c.id] = true
			}
			if len(base.Heads) != 1 || !folded[base.Heads[0]] {
				t.Fatalf("frontier %v is not one folded change", base.Heads)
			}
		}
		full, err := Replay(all)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReplayFrom(base, kept)
		if err != nil {
			t.Fatalf("replay from base: %v", err)
		}
		if !bytes.Equal(mustEncode(t, got), mustEncode(t, full)) {
			t.Fatalf("folded replay differs:\n got %+v\nwant %+v", got, full)
		}

		// More concurrent writes by peers that saw the fold point.
		later := randomHistory(t, reps, rapid.IntRange(0, 20).Draw(t, "steps2"), func(id ID) bool { return !folded[id] })
		heal(t, reps, later)
		all = append(all, later...)
		kept = append(kept, later...)
		if f := randomFold(t, base, kept); f != nil {
			base, kept = f.Base, f.Kept
		}
		full, err = Replay(all)
		if err != nil {
			t.Fatal(err)
		}
		if got, err = ReplayFrom(base, kept); err != nil {
			t.Fatalf("replay from base: %v", err)
		}
		if !bytes.Equal(mustEncode(t, got), mustEncode(t, full)) {
			t.Fatalf("folded replay differs after later writes:\n got %+v\nwant %+v", got, full)
		}
		if want := mustEncode(t, reps[0].state); !bytes.Equal(mustEncode(t, got), want) {
			t.Fatalf("folded replay differs from the replica")
		}
		saved := bitsetLimit
		bitsetLimit = 0 // the parent walk must agree
		walked, err := ReplayFrom(base, kept)
		bitsetLimit = saved
		if err != nil || !bytes.Equal(mustEncode(t, walked), mustEncode(t, full)) {
			t.Fatalf("folded replay by parent walk differs (%v)", err)
		}
	})
}

// TestFoldNeedsFrontier: a change whose parent was folded but is not the
// frontier did not see the fold point; replaying it on the base fails
// instead of merging it wrongly.
func TestFoldNeedsFrontier(t *testing.T) {
	r := newReplica(0)
	a := r.write(t, 1, nil, []Op{{Kind: OpSet, Path: "/a", Value: int64(1)}})
	b := r.write(t, 2, nil, []Op{{Kind: OpSet, Path: "/a", Value: int64(2)}})
	c := r.write(t, 3, nil, []Op{{Kind: OpSet, Path: "/a", Value: int64(3)}})
	f, err := FoldHistory(nil, []*Change{a, b, c}, func(_ *Change, newer int) bool { return newer >= 1 })
	if err != nil || f == nil {
		t.Fatalf("fold: %v %v", f, err)
	}
	if f.Base.Heads[0] != b.id || len(f.Kept) != 1 || f.Clock != b.Clock {
		t.Fatalf("fold point: heads %v kept %d clock %v", f.Base.Heads, len(f.Kept), f.Clock)
	}
	stale := r.write(t, 4, []ID{a.id}, []Op{{Kind: OpSet, Path: "/b", Value: int64(1)}})
	if _, err := ReplayFrom(f.Base, append(f.Kept, stale)); !errors.Is(err, ErrMissingParent) {
		t.Fatalf("stale change on a folded base: %v, want ErrMissingParent", err)
	}
}

// TestCutPoints: a change is a cut point only when it is comparable with
// every other change.
func TestCutPoints(t *testing.T) {
	a, b := newReplica(0), newReplica(1)
	root := a.write(t, 1, nil, []Op{{Kind: OpSet, Path: "/a", Value: int64(1)}})
	b.receive(t, root)
	x := a.write(t, 2, nil, []Op{{Kind: OpSet, Path: "/a", Value: int64(2)}})
	y := b.write(t, 3, nil, []Op{{Kind: OpSet, Path: "/b", Value: int64(2)}})
	a.receive(t, y)
	merge := a.write(t, 4, nil, []Op{{Kind: OpSet, Path: "/c", Value: int64(3)}})
	order, err := ReplayOrder([]*Change{root, x, y, merge})
	if err != nil {
		t.Fatal(err)
	}
	cuts := cutPoints(order)
	want := map[ID]bool{root.id: true, merge.id: true}
	for i, c := range order {
		if cuts[i] != want[c.id] {
			t.Errorf("change %d: cut %v, want %v", i, cuts[i], want[c.id])
		}
	}
}
