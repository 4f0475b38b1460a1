package sync

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	"pgregory.net/rapid"

	"github.com/barrel-db/barrel/crdt"
)

// reconMem is a memStore that reconciles: its index is caught up from
// its feed on each use, as node's is.
type reconMem struct {
	*memStore
	mu  sync.Mutex
	idx map[string]*ReconIndex
}

func newReconMem(t testing.TB) *reconMem {
	return &reconMem{memStore: newMemStore(t), idx: map[string]*ReconIndex{}}
}

func (s *reconMem) ReconIndex(ctx context.Context, db string) (*ReconIndex, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.memStore.mu.Lock()
	defer s.memStore.mu.Unlock()
	d := s.memStore.mu.dbs[db]
	if d == nil {
		return nil, 0, ErrNoDB
	}
	x := s.idx[db]
	if x == nil {
		x = NewReconIndex()
		s.idx[db] = x
	}
	for _, e := range d.feed[x.Seq():] {
		x.Put(e.Doc, d.heads[e.Doc])
	}
	x.SetSeq(uint64(len(d.feed)))
	return x, x.Seq(), nil
}

func (s *reconMem) Heads(ctx context.Context, db string, docs []string) ([][]crdt.ID, error) {
	s.memStore.mu.Lock()
	defer s.memStore.mu.Unlock()
	d := s.memStore.mu.dbs[db]
	if d == nil {
		return nil, ErrNoDB
	}
	out := make([][]crdt.ID, len(docs))
	for i, doc := range docs {
		out[i] = slices.Clone(d.heads[doc])
	}
	return out, nil
}

// heads returns every document's sorted heads.
func (s *reconMem) heads(db string) map[string]string {
	s.memStore.mu.Lock()
	defer s.memStore.mu.Unlock()
	out := map[string]string{}
	for doc, hs := range s.memStore.mu.dbs[db].heads {
		ss := make([]string, len(hs))
		for i, h := range hs {
			ss[i] = h.String()
		}
		slices.Sort(ss)
		out[doc] = fmt.Sprint(ss)
	}
	return out
}

// reconSwap lets one long-lived server serve a fresh reconMem per run.
type reconSwap struct {
	swapStore
	r atomic.Pointer[reconMem]
}

func (s *reconSwap) set(r *reconMem) { s.r.Store(r); s.p.Store(r.memStore) }

func (s *reconSwap) ReconIndex(ctx context.Context, db string) (*ReconIndex, uint64, error) {
	return s.r.Load().ReconIndex(ctx, db)
}

func (s *reconSwap) Heads(ctx context.Context, db string, docs []string) ([][]crdt.ID, error) {
	return s.r.Load().Heads(ctx, db, docs)
}

// reconPair is two hosts serving swappable reconciling stores.
type reconPair struct {
	hosts  [2]host.Host
	stores [2]*reconSwap
}

func newReconPair(t *testing.T) *reconPair {
	p := &reconPair{}
	for i := range p.hosts {
		p.hosts[i] = newHost(t)
		p.stores[i] = new(reconSwap)
		p.stores[i].set(newReconMem(t))
		serve(t, p.hosts[i], p.stores[i], Config{})
	}
	connect(t, p.hosts[0], p.hosts[1])
	return p
}

// sync makes i reconcile with j (falling back to version 1 as the
// replicator does) and returns the stats.
func (p *reconPair) sync(t *testing.T, f fataler, i, j int) Stats {
	c := NewClient(p.hosts[i], p.stores[i], Config{Logger: testLogger(t)})
	st, err := c.pullReconciled(t.Context(), p.hosts[j].ID(), "db", nil, nil)
	if err != nil {
		f.Fatal(fmt.Sprintf("%d reconciles with %d: %v", i, j, err))
	}
	return st
}

// fill writes the test's sets: shared documents (the same changes in
// both stores), documents only one side holds, and shared documents one
// side wrote more to. It returns the number of documents whose items
// differ.
func fill(t fataler, a, b *reconMem, shared, onlyA, onlyB, aheadA, aheadB int) int {
	author := a.memStore
	for i := range shared {
		c := author.seal(t, "db", fmt.Sprintf("s%07d", i), nil, int64(i+1), i)
		a.insert("db", c)
		b.insert("db", c)
	}
	for i := range onlyA {
		a.put(t, "db", fmt.Sprintf("a%05d", i), i)
	}
	for i := range onlyB {
		b.put(t, "db", fmt.Sprintf("b%05d", i), i)
	}
	for i := range min(aheadA, shared) {
		a.put(t, "db", fmt.Sprintf("s%07d", i), "a")
	}
	for i := range min(aheadB, shared) {
		b.put(t, "db", fmt.Sprintf("s%07d", shared-1-i), "b")
	}
	return onlyA + onlyB + min(aheadA, shared) + min(aheadB, shared)
}

// reconRoundsBound and reconBytesBound are the bounds docs/sync-protocol.md
// states for a difference of d documents in a set of n: rounds ≤
// ceil(log16 n) + 2 while the differing ranges of a level fit one request
// (d ≤ MaxReconRanges), and bytes of the reconciliation (both ways, bodies
// not counted) ≤ 160·(d+1)·(ceil(log16 n)+2).
func reconRoundsBound(n int) int {
	return int(math.Ceil(math.Log(float64(max(n, 16)))/math.Log(16))) + 2
}

