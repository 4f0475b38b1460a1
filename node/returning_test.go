package node

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/barrel-db/barrel/crdt"
)

// simClock is a clock the test moves forward: every node of a testNet
// reads it, so a horizon of 30 days passes in no time.
type simClock struct{ offset atomic.Int64 }

func (c *simClock) now() time.Time             { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *simClock) advance(step time.Duration) { c.offset.Add(int64(step)) }

// compactPast folds a node's history up to now and past the retention
// horizon: a first run records where the feed stands, the clock moves past
// keep_for, and a second run folds what arrived before the first.
func compactPast(t *testing.T, clk *simClock, r *Retention, horizon time.Duration, dbs ...*DB) {
	t.Helper()
	for _, d := range dbs {
		mustCompact(t, d, r)
	}
	clk.advance(horizon + time.Second)
	for _, d := range dbs {
		mustCompact(t, d, r)
	}
}

// TestSnapshotReturningPeerKeepsOthersWrites is the report: S
// writes x=1, P receives it and stops; S acknowledges x=2 ... x=6 and
// compacts past the horizon; P restarts and catches up by snapshot. Both
// must read x=6: a returning peer never re-issues another author's change.
func TestSnapshotReturningPeerKeepsOthersWrites(t *testing.T) {
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
	s, p := tn.db(0, "db"), tn.db(1, "db")
	mustPut(t, s, "doc", map[string]any{"x": int64(1)}, "")
	tn.connect(0, 1)
	waitFor(t, "P receives x=1", 15*time.Second, func() bool {
		d, _ := p.Get(t.Context(), "doc")
		return d.Body["x"] == int64(1)
	})
	tn.stop(1)
	for x := 2; x <= 6; x++ {
		d := mustGet(t, s, "doc")
		mustPut(t, s, "doc", map[string]any{"x": int64(x)}, d.Rev)
	}
	r := &Retention{KeepRevisions: 1, KeepFor: 2 * time.Second}
	compactPast(t, clk, r, r.KeepFor, s)
	if base, _, err := s.readFold("doc"); err != nil || base == nil {
		t.Fatalf("S did not fold the document (%v): the scenario needs a snapshot", err)
	}
	tn.start(1)
	p = tn.db(1, "db")
	tn.connect(1, 0)
	waitFor(t, "P catches up", 20*time.Second, func() bool { return sameDocsNow(tn, "db") })
	for i, d := range []*DB{s, p} {
		got := mustGet(t, d, "doc")
		if got.Body["x"] != int64(6) || len(got.Conflicts) != 0 {
			t.Fatalf("node %d reads %v (conflicts %v), want x=6: an acknowledged write was reverted", i, got.Body, got.Conflicts)
		}
	}
}

// ackWrite is one acknowledged write of the property test: the value it
// wrote (unique in the run) and the values its writer had read at /x
// (the value and its conflicts), which it therefore saw and may replace.
type ackWrite struct {
	doc  string
	val  int64
	saw  []int64
	node int
}

// TestReturningPeersKeepAcknowledgedWrites (DESIGN.md invariant 7):
// random writers on three peers, random compactions, peers leaving and
// returning on both sides of the retention horizon (restarted while away),
// in simulated time; afterwards every peer holds byte-identical
// documents, every acknowledged write is in the state, in its _conflicts,
// or was read by a later acknowledged write that replaced it, and no
// document holds a value a later acknowledged write had replaced.
// BARREL_SEED replays a run.
func TestReturningPeersKeepAcknowledgedWrites(t *testing.T) {
	for _, tc := range []struct {
		name      string
		retention *Retention // nil: the default (10 revisions, 30 days)
		horizon   time.Duration
		writes    int
	}{
		{"two seconds", &Retention{KeepRevisions: 1, KeepFor: 2 * time.Second}, 2 * time.Second, 24},
		{"default retention", nil, DefaultRetention.KeepFor, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			if s := os.Getenv("BARREL_SEED"); s != "" {
				seed, _ = strconv.ParseUint(s, 10, 64)
			}
			t.Logf("seed %d (BARREL_SEED=%d replays it)", seed, seed)
			runReturningPeers(t, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), tc.retention, tc.horizon, tc.writes)
		})
	}
}

