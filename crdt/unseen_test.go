package crdt

import (
	"errors"
	"testing"
)

// TestUnseenKeepsDisplacedValues: a change that names a write it did not
// see (OpUnseen) and overwrites its value leaves that value in the
// conflicts, on every replay order; a later change that saw both resolves
// it (DESIGN.md invariant 7: a re-issued edit displaces nothing silently).
func TestUnseenKeepsDisplacedValues(t *testing.T) {
	s, p := newReplica(0), newReplica(1)
	base := s.write(t, 1, nil, []Op{{Kind: OpSet, Path: "/x", Value: int64(1)}})
	s2 := s.write(t, 2, nil, []Op{{Kind: OpSet, Path: "/x", Value: int64(2)}, {Kind: OpSet, Path: "/y", Value: "s"}})
	for _, c := range []*Change{base, s2} {
		p.receive(t, c)
	}
	un, ok := UnseenOp([]ID{s2.ID()})
	if !ok {
		t.Fatal("no unseen op")
	}
	re := p.write(t, 3, nil, []Op{un, {Kind: OpSet, Path: "/x", Value: "p"}})
	for _, order := range [][]*Change{{base, s2, re}, {re, s2, base}, {s2, re, base, re}} {
		st, err := Replay(order)
		if err != nil {
			t.Fatal(err)
		}
		if st.Body["x"] != "p" || st.Body["y"] != "s" {
			t.Fatalf("body %v, want x=p y=s", st.Body)
		}
		if len(st.Conflicts) != 1 || st.Conflicts[0].Path != "/x" || st.Conflicts[0].Value != int64(2) || st.Conflicts[0].Rev != s2.ID() {
			t.Fatalf("conflicts %+v, want the displaced x=2 of %s", st.Conflicts, s2.ID())
		}
	}
	if len(p.state.Conflicts) != 1 {
		t.Fatalf("incremental apply: conflicts %+v, want 1", p.state.Conflicts)
	}
	resolve := p.write(t, 4, nil, []Op{{Kind: OpSet, Path: "/z", Value: true}})
	st, err := Replay([]*Change{base, s2, re, resolve})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Conflicts) != 0 {
		t.Fatalf("a later change that saw both left conflicts %+v", st.Conflicts)
	}
}

// TestUnseenDeleteDoc: a re-issued delete of a document another peer
// edited unseen does not delete it (update wins over delete, shown).
func TestUnseenDeleteDoc(t *testing.T) {
	s, p := newReplica(0), newReplica(1)
	c1 := s.write(t, 1, nil, []Op{{Kind: OpSet, Path: "/x", Value: int64(1)}})
	p.receive(t, c1)
	un, _ := UnseenOp([]ID{c1.ID()})
	del := p.write(t, 2, nil, []Op{un, {Kind: OpDeleteDoc}})
	if p.state.Deleted || p.state.Body["x"] != int64(1) || len(p.state.Conflicts) != 1 || !p.state.Conflicts[0].Deleted {
		t.Fatalf("state %+v, want the edit kept and the delete shown", p.state)
	}
	enc, err := del.EncodeSealed()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(enc); err != nil {
		t.Fatalf("decode the re-issued delete: %v", err)
	}
}

func TestUnseenValidation(t *testing.T) {
	signer, author := newSigner(9)
	id := ID{1}
	un, _ := UnseenOp([]ID{id})
	set := Op{Kind: OpSet, Path: "/a", Value: int64(1)}
	for name, ops := range map[string][]Op{
		"alone":       {un},
		"not first":   {set, un},
		"with a path": {{Kind: OpUnseen, Path: "/a", Value: un.Value}, set},
		"not ids":     {{Kind: OpUnseen, Value: []any{"zz"}}, set},
		"unsorted":    {{Kind: OpUnseen, Value: []any{ID{2}.String(), ID{1}.String()}}, set},
		"empty":       {{Kind: OpUnseen, Value: []any{}}, set},
		"twice":       {un, un, set},
	} {
		c := &Change{DB: "db", Doc: "d", Author: author, Ops: ops}
		if err := c.Seal(signer); !errors.Is(err, ErrInvalidChange) {
			t.Errorf("%s: seal gave %v, want ErrInvalidChange", name, err)
		}
	}
}
