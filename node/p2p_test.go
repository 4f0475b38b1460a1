package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	bsync "github.com/barrel-db/barrel/sync"
)

// partition is the test's switchboard: which pairs of peers may connect.
// Every node of a test gets a gater bound to it.
type partition struct {
	mu      sync.Mutex
	blocked map[[2]peer.ID]bool
}

func newPartition() *partition { return &partition{blocked: map[[2]peer.ID]bool{}} }

func pair(a, b peer.ID) [2]peer.ID {
	if a > b {
		a, b = b, a
	}
	return [2]peer.ID{a, b}
}

func (p *partition) set(a, b peer.ID, blocked bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked[pair(a, b)] = blocked
}

func (p *partition) allowed(a, b peer.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.blocked[pair(a, b)]
}

// gater vets connections of one node against the partition.
type gater struct {
	p    *partition
	self atomic.Pointer[peer.ID] // set once the node is open
}

func (g *gater) ok(p peer.ID) bool {
	self := g.self.Load()
	return self == nil || g.p.allowed(*self, p)
}

func (g *gater) InterceptPeerDial(p peer.ID) bool { return g.ok(p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ multiaddr.Multiaddr) bool {
	return g.ok(p)
}
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.ok(p)
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// testNet is a set of in-process peers on 127.0.0.1 with real libp2p hosts
// and real Pebble stores.
type testNet struct {
	t     *testing.T
	part  *partition
	dirs  []string
	nodes []*Node
	mod   func(i int, c *P2PConfig) // per-peer changes to the P2P config
	now   func() time.Time          // every node's clock; nil: time.Now
}

func newTestNet(t *testing.T, k int) *testNet { return newTestNetWith(t, k, nil) }

func newTestNetWith(t *testing.T, k int, mod func(i int, c *P2PConfig)) *testNet {
	tn := &testNet{t: t, part: newPartition(), mod: mod}
	for i := range k {
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
	return tn
}

func (tn *testNet) start(i int) *Node {
	tn.t.Helper()
	g := &gater{p: tn.part}
	p2p := &P2PConfig{
		Listen:          []string{"/ip4/127.0.0.1/tcp/0"},
		NoMDNS:          true,
		NoDHT:           true,
		Debounce:        5 * time.Millisecond,
		Heartbeat:       200 * time.Millisecond,
		AntiEntropy:     300 * time.Millisecond,
		ConnectionGater: g,
	}
	if tn.mod != nil {
		tn.mod(i, p2p)
	}
	n, err := Open(context.Background(), Config{
		DataDir:    tn.dirs[i],
		Durability: "batch",
		Logger:     discardLogger(),
		P2P:        p2p,
		Now:        tn.now,
	})
	if err != nil {
		tn.t.Fatalf("open peer %d: %v", i, err)
	}
	self := n.PeerID()
	g.self.Store(&self)
	tn.nodes[i] = n
	return n
}

func (tn *testNet) stop(i int) {
	tn.nodes[i].Close()
	tn.nodes[i] = nil
}

func (tn *testNet) connect(i, j int) {
	tn.t.Helper()
	if tn.nodes[i] == nil || tn.nodes[j] == nil || i == j {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tn.nodes[i].Connect(ctx, tn.nodes[j].Addrs()[0]); err != nil {
		tn.t.Fatalf("connect %d -> %d: %v", i, j, err)
	}
}

// tryConnect dials when the partition allows it; a refused dial is part
// of the scenario.
func (tn *testNet) tryConnect(i, j int) {
	if tn.nodes[i] == nil || tn.nodes[j] == nil || i == j {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tn.nodes[i].Connect(ctx, tn.nodes[j].Addrs()[0])
}

// cut partitions i from j and closes their connections.
func (tn *testNet) cut(i, j int) {
	a, b := tn.nodes[i], tn.nodes[j]
	tn.part.set(a.PeerID(), b.PeerID(), true)
	a.net.Load().host.Network().ClosePeer(b.PeerID())
	b.net.Load().host.Network().ClosePeer(a.PeerID())
}

func (tn *testNet) heal(i, j int) {
	tn.part.set(tn.nodes[i].PeerID(), tn.nodes[j].PeerID(), false)
}

func (tn *testNet) createDB(name string) {
	for _, n := range tn.nodes {
		if err := n.CreateDB(context.Background(), name); err != nil {
			tn.t.Fatal(err)
		}
	}
}

func (tn *testNet) db(i int, name string) *DB {
	d, err := tn.nodes[i].DB(name)
	if err != nil {
		tn.t.Fatal(err)
	}
	return d
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// converged reports whether every running node holds the same change set.
func (tn *testNet) converged(name string) bool {
	var first []byte
	for i, n := range tn.nodes {
		if n == nil {
			continue
		}
		x, c := tn.db(i, name).changesDigest()
		cur := append(x[:], byte(c), byte(c>>8), byte(c>>16))
		if first == nil {
			first = cur
		} else if !bytes.Equal(first, cur) {
			return false
		}
	}
	return true
}

// sameDocs asserts byte-identical document states on every running node.
func (tn *testNet) sameDocs(name string) map[string][]byte {
	tn.t.Helper()
	want, diff := tn.docsAgree(name)
	if diff != "" {
		tn.t.Fatal(diff)
	}
	return want
}

// docsAgree compares every running node's documents with the first one's:
// the documents, and "" or what differs.
func (tn *testNet) docsAgree(name string) (map[string][]byte, string) {
	var want map[string][]byte
	for i, n := range tn.nodes {
		if n == nil {
			continue
		}
		got := docsOf(tn.t, n, name)
		if want == nil {
			want = got
			continue
		}
		if len(got) != len(want) {
			return want, fmt.Sprintf("node %d holds %d documents, want %d", i, len(got), len(want))
		}
		for id, v := range want {
			if !bytes.Equal(v, got[id]) {
				return want, fmt.Sprintf("node %d: document %s differs", i, id)
			}
		}
	}
	return want, ""
}

func TestReplicationTransitive(t *testing.T) {
	tn := newTestNet(t, 3)
	tn.createDB("db")
	tn.connect(0, 1)
	tn.connect(1, 2) // A - B - C: A and C never meet
	ctx := t.Context()
	mustPut(t, tn.db(0, "db"), "from-a", map[string]any{"v": "a"}, "")
	mustPut(t, tn.db(2, "db"), "from-c", map[string]any{"v": "c"}, "")
	waitFor(t, "every peer to hold both documents", 15*time.Second, func() bool {
		for i := range 3 {
			for _, id := range []string{"from-a", "from-c"} {
				if _, err := tn.db(i, "db").Get(ctx, id); err != nil {
					return false
				}
			}
		}
		return true
	})
	if tn.nodes[0].net.Load().host.Network().Connectedness(tn.nodes[2].PeerID()) == network.Connected {
		t.Fatal("A and C connected directly; the test wants them apart")
	}
	waitFor(t, "convergence", 10*time.Second, func() bool { return tn.converged("db") })
	tn.sameDocs("db")
	waitFor(t, "B's view of its peers to settle", 10*time.Second, func() bool {
		st, err := tn.nodes[1].ReplicationState("db")
		if err != nil || len(st.Peers) != 2 {
			return false
		}
		for _, p := range st.Peers {
			if p.Lag != 0 || p.LastSync.IsZero() || p.LastError != "" {
				return false
			}
		}
		return true
	})
	peers, err := tn.nodes[1].Peers()
	if err != nil || len(peers) != 2 || len(peers[0].DBs) != 1 || len(peers[0].Addrs) == 0 {
		t.Fatalf("B's peers: %+v, %v", peers, err)
	}
	mfs, _ := tn.nodes[1].Gatherer().Gather()
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "barrel_sync_lag_changes"
	}
	if !found {
		t.Error("no barrel_sync_lag_changes metric")
	}
}

func TestPartialViewPeer(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.createDB("db")
	ctx := t.Context()
	if err := tn.nodes[1].SetReplication(ctx, "db", Replication{IDPrefix: "keep-"}); err != nil {
		t.Fatal(err)
	}
	a := tn.db(0, "db")
	for i := range 20 {
		mustPut(t, a, fmt.Sprintf("keep-%d", i), map[string]any{"i": i}, "")
		mustPut(t, a, fmt.Sprintf("drop-%d", i), map[string]any{"i": i}, "")
	}
	tn.connect(1, 0)
	b := tn.db(1, "db")
	waitFor(t, "the partial view to pull A's feed", 15*time.Second, func() bool {
		cp, _ := syncStore{tn.nodes[1]}.Checkpoint(ctx, "db", tn.nodes[0].PeerID())
		info, _ := a.Info(ctx)
		return cp >= info.UpdateSeq
	})
	list, _ := b.List(ctx, ListOptions{Limit: 1000})
	if len(list) != 20 {
		t.Fatalf("partial view holds %d documents, want the 20 keep-*", len(list))
	}
	for _, d := range list {
		if d.ID[:5] != "keep-" {
			t.Fatalf("partial view holds %s", d.ID)
		}
	}
}

// TestDHTRendezvous: peers that know only one bootstrap peer find each
// other through the DHT rendezvous of a database they share, and replicate.
func TestDHTRendezvous(t *testing.T) {
	var boot string
	tn := newTestNetWith(t, 1, func(i int, c *P2PConfig) {
		c.NoDHT, c.AllowPrivateAddrs = false, true
		c.Rendezvous = 200 * time.Millisecond
		if boot != "" {
			c.Bootstrap = []string{boot}
		}
	})
	boot = tn.nodes[0].Addrs()[0]
	for i := 1; i <= 3; i++ {
		tn.dirs = append(tn.dirs, t.TempDir())
		tn.nodes = append(tn.nodes, nil)
		tn.start(i)
	}
	tn.createDB("shared")
	host := func(i int) interface {
		Connectedness(peer.ID) network.Connectedness
	} {
		return tn.nodes[i].net.Load().host.Network()
	}
	waitFor(t, "peers 1..3 to find each other through the DHT", 20*time.Second, func() bool {
		for i := 1; i <= 3; i++ {
			for j := 1; j <= 3; j++ {
				if i != j && host(i).Connectedness(tn.nodes[j].PeerID()) != network.Connected {
					return false
				}
			}
		}
		return true
	})
	mustPut(t, tn.db(3, "shared"), "hello", map[string]any{"from": 3}, "")
	waitFor(t, "the write to reach every peer", 15*time.Second, func() bool {
		for i := range 4 {
			if _, err := tn.db(i, "shared").Get(t.Context(), "hello"); err != nil {
				return false
			}
		}
		return true
	})
}

// TestOfflineReconciliation: two peers diverge while apart (disjoint edits,
// same-field conflicts, a delete against an update, a multi-document
// transaction) and converge to identical documents and conflicts.
func TestOfflineReconciliation(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.createDB("db")
	tn.connect(0, 1)
	ctx := t.Context()
	a, b := tn.db(0, "db"), tn.db(1, "db")
	for _, id := range []string{"disjoint", "same", "deleted"} {
		mustPut(t, a, id, map[string]any{"x": 0, "y": 0}, "")
	}
	waitFor(t, "initial sync", 15*time.Second, func() bool { return tn.converged("db") })
	tn.cut(0, 1)

	mustPut(t, a, "disjoint", map[string]any{"x": 1, "y": 0}, "")
	mustPut(t, b, "disjoint", map[string]any{"x": 0, "y": 1}, "")
	mustPut(t, a, "same", map[string]any{"x": "from-a", "y": 0}, "")
	mustPut(t, b, "same", map[string]any{"x": "from-b", "y": 0}, "")
	if _, err := a.Delete(ctx, "deleted", ""); err != nil {
		t.Fatal(err)
	}
	mustPut(t, b, "deleted", map[string]any{"x": 0, "y": "kept"}, "")
	if _, err := a.Bulk(ctx, []DocOp{{ID: "tx-1", Body: map[string]any{"n": 1}}, {ID: "tx-2", Body: map[string]any{"n": 2}}}, true); err != nil {
		t.Fatal(err)
	}
	if tn.converged("db") {
		t.Fatal("peers converged while partitioned")
	}
	tn.heal(0, 1)
	tn.connect(0, 1)
	waitFor(t, "reconciliation", 15*time.Second, func() bool { return tn.converged("db") })
	tn.sameDocs("db")

	for _, n := range []*DB{a, b} {
		if d := mustGet(t, n, "disjoint"); d.Body["x"] != int64(1) || d.Body["y"] != int64(1) {
			t.Errorf("disjoint edits: %v", d.Body)
		}
		d := mustGet(t, n, "same")
		if len(d.Conflicts) != 1 || d.Conflicts[0].Path != "/x" {
			t.Errorf("same-field edits: body %v conflicts %v, want one conflict on /x", d.Body, d.Conflicts)
		}
		if d := mustGet(t, n, "deleted"); d.Deleted || d.Body["y"] != "kept" || len(d.Conflicts) != 1 || !d.Conflicts[0].Deleted {
			t.Errorf("delete against update: %+v", d)
		}
		for _, id := range []string{"tx-1", "tx-2"} {
			if _, err := n.Get(ctx, id); err != nil {
				t.Errorf("transaction document %s: %v", id, err)
			}
		}
	}
}

// TestChaos runs the chaos scenario on a fresh random seed; FuzzChaos runs
// it on its corpus (go test) or new seeds (go test -fuzz FuzzChaos), so a
// failing seed is kept in testdata/fuzz and replays.
func TestChaos(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("BARREL_CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (replay with BARREL_CHAOS_SEED=%d)", seed, seed)
	chaos(t, seed)
}

func FuzzChaos(f *testing.F) {
	for _, s := range []uint64{1, 2, 3} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed uint64) { chaos(t, seed) })
}

// chaos: 5 peers, random writes, random partitions and heals, restarts of
// peers; after the final heal every peer holds the same documents, byte
// for byte, and no acknowledged write is lost.
func chaos(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed))
	const k = 5
	tn := newTestNet(t, k)
	tn.createDB("db")
	for i := range k {
		tn.connect(i, (i+1)%k)
	}
	ctx := t.Context()
	acked := map[string]string{} // doc id -> a revision that was acknowledged
	for step := range 150 {
		i := rng.IntN(k)
		if tn.nodes[i] == nil {
			tn.start(i)
			tn.tryConnect(i, (i+1)%k)
			continue
		}
		switch r := rng.IntN(20); {
		case r < 13:
			id := fmt.Sprintf("d%d", rng.IntN(15))
			var err error
			var res Result
			if rng.IntN(5) == 0 {
				res, err = tn.db(i, "db").Patch(ctx, id, Patch{Incr: map[string]any{"/n": 1}})
				if errors.Is(err, ErrNotFound) {
					continue
				}
			} else {
				res, err = tn.db(i, "db").Put(ctx, id, map[string]any{"f": rng.IntN(4), "by": i, "step": step}, "")
			}
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			acked[id] = res.Rev
		case r < 16:
			j := rng.IntN(k)
			if j != i && tn.nodes[j] != nil {
				tn.cut(i, j)
			}
		case r < 18:
			for j := range k {
				if j != i && tn.nodes[j] != nil {
					tn.heal(i, j)
					tn.tryConnect(i, j)
				}
			}
		default:
			tn.stop(i)
		}
	}
	for i := range k {
		if tn.nodes[i] == nil {
			tn.start(i)
		}
	}
	for i := range k {
		for j := range k {
			if i != j {
				tn.heal(i, j)
			}
		}
	}
	for i := range k {
		tn.connect(i, (i+1)%k)
	}
	waitFor(t, "convergence after heal", 30*time.Second, func() bool { return tn.converged("db") })
	tn.sameDocs("db")
	d := tn.db(0, "db")
	for id, rev := range acked {
		hist, err := d.History(ctx, id)
		if err != nil {
			t.Fatalf("acknowledged document %s lost: %v", id, err)
		}
		found := false
		for _, h := range hist {
			found = found || h.Rev == rev
		}
		if !found {
			t.Errorf("acknowledged revision %s of %s lost", rev, id)
		}
	}
}