func runReturningPeers(t *testing.T, rng *rand.Rand, ret *Retention, horizon time.Duration, writes int) {
	const peers, docs, rounds = 3, 3, 3
	clk := &simClock{}
	tn := &testNet{t: t, part: newPartition(), now: clk.now}
	for i := range peers {
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
	connectAll := func() {
		for i := range peers {
			for j := range peers {
				if i < j {
					tn.heal(i, j)
					// A redial started while the pair was cut may still be
					// failing: a dial joined to it fails with it.
					waitFor(t, fmt.Sprintf("connect %d and %d", i, j), 10*time.Second, func() bool {
						ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
						defer cancel()
						_, err := tn.nodes[i].Connect(ctx, tn.nodes[j].Addrs()[0])
						return err == nil
					})
				}
			}
		}
	}
	connectAll()
	var acked []ackWrite
	next := int64(0)
	write := func(i int) {
		d := tn.db(i, "db")
		doc := fmt.Sprintf("d%d", rng.IntN(docs))
		cur, err := d.Get(t.Context(), doc)
		w := ackWrite{doc: doc, node: i}
		rev := ""
		if err == nil && !cur.Deleted {
			rev = cur.Rev
			if v, ok := cur.Body["x"].(int64); ok {
				w.saw = append(w.saw, v)
			}
			for _, c := range cur.Conflicts {
				if v, ok := c.Value.(int64); ok && c.Path == "/x" {
					w.saw = append(w.saw, v)
				}
			}
		}
		next++
		w.val = next
		if testing.Verbose() {
			t.Logf("write %d on node %d: %s was %v conflicts %v", w.val, i, doc, cur.Body["x"], cur.Conflicts)
		}
		res, err := d.Put(t.Context(), doc, map[string]any{"x": w.val}, rev)
		if err != nil {
			t.Fatalf("put %s on node %d: %v", doc, i, err)
		}
		// A change that arrived between the read and the write without
		// becoming the revision (it lost by clock) is a parent of the
		// write too: the write saw its value.
		for _, p := range changeOf(t, d, res.Rev).Parents {
			if !slices.Contains(cur.Revs, p.String()) {
				for _, op := range changeOf(t, d, p.String()).Ops {
					if v, ok := op.Value.(int64); ok && op.Path == "/x" {
						w.saw = append(w.saw, v)
					}
				}
			}
		}
		acked = append(acked, w)
	}
	for round := range rounds {
		away := rng.IntN(peers)
		for j := range peers {
			if j != away {
				tn.cut(away, j)
			}
		}
		for range writes {
			write(rng.IntN(peers))
		}
		t.Logf("round %d: writes up to %d", round, next)
		var here []*DB
		for j := range peers {
			if j != away {
				here = append(here, tn.db(j, "db"))
			}
		}
		// Peers in contact converge within the horizon (the assumption
		// folding rests on: docs/design.md, Compaction); the simulated
		// clock would otherwise jump past it with changes in flight.
		waitFor(t, fmt.Sprintf("round %d: the peers in contact converge", round), 30*time.Second, func() bool {
			return docsAgreeAmong(tn, "db", here...)
		})
		if testing.Verbose() {
			for _, d := range here {
				for k := range docs {
					g, _ := d.Get(t.Context(), fmt.Sprintf("d%d", k))
					t.Logf("round %d before compaction, node %s: d%d x=%v conflicts %v", round, d.node.PeerID().ShortString(), k, g.Body["x"], g.Conflicts)
				}
			}
		}
		pastHorizon := rng.IntN(3) > 0 // on both sides of the horizon
		if pastHorizon {
			compactPast(t, clk, ret, horizon, here...)
		} else {
			clk.advance(horizon / 4)
		}
		t.Logf("round %d: peer %d away, %d writes, back after the horizon: %v", round, away, writes, pastHorizon)
		tn.stop(away) // it returns restarted, as a laptop does
		tn.start(away)
		connectAll()
		waitFor(t, fmt.Sprintf("round %d: convergence", round), 60*time.Second, func() bool { return sameDocsNow(tn, "db") })
		if testing.Verbose() {
			for k := range docs {
				g, _ := tn.db(0, "db").Get(t.Context(), fmt.Sprintf("d%d", k))
				t.Logf("round %d converged: d%d x=%v conflicts %v", round, k, g.Body["x"], g.Conflicts)
			}
		}
	}
	for i, n := range tn.nodes {
		for _, reason := range []string{rejectStale, rejectParent, rejectNotWriter} {
			if c := rejectedCount(t, n, "db", reason); c > 0 {
				t.Logf("node %d rejected %v changes as %s", i, c, reason)
			}
		}
	}
	// Every write that no later write read and replaced must still be
	// seen somewhere: the state or its conflicts.
	replaced := map[int64]bool{}
	for _, w := range acked {
		for _, v := range w.saw {
			replaced[v] = true
		}
	}
	for i := range peers {
		d := tn.db(i, "db")
		for _, w := range acked {
			got := mustGet(t, d, w.doc)
			x, _ := got.Body["x"].(int64)
			if replaced[x] {
				t.Fatalf("node %d: %s reads x=%d, which a later acknowledged write replaced: a write was reverted (%+v)", i, w.doc, x, got)
			}
			if x == w.val || replaced[w.val] {
				continue
			}
			if !slices.ContainsFunc(got.Conflicts, func(c Conflict) bool { return c.Path == "/x" && c.Value == w.val }) {
				for _, a := range acked {
					if a.doc == w.doc {
						t.Logf("%s: x=%d by node %d, saw %v", a.doc, a.val, a.node, a.saw)
					}
				}
				t.Fatalf("node %d: acknowledged write x=%d of %s (by node %d) is neither the value (%d) nor in the conflicts %v",
					i, w.val, w.doc, w.node, x, got.Conflicts)
			}
		}
	}
}

// docsAgreeAmong reports whether the given databases hold byte-identical
// documents.
func docsAgreeAmong(tn *testNet, name string, dbs ...*DB) bool {
	var want map[string][]byte
	for _, d := range dbs {
		got := docsOf(tn.t, d.node, name)
		if want == nil {
			want = got
			continue
		}
		if len(got) != len(want) {
			return false
		}
		for id, v := range want {
			if !bytes.Equal(v, got[id]) {
				return false
			}
		}
	}
	return true
}

// changeOf loads one stored change of d.
func changeOf(t *testing.T, d *DB, rev string) *crdt.Change {
	t.Helper()
	id, err := crdt.ParseID(rev)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.readChange(id)
	if err != nil {
		t.Fatalf("change %s: %v", rev, err)
	}
	return c
}
