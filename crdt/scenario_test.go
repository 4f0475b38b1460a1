package crdt

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSameBaseDifferentFields: two writers from the same base revision, each
// changing another field, both keep their edits, on both replicas.
func TestSameBaseDifferentFields(t *testing.T) {
	a, b := newReplica(0), newReplica(1)
	base := a.write(t, 1, nil, Diff(nil, map[string]any{"name": "x", "age": int64(1)}, nil))
	b.receive(t, base)
	ca := a.write(t, 2, nil, Diff(a.state.Body, map[string]any{"name": "y", "age": int64(1)}, nil))
	cb := b.write(t, 3, nil, Diff(b.state.Body, map[string]any{"name": "x", "age": int64(2)}, nil))
	a.receive(t, cb)
	b.receive(t, ca)
	want := map[string]any{"name": "y", "age": int64(2)}
	for _, r := range []*replica{a, b} {
		if diff := cmp.Diff(want, r.state.Body); diff != "" {
			t.Errorf("replica %s body (-want +got):\n%s", r.name, diff)
		}
		if len(r.state.Conflicts) != 0 {
			t.Errorf("replica %s: unexpected conflicts %v", r.name, r.state.Conflicts)
		}
	}
}

// TestSameFieldConflict: concurrent writes of one field: the later clock
// wins on both replicas, the other value is in Conflicts, and a later change
// that saw both resolves it.
func TestSameFieldConflict(t *testing.T) {
	a, b := newReplica(0), newReplica(1)
	base := a.write(t, 1, nil, []Op{{Kind: OpSet, Path: "/f", Value: "base"}})
	b.receive(t, base)
	ca := a.write(t, 10, nil, []Op{{Kind: OpSet, Path: "/f", Value: "from-a"}})
	cb := b.write(t, 20, nil, []Op{{Kind: OpSet, Path: "/f", Value: "from-b"}})
	a.receive(t, cb)
	b.receive(t, ca)
	wantConflicts := []Conflict{{Path: "/f", Value: "from-a", Rev: ca.ID()}}
	for _, r := range []*replica{a, b} {
		if got := r.state.Body["f"]; got != "from-b" {
			t.Errorf("replica %s: f = %v, want from-b", r.name, got)
		}
		if diff := cmp.Diff(wantConflicts, r.state.Conflicts, cmp.AllowUnexported(Conflict{})); diff != "" {
			t.Errorf("replica %s conflicts (-want +got):\n%s", r.name, diff)
		}
	}
	resolve := a.write(t, 30, nil, nil)
	b.receive(t, resolve)
	for _, r := range []*replica{a, b} {
		if len(r.state.Conflicts) != 0 {
			t.Errorf("replica %s: conflicts not resolved: %v", r.name, r.state.Conflicts)
		}
	}
}

// TestDeleteAgainstUpdate: a delete concurrent with an update keeps the
// document alive with the update, and shows the delete as a conflict.
func TestDeleteAgainstUpdate(t *testing.T) {
	for _, tc := range []struct {
		name            string
		delWall, upWall int64
	}{{"delete first", 10, 20}, {"delete last", 20, 10}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newReplica(0), newReplica(1)
			base := a.write(t, 1, nil, []Op{{Kind: OpSet, Path: "/x", Value: int64(1)}, {Kind: OpSet, Path: "/y", Value: int64(1)}})
			b.receive(t, base)
			del := a.write(t, tc.delWall, nil, []Op{{Kind: OpDeleteDoc}})
			up := b.write(t, tc.upWall, nil, []Op{{Kind: OpSet, Path: "/y", Value: int64(2)}})
			a.receive(t, up)
			b.receive(t, del)
			for _, r := range []*replica{a, b} {
				if r.state.Deleted {
					t.Fatalf("replica %s: document deleted, want the update to keep it", r.name)
				}
				if diff := cmp.Diff(map[string]any{"x": int64(1), "y": int64(2)}, r.state.Body); diff != "" {
					t.Errorf("replica %s body (-want +got):\n%s", r.name, diff)
				}
				want := []Conflict{{Deleted: true, Rev: del.ID()}}
				if diff := cmp.Diff(want, r.state.Conflicts, cmp.AllowUnexported(Conflict{})); diff != "" {
					t.Errorf("replica %s conflicts (-want +got):\n%s", r.name, diff)
				}
			}
		})
	}
}

