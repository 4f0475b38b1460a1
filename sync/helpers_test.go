package sync

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// newHost starts a libp2p host listening on loopback only, with no relay,
// NAT mapping or other dialing of its own.
func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.DisableIdentifyAddressDiscovery(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// connect connects a to b.
func connect(t testing.TB, a, b host.Host) {
	t.Helper()
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// testLogger logs to the test at Debug.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// serve runs a server of store on h until the test ends.
func serve(t testing.TB, h host.Host, store Store, cfg Config) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	cfg.Logger = testLogger(t)
	s := NewServer(h, store, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitHandler(t, h)
	return reg
}

// waitHandler waits until h serves ProtocolID (Run registers the handler
// from its own goroutine).
func waitHandler(t testing.TB, h host.Host) {
	t.Helper()
	waitFor(t, "handler registered", func() bool {
		return slices.Contains(h.Mux().Protocols(), ProtocolID)
	})
}

// sessions reads barrel_sync_sessions_total{role,result}.
func sessions(reg *prometheus.Registry, role, result string) int {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != "barrel_sync_sessions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var r, res string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "role":
					r = l.GetValue()
				case "result":
					res = l.GetValue()
				}
			}
			if r == role && res == result {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}

// waitFor polls cond until it holds or 10 seconds passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
