package acl

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func newPeer(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestDecodeRefusesMalformed(t *testing.T) {
	owner := newPeer(t).String()
	for name, body := range map[string]map[string]any{
		"no body":         nil,
		"no owner":        {"writers": "*"},
		"owner not id":    {"owner": "alice"},
		"writers number":  {"owner": owner, "writers": 3},
		"writers not ids": {"owner": owner, "writers": []any{"x"}},
		"admins any":      {"owner": owner, "admins": "*"},
		"revoked list":    {"owner": owner, "revoked": []any{}},
		"revoked time":    {"owner": owner, "revoked": map[string]any{owner: "yesterday"}},
	} {
		if _, err := Decode(body); err == nil {
			t.Errorf("%s: Decode(%v) accepted it", name, body)
		}
	}
}

func TestBodyRoundTrips(t *testing.T) {
	owner, w, r := newPeer(t), newPeer(t), newPeer(t)
	at := time.Date(2026, 12, 3, 9, 0, 0, 123, time.UTC).UnixNano()
	a := &Policy{Owner: owner, Admins: map[peer.ID]bool{}, Readers: map[peer.ID]bool{r: true},
		Writers: map[peer.ID]bool{w: true}, Revoked: map[peer.ID]int64{r: at}}
	b, err := Decode(a.Body())
	if err != nil {
		t.Fatal(err)
	}
	if b.Owner != owner || !b.Writers[w] || !b.Readers[r] || b.Revoked[r] != at || b.AnyRead || b.AnyWrite {
		t.Fatalf("round trip: got %+v, want %+v", b, a)
	}
}

func TestMayWriteAroundRevocation(t *testing.T) {
	owner, admin, w, stranger := newPeer(t), newPeer(t), newPeer(t), newPeer(t)
	prev := &Policy{Owner: owner, Admins: map[peer.ID]bool{admin: true}, Writers: map[peer.ID]bool{w: true}}
	next := &Policy{Owner: owner, Admins: map[peer.ID]bool{admin: true}, Writers: map[peer.ID]bool{}}
	const at = 1000
	next.RecordRevocations(prev, at)
	for _, tc := range []struct {
		author peer.ID
		wall   int64
		want   string
	}{
		{w, at - 1, ""},        // stamped before the revocation: stays acceptable
		{w, at, RejectRevoked}, // at or after it: refused
		{stranger, 1, RejectNotWriter},
		{admin, at + 5, ""}, // admins always write
		{owner, at + 5, ""},
	} {
		if got := next.MayWrite(tc.author, crdt.HLC{Wall: tc.wall}); got != tc.want {
			t.Errorf("MayWrite(%s, wall %d) = %q, want %q", tc.author, tc.wall, got, tc.want)
		}
	}
	if got := prev.MayWrite(w, crdt.HLC{Wall: at + 5}); got != "" {
		t.Errorf("before the revocation the writer may write: got %q", got)
	}
	// Granting again lifts the revocation.
	again := &Policy{Owner: owner, Writers: map[peer.ID]bool{w: true}}
	again.RecordRevocations(next, at+10)
	if _, still := again.Revoked[w]; still {
		t.Errorf("a writer granted again is still revoked: %v", again.Revoked)
	}
}

func TestOpenLetsEveryoneIn(t *testing.T) {
	owner, p := newPeer(t), newPeer(t)
	a := Open(owner)
	if !a.MayRead(p) || a.MayWrite(p, crdt.HLC{Wall: 1}) != "" || a.Admin(p) || !a.Admin(owner) {
		t.Fatalf("Open(owner): read %v write %q admin %v owner admin %v", a.MayRead(p), a.MayWrite(p, crdt.HLC{Wall: 1}), a.Admin(p), a.Admin(owner))
	}
}

// TestCheckChangeOnlyOfTheACLDocument: a change of another document never
// makes an ACL, even one whose body would decode as one.
func TestCheckChangeOnlyOfTheACLDocument(t *testing.T) {
	owner := newPeer(t)
	c := &crdt.Change{DB: "db", Doc: "not_acl", Author: []byte(owner),
		Ops: []crdt.Op{{Kind: crdt.OpSet, Path: "/owner", Value: owner.String()}}}
	if got := CheckChange(c, nil, false); got != RejectBadACL {
		t.Fatalf("CheckChange of document %q = %q, want %q", c.Doc, got, RejectBadACL)
	}
	c.Doc = DocID
	if got := CheckChange(c, nil, false); got != "" {
		t.Fatalf("first change of %s naming its author owner: %q, want accepted", DocID, got)
	}
}