// TestCountersAddUp: concurrent increments are all counted.
func TestCountersAddUp(t *testing.T) {
	reps := []*replica{newReplica(0), newReplica(1), newReplica(2)}
	base := reps[0].write(t, 1, nil, []Op{{Kind: OpSet, Path: "/n", Value: int64(10)}})
	var all []*Change
	for i, r := range reps {
		r.receive(t, base)
		all = append(all, r.write(t, int64(5+i), nil, []Op{{Kind: OpIncr, Path: "/n", Value: int64(i + 1)}}))
	}
	for _, r := range reps {
		for _, c := range all {
			r.receive(t, c)
		}
		if got := r.state.Body["n"]; got != int64(16) {
			t.Errorf("replica %s: n = %v, want 16", r.name, got)
		}
	}
}

// TestSetAddWins: an add concurrent with a remove of the same element wins.
func TestSetAddWins(t *testing.T) {
	a, b := newReplica(0), newReplica(1)
	base := a.write(t, 1, nil, []Op{{Kind: OpAdd, Path: "/tags", Value: "red"}})
	b.receive(t, base)
	rm := a.write(t, 5, nil, []Op{{Kind: OpRemove, Path: "/tags", Value: "red"}})
	add := b.write(t, 3, nil, []Op{{Kind: OpAdd, Path: "/tags", Value: "red"}, {Kind: OpAdd, Path: "/tags", Value: "blue"}})
	a.receive(t, add)
	b.receive(t, rm)
	for _, r := range []*replica{a, b} {
		if diff := cmp.Diff([]any{"blue", "red"}, r.state.Body["tags"]); diff != "" {
			t.Errorf("replica %s tags (-want +got):\n%s", r.name, diff)
		}
	}
}

func TestMergePatch(t *testing.T) {
	cur := map[string]any{"a": "b", "c": map[string]any{"d": "e", "f": "g"}, "s": int64(1)}
	patch := map[string]any{"a": "z", "c": map[string]any{"f": nil}, "s": map[string]any{"t": nil, "u": int64(1)}}
	r := newReplica(0)
	r.write(t, 1, nil, Diff(nil, cur, nil))
	r.write(t, 2, nil, MergePatch(r.state.Body, patch))
	want := map[string]any{"a": "z", "c": map[string]any{"d": "e"}, "s": map[string]any{"u": int64(1)}}
	if diff := cmp.Diff(want, r.state.Body); diff != "" {
		t.Errorf("merge patch (-want +got):\n%s", diff)
	}
}

// TestDecodeView: a view reads like the full state for everything a reader
// uses.
func TestDecodeView(t *testing.T) {
	a, b := newReplica(0), newReplica(1)
	base := a.write(t, 1, nil, []Op{{Kind: OpSet, Path: "/f", Value: "base"}, {Kind: OpAdd, Path: "/s", Value: "x"}})
	b.receive(t, base)
	ca := a.write(t, 10, nil, []Op{{Kind: OpSet, Path: "/f", Value: "a"}})
	b.write(t, 20, nil, []Op{{Kind: OpSet, Path: "/f", Value: "b"}})
	b.receive(t, ca)
	enc, _ := b.state.Encode()
	v, err := DecodeView(enc)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := DecodeState(enc)
	if diff := cmp.Diff(full.Body, v.Body); diff != "" {
		t.Errorf("body (-full +view):\n%s", diff)
	}
	if diff := cmp.Diff(full.Conflicts, v.Conflicts, cmp.AllowUnexported(Conflict{})); diff != "" || len(v.Conflicts) != 1 {
		t.Errorf("conflicts (-full +view):\n%s", diff)
	}
	if v.Last != full.Last || v.Count != full.Count || len(v.Heads) != len(full.Heads) || v.Deleted != full.Deleted {
		t.Errorf("view header differs: %+v vs %+v", v, full)
	}
	if _, err := DecodeView(enc[:len(enc)-3]); err == nil {
		t.Error("truncated state decoded")
	}
}
