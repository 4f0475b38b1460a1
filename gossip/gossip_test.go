package gossip

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
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

func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	if err := a.Connect(t.Context(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// testLogger logs at Debug to stderr with -v. Not to t.Output: pubsub's
// goroutines may log after the test returned.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newGossip builds a Gossip on h whose router lives until the test ends
// (before h closes: cleanups run last-in first-out). Build it before h
// connects to its peers: a router created after a connection may miss the
// peer (its stream open fails before the remote router exists).
func newGossip(t *testing.T, h host.Host, cfg Config) *Gossip {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg.Logger = testLogger()
	cfg.Registerer = prometheus.NewRegistry()
	g, err := New(ctx, h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// run runs g until the test ends and checks that Run returned nil.
func run(t *testing.T, g *Gossip) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
	})
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
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

// receive returns the first announcement from `from` that satisfies match,
// failing the test after within.
func receive(t *testing.T, g *Gossip, from peer.ID, within time.Duration, match func(Announcement) bool) Announcement {
	t.Helper()
	a, _ := receiveVia(t, g, from, within, match)
	return a
}

// receiveVia is receive that also returns the delivering peer.
func receiveVia(t *testing.T, g *Gossip, from peer.ID, within time.Duration, match func(Announcement) bool) (Announcement, peer.ID) {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case r := <-g.Announcements():
			if r.From == from && match(r.Ann) {
				return r.Ann, r.Via
			}
		case <-timer.C:
			t.Fatalf("no matching announcement from %s within %v", from, within)
		}
	}
}

func hasPeer(g *Gossip, db string, p peer.ID) func() bool {
	return func() bool { return slices.Contains(g.Peers(db), p) }
}