func TestNetworkInputErrors(t *testing.T) {
	tn := newTestNet(t, 1)
	tn.createDB("db")
	n := tn.nodes[0]
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"filter with an unknown op", n.SetReplication(ctx, "db", Replication{Where: []Cond{{Path: "/x", Op: "~", Value: 1}}}), ErrInvalid},
		{"filter with a bad path", n.SetReplication(ctx, "db", Replication{Where: []Cond{{Path: "x", Op: "==", Value: 1}}}), ErrInvalid},
		{"filter on a missing db", n.SetReplication(ctx, "nope", Replication{}), ErrDBNotFound},
		{"connect to self", func() error { _, err := n.Connect(ctx, n.Addrs()[0]); return err }(), ErrInvalid},
		{"connect without /p2p", func() error { _, err := n.Connect(ctx, "/ip4/127.0.0.1/tcp/1"); return err }(), ErrInvalid},
		{"connect to nobody", func() error {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := n.Connect(c, "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDQqJMxZW2dQh8toc6Ra2i9FY13ZYB5zShCZsnvZy7X5T")
			return err
		}(), ErrDialFailed},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if r := tn.db(0, "db").Replication(); r.IDPrefix != "" || len(r.Where) != 0 {
		t.Errorf("a rejected setting was stored: %+v", r)
	}
	offline := openTestNode(t, t.TempDir(), nil)
	if _, err := offline.Peers(); !errors.Is(err, ErrNoNetwork) {
		t.Errorf("peers without networking: %v", err)
	}
}