func reconBytesBound(n, d int) int64 {
	return int64(160 * (d + 1) * reconRoundsBound(n))
}

// checkUnion checks that both stores hold the same changes and heads.
func checkUnion(t fataler, a, b *reconMem) {
	t.Helper()
	if ga, gb := a.ids("db"), b.ids("db"); !slices.Equal(ga, gb) {
		t.Fatal(fmt.Sprintf("stores hold %d and %d changes", len(ga), len(gb)))
	}
	ha, hb := a.heads("db"), b.heads("db")
	for doc, h := range ha {
		if hb[doc] != h {
			t.Fatal(fmt.Sprintf("document %s: heads %s and %s", doc, h, hb[doc]))
		}
	}
	if len(ha) != len(hb) {
		t.Fatal(fmt.Sprintf("stores hold %d and %d documents", len(ha), len(hb)))
	}
}

// Random sets on two stores, from identical to disjoint: after each
// reconciles with the other both hold the union, within the rounds and
// bytes the protocol documents; a second reconciliation finds them in
// sync in one round.
func TestPropertyReconcile(t *testing.T) {
	p := newReconPair(t)
	rapid.Check(t, func(rt *rapid.T) {
		a, b := newReconMem(t), newReconMem(t)
		a.createDB("db")
		b.createDB("db")
		p.stores[0].set(a)
		p.stores[1].set(b)
		shared := rapid.IntRange(0, 3000).Draw(rt, "shared")
		small := rapid.IntRange(0, 40)
		if rapid.IntRange(0, 4).Draw(rt, "mode") == 0 { // disjoint-ish
			small = rapid.IntRange(0, 600)
		}
		d := fill(rt, a, b, shared, small.Draw(rt, "onlyA"), small.Draw(rt, "onlyB"),
			small.Draw(rt, "aheadA"), small.Draw(rt, "aheadB"))
		n := shared + d
		for _, ij := range [][2]int{{1, 0}, {0, 1}} {
			st := p.sync(t, rt, ij[0], ij[1])
			if !st.Reconciled {
				continue // an empty side, or a difference past the bounds: version 1
			}
			if d <= MaxReconRanges/16 && st.Rounds > reconRoundsBound(n) {
				rt.Fatalf("%v: %d rounds for %d differences in %d, bound %d", ij, st.Rounds, d, n, reconRoundsBound(n))
			}
			if got := st.ReconBytes + st.SentBytes; got > reconBytesBound(n, d) {
				rt.Fatalf("%v: %d bytes for %d differences in %d, bound %d", ij, got, d, n, reconBytesBound(n, d))
			}
		}
		checkUnion(rt, a, b)
		if a.count("db") > 0 {
			if st := p.sync(t, rt, 1, 0); !st.InSync || st.Rounds != 1 {
				rt.Fatalf("after the union: in sync %v in %d rounds", st.InSync, st.Rounds)
			}
		}
	})
}

// 100,000 shared documents and a few hundred differences: both end with
// the union within the bounds, and an in-sync check costs one round trip
// of a few dozen bytes.
func TestReconcileLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("seals 100,000 changes")
	}
	p := newReconPair(t)
	a, b := newReconMem(t), newReconMem(t)
	a.createDB("db")
	b.createDB("db")
	p.stores[0].set(a)
	p.stores[1].set(b)
	const n = 100_000
	d := fill(t, a, b, n, 100, 100, 20, 20)
	for _, ij := range [][2]int{{1, 0}, {0, 1}} {
		st := p.sync(t, t, ij[0], ij[1])
		t.Logf("%v: rounds %d, recon bytes %d received + %d sent, docs %d, applied %d, all bytes %d",
			ij, st.Rounds, st.ReconBytes, st.SentBytes, st.Docs, st.Applied, st.Bytes)
		if !st.Reconciled || st.Rounds > reconRoundsBound(n) {
			t.Fatalf("reconciled %v in %d rounds, bound %d", st.Reconciled, st.Rounds, reconRoundsBound(n))
		}
		if got := st.ReconBytes + st.SentBytes; got > reconBytesBound(n, d) {
			t.Fatalf("%d bytes, bound %d", got, reconBytesBound(n, d))
		}
	}
	checkUnion(t, a, b)
	st := p.sync(t, t, 1, 0)
	t.Logf("in sync: rounds %d, bytes %d received + %d sent", st.Rounds, st.ReconBytes, st.SentBytes)
	if !st.InSync || st.Rounds != 1 || st.ReconBytes+st.SentBytes > 200 {
		t.Fatalf("in-sync check: in sync %v, %d rounds, %d bytes", st.InSync, st.Rounds, st.ReconBytes+st.SentBytes)
	}
}

