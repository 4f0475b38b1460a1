package crdt

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

type testSigner struct{ key ed25519.PrivateKey }

func (s testSigner) Sign(data []byte) ([]byte, error) { return ed25519.Sign(s.key, data), nil }

func newSigner(seed byte) (testSigner, []byte) {
	k := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	return testSigner{k}, k.Public().(ed25519.PublicKey)
}

func verify(author, data, sig []byte) error {
	if !ed25519.Verify(ed25519.PublicKey(author), data, sig) {
		return fmt.Errorf("signature mismatch")
	}
	return nil
}

// replica holds the changes of one document as one peer sees them.
type replica struct {
	name    string
	signer  testSigner
	author  []byte
	clock   Clock
	state   *State
	known   map[ID]*Change
	pending []*Change // received, parents not yet known
}

func newReplica(i int) *replica {
	s, pub := newSigner(byte(i + 1))
	return &replica{name: fmt.Sprint(i), signer: s, author: pub, state: NewState(), known: map[ID]*Change{}}
}

// write makes a local change with the given base (nil: the heads).
func (r *replica) write(t interface{ Fatalf(string, ...any) }, wall int64, base []ID, ops []Op) *Change {
	parents := slices.Clone(r.state.Heads)
	if base != nil {
		parents = base
	}
	for _, p := range parents {
		r.clock.Observe(r.known[p].Clock)
	}
	c := &Change{DB: "db", Doc: "doc", Parents: parents, Clock: r.clock.Now(wall), Author: r.author, Ops: ops}
	if err := c.Seal(r.signer); err != nil {
		t.Fatalf("seal: %v", err)
	}
	r.receive(t, c)
	return c
}

// receive applies c once its parents are known, like the node's write path.
func (r *replica) receive(t interface{ Fatalf(string, ...any) }, c *Change) {
	r.pending = append(r.pending, c)
	for progress := true; progress; {
		progress = false
		for i := 0; i < len(r.pending); i++ {
			c := r.pending[i]
			if _, dup := r.known[c.id]; dup {
				r.pending = slices.Delete(r.pending, i, i+1)
				i--
				continue
			}
			ready := true
			for _, p := range c.Parents {
				if _, ok := r.known[p]; !ok {
					ready = false
				}
			}
			if !ready {
				continue
			}
			r.pending = slices.Delete(r.pending, i, i+1)
			i--
			progress = true
			r.known[c.id] = c
			r.clock.Observe(c.Clock)
			if !r.state.ApplyNext(c) {
				all := make([]*Change, 0, len(r.known))
				for _, k := range r.known {
					all = append(all, k)
				}
				st, err := Replay(all)
				if err != nil {
					t.Fatalf("replay: %v", err)
				}
				r.state = st
			}
		}
	}
}

