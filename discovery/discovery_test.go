package discovery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// newHost returns a libp2p host listening on loopback only.
func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// p2pAddr is h's first address with its /p2p part.
func p2pAddr(t *testing.T, h host.Host) multiaddr.Multiaddr {
	t.Helper()
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	if err != nil || len(addrs) == 0 {
		t.Fatalf("p2p addrs of %s: %v", h.ID(), err)
	}
	return addrs[0]
}

// testLogger logs at Debug to stderr with -v. Not to t.Output: libp2p's
// goroutines may log after the test returned.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newDiscovery builds a Discovery with test intervals.
func newDiscovery(t *testing.T, h host.Host, cfg Config) *Discovery {
	t.Helper()
	if cfg.Backoff.Min == 0 {
		cfg.Backoff.Min, cfg.Backoff.Max = 20*time.Millisecond, 200*time.Millisecond
	}
	if cfg.Rendezvous == 0 {
		cfg.Rendezvous = 200 * time.Millisecond
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	cfg.Logger = testLogger()
	cfg.Registerer = prometheus.NewRegistry()
	d, err := New(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// run runs d until stop is called or the test ends; stop checks that Run
// returned nil and is idempotent.
func run(t *testing.T, d *Discovery) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var err error
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		if err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an event
	}
}

func connected(a host.Host, b peer.ID) func() bool {
	return func() bool { return a.Network().Connectedness(b) == network.Connected }
}

func isKnown(d *Discovery, p peer.ID) bool {
	return slices.ContainsFunc(d.Known(), func(ai peer.AddrInfo) bool { return ai.ID == p })
}

func counter(c *prometheus.CounterVec, label string) float64 {
	var m dto.Metric
	if err := c.WithLabelValues(label).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// TestConnectPersistsAndRedials: a peer connected by hand is persisted; a
// fresh Discovery on the same datastore dials it at start, and redials it
// after a disconnect.
func TestConnectPersistsAndRedials(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	store := dssync.MutexWrap(ds.NewMapDatastore())

	d1 := newDiscovery(t, ha, Config{Datastore: store})
	ai, err := d1.Connect(t.Context(), p2pAddr(t, hb))
	if err != nil {
		t.Fatal(err)
	}
	if ai.ID != hb.ID() {
		t.Fatalf("Connect: got peer %s, want %s", ai.ID, hb.ID())
	}
	if ok, err := store.Has(t.Context(), peerKey(hb.ID())); err != nil || !ok {
		t.Fatalf("datastore has %s: got %v, %v, want true", hb.ID(), ok, err)
	}
	if !isKnown(d1, hb.ID()) {
		t.Fatal("Known lacks the connected peer")
	}
	if err := ha.Network().ClosePeer(hb.ID()); err != nil {
		t.Fatal(err)
	}

	// A restart: a fresh Discovery on the same datastore.
	d2 := newDiscovery(t, ha, Config{Datastore: store})
	run(t, d2)
	waitFor(t, 10*time.Second, "the persisted peer to be dialed at start", connected(ha, hb.ID()))
	if !isKnown(d2, hb.ID()) {
		t.Fatal("Known lacks the persisted peer")
	}

	okBefore := counter(d2.m.dials, "ok")
	if err := ha.Network().ClosePeer(hb.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the known peer to be redialed", func() bool {
		return connected(ha, hb.ID())() && counter(d2.m.dials, "ok") > okBefore
	})
}

func TestConnectErrors(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	// A loopback port with nothing listening: dials fail fast.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dead, err := multiaddr.NewMultiaddr("/ip4/127.0.0.1/tcp/" + strconv.Itoa(port) + "/p2p/" + hb.ID().String())
	if err != nil {
		t.Fatal(err)
	}
	noID := hb.Addrs()[0]
	tests := []struct {
		name    string
		addr    multiaddr.Multiaddr
		wantErr error
	}{
		{"no peer id", noID, ErrNoPeerID},
		{"self", p2pAddr(t, ha), ErrSelf},
		{"unreachable", dead, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDiscovery(t, ha, Config{DialTimeout: 2 * time.Second})
			_, err := d.Connect(t.Context(), tt.addr)
			if err == nil {
				t.Fatal("Connect: got nil error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Connect: got %v, want %v", err, tt.wantErr)
			}
			if len(d.Known()) != 0 {
				t.Fatalf("Known after a failed Connect: got %v, want none", d.Known())
			}
		})
	}
}

func TestForget(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	store := dssync.MutexWrap(ds.NewMapDatastore())
	d := newDiscovery(t, ha, Config{Datastore: store})
	if _, err := d.Connect(t.Context(), p2pAddr(t, hb)); err != nil {
		t.Fatal(err)
	}
	if err := d.Forget(hb.ID()); err != nil {
		t.Fatal(err)
	}
	if isKnown(d, hb.ID()) {
		t.Fatal("Known still has the forgotten peer")
	}
	if ok, _ := store.Has(t.Context(), peerKey(hb.ID())); ok {
		t.Fatal("datastore still has the forgotten peer")
	}
}