// TestHostileSyncPeer: a peer that sends garbage, oversized frames or
// nothing at all on the sync protocol gets its streams reset or timed out,
// and the node keeps replicating with everyone else.
func TestHostileSyncPeer(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.createDB("db")
	target := tn.nodes[0]
	evil, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	ctx := t.Context()
	ai := peer.AddrInfo{ID: target.PeerID(), Addrs: target.net.Load().host.Addrs()}
	if err := evil.Connect(ctx, ai); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"garbage", []byte("\x05hello this is not cbor at all")},
		{"oversized length", binary.AppendUvarint(nil, 1<<40)},
		{"length without body", binary.AppendUvarint(nil, 1<<20)},
		{"zero length", []byte{0}},
	} {
		s, err := evil.NewStream(ctx, target.PeerID(), bsync.ProtocolID)
		if err != nil {
			t.Fatalf("%s: open stream: %v", tc.name, err)
		}
		s.SetDeadline(time.Now().Add(5 * time.Second))
		s.Write(tc.data)
		s.CloseWrite()
		// The node answers with an error frame and/or resets the stream; it
		// must not leave it hanging until our deadline.
		start := time.Now()
		_, err = io.ReadAll(s)
		if os.IsTimeout(err) || time.Since(start) > 4*time.Second {
			t.Errorf("%s: the node kept the stream open (%v)", tc.name, err)
		}
		s.Close()
	}
	// The node still replicates.
	tn.connect(1, 0)
	mustPut(t, tn.db(1, "db"), "after-attack", map[string]any{"ok": true}, "")
	waitFor(t, "replication after the hostile streams", 15*time.Second, func() bool {
		_, err := tn.db(0, "db").Get(ctx, "after-attack")
		return err == nil
	})
}