func (r *replica) encoded(t interface{ Fatalf(string, ...any) }) []byte {
	b, err := r.state.Encode()
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

var paths = []string{"/a", "/b", "/a/x", "/a/y", "/n", "/s", "/c/d/e"}

func genOp(t *rapid.T) Op {
	kind := rapid.SampledFrom([]OpKind{OpSet, OpSet, OpSet, OpDelete, OpIncr, OpAdd, OpAdd, OpRemove, OpDeleteDoc}).Draw(t, "kind")
	path := rapid.SampledFrom(paths).Draw(t, "path")
	switch kind {
	case OpSet:
		v := rapid.SampledFrom([]any{int64(1), int64(2), "x", "y", true, nil, 1.5,
			map[string]any{"x": int64(3)}, []any{"p", int64(4)}}).Draw(t, "value")
		return Op{Kind: OpSet, Path: path, Value: Copy(v)}
	case OpDelete:
		return Op{Kind: OpDelete, Path: path}
	case OpIncr:
		return Op{Kind: OpIncr, Path: path, Value: rapid.SampledFrom([]any{int64(1), int64(-2), 0.5}).Draw(t, "delta")}
	case OpAdd, OpRemove:
		return Op{Kind: kind, Path: path, Value: rapid.SampledFrom([]any{"e1", "e2", int64(7)}).Draw(t, "elem")}
	default:
		return Op{Kind: OpDeleteDoc}
	}
}

// TestConvergence: random writes on 3-5 replicas, delivered in random order,
// duplicated and partitioned, end byte-identical (DESIGN.md invariant 1), and
// every incremental state equals a full replay of the same changes.
func TestConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(3, 5).Draw(t, "replicas")
		reps := make([]*replica, n)
		for i := range reps {
			reps[i] = newReplica(i)
		}
		var all []*Change
		steps := rapid.IntRange(1, 40).Draw(t, "steps")
		for step := 0; step < steps; step++ {
			r := reps[rapid.IntRange(0, n-1).Draw(t, "who")]
			switch rapid.IntRange(0, 3).Draw(t, "action") {
			case 0, 1: // local write, sometimes from an older base
				var ops []Op
				if op := genOp(t); op.Kind == OpDeleteDoc {
					ops = []Op{op}
				} else {
					ops = append(ops, op)
					for rapid.Bool().Draw(t, "more") && len(ops) < 4 {
						if op := genOp(t); op.Kind != OpDeleteDoc {
							ops = append(ops, op)
						}
					}
				}
				var base []ID
				if len(r.known) > 0 && rapid.IntRange(0, 4).Draw(t, "oldbase") == 0 {
					ids := make([]ID, 0, len(r.known))
					for id := range r.known {
						ids = append(ids, id)
					}
					slices.SortFunc(ids, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
					base = []ID{rapid.SampledFrom(ids).Draw(t, "base")}
				}
				wall := int64(rapid.IntRange(0, 1000).Draw(t, "wall"))
				all = append(all, r.write(t, wall, base, ops))
			default: // deliver some changes, in any order, possibly again
				if len(all) == 0 {
					continue
				}
				k := rapid.IntRange(1, len(all)).Draw(t, "deliver")
				for range k {
					r.receive(t, all[rapid.IntRange(0, len(all)-1).Draw(t, "which")])
				}
			}
		}
		// Heal: everyone gets everything, in a per-replica random order.
		for _, r := range reps {
			perm := rapid.Permutation(all).Draw(t, "order")
			for _, c := range perm {
				r.receive(t, c)
			}
		}
		want := reps[0].encoded(t)
		full, err := Replay(all)
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
		fb, _ := full.Encode()
		if !bytes.Equal(want, fb) {
			t.Fatalf("incremental state differs from full replay:\n%+v\n%+v", reps[0].state, full)
		}
		for _, r := range reps[1:] {
			if got := r.encoded(t); !bytes.Equal(got, want) {
				t.Fatalf("replica %s differs:\n got %+v\nwant %+v", r.name, r.state, reps[0].state)
			}
		}
	})
}

// TestMergeLaws: replaying the union of two change sets does not depend on
// how the set is split, ordered or duplicated (commutative, associative,
// idempotent merge).
func TestMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := newReplica(0), newReplica(1)
		var all []*Change
		for i := rapid.IntRange(1, 20).Draw(t, "n"); i > 0; i-- {
			r := a
			if rapid.Bool().Draw(t, "b") {
				r = b
			}
			op := genOp(t)
			all = append(all, r.write(t, int64(rapid.IntRange(0, 50).Draw(t, "wall")), nil, []Op{op}))
			if rapid.IntRange(0, 3).Draw(t, "sync") == 0 {
				for _, c := range all {
					a.receive(t, c)
					b.receive(t, c)
				}
			}
		}
		s1, err := Replay(all)
		if err != nil {
			t.Fatal(err)
		}
		dup := append(rapid.Permutation(all).Draw(t, "perm"), all...)
		s2, err := Replay(dup)
		if err != nil {
			t.Fatal(err)
		}
		b1, _ := s1.Encode()
		b2, _ := s2.Encode()
		if !bytes.Equal(b1, b2) {
			t.Fatalf("replay depends on order or duplicates")
		}
	})
}

func TestChangeRoundTrip(t *testing.T) {
	r := newReplica(0)
	c := r.write(t, 5, nil, []Op{{Kind: OpSet, Path: "/a/b", Value: map[string]any{"x": []any{int64(1), 2.5, "s", nil, true}}}})
	data, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got.ID() != c.ID() {
		t.Fatalf("id changed: got %s, want %s", got.ID(), c.ID())
	}
	if err := got.Verify(verify); err != nil {
		t.Fatalf("verify: %v", err)
	}
	got.Ops[0].Path = "/tampered"
	data2, _ := got.Encode()
	tampered, err := Decode(data2)
	if err != nil {
		t.Fatal(err)
	}
	if err := tampered.Verify(verify); err == nil {
		t.Fatal("tampered change verified")
	}
}