// TestLine checks that, with Relay, an announcement travels A to C through
// B when A and C are not connected.
func TestLine(t *testing.T) {
	ha, hb, hc := newHost(t), newHost(t), newHost(t)
	cfg := Config{Debounce: 5 * time.Millisecond, Heartbeat: 200 * time.Millisecond, Mesh: Mesh{Relay: true}}
	ga, gb, gc := newGossip(t, ha, cfg), newGossip(t, hb, cfg), newGossip(t, hc, cfg)
	connect(t, ha, hb)
	connect(t, hb, hc)
	for _, g := range []*Gossip{ga, gb, gc} {
		if err := g.Join("db"); err != nil {
			t.Fatal(err)
		}
		run(t, g)
	}
	waitFor(t, 10*time.Second, "B to see A and C on the topic", func() bool {
		return hasPeer(gb, "db", ha.ID())() && hasPeer(gb, "db", hc.ID())()
	})
	if ha.Network().Connectedness(hc.ID()) == network.Connected {
		t.Fatal("A and C are connected; the test needs a line")
	}

	want := Announcement{DB: "db", Seq: 42, Digest: digest(7), Changes: 40}
	ga.Notify("db", want)
	for name, g := range map[string]*Gossip{"B": gb, "C": gc} {
		got, via := receiveVia(t, g, ha.ID(), 20*time.Second, func(a Announcement) bool { return a.Seq == 42 })
		if wantVia := map[string]peer.ID{"B": ha.ID(), "C": hb.ID()}[name]; via != wantVia {
			t.Errorf("%s: got Via %s, want %s", name, via, wantVia)
		}
		if got.DB != want.DB || got.Changes != want.Changes || !bytes.Equal(got.Digest, want.Digest) {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	if n := value(gb.m.received); n < 1 {
		t.Errorf("B received_total: got %v, want >= 1", n)
	}
}

// TestNeighbours checks the default mesh: in a line A - B - C, B hears A
// and C, but C does not hear A through B, only B's own announcements.
func TestNeighbours(t *testing.T) {
	ha, hb, hc := newHost(t), newHost(t), newHost(t)
	cfg := Config{Debounce: 5 * time.Millisecond, Heartbeat: -1}
	ga, gb, gc := newGossip(t, ha, cfg), newGossip(t, hb, cfg), newGossip(t, hc, cfg)
	connect(t, ha, hb)
	connect(t, hb, hc)
	for _, g := range []*Gossip{ga, gb, gc} {
		if err := g.Join("db"); err != nil {
			t.Fatal(err)
		}
		run(t, g)
	}
	waitFor(t, 10*time.Second, "B to see A and C on the topic", func() bool {
		return hasPeer(gb, "db", ha.ID())() && hasPeer(gb, "db", hc.ID())()
	})
	waitFor(t, 10*time.Second, "C to see B on the topic", hasPeer(gc, "db", hb.ID()))

	ga.Notify("db", Announcement{Seq: 1, Digest: digest(1), Changes: 1})
	receive(t, gb, ha.ID(), 20*time.Second, func(a Announcement) bool { return a.Seq == 1 })
	// B's own announcement reaches C on the stream a forwarded copy of
	// A's would have used before it: once C has B's, A's is not coming.
	gb.Notify("db", Announcement{Seq: 2, Digest: digest(2), Changes: 2})
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for {
		select {
		case r := <-gc.Announcements():
			if r.From == ha.ID() {
				t.Fatalf("C received A's announcement via %s; want no forwarding", r.Via)
			}
			if r.From == hb.ID() && r.Ann.Seq == 2 {
				return
			}
		case <-timer.C:
			t.Fatal("C did not receive B's announcement")
		}
	}
}

// TestDebounce checks that a burst of Notifies becomes few publishes
// carrying the latest value.
func TestDebounce(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	cfg := Config{Debounce: 50 * time.Millisecond, Heartbeat: -1}
	ga, gb := newGossip(t, ha, cfg), newGossip(t, hb, cfg)
	connect(t, ha, hb)
	for _, g := range []*Gossip{ga, gb} {
		if err := g.Join("db"); err != nil {
			t.Fatal(err)
		}
		run(t, g)
	}
	waitFor(t, 10*time.Second, "A to see B on the topic", hasPeer(ga, "db", hb.ID()))

	for i := 1; i <= 100; i++ {
		ga.Notify("db", Announcement{Seq: uint64(i), Digest: digest(byte(i)), Changes: uint64(i)})
	}
	got := receive(t, gb, ha.ID(), 10*time.Second, func(a Announcement) bool { return a.Seq == 100 })
	if !bytes.Equal(got.Digest, digest(100)) {
		t.Errorf("digest: got %x, want %x", got.Digest, digest(100))
	}
	// sent_total moves once Publish returns, which may be after B has
	// the message: wait for it rather than read it at once.
	waitFor(t, 5*time.Second, "A to count its publish", func() bool { return value(ga.m.sent) >= 1 })
	if n := value(ga.m.sent); n > 5 {
		t.Errorf("sent_total after 100 Notifies: got %v, want 1..5", n)
	}
}

// TestRejects publishes malformed messages from a plain pubsub router on a
// fourth host and checks that they are rejected and never delivered.
func TestRejects(t *testing.T) {
	ha, hd := newHost(t), newHost(t)
	const maxBytes = 1024
	ga := newGossip(t, ha, Config{MaxMessageBytes: maxBytes, Heartbeat: -1})
	if err := ga.Join("db"); err != nil {
		t.Fatal(err)
	}
	run(t, ga)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	psd, err := pubsub.NewGossipSub(ctx, hd)
	if err != nil {
		t.Fatal(err)
	}
	td, err := psd.Join(Topic("db"))
	if err != nil {
		t.Fatal(err)
	}
	connect(t, hd, ha)
	waitFor(t, 10*time.Second, "D to see A on the topic", func() bool { return slices.Contains(td.ListPeers(), ha.ID()) })

	bad := []struct {
		name   string
		data   []byte
		reason string
	}{
		{"garbage", []byte("garbage"), reasonDecode},
		{"empty", []byte{}, reasonDecode},
		{"extra element", mustEncode(t, []any{"db", 1, digest(1), 1, 1}), reasonDecode},
		{"other db", mustEncode(t, Announcement{DB: "other", Seq: 1, Digest: digest(1)}), reasonDB},
		{"short digest", mustEncode(t, Announcement{DB: "db", Seq: 1, Digest: digest(1)[:31]}), reasonDigest},
		{"oversized", bytes.Repeat([]byte{0x60}, maxBytes+1), reasonSize},
	}
	for _, b := range bad {
		if err := td.Publish(t.Context(), b.data); err != nil {
			t.Fatalf("publish %s: %v", b.name, err)
		}
	}
	ok := Announcement{DB: "db", Seq: 9, Digest: digest(9), Changes: 9}
	if err := td.Publish(t.Context(), mustEncode(t, ok)); err != nil {
		t.Fatal(err)
	}
	receive(t, ga, hd.ID(), 10*time.Second, func(a Announcement) bool { return a.Seq == 9 })

	want := map[string]float64{}
	for _, b := range bad {
		want[b.reason]++
	}
	for reason, n := range want {
		waitFor(t, 10*time.Second, "rejections for "+reason, func() bool {
			return value(ga.m.rejected.WithLabelValues(reason)) == n
		})
	}
	select {
	case r := <-ga.Announcements():
		t.Fatalf("delivered after rejections: %+v", r)
	default:
	}
}

// gossipGoroutines counts goroutines running this package's code.
func gossipGoroutines() int {
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
		if strings.Contains(g, "barrel/gossip.(*Gossip)") {
			count++
		}
	}
	return count
}

// TestRunStops checks that Run returns on cancel with every goroutine it
// started stopped, including readers of topics joined while it ran, and that
// a second concurrent Run is refused.
func TestRunStops(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	cfg := Config{Debounce: time.Millisecond, Heartbeat: 10 * time.Millisecond}
	ga, gb := newGossip(t, ha, cfg), newGossip(t, hb, cfg)
	connect(t, ha, hb)
	if err := ga.Join("one"); err != nil {
		t.Fatal(err)
	}
	if err := gb.Join("one"); err != nil {
		t.Fatal(err)
	}
	ctxB, cancelB := context.WithCancel(context.Background())
	doneB := make(chan error, 1)
	go func() { doneB <- gb.Run(ctxB) }()
	t.Cleanup(func() { cancelB(); <-doneB })

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ga.Run(ctx) }()
	waitFor(t, 5*time.Second, "Run to start", func() bool {
		ga.mu.Lock()
		defer ga.mu.Unlock()
		return ga.mu.run != nil
	})
	if err := ga.Run(ctx); err != ErrRunning {
		t.Fatalf("second Run: got %v, want ErrRunning", err)
	}
	for _, db := range []string{"two", "three"} {
		if err := ga.Join(db); err != nil {
			t.Fatal(err)
		}
	}
	if err := ga.Leave("three"); err != nil {
		t.Fatal(err)
	}
	if err := ga.Leave("three"); err == nil {
		t.Fatal("second Leave: got nil, want ErrNotJoined")
	}
	waitFor(t, 10*time.Second, "A to see B on the topic", hasPeer(ga, "one", hb.ID()))
	gb.Notify("one", Announcement{Seq: 1, Digest: digest(1)})
	receive(t, ga, hb.ID(), 10*time.Second, func(Announcement) bool { return true })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: got %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	cancelB()
	if err := <-doneB; err != nil {
		t.Fatalf("B's Run: got %v, want nil", err)
	}
	doneB <- nil // for the cleanup
	waitFor(t, 5*time.Second, "no gossip goroutine left", func() bool { return gossipGoroutines() == 0 })
}