// TestPrivateNetwork: peers holding the same swarm key connect and sync;
// a peer without a key, or with another one, cannot connect in either
// direction and no document crosses.
func TestPrivateNetwork(t *testing.T) {
	keyA := bytes.Repeat([]byte{0xa1}, SwarmKeyBytes)
	keyB := bytes.Repeat([]byte{0xb2}, SwarmKeyBytes)
	// Peers 0 and 1 share key A, peer 2 has none, peer 3 has key B.
	tn := newTestNetWith(t, 4, func(i int, c *P2PConfig) {
		switch i {
		case 0, 1:
			c.SwarmKey = keyA
		case 3:
			c.SwarmKey = keyB
		}
	})
	tn.createDB("db")
	ctx := t.Context()
	for i := range 4 {
		mustPut(t, tn.db(i, "db"), "from-"+strconv.Itoa(i), map[string]any{"v": i}, "")
	}
	tn.connect(0, 1)
	waitFor(t, "the two members to hold each other's document", 15*time.Second, func() bool {
		_, err0 := tn.db(0, "db").Get(ctx, "from-1")
		_, err1 := tn.db(1, "db").Get(ctx, "from-0")
		return err0 == nil && err1 == nil
	})

	for _, tc := range []struct {
		name string
		i, j int
	}{
		{"no key dials a member", 2, 0},
		{"a member dials no key", 0, 2},
		{"another key dials a member", 3, 1},
		{"a member dials another key", 1, 3},
		{"no key dials another key", 2, 3},
	} {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := tn.nodes[tc.i].Connect(c, tn.nodes[tc.j].Addrs()[0])
		cancel()
		if err == nil {
			t.Errorf("%s: connect %d -> %d succeeded, want an error", tc.name, tc.i, tc.j)
		}
	}
	for i, n := range tn.nodes {
		peers, err := n.Peers()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range peers {
			if (i < 2) != (p.ID == tn.nodes[0].PeerID().String() || p.ID == tn.nodes[1].PeerID().String()) {
				t.Errorf("peer %d is connected to %s across the private network's edge", i, p.ID)
			}
		}
	}
	// Documents only ever crossed between the members.
	for i := range 4 {
		got := docsOf(t, tn.nodes[i], "db")
		want := 1
		if i < 2 {
			want = 2
		}
		if len(got) != want {
			t.Errorf("peer %d holds %d documents, want %d", i, len(got), want)
		}
	}
}