// TestBackoff checks the redial schedule of an unreachable known peer:
// the delay doubles after each failure up to Max.
func TestBackoff(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	addr := hb.Addrs()[0]
	id := hb.ID()
	if err := hb.Close(); err != nil {
		t.Fatal(err)
	}
	d := newDiscovery(t, ha, Config{DialTimeout: 2 * time.Second})
	d.cfg.Backoff.Min, d.cfg.Backoff.Max = time.Second, 5*time.Second
	d.mu.known[id] = &known{addrs: []multiaddr.Multiaddr{addr}, backoff: time.Second}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		before := time.Now()
		due, _ := d.due(before)
		if len(due) != 1 {
			d.mu.known[id].next = time.Time{} // make it due at once
			due, _ = d.due(before)
		}
		if len(due) != 1 {
			t.Fatalf("round %d: got %d due, want 1", i, len(due))
		}
		d.redial(t.Context(), due[0])
		k := d.mu.known[id]
		if k.backoff != w {
			t.Errorf("round %d: got backoff %v, want %v", i, k.backoff, w)
		}
		if k.next.Before(before) {
			t.Errorf("round %d: next redial %v is in the past", i, k.next)
		}
		k.next = time.Time{}
	}
	if got := counter(d.m.dials, "error"); got != float64(len(want)) {
		t.Errorf("dials{error}: got %v, want %v", got, len(want))
	}
}

// TestDHTRendezvous: B, C and D know only A; all advertise one namespace;
// B finds C and D through the DHT and connects them.
func TestDHTRendezvous(t *testing.T) {
	ha, hb, hc, hd := newHost(t), newHost(t), newHost(t), newHost(t)
	cfg := Config{DHT: true, DHTServer: true, AllowPrivateAddrs: true}
	da := newDiscovery(t, ha, cfg)
	cfg.Bootstrap = []multiaddr.Multiaddr{p2pAddr(t, ha)}
	db, dc, dd := newDiscovery(t, hb, cfg), newDiscovery(t, hc, cfg), newDiscovery(t, hd, cfg)
	const ns = "barrel/db/x"
	for _, d := range []*Discovery{da, db, dc, dd} {
		d.Advertise(ns)
		run(t, d)
	}
	waitFor(t, 5*time.Second, "the DHT to be running", func() bool { return db.Routing() != nil })
	waitFor(t, 30*time.Second, "B to find C and D by rendezvous", func() bool {
		return isKnown(db, hc.ID()) && isKnown(db, hd.ID())
	})
	for _, p := range []peer.ID{hc.ID(), hd.ID()} {
		if !connected(hb, p)() {
			t.Errorf("B not connected to %s", p)
		}
	}
	if got := counter(db.m.found, sourceDHT); got < 2 {
		t.Errorf("B peers_found{dht}: got %v, want >= 2", got)
	}
}

// discoveryGoroutines counts goroutines running this package's code.
func discoveryGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "barrel/discovery.(*Discovery)") {
			count++
		}
	}
	return count
}

// TestRunStops: Run returns nil on cancel with its loops stopped and the
// DHT closed; a second concurrent Run is refused.
func TestRunStops(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	d := newDiscovery(t, ha, Config{DHT: true, DHTServer: true, AllowPrivateAddrs: true,
		Bootstrap: []multiaddr.Multiaddr{p2pAddr(t, hb)}})
	d.Advertise("barrel/db/x")
	stop := run(t, d)
	waitFor(t, 10*time.Second, "the bootstrap peer to be dialed", connected(ha, hb.ID()))
	if err := d.Run(t.Context()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: got %v, want ErrRunning", err)
	}
	stop()
	if d.Routing() != nil {
		t.Fatal("Routing after Run returned: got a DHT, want nil")
	}
	waitFor(t, 5*time.Second, "no discovery goroutine left", func() bool { return discoveryGoroutines() == 0 })
}

func TestNewBadBootstrap(t *testing.T) {
	h := newHost(t)
	_, err := New(h, Config{Bootstrap: []multiaddr.Multiaddr{h.Addrs()[0]}})
	if !errors.Is(err, ErrNoPeerID) {
		t.Fatalf("New: got %v, want ErrNoPeerID", err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	a, _ := multiaddr.NewMultiaddr("/ip4/127.0.0.1/tcp/4001")
	b, _ := encMode.Marshal(record{Addrs: [][]byte{a.Bytes()}})
	f.Add(b)
	f.Add([]byte{0x81, 0x9f})
	const key = "/12D3KooWLnA6dEWDBPzwkdbqqC67ELQDXSrsDjNiMEcQ4Atg8pHt"
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = decodeRecord(key, data)
	})
}

// TestConnectIgnoresBackoff: a peer that was down when the user first
// asked is connected when the user asks again after it came up, without
// waiting for the swarm's dial backoff of the failed attempt.
func TestConnectIgnoresBackoff(t *testing.T) {
	ha := newHost(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	hb, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	key := hb.Peerstore().PrivKey(hb.ID())
	_ = hb.Close()
	addr, err := multiaddr.NewMultiaddr("/ip4/127.0.0.1/tcp/" + port + "/p2p/" + hb.ID().String())
	if err != nil {
		t.Fatal(err)
	}
	d := newDiscovery(t, ha, Config{DialTimeout: 2 * time.Second})
	if _, err := d.Connect(t.Context(), addr); err == nil {
		t.Fatal("Connect to a peer that is down: got nil error")
	}
	up, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/"+port), libp2p.DisableRelay())
	if err != nil {
		t.Skipf("port %s was taken meanwhile: %v", port, err)
	}
	t.Cleanup(func() { _ = up.Close() })
	if _, err := d.Connect(t.Context(), addr); err != nil {
		t.Fatalf("Connect after the peer came up: %v", err)
	}
}