func TestJoinInvalid(t *testing.T) {
	g := newGossip(t, newHost(t), Config{})
	for _, db := range []string{"", "a/b", strings.Repeat("x", 129)} {
		if err := g.Join(db); err == nil {
			t.Errorf("Join(%q): got nil, want ErrInvalidDB", db)
		}
	}
}

// TestMeshParams checks that every Mesh gossipsub accepts builds a router
// and that a contradictory one is refused by New.
func TestMeshParams(t *testing.T) {
	for _, tc := range []struct {
		m  Mesh
		ok bool
	}{
		{Mesh{}, true},
		{Mesh{Relay: true}, true},
		{Mesh{Relay: true, D: 3, Dlo: 2, Dhi: 4, Heartbeat: 100 * time.Millisecond}, true},
		{Mesh{Relay: true, D: 2, Dlo: 1, Dhi: 2}, true},
		{Mesh{Relay: true, D: 1, Dlo: 1, Dhi: 2}, false}, // gossipsub wants Dout < D/2
		{Mesh{Relay: true, D: 8, Dlo: 6, Dhi: 12, NoFloodPublish: true}, true},
		{Mesh{Relay: true, D: 5, Dlo: 6, Dhi: 8}, false},
	} {
		ctx, cancel := context.WithCancel(t.Context())
		_, err := New(ctx, newHost(t), Config{Mesh: tc.m, Logger: testLogger()})
		cancel()
		if (err == nil) != tc.ok {
			t.Errorf("%+v: got error %v, want ok %v", tc.m, err, tc.ok)
		}
	}
}
