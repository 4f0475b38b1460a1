package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/node/internal/layout"
	bsync "github.com/barrel-db/barrel/sync"
)

// lastReconciled reports whether node i's last sync of db with node j
// reconciled (protocol version 2) and found the sets equal.
func lastReconciled(tn *testNet, i, j int, db string) (reconciled, inSync bool) {
	for _, s := range tn.nodes[i].net.Load().repl.Status() {
		if s.Peer == tn.nodes[j].PeerID() && s.DB == db && !s.Running {
			return s.Last.Reconciled, s.Last.InSync
		}
	}
	return false, false
}

// Two peers that wrote apart, each on documents the other holds and on
// new ones, reconcile when they meet again: both hold byte-identical
// documents, found by version 2 (not a listing of the feed), and the
// anti-entropy tick after finds them in sync in one round trip.
func TestReconcileOnConnect(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.createDB("db")
	a, b := tn.db(0, "db"), tn.db(1, "db")
	for i := range 300 {
		mustPut(t, a, fmt.Sprintf("doc%03d", i), map[string]any{"i": int64(i)}, "")
	}
	tn.connect(1, 0)
	waitFor(t, "first replication", 15*time.Second, func() bool { return tn.converged("db") })
	tn.cut(0, 1)
	for i := range 20 {
		mustPut(t, a, fmt.Sprintf("a%02d", i), map[string]any{"side": "a"}, "")
		mustPut(t, b, fmt.Sprintf("b%02d", i), map[string]any{"side": "b"}, "")
		d := mustGet(t, a, fmt.Sprintf("doc%03d", i))
		mustPut(t, a, d.ID, map[string]any{"i": int64(-i)}, d.Rev)
		d = mustGet(t, b, fmt.Sprintf("doc%03d", 299-i))
		mustPut(t, b, d.ID, map[string]any{"i": int64(1000 + i)}, d.Rev)
	}
	if _, err := b.Delete(t.Context(), "doc150", ""); err != nil {
		t.Fatal(err)
	}
	tn.heal(0, 1)
	tn.connect(1, 0)
	waitFor(t, "reconciled", 15*time.Second, func() bool { return tn.converged("db") && sameDocsNow(tn, "db") })
	tn.sameDocs("db")
	waitFor(t, "an in-sync reconciliation both ways", 15*time.Second, func() bool {
		r1, s1 := lastReconciled(tn, 0, 1, "db")
		r2, s2 := lastReconciled(tn, 1, 0, "db")
		return r1 && s1 && r2 && s2
	})
}

// The reconciliation set follows a purge, which removes documents without
// a feed entry: it is rebuilt, and equals a fresh scan.
func TestReconIndexAfterPurge(t *testing.T) {
	_, d := testDB(t)
	for i := range 50 {
		mustPut(t, d, fmt.Sprintf("doc%02d", i), map[string]any{"i": int64(i)}, "")
	}
	idx, _, err := d.reconIndex(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if idx.Len() != 50 {
		t.Fatalf("index of %d documents, want 50", idx.Len())
	}
	if _, err := d.Purge(t.Context(), []string{"doc01", "doc02"}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, d, "new", map[string]any{}, "")
	idx, _, err = d.reconIndex(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := d.reconBuild(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if idx.Len() != 49 || idx.Fingerprint(bsync.Range{}) != fresh.Fingerprint(bsync.Range{}) {
		t.Fatalf("after purge: %d documents, fingerprint %+v, a fresh scan %+v", idx.Len(),
			idx.Fingerprint(bsync.Range{}), fresh.Fingerprint(bsync.Range{}))
	}
}

// quickHeads reads what the CBOR decoder reads from stored states, with
// one head and with concurrent ones.
func TestQuickHeads(t *testing.T) {
	_, d := testDB(t)
	rev := mustPut(t, d, "one", map[string]any{"a": int64(1)}, "")
	mustPut(t, d, "two", map[string]any{"a": int64(1)}, "")
	mustPut(t, d, "one", map[string]any{"a": int64(2)}, rev)
	for _, doc := range []string{"one", "two"} {
		v, err := d.store.Get(d.keys.Doc(doc))
		if err != nil {
			t.Fatal(err)
		}
		_, enc, _ := layout.ParseDocRecord(v)
		quick, ok := quickHeads(enc)
		var s stateHeads
		if err := crdt.Unmarshal(enc, &s); err != nil || !ok || !slices.Equal(quick, s.Heads) || len(quick) == 0 {
			t.Fatalf("%s: quick %v (ok %v), decoded %v (%v)", doc, quick, ok, s.Heads, err)
		}
	}
	// Concurrent heads: a change on an older base of "one".
	st, _, err := d.readState("one")
	if err != nil {
		t.Fatal(err)
	}
	two := append(slices.Clone(st.Heads), crdt.ID{7})
	st.Heads = two
	enc, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if quick, ok := quickHeads(enc); !ok || !slices.Equal(quick, two) {
		t.Fatalf("two heads: quick %v (ok %v), want %v", quick, ok, two)
	}
}

// Two converged peers, one of which folded its history away, hold
// different change sets but the same reconciliation set: the in-sync
// check finds nothing to do.
func TestReconcileInSyncAfterCompaction(t *testing.T) {
	clk := &simClock{}
	tn := &testNet{t: t, part: newPartition(), now: clk.now}
	for i := range 2 {
		tn.dirs = append(tn.dirs, t.TempDir())
		tn.nodes = append(tn.nodes, nil)
		tn.start(i)
	}
	t.Cleanup(func() {
		for _, n := range tn.nodes {
			if n != nil {
				n.Close()
			}
		}
	})
	tn.createDB("db")
	a, b := tn.db(0, "db"), tn.db(1, "db")
	for i := range 20 {
		rev := ""
		for x := range 4 {
			rev = mustPut(t, a, fmt.Sprintf("doc%02d", i), map[string]any{"x": int64(x)}, rev)
		}
	}
	tn.connect(1, 0)
	waitFor(t, "replicated", 15*time.Second, func() bool { return tn.converged("db") && sameDocsNow(tn, "db") })
	r := &Retention{KeepRevisions: 1, KeepFor: 2 * time.Second}
	compactPast(t, clk, r, r.KeepFor, a)
	if st, err := a.LastCompaction(); err != nil || st == nil || st.Folded == 0 {
		t.Fatalf("A folded nothing (%+v, %v): the test needs different change sets", st, err)
	}
	ia, _, err := a.reconIndex(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ib, _, err := b.reconIndex(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if fa, fb := ia.Fingerprint(bsync.Range{}), ib.Fingerprint(bsync.Range{}); fa != fb {
		t.Fatalf("reconciliation sets differ after compaction: %+v and %+v", fa, fb)
	}
	// And the replicator's checks say so, both ways.
	waitFor(t, "an in-sync reconciliation both ways", 15*time.Second, func() bool {
		r1, s1 := lastReconciled(tn, 0, 1, "db")
		r2, s2 := lastReconciled(tn, 1, 0, "db")
		return r1 && s1 && r2 && s2
	})
}
