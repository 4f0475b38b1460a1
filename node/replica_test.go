package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"pgregory.net/rapid"

	"github.com/barrel-db/barrel/crdt"
	bsync "github.com/barrel-db/barrel/sync"
)

// pullAll copies every change src holds (after since) into dst through the
// bsync.Store contract, in feed batches of batch entries, the way the sync
// client does. It returns the new checkpoint.
func pullAll(t tb, src, dst *Node, db string, since uint64, batch int) uint64 {
	t.Helper()
	ctx := context.Background()
	s, d := syncStore{src}, syncStore{dst}
	for {
		entries, last, err := s.Feed(ctx, db, since, batch, nil)
		if err != nil {
			t.Fatalf("feed: %v", err)
		}
		ids := make([]crdt.ID, len(entries))
		for i, e := range entries {
			ids[i] = e.ID
		}
		encs, err := s.Changes(ctx, db, ids)
		if err != nil {
			t.Fatalf("changes: %v", err)
		}
		changes := make([]*crdt.Change, len(encs))
		for i, e := range encs {
			if changes[i], err = crdt.Decode(e); err != nil {
				t.Fatalf("decode: %v", err)
			}
		}
		if _, err := d.Apply(ctx, db, src.PeerID(), changes); err != nil {
			t.Fatalf("apply: %v", err)
		}
		if last == since {
			return since
		}
		since = last
	}
}

