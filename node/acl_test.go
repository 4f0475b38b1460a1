package node

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/node/internal/acl"
)

// rejectedCount reads barrel_node_rejected_changes_total{db, reason}.
func rejectedCount(t *testing.T, n *Node, db, reason string) float64 {
	t.Helper()
	mfs, err := n.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "barrel_node_rejected_changes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["db"] == db && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func mustSetACL(t *testing.T, n *Node, db string, a ACL) {
	t.Helper()
	if err := n.SetACL(t.Context(), db, a); err != nil {
		t.Fatalf("set acl: %v", err)
	}
}

func ids(ns ...*Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.PeerID().String())
	}
	return out
}

// waitACL waits until node i's ACL of db satisfies cond.
func (tn *testNet) waitACL(i int, db, what string, cond func(ACL) bool) {
	tn.t.Helper()
	waitFor(tn.t, what, 15*time.Second, func() bool {
		a, err := tn.nodes[i].ACL(db)
		return err == nil && cond(a)
	})
}

func hasDoc(d *DB, id string) bool {
	_, err := d.Get(context.Background(), id)
	return err == nil
}

// craft builds a signed change by hand, as a hostile or buggy peer could.
func craft(t *testing.T, signer crdt.Signer, author peer.ID, db, doc string, parents []crdt.ID, ops ...crdt.Op) *crdt.Change {
	t.Helper()
	c := &crdt.Change{DB: db, Doc: doc, Parents: parents, Author: []byte(author), Ops: ops,
		Clock: crdt.HLC{Wall: time.Now().UnixNano()}}
	if err := c.Seal(signer); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestACLDefaultsAndSetACL(t *testing.T) {
	n := openTestNode(t, t.TempDir(), nil)
	ctx := t.Context()
	if err := n.CreateDB(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	got, err := n.ACL("db")
	if err != nil {
		t.Fatal(err)
	}
	want := ACL{Owner: n.PeerID().String(), Admins: []string{}, Readers: []string{AnyPeer}, Writers: []string{AnyPeer}}
	if !aclEqual(got, want) {
		t.Fatalf("default acl: got %+v, want %+v", got, want)
	}
	other := openTestNode(t, t.TempDir(), nil).PeerID().String()
	for _, tc := range []struct {
		name string
		in   ACL
		want error
	}{
		{"bad reader id", ACL{Readers: []string{"nope"}}, ErrInvalid},
		{"bad admin id", ACL{Admins: []string{AnyPeer}}, ErrInvalid},
		{"bad owner", ACL{Owner: "x"}, ErrInvalid},
		{"missing db", ACL{}, ErrDBNotFound},
	} {
		db := "db"
		if tc.name == "missing db" {
			db = "nope"
		}
		if err := n.SetACL(ctx, db, tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	d, _ := n.DB("db")
	if _, err := d.Put(ctx, ACLDocID, map[string]any{"owner": other}, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("put of _acl through the document API: got %v, want ErrInvalid", err)
	}
	mustSetACL(t, n, "db", ACL{Readers: []string{other}, Writers: []string{other}})
	got, _ = n.ACL("db")
	want = ACL{Owner: n.PeerID().String(), Admins: []string{}, Readers: []string{other}, Writers: []string{other}}
	if !aclEqual(got, want) {
		t.Fatalf("after set: got %+v, want %+v", got, want)
	}
	// Taking a writer off the list records its revocation; putting it back
	// clears it.
	mustSetACL(t, n, "db", ACL{Readers: []string{other}, Writers: []string{}})
	got, _ = n.ACL("db")
	if _, ok := got.Revoked[other]; !ok {
		t.Fatalf("revoked writer not recorded: %+v", got)
	}
	mustSetACL(t, n, "db", ACL{Readers: []string{AnyPeer}, Writers: []string{other}})
	got, _ = n.ACL("db")
	if len(got.Revoked) != 0 {
		t.Fatalf("re-granted writer still revoked: %+v", got)
	}
	// Giving ownership away makes this node a stranger to the ACL.
	mustSetACL(t, n, "db", ACL{Owner: other, Readers: []string{AnyPeer}, Writers: []string{AnyPeer}})
	if err := n.SetACL(ctx, "db", ACL{Readers: []string{AnyPeer}}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("set acl by a former owner: got %v, want ErrNotAllowed", err)
	}
}

func aclEqual(a, b ACL) bool {
	return a.Owner == b.Owner && slices.Equal(a.Admins, b.Admins) && slices.Equal(a.Readers, b.Readers) &&
		slices.Equal(a.Writers, b.Writers)
}

// TestACLReadersOnly: a peer not on the readers list is refused by the sync
// server: it pulls nothing and learns no ids.
func TestACLReadersOnly(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.createDB("db")
	a, c := tn.nodes[0], tn.nodes[1]
	mustSetACL(t, a, "db", ACL{Readers: ids(a), Writers: []string{AnyPeer}})
	for i := range 5 {
		mustPut(t, tn.db(0, "db"), "doc-"+string(rune('a'+i)), map[string]any{"i": i}, "")
	}
	tn.connect(1, 0)
	waitFor(t, "C's pull from A to be refused", 15*time.Second, func() bool {
		for _, s := range c.net.Load().repl.Status() {
			if s.Peer == a.PeerID() && s.DB == "db" && strings.Contains(s.LastError, "forbidden") {
				return true
			}
		}
		return false
	})
	// A still pulls from C (C is open): the refusal is one-way.
	mustPut(t, tn.db(1, "db"), "from-c", map[string]any{"v": 1}, "")
	waitFor(t, "A to get C's document", 15*time.Second, func() bool { return hasDoc(tn.db(0, "db"), "from-c") })
	dc := tn.db(1, "db")
	info, err := dc.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.DocCount != 1 {
		t.Errorf("C holds %d documents, want only its own", info.DocCount)
	}
	feed, _, err := dc.Changes(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range feed {
		if ch.ID != "from-c" {
			t.Errorf("C learned %s", ch.ID)
		}
	}
	if got, _ := c.ACL("db"); got.Owner != c.PeerID().String() {
		t.Errorf("C learned A's ACL: %+v", got)
	}
}

// TestACLWriters: a peer not on the writers list writes locally, but every
// other peer rejects its changes (and their descendants), counts them, and
// keeps pulling past them.
func TestACLWriters(t *testing.T) {
	tn := newTestNet(t, 3)
	tn.createDB("db")
	a, b, c := tn.nodes[0], tn.nodes[1], tn.nodes[2]
	mustSetACL(t, a, "db", ACL{Readers: []string{AnyPeer}, Writers: ids(a, b)})
	tn.connect(1, 0)
	tn.connect(2, 0)
	tn.connect(2, 1)
	for i := 1; i < 3; i++ {
		tn.waitACL(i, "db", "the ACL to reach every peer", func(x ACL) bool { return x.Owner == a.PeerID().String() })
	}
	rev := mustPut(t, tn.db(2, "db"), "from-c", map[string]any{"v": 1}, "")
	mustPut(t, tn.db(2, "db"), "from-c", map[string]any{"v": 2}, rev) // a descendant
	mustPut(t, tn.db(1, "db"), "from-b", map[string]any{"v": 1}, "")
	mustPut(t, tn.db(0, "db"), "from-a", map[string]any{"v": 1}, "")
	for _, i := range []int{0, 1} {
		waitFor(t, "the writers' documents everywhere", 15*time.Second, func() bool {
			return hasDoc(tn.db(i, "db"), "from-a") && hasDoc(tn.db(i, "db"), "from-b")
		})
		waitFor(t, "C's changes rejected", 15*time.Second, func() bool {
			return rejectedCount(t, tn.nodes[i], "db", rejectNotWriter)+rejectedCount(t, tn.nodes[i], "db", rejectParent) >= 2
		})
	}
	waitFor(t, "C to get the writers' documents", 15*time.Second, func() bool {
		return hasDoc(tn.db(2, "db"), "from-a") && hasDoc(tn.db(2, "db"), "from-b")
	})
	if !hasDoc(tn.db(2, "db"), "from-c") {
		t.Error("C lost its local write")
	}
	// The pulls moved past the rejected changes: A's checkpoint of C
	// reaches C's last sequence, with no error.
	cseq := tn.db(2, "db").seq.Load()
	waitFor(t, "A's pull from C to reach C's feed end", 15*time.Second, func() bool {
		for _, s := range a.net.Load().repl.Status() {
			if s.Peer == c.PeerID() && s.DB == "db" {
				return s.Checkpoint >= cseq && s.LastError == ""
			}
		}
		return false
	})
	for _, i := range []int{0, 1} {
		if hasDoc(tn.db(i, "db"), "from-c") {
			t.Errorf("peer %d applied a change by a non-writer", i)
		}
		if n := rejectedCount(t, tn.nodes[i], "db", rejectNotWriter); n < 1 {
			t.Errorf("peer %d: not_writer rejections %v, want >= 1", i, n)
		}
		if ok, _ := tn.db(i, "db").rejected(mustID(t, rev)); !ok {
			t.Errorf("peer %d did not record the rejection", i)
		}
	}
	_ = b
}

func mustID(t *testing.T, rev string) crdt.ID {
	t.Helper()
	id, err := crdt.ParseID(rev)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestACLForgedChanges: a change signed with another key, or claiming
// another author, is refused with its batch and counted, also under an ACL
// that lets the claimed author write.
func TestACLForgedChanges(t *testing.T) {
	tn := newTestNet(t, 3)
	tn.createDB("db")
	a, b, c := tn.nodes[0], tn.nodes[1], tn.nodes[2]
	mustSetACL(t, a, "db", ACL{Readers: []string{AnyPeer}, Writers: ids(a, b)})
	da := tn.db(0, "db")
	set := crdt.Op{Kind: crdt.OpSet, Path: "/v", Value: int64(1)}
	valid := craft(t, b.key, b.PeerID(), "db", "genuine", nil, set)
	claimsB := craft(t, c.key, b.PeerID(), "db", "forged", nil, set) // C's key, B's name
	wrongSig := craft(t, b.key, b.PeerID(), "db", "forged2", nil, set)
	wrongSig.Sig = valid.Sig // B's real signature, over another change
	for _, tc := range []struct {
		name string
		c    *crdt.Change
	}{{"signed with another key", claimsB}, {"signature of another change", wrongSig}} {
		before := rejectedCount(t, a, "db", rejectSignature)
		if _, err := da.applyFrom(t.Context(), c.PeerID(), []*crdt.Change{valid, tc.c}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", tc.name, err)
		}
		if got := rejectedCount(t, a, "db", rejectSignature); got != before+1 {
			t.Errorf("%s: bad_signature count %v, want %v", tc.name, got, before+1)
		}
		if hasDoc(da, tc.c.Doc) || hasDoc(da, "genuine") {
			t.Errorf("%s: a change of the refused batch was applied", tc.name)
		}
		if ok, _ := da.rejected(tc.c.ID()); ok {
			t.Errorf("%s: a forged id was recorded: an honest change may share it", tc.name)
		}
	}
	// The genuine change alone goes in.
	if n, err := da.applyFrom(t.Context(), b.PeerID(), []*crdt.Change{valid}); err != nil || n != 1 {
		t.Fatalf("genuine change: applied %d, %v", n, err)
	}
}

// TestACLOwnerOnly: only the owner (or an admin) changes the ACL: locally
// SetACL refuses, and peers reject a crafted change to _acl.
func TestACLOwnerOnly(t *testing.T) {
	tn := newTestNet(t, 3)
	tn.createDB("db")
	a, b, c := tn.nodes[0], tn.nodes[1], tn.nodes[2]
	mustSetACL(t, a, "db", ACL{Readers: []string{AnyPeer}, Writers: ids(a, b)})
	tn.connect(1, 0)
	tn.connect(2, 0)
	for i := 1; i < 3; i++ {
		tn.waitACL(i, "db", "the ACL to reach every peer", func(x ACL) bool { return x.Owner == a.PeerID().String() })
	}
	if err := b.SetACL(t.Context(), "db", ACL{Readers: []string{AnyPeer}, Writers: []string{AnyPeer}}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("set acl by a writer: got %v, want ErrNotAllowed", err)
	}
	// B crafts the change SetACL would have made, on top of the current
	// ACL, signed with its own key: A and C reject it.
	st, _, err := tn.db(1, "db").readState(ACLDocID)
	if err != nil {
		t.Fatal(err)
	}
	grab := craft(t, b.key, b.PeerID(), "db", ACLDocID, st.Heads, crdt.Op{Kind: crdt.OpSet, Path: "/writers", Value: AnyPeer})
	steal := craft(t, b.key, b.PeerID(), "db", ACLDocID, st.Heads, crdt.Op{Kind: crdt.OpSet, Path: "/owner", Value: b.PeerID().String()})
	second := craft(t, b.key, b.PeerID(), "db", ACLDocID, nil, // a second "first" ACL naming B owner
		crdt.Op{Kind: crdt.OpSet, Path: "/owner", Value: b.PeerID().String()}, crdt.Op{Kind: crdt.OpSet, Path: "/writers", Value: AnyPeer})
	for _, i := range []int{0, 2} {
		d := tn.db(i, "db")
		n, err := d.applyFrom(t.Context(), b.PeerID(), []*crdt.Change{grab, steal, second})
		if err != nil || n != 0 {
			t.Fatalf("peer %d: applied %d, %v; want 0, nil", i, n, err)
		}
		if got := rejectedCount(t, tn.nodes[i], "db", rejectNotAdmin); got != 3 {
			t.Errorf("peer %d: not_admin rejections %v, want 3", i, got)
		}
		got, _ := tn.nodes[i].ACL("db")
		if got.Owner != a.PeerID().String() || slices.Contains(got.Writers, AnyPeer) {
			t.Errorf("peer %d: the ACL changed: %+v", i, got)
		}
	}
	// An admin may change the ACL; the change replicates and is accepted.
	mustSetACL(t, a, "db", ACL{Admins: ids(b), Readers: []string{AnyPeer}, Writers: ids(a, b)})
	tn.waitACL(1, "db", "B to become admin", func(x ACL) bool { return slices.Contains(x.Admins, b.PeerID().String()) })
	mustSetACL(t, b, "db", ACL{Admins: ids(b), Readers: []string{AnyPeer}, Writers: ids(a, b, c)})
	tn.waitACL(2, "db", "B's change to reach C", func(x ACL) bool { return slices.Contains(x.Writers, c.PeerID().String()) })
	if err := b.SetACL(t.Context(), "db", ACL{Owner: b.PeerID().String(), Readers: []string{AnyPeer}}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("an admin changing the owner: got %v, want ErrNotAllowed", err)
	}
}

// TestACLRevokedWriter: a revoked writer's changes stamped before the
// revocation stay (also on a peer that receives them after it), later ones
// are rejected.
func TestACLRevokedWriter(t *testing.T) {
	tn := newTestNet(t, 3)
	tn.createDB("db")
	a, w := tn.nodes[0], tn.nodes[1]
	mustSetACL(t, a, "db", ACL{Readers: []string{AnyPeer}, Writers: ids(a, w)})
	tn.connect(1, 0)
	tn.connect(2, 0) // C meets W only later
	tn.waitACL(1, "db", "W to learn it may write", func(x ACL) bool { return x.Owner == a.PeerID().String() })
	tn.waitACL(2, "db", "C to learn the ACL", func(x ACL) bool { return x.Owner == a.PeerID().String() })
	mustPut(t, tn.db(1, "db"), "early", map[string]any{"v": 1}, "")
	waitFor(t, "A to hold W's early change", 15*time.Second, func() bool { return hasDoc(tn.db(0, "db"), "early") })
	// W writes one more change that only it holds, then is revoked.
	tn.cut(0, 1)
	mustPut(t, tn.db(1, "db"), "early-unseen", map[string]any{"v": 1}, "")
	mustSetACL(t, a, "db", ACL{Readers: []string{AnyPeer}, Writers: ids(a)})
	tn.waitACL(2, "db", "C to learn the revocation", func(x ACL) bool { return len(x.Revoked) == 1 })
	if !hasDoc(tn.db(2, "db"), "early") {
		t.Fatal("C did not get W's early change through A")
	}
	tn.heal(0, 1)
	tn.connect(1, 0)
	tn.waitACL(1, "db", "W to learn the revocation", func(x ACL) bool { return len(x.Revoked) == 1 })
	mustPut(t, tn.db(1, "db"), "late", map[string]any{"v": 1}, "")
	tn.connect(2, 1)
	for _, i := range []int{0, 2} {
		waitFor(t, "W's late change rejected", 15*time.Second, func() bool {
			return rejectedCount(t, tn.nodes[i], "db", rejectRevoked) >= 1
		})
		waitFor(t, "W's early unseen change accepted after the revocation", 15*time.Second, func() bool {
			return hasDoc(tn.db(i, "db"), "early-unseen")
		})
		if !hasDoc(tn.db(i, "db"), "early") {
			t.Errorf("peer %d lost W's early change", i)
		}
		if hasDoc(tn.db(i, "db"), "late") {
			t.Errorf("peer %d applied W's change made after its revocation", i)
		}
	}
	_ = w
}

// FuzzDecodeACL: any _acl body a peer can produce decodes or errors,
// never panics, and a decoded ACL re-encodes to a body that decodes to
// the same ACL.
func FuzzDecodeACL(f *testing.F) {
	f.Add(`{"owner":"12D3KooWDQqJMxZW2dQh8toc6Ra2i9FY13ZYB5zShCZsnvZy7X5T","admins":[],"readers":"*","writers":"*"}`)
	f.Add(`{"owner":"12D3KooWDQqJMxZW2dQh8toc6Ra2i9FY13ZYB5zShCZsnvZy7X5T","readers":["x"],"revoked":{"a":1}}`)
	f.Add(`{"owner":1,"writers":[null]}`)
	f.Fuzz(func(t *testing.T, s string) {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil {
			return
		}
		nv, err := crdt.Normalize(v)
		if err != nil {
			return
		}
		body, ok := nv.(map[string]any)
		if !ok {
			return
		}
		a, err := acl.Decode(body)
		if err != nil {
			return
		}
		b, err := acl.Decode(a.Body())
		if err != nil {
			t.Fatalf("re-encoded acl does not decode: %v", err)
		}
		if !aclEqual(publicACL(a), publicACL(b)) {
			t.Fatalf("round trip: %+v != %+v", publicACL(a), publicACL(b))
		}
	})
}

// TestACLLaterGrant: a change by a peer not yet allowed to write is
// rejected, and applied once the owner grants that peer write access:
// peers that saw the grant first and peers that saw the change first end
// with the same documents.
func TestACLLaterGrant(t *testing.T) {
	tn := newTestNet(t, 3)
	tn.createDB("db")
	a, b := tn.nodes[0], tn.nodes[1]
	mustSetACL(t, a, "db", ACL{Readers: []string{AnyPeer}, Writers: ids(a)})
	tn.connect(1, 0)
	tn.connect(2, 1) // C hears from A only through B
	for i := 1; i < 3; i++ {
		tn.waitACL(i, "db", "the ACL to reach every peer", func(x ACL) bool { return x.Owner == a.PeerID().String() })
	}
	mustPut(t, tn.db(1, "db"), "from-b", map[string]any{"v": 1}, "")
	waitFor(t, "B's change rejected by A", 15*time.Second, func() bool {
		return rejectedCount(t, a, "db", rejectNotWriter) >= 1
	})
	mustSetACL(t, a, "db", ACL{Readers: []string{AnyPeer}, Writers: ids(a, b)})
	for i := range 3 {
		waitFor(t, "B's change accepted after the grant", 20*time.Second, func() bool { return hasDoc(tn.db(i, "db"), "from-b") })
	}
	waitFor(t, "identical documents", 15*time.Second, func() bool { return sameDocsNow(tn, "db") })
}
