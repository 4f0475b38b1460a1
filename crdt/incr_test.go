package crdt

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// TestIncrDisplacesStringIntoConflicts: an increment that meets a string
// (docs/design.md, "Counters": an increment never replaces a non-number
// silently) replaces it with the delta and keeps the string in _conflicts,
// whether the increment was concurrent with the string's write (either
// replay order) or saw it (a peer that sends one anyway); every replica
// ends byte-identical, and a later change that saw both resolves it.
func TestIncrDisplacesStringIntoConflicts(t *testing.T) {
	for _, tc := range []struct {
		name               string
		concurrent         bool
		setWall, incrWall  int64
		wantBody           any
		wantConflictOfIncr bool // the string won: the increment's value is the conflict
	}{
		{name: "concurrent, increment replays last", concurrent: true, setWall: 10, incrWall: 20, wantBody: int64(1)},
		{name: "concurrent, string replays last", concurrent: true, setWall: 20, incrWall: 10, wantBody: "Berlin", wantConflictOfIncr: true},
		{name: "increment saw the string", setWall: 10, incrWall: 20, wantBody: int64(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newReplica(0), newReplica(1)
			base := a.write(t, 1, nil, []Op{{Kind: OpSet, Path: "/other", Value: "x"}})
			b.receive(t, base)
			set := a.write(t, tc.setWall, nil, []Op{{Kind: OpSet, Path: "/name", Value: "Berlin"}})
			if !tc.concurrent {
				b.receive(t, set)
			}
			incr := b.write(t, tc.incrWall, nil, []Op{{Kind: OpIncr, Path: "/name", Value: int64(1)}})
			a.receive(t, incr)
			b.receive(t, set)
			want := []Conflict{{Path: "/name", Value: "Berlin", Rev: set.ID()}}
			if tc.wantConflictOfIncr {
				want = []Conflict{{Path: "/name", Value: int64(1), Rev: incr.ID()}}
			}
			for _, r := range []*replica{a, b} {
				if got := r.state.Body["name"]; got != tc.wantBody {
					t.Errorf("replica %s: name = %#v, want %#v", r.name, got, tc.wantBody)
				}
				if diff := cmp.Diff(want, r.state.Conflicts, cmp.AllowUnexported(Conflict{})); diff != "" {
					t.Errorf("replica %s conflicts (-want +got):\n%s", r.name, diff)
				}
			}
			if !bytes.Equal(a.encoded(t), b.encoded(t)) {
				t.Fatalf("replicas differ")
			}
			st, err := Replay([]*Change{incr, set, base})
			if err != nil {
				t.Fatal(err)
			}
			if enc, _ := st.Encode(); !bytes.Equal(enc, a.encoded(t)) {
				t.Fatalf("a replay from scratch differs from the replicas")
			}
			resolve := a.write(t, 30, nil, nil)
			b.receive(t, resolve)
			for _, r := range []*replica{a, b} {
				if len(r.state.Conflicts) != 0 {
					t.Errorf("replica %s: conflicts not resolved: %v", r.name, r.state.Conflicts)
				}
			}
		})
	}
}

// TestIncrThroughNonObjectKeepsIt: an increment of /a/n where /a is a
// string keeps the string in _conflicts.
func TestIncrThroughNonObjectKeepsIt(t *testing.T) {
	a := newReplica(0)
	set := a.write(t, 1, nil, []Op{{Kind: OpSet, Path: "/a", Value: "s"}})
	a.write(t, 2, nil, []Op{{Kind: OpIncr, Path: "/a/n", Value: int64(2)}})
	if diff := cmp.Diff(map[string]any{"a": map[string]any{"n": int64(2)}}, a.state.Body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	want := []Conflict{{Path: "/a", Value: "s", Rev: set.ID()}}
	if diff := cmp.Diff(want, a.state.Conflicts, cmp.AllowUnexported(Conflict{})); diff != "" {
		t.Errorf("conflicts (-want +got):\n%s", diff)
	}
}

// TestIncrAgainstStringsConverge: strings and increments of one field from
// 2-4 replicas, delivered in random orders: every replica ends
// byte-identical (DESIGN.md invariant 1), and a string is never replaced by
// a number without being in _conflicts unless a later write saw it.
func TestIncrAgainstStringsConverge(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 4).Draw(t, "replicas")
		reps := make([]*replica, n)
		for i := range reps {
			reps[i] = newReplica(i)
		}
		var all []*Change
		for i := rapid.IntRange(1, 12).Draw(t, "writes"); i > 0; i-- {
			r := reps[rapid.IntRange(0, n-1).Draw(t, "who")]
			if len(all) > 0 && rapid.Bool().Draw(t, "sync") {
				r.receive(t, all[rapid.IntRange(0, len(all)-1).Draw(t, "which")])
			}
			var op Op
			if rapid.Bool().Draw(t, "string") {
				// Distinct strings: a write of an equal value takes a
				// path over without a conflict (nothing is lost).
				op = Op{Kind: OpSet, Path: "/name", Value: fmt.Sprint("city", i)}
			} else {
				op = Op{Kind: OpIncr, Path: rapid.SampledFrom([]string{"/name", "/name/x"}).Draw(t, "path"), Value: int64(1)}
			}
			all = append(all, r.write(t, int64(rapid.IntRange(0, 30).Draw(t, "wall")), nil, []Op{op}))
		}
		for _, r := range reps {
			for _, c := range rapid.Permutation(all).Draw(t, "order") {
				r.receive(t, c)
			}
		}
		want := reps[0].encoded(t)
		for _, r := range reps[1:] {
			if !bytes.Equal(r.encoded(t), want) {
				t.Fatalf("replica %s differs from replica 0", r.name)
			}
		}
		// A string some head did not see is in the body or in _conflicts.
		st := reps[0].state
		for _, c := range all {
			if c.Ops[0].Kind != OpSet {
				continue
			}
			if st.Last == c.ID() || st.Body["name"] == c.Ops[0].Value {
				continue
			}
			shown := false
			for _, cf := range st.Conflicts {
				shown = shown || cf.Rev == c.ID()
			}
			if !shown && !seenByLater(all, c, st) {
				t.Fatalf("string %v of %s lost without a conflict; body %v conflicts %v", c.Ops[0].Value, c.ID(), st.Body, st.Conflicts)
			}
		}
	})
}

// seenByLater reports whether some change other than c that has c as an
// ancestor exists: a later write that saw c may replace it silently.
func seenByLater(all []*Change, c *Change, st *State) bool {
	byID := map[ID]*Change{}
	for _, x := range all {
		byID[x.ID()] = x
	}
	var sees func(x *Change) bool
	sees = func(x *Change) bool {
		for _, p := range x.Parents {
			if p == c.ID() || sees(byID[p]) {
				return true
			}
		}
		return false
	}
	for _, x := range all {
		if x != c && sees(x) {
			return true
		}
	}
	return false
}