// docsOf returns the encoded state of every document of db (tombstones
// too), paging through the list.
func docsOf(t tb, n *Node, db string) map[string][]byte {
	t.Helper()
	d, err := n.DB(db)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	after := ""
	for {
		list, err := d.List(context.Background(), ListOptions{StartAfter: after, Limit: MaxListLimit, Deleted: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			st, _, err := d.readState(s.ID)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := st.Encode()
			out[s.ID] = b
		}
		if len(list) < MaxListLimit {
			return out
		}
		after = list[len(list)-1].ID
	}
}

func TestApplyChangesConverges(t *testing.T) {
	ctx := t.Context()
	a := openTestNode(t, t.TempDir(), nil)
	b := openTestNode(t, t.TempDir(), nil)
	for _, n := range []*Node{a, b} {
		n.CreateDB(ctx, "db")
	}
	da, _ := a.DB("db")
	dbb, _ := b.DB("db")
	mustPut(t, da, "shared", map[string]any{"x": 1, "y": 1}, "")
	pullAll(t, a, b, "db", 0, 1000)
	mustPut(t, da, "shared", map[string]any{"x": 2, "y": 1}, "")
	mustPut(t, dbb, "shared", map[string]any{"x": 1, "y": 2}, "")
	mustPut(t, da, "only-a", map[string]any{"a": true}, "")
	if _, err := dbb.Bulk(ctx, []DocOp{{ID: "t1", Body: map[string]any{"n": 1}}, {ID: "t2", Body: map[string]any{"n": 2}}}, true); err != nil {
		t.Fatal(err)
	}
	pullAll(t, a, b, "db", 0, 1)
	pullAll(t, b, a, "db", 0, 1) // batches of one: the transaction arrives in two pulls
	ga, gb := docsOf(t, a, "db"), docsOf(t, b, "db")
	if len(ga) != 4 || len(gb) != 4 {
		t.Fatalf("doc counts: a %d, b %d, want 4", len(ga), len(gb))
	}
	for id, v := range ga {
		if !bytes.Equal(v, gb[id]) {
			t.Errorf("document %s differs between peers", id)
		}
	}
	doc := mustGet(t, da, "shared")
	if doc.Body["x"] != int64(2) || doc.Body["y"] != int64(2) {
		t.Errorf("merged doc %v, want x=2 y=2", doc.Body)
	}
	ia, _ := da.Info(ctx)
	ib, _ := dbb.Info(ctx)
	if ia.DocCount != 4 || ib.DocCount != 4 {
		t.Errorf("doc counts %d %d", ia.DocCount, ib.DocCount)
	}
	xa, na := da.changesDigest()
	xb, nb := dbb.changesDigest()
	if xa != xb || na != nb {
		t.Errorf("digests differ: %x/%d vs %x/%d", xa, na, xb, nb)
	}
}

func TestApplyRejectsBadChanges(t *testing.T) {
	ctx := t.Context()
	a := openTestNode(t, t.TempDir(), nil)
	b := openTestNode(t, t.TempDir(), nil)
	a.CreateDB(ctx, "db")
	b.CreateDB(ctx, "db")
	da, _ := a.DB("db")
	dbb, _ := b.DB("db")
	mustPut(t, da, "d", map[string]any{"v": 1}, "")
	res := mustPut(t, da, "d", map[string]any{"v": 2}, "")
	id, _ := crdt.ParseID(res)
	c, err := da.readChange(id)
	if err != nil {
		t.Fatal(err)
	}
	// Its parent is missing on b.
	_, err = dbb.applyChanges(ctx, []*crdt.Change{c})
	var miss *bsync.MissingError
	if !errors.As(err, &miss) || len(miss.IDs) != 1 {
		t.Fatalf("missing parent: got %v", err)
	}
	// A forged change: b's content signed with another key.
	forged := *c
	forged.Ops = []crdt.Op{{Kind: crdt.OpSet, Path: "/v", Value: int64(666)}}
	forged.Parents = nil
	if err := forged.Seal(b.key); err != nil {
		t.Fatal(err)
	}
	forged.Author = []byte(a.PeerID()) // claims to be a
	enc, _ := forged.Encode()
	f2, err := crdt.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dbb.applyChanges(ctx, []*crdt.Change{f2}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("forged change: got %v, want ErrInvalid", err)
	}
	if info, _ := dbb.Info(ctx); info.UpdateSeq != 0 {
		t.Fatalf("rejected changes were stored: %+v", info)
	}
}

// TestReplicaConvergence: random writes on 3 nodes, exchanged in random
// orders and batch sizes (with repeats), end with byte-identical documents
// and conflicts on every node.
func TestReplicaConvergence(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		nodes := make([]*Node, 3)
		for i := range nodes {
			n, err := Open(ctx, Config{DataDir: t.TempDir(), Durability: "batch", Logger: discardLogger()})
			if err != nil {
				rt.Fatal(err)
			}
			defer n.Close()
			n.CreateDB(ctx, "db")
			nodes[i] = n
		}
		for step := rapid.IntRange(1, 25).Draw(rt, "steps"); step > 0; step-- {
			n := nodes[rapid.IntRange(0, 2).Draw(rt, "node")]
			d, _ := n.DB("db")
			switch rapid.IntRange(0, 4).Draw(rt, "op") {
			case 0, 1, 2, 3:
				randomWrite(rt, d)
			case 4:
				src := nodes[rapid.IntRange(0, 2).Draw(rt, "src")]
				if src != n {
					pullAll(rt, src, n, "db", 0, rapid.IntRange(1, 5).Draw(rt, "batch"))
				}
			}
		}
		for range 2 {
			for _, dst := range nodes {
				for _, src := range nodes {
					if src != dst {
						pullAll(rt, src, dst, "db", 0, 3)
					}
				}
			}
		}
		want := docsOf(rt, nodes[0], "db")
		for i, n := range nodes[1:] {
			got := docsOf(rt, n, "db")
			if len(got) != len(want) {
				rt.Fatalf("node %d holds %d docs, node 0 %d", i+1, len(got), len(want))
			}
			for id, v := range want {
				if !bytes.Equal(v, got[id]) {
					rt.Fatalf("node %d: document %s differs", i+1, id)
				}
			}
		}
	})
}

// randomWrite makes one random write to document a, b or c of d: a put,
// a delete, or a patch with a counter and a set.
func randomWrite(rt *rapid.T, d *DB) {
	ctx := context.Background()
	id := rapid.SampledFrom([]string{"a", "b", "c"}).Draw(rt, "doc")
	switch rapid.IntRange(0, 3).Draw(rt, "write") {
	case 0, 1:
		body := map[string]any{"f": rapid.IntRange(0, 3).Draw(rt, "f"), "g": rapid.SampledFrom([]any{"x", "y", nil}).Draw(rt, "g")}
		d.Put(ctx, id, body, "")
	case 2:
		d.Delete(ctx, id, "")
	case 3:
		d.Patch(ctx, id, Patch{Incr: map[string]any{"/n": 1}, Add: map[string][]any{"/s": {rapid.IntRange(0, 2).Draw(rt, "e")}}})
	}
}

// tb is what both *testing.T and *rapid.T offer.
type tb interface {
	Helper()
	Fatalf(string, ...any)
	Fatal(...any)
}

var _ = peer.ID("")
var _ = fmt.Sprint