func TestDecodeRejects(t *testing.T) {
	r := newReplica(0)
	good := r.write(t, 1, nil, []Op{{Kind: OpSet, Path: "/a", Value: int64(1)}})
	for _, tc := range []struct {
		name   string
		mutate func(c *Change)
	}{
		{"empty doc id", func(c *Change) { c.Doc = "" }},
		{"bad path", func(c *Change) { c.Ops[0].Path = "a" }},
		{"bad escape", func(c *Change) { c.Ops[0].Path = "/a~2" }},
		{"unknown op", func(c *Change) { c.Ops[0].Kind = 99 }},
		{"incr by string", func(c *Change) { c.Ops[0] = Op{Kind: OpIncr, Path: "/n", Value: "x"} }},
		{"delete_doc with others", func(c *Change) { c.Ops = append(c.Ops, Op{Kind: OpDeleteDoc}) }},
		{"unsorted parents", func(c *Change) { c.Parents = []ID{{2}, {1}} }},
		{"control char in id", func(c *Change) { c.Doc = "a\x00b" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *good
			c.Ops = slices.Clone(good.Ops)
			tc.mutate(&c)
			data, err := encMode.Marshal(&c)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Decode(data); err == nil {
				t.Fatalf("decode accepted %s", tc.name)
			}
		})
	}
	if _, err := Decode(make([]byte, MaxChangeBytes+1)); err == nil {
		t.Fatal("decode accepted an oversized change")
	}
}

func TestDiffAppliesToNew(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		gen := rapid.Custom(func(t *rapid.T) map[string]any {
			m := map[string]any{}
			for _, k := range rapid.SliceOfN(rapid.SampledFrom([]string{"a", "b", "c/d", "e~f"}), 0, 4).Draw(t, "keys") {
				m[k] = rapid.SampledFrom([]any{int64(1), "s", nil, map[string]any{"x": int64(1)}, map[string]any{"x": int64(2), "y": "z"}, []any{int64(1)}, map[string]any{}}).Draw(t, "v")
			}
			return m
		})
		old, new := gen.Draw(t, "old"), gen.Draw(t, "new")
		r := newReplica(0)
		if ops := Diff(map[string]any{}, old, nil); len(ops) > 0 {
			r.write(t, 1, nil, ops)
		}
		if ops := Diff(old, new, nil); len(ops) > 0 {
			r.write(t, 2, nil, ops)
		}
		if !Equal(r.state.Body, Copy(new)) {
			t.Fatalf("diff applied: got %v, want %v", r.state.Body, new)
		}
		if len(Diff(new, new, nil)) != 0 {
			t.Fatalf("diff of equal documents is not empty")
		}
	})
}

// TestReplayWalkMatchesBitsets: the parent walk used for long histories
// gives the same states as the ancestor bit matrix.
func TestReplayWalkMatchesBitsets(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		reps := []*replica{newReplica(0), newReplica(1), newReplica(2)}
		var all []*Change
		for i := rapid.IntRange(1, 40).Draw(t, "n"); i > 0; i-- {
			r := reps[rapid.IntRange(0, 2).Draw(t, "who")]
			if rapid.IntRange(0, 3).Draw(t, "sync") == 0 && len(all) > 0 {
				for _, c := range all {
					r.receive(t, c)
				}
			}
			op := genOp(t)
			all = append(all, r.write(t, int64(rapid.IntRange(0, 100).Draw(t, "wall")), nil, []Op{op}))
		}
		bits, err := Replay(all)
		if err != nil {
			t.Fatal(err)
		}
		saved := bitsetLimit
		bitsetLimit = 0
		walked, err := Replay(all)
		bitsetLimit = saved
		if err != nil {
			t.Fatal(err)
		}
		b1, _ := bits.Encode()
		b2, _ := walked.Encode()
		if !bytes.Equal(b1, b2) {
			t.Fatalf("walk and bitsets disagree")
		}
	})
}