// A client whose peer serves only version 1 falls back to it; a server
// serves version 1 to a client that speaks only it.
func TestReconcileFallsBackToV1(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	a, b := newReconMem(t), newReconMem(t)
	a.createDB("db")
	b.createDB("db")
	fill(t, a, b, 200, 10, 10, 5, 5)
	serve(t, ha, a.memStore, Config{}) // version 1 only
	serve(t, hb, b, Config{})
	connect(t, ha, hb)
	c := NewClient(hb, b, Config{Logger: testLogger(t)})
	st, err := c.pullReconciled(t.Context(), ha.ID(), "db", nil, nil)
	if err != nil || st.Reconciled {
		t.Fatalf("pull from a version 1 server: reconciled %v, err %v", st.Reconciled, err)
	}
	old := NewClient(ha, a.memStore, Config{Logger: testLogger(t)}) // version 1 only
	if _, err := old.Pull(t.Context(), hb.ID(), "db", nil); err != nil {
		t.Fatalf("version 1 pull from a version 2 server: %v", err)
	}
	checkUnion(t, a, b)
}

// The index's fingerprints are those of its items, whatever the order of
// puts and removes, at every depth.
func TestReconIndexFingerprints(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		x := NewReconIndex()
		want := map[string][]crdt.ID{}
		for range rapid.IntRange(0, 300).Draw(rt, "ops") {
			doc := fmt.Sprintf("d%d", rapid.IntRange(0, 100).Draw(rt, "doc"))
			if rapid.IntRange(0, 3).Draw(rt, "remove") == 0 {
				x.Remove(doc)
				delete(want, doc)
				continue
			}
			h := crdt.ID{byte(rapid.IntRange(0, 255).Draw(rt, "head"))}
			x.Put(doc, []crdt.ID{h})
			want[doc] = []crdt.ID{h}
		}
		if x.Len() != len(want) {
			rt.Fatalf("len %d, want %d", x.Len(), len(want))
		}
		depth := uint8(rapid.IntRange(0, 6).Draw(rt, "depth"))
		r := Range{Depth: depth, Path: rapid.Uint64Range(0, 1<<(4*uint(depth))-1).Draw(rt, "path")}
		var f Fingerprint
		for doc, hs := range want {
			if it := newItem(doc, hs); r.contains(it.key) {
				f.add(it)
			}
		}
		if got := x.Fingerprint(r); got != f {
			rt.Fatalf("range %v: fingerprint %+v, want %+v", r, got, f)
		}
		if r.Depth < MaxReconDepth {
			cs := x.Children(r)
			for i, c := range cs {
				if c != x.Fingerprint(r.child(i)) {
					rt.Fatalf("range %v: child %d %+v, want %+v", r, i, c, x.Fingerprint(r.child(i)))
				}
			}
		}
		if items, ok := x.items(r, 1000); !ok || uint64(len(items)) != f.Count {
			rt.Fatalf("range %v: %d items (ok %v), want %d", r, len(items), ok, f.Count)
		}
	})
}

// notReady is a reconciling store whose set is still being built.
type notReady struct {
	*reconMem
	ready atomic.Bool
}

func (s *notReady) ReconReady(string) bool { return s.ready.Load() }

// A server whose set is not built yet does not make its clients wait for
// the scan: it answers ErrReconNotReady. A client with a checkpoint of it
// lists its feed after the checkpoint instead (version 1) and gets what it
// lacks; one without fails the session (to retry later) rather than list
// the whole feed. Once the set is built, reconciliation runs as before.
func TestReconcileServerNotReady(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	a := newReconMem(t)
	b := &notReady{reconMem: newReconMem(t)}
	a.createDB("db")
	b.createDB("db")
	fill(t, a, b.reconMem, 100, 0, 10, 0, 0)
	serve(t, hb, b, Config{})
	connect(t, ha, hb)
	c := NewClient(ha, a, Config{Logger: testLogger(t)})
	before := a.count("db")
	if _, err := c.pullReconciled(t.Context(), hb.ID(), "db", nil, nil); !errors.Is(err, ErrReconNotReady) {
		t.Fatalf("no checkpoint, the server's set not built: %v, want ErrReconNotReady", err)
	}
	if n := a.count("db"); n != before {
		t.Fatalf("the refused session applied %d changes", n-before)
	}
	if err := a.SetCheckpoint(t.Context(), "db", hb.ID(), 100); err != nil { // the shared documents' feed
		t.Fatal(err)
	}
	st, err := c.pullReconciled(t.Context(), hb.ID(), "db", nil, nil)
	if err != nil || st.Reconciled || st.Applied != 10 {
		t.Fatalf("with a checkpoint: reconciled %v, applied %d, err %v; want version 1 and the 10 changes", st.Reconciled, st.Applied, err)
	}
	checkUnion(t, a, b.reconMem)
	b.ready.Store(true)
	b.put(t, "db", "late", 1)
	if err := a.SetCheckpoint(t.Context(), "db", hb.ID(), 0); err != nil {
		t.Fatal(err)
	}
	if st, err := c.pullReconciled(t.Context(), hb.ID(), "db", nil, nil); err != nil || !st.Reconciled {
		t.Fatalf("the set built: reconciled %v, err %v", st.Reconciled, err)
	}
	checkUnion(t, a, b.reconMem)
}
