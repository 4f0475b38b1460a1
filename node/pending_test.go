package node

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
)

// A transaction whose changes depend on each other (a crafted one: two
// changes of one document) applies once complete, whatever order its
// pending changes are read back from disk in (by id, not arrival).
func TestPendingGroupParentsFirst(t *testing.T) {
	n := openTestNode(t, t.TempDir(), nil)
	if err := n.CreateDB(t.Context(), "db"); err != nil {
		t.Fatal(err)
	}
	d, _ := n.DB("db")
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	author, _ := peer.IDFromPrivateKey(key)
	// The child's id must sort before its parent's, so disk order is
	// child first.
	var parent, child *crdt.Change
	for i := 0; child == nil || idLess(parent.ID(), child.ID()); i++ {
		tx := &crdt.Tx{ID: "tx-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)), Count: 2}
		parent = craftTx(t, key, author, "doc", nil, tx, int64(i))
		child = craftTx(t, key, author, "doc", []crdt.ID{parent.ID()}, tx, int64(i+1))
	}
	if _, err := d.applyFrom(t.Context(), author, []*crdt.Change{parent}); err != nil {
		t.Fatal(err)
	}
	applied, err := d.applyFrom(t.Context(), author, []*crdt.Change{child})
	if err != nil || applied != 2 {
		t.Fatalf("complete transaction: applied %d, %v; want 2, nil", applied, err)
	}
	if n := pendingKeys(t, d); n != 0 {
		t.Errorf("%d pending keys left, want 0", n)
	}
}

func idLess(a, b crdt.ID) bool { return bytes.Compare(a[:], b[:]) < 0 }

func craftTx(t *testing.T, signer crdt.Signer, author peer.ID, doc string, parents []crdt.ID, tx *crdt.Tx, v int64) *crdt.Change {
	t.Helper()
	c := &crdt.Change{DB: "db", Doc: doc, Parents: parents, Author: []byte(author), Tx: tx,
		Ops: []crdt.Op{{Kind: crdt.OpSet, Path: "/v", Value: v}}, Clock: crdt.HLC{Wall: 1_000_000 + v}}
	if err := c.Seal(signer); err != nil {
		t.Fatal(err)
	}
	return c
}
