package sync

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/prometheus/client_golang/prometheus"
)

// recordHandler keeps every log record, for tests that count log lines.
type recordHandler struct {
	mu   *sync.Mutex
	recs *[]slog.Record
}

func newRecordHandler() recordHandler {
	return recordHandler{mu: &sync.Mutex{}, recs: &[]slog.Record{}}
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, r.Clone())
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h } // the test matches messages only
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// count is how many records at level or above have msg.
func (h recordHandler) count(level slog.Level, msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range *h.recs {
		if r.Level >= level && r.Message == msg {
			n++
		}
	}
	return n
}

// A pull that keeps failing is logged once (Warn), not once per attempt,
// and its recovery once (Info); the server side of the failing sessions
// likewise (issue 17, item 6: a Warn every 3-10 s for as long as it failed).
func TestFailingPullLogsBounded(t *testing.T) {
	hs, hc := newHost(t), newHost(t)
	srv := newMemStore(t)
	srv.put(t, "db", "d", 1)
	cli := newMemStore(t)
	cli.put(t, "db", "c", 1)

	// The server's peer resets every sync stream: each pull fails with
	// "stream reset", as in the issue.
	var resets atomic.Int64
	hs.SetStreamHandler(ProtocolID, func(st network.Stream) { resets.Add(1); _ = st.Reset() })

	rec := newRecordHandler()
	cfg := Config{AntiEntropy: 10 * time.Millisecond, FailLogEvery: time.Hour, Logger: slog.New(rec)}
	r := New(hc, cli, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	connect(t, hc, hs)

	const attempts = 20
	waitFor(t, "20 failed pulls", func() bool { return resets.Load() >= attempts })
	waitFor(t, "the last failure handled", func() bool { return len(r.Status()) > 0 && !r.Status()[0].Running })
	if got := rec.count(slog.LevelWarn, "sync failed"); got != 1 {
		t.Errorf("after %d failed pulls: got %d Warn lines \"sync failed\", want 1", resets.Load(), got)
	}

	// The server comes back: one "sync recovered", and no more failures.
	serve(t, hs, srv, Config{})
	waitFor(t, "pulled after recovery", func() bool { return cli.count("db") == 2 })
	waitFor(t, "recovered logged", func() bool { return rec.count(slog.LevelInfo, "sync recovered") == 1 })
	if got := rec.count(slog.LevelWarn, "sync failed"); got != 1 {
		t.Errorf("after recovery: got %d Warn lines \"sync failed\", want 1", got)
	}
	for _, r := range *rec.recs {
		if r.Message == "sync recovered" {
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "failures" && a.Value.Int64() < attempts {
					t.Errorf("recovered after %d failures, want at least %d", a.Value.Int64(), attempts)
				}
				return true
			})
		}
	}
}

// The failure log: first at once, then once per interval with the count,
// and the count of failures at recovery.
func TestFailLog(t *testing.T) {
	now := time.Unix(0, 0)
	f := newFailLog(time.Minute, 2)
	f.now = func() time.Time { return now }
	var logged []int
	for range 10 {
		if n, ok := f.failed("a"); ok {
			logged = append(logged, n)
		}
		now = now.Add(15 * time.Second)
	}
	if got := fmt.Sprint(logged); got != "[1 5 9]" {
		t.Errorf("logged at failures %s, want [1 5 9]", got)
	}
	if n := f.ok("a"); n != 10 {
		t.Errorf("recovered after %d failures, want 10", n)
	}
	if n := f.ok("a"); n != 0 {
		t.Errorf("second ok: got %d failures, want 0", n)
	}
}

// A peer whose sessions keep failing on our server is logged once, not
// once per session, and its recovery once.
func TestFailingSessionsLogBounded(t *testing.T) {
	hs, hc := newHost(t), newHost(t)
	srv := newMemStore(t)
	srv.put(t, "db", "d", 1)
	rec := newRecordHandler()
	reg := prometheus.NewRegistry()
	s := NewServer(hs, srv, Config{FailLogEvery: time.Hour, Logger: slog.New(rec), Registerer: reg})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitHandler(t, hs)
	connect(t, hc, hs)
	const failures = 20
	for i := range failures {
		st := rawStream(t, hc, hs)
		if _, err := st.Write([]byte{3, 0xff, 0xff, 0xff}); err != nil { // not CBOR: bad_peer
			t.Fatal(err)
		}
		waitFor(t, "session failed", func() bool { return sessions(reg, "server", "bad_peer") == i+1 })
	}
	if got := rec.count(slog.LevelWarn, "sync session failed"); got != 1 {
		t.Errorf("after %d failed sessions: got %d Warn lines, want 1", failures, got)
	}
	if _, err := NewClient(hc, newMemStore(t), Config{}).Pull(t.Context(), hs.ID(), "db", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "recovered logged", func() bool { return rec.count(slog.LevelInfo, "sync sessions recovered") == 1 })
}
