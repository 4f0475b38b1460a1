package node

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// forgeBase makes a hostile peer's own store serve doc as a folded base of
// body, with no kept changes: what a peer running modified code can send
// in a snapshot. The base's one change is the forger's own; nothing but
// the sender vouches for the state.
func forgeBase(t *testing.T, d *DB, doc string, body map[string]any, inflate peer.ID) {
	t.Helper()
	var ops []crdt.Op
	for _, k := range sortedKeys(body) {
		ops = append(ops, crdt.Op{Kind: crdt.OpSet, Path: "/" + k, Value: body[k]})
	}
	c := craft(t, d.node.key, d.node.peerID, d.name, doc, nil, ops...)
	st, err := crdt.Replay([]*crdt.Change{c})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	r := &layout.FoldRecord{Base: enc, Clock: c.Clock}
	if inflate != "" {
		// The victim's own edits "are already in the base", says the forger.
		r.Authors = []layout.AuthorClock{{Author: []byte(inflate), Clock: crdt.HLC{Wall: 1 << 62}}}
	}
	rec, err := crdt.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	b := d.store.NewBatch()
	defer b.Close()
	prefix := d.keys.History(doc)
	err = d.store.Range(prefix, datastore.PrefixEnd(prefix), false, func(k, _ []byte) (bool, error) {
		b.Delete(slices.Clone(k))
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Set(d.keys.Doc(doc), append(binary.BigEndian.AppendUint64(nil, 1), enc...))
	b.Set(d.keys.Fold(doc), rec)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	d.anyFold.Store(true)
	d.horizon.Store(1 << 40) // every pull from it "needs a snapshot"
	// As after a real compaction, its reconciliation set is rebuilt from
	// the records: else it would still show the documents as they were,
	// and a peer reconciling with it (version 2) might find nothing to ask
	// for and never reach the pull that answers snapshot_needed.
	d.reconInvalidate()
}

// TestSnapshotForgedByWriter (issue 16, item 1): a peer that is only a
// writer answers the victim's pull with snapshot_needed and serves forged
// bases: of _acl (naming itself owner, every peer reader and writer), or
// of ordinary documents, claiming the victim's own edits are in them.
// The victim believes none of it: its ACL stays the owner's, a peer that
// may not read still may not, no forged document is planted, its own
// edits are not dropped, it never re-issues the owner's ACL change, the
// refusal is counted, and it goes on syncing with the owner.
func TestSnapshotForgedByWriter(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		forge        func(t *testing.T, w *DB, o, v peer.ID)
	}{
		{"acl base", rejectSnapForged, func(t *testing.T, w *DB, o, v peer.ID) {
			forgeBase(t, w, ACLDocID, map[string]any{"owner": w.node.peerID.String(), "admins": []any{},
				"readers": AnyPeer, "writers": AnyPeer}, v)
			forgeBase(t, w, "planted", map[string]any{"by": "the owner, says W"}, "")
		}},
		{"document bases from a writer", rejectSnapNotAdmin, func(t *testing.T, w *DB, o, v peer.ID) {
			forgeBase(t, w, "secret", map[string]any{"s": "rewritten by W"}, v)
			forgeBase(t, w, "planted", map[string]any{"by": "the owner, says W"}, v)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := newTestNet(t, 4) // 0 owner, 1 writer W, 2 victim V (writer), 3 outsider X
			ctx := t.Context()
			for i := range 4 {
				if err := tn.nodes[i].CreateDB(ctx, "db"); err != nil {
					t.Fatal(err)
				}
			}
			o, w, v, x := tn.nodes[0].PeerID(), tn.nodes[1].PeerID(), tn.nodes[2].PeerID(), tn.nodes[3].PeerID()
			members := []string{o.String(), w.String(), v.String()}
			mustSetACL(t, tn.nodes[0], "db", ACL{Owner: o.String(), Readers: members, Writers: members})
			mustPut(t, tn.db(0, "db"), "secret", map[string]any{"s": "top"}, "")
			tn.connect(1, 0)
			tn.connect(2, 0)
			for _, i := range []int{1, 2} {
				waitFor(t, "the members sync", 20*time.Second, func() bool { return hasDoc(tn.db(i, "db"), "secret") })
			}
			tn.cut(2, 0)
			mustPut(t, tn.db(2, "db"), "mine", map[string]any{"v": "written by V while away"}, "")
			tc.forge(t, tn.db(1, "db"), o, v)

			tn.connect(2, 1)
			waitFor(t, "the refusal", 20*time.Second, func() bool { return rejectedCount(t, tn.nodes[2], "db", tc.reason) > 0 })

			vd := tn.db(2, "db")
			a, err := tn.nodes[2].ACL("db")
			if err != nil {
				t.Fatal(err)
			}
			if a.Owner != o.String() || slices.Contains(a.Readers, AnyPeer) || slices.Contains(a.Writers, AnyPeer) {
				t.Fatalf("the victim's ACL became %+v", a)
			}
			if err := (syncStore{tn.nodes[2]}).AuthorizeRead(ctx, "db", x); err == nil {
				t.Fatal("a peer that is not a reader may read the victim's database")
			}
			if hasDoc(vd, "planted") {
				t.Fatal("a document no signature covers was planted")
			}
			if g := mustGet(t, vd, "secret"); g.Body["s"] != "top" {
				t.Fatalf("secret reads %v", g.Body)
			}
			if g := mustGet(t, vd, "mine"); g.Body["v"] != "written by V while away" {
				t.Fatalf("the victim's own edit reads %v", g.Body)
			}
			ids, err := vd.historyIDs(ACLDocID)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				if c := changeOf(t, vd, id.String()); peer.ID(c.Author) != o {
					t.Fatalf("the victim holds an _acl change by %s: it re-issued the owner's ACL", peer.ID(c.Author))
				}
			}

			// It goes on syncing with the owner, both ways.
			tn.heal(2, 0)
			tn.connect(2, 0)
			mustPut(t, tn.db(0, "db"), "after", map[string]any{"n": 1}, "")
			waitFor(t, "the owner's write after the attack", 20*time.Second, func() bool { return hasDoc(vd, "after") })
			waitFor(t, "the victim's edit at the owner", 20*time.Second, func() bool { return hasDoc(tn.db(0, "db"), "mine") })
		})
	}
}
