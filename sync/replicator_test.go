package sync

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
)

// runReplicator runs a replicator until the test ends and checks that Run
// returns once its context is done.
func runReplicator(t *testing.T, h host.Host, store Store, cfg Config) *Replicator {
	t.Helper()
	cfg.Logger = testLogger(t)
	r := New(h, store, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	waitHandler(t, h)
	return r
}

func TestReplicator(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	sa, sb := newMemStore(t), newMemStore(t)
	for i := range 10 {
		sa.put(t, "db", "a", i)
		sb.put(t, "db", "b", i)
	}
	sa.put(t, "only-a", "x", 1)
	ra := runReplicator(t, ha, sa, Config{AntiEntropy: -1})
	rb := runReplicator(t, hb, sb, Config{AntiEntropy: -1})

	// A new connection triggers pulls both ways.
	connect(t, ha, hb)
	waitFor(t, "both hold both", func() bool { return sa.count("db") == 20 && sb.count("db") == 20 })

	// An explicit trigger pulls new writes.
	sa.put(t, "db", "a", 100)
	rb.Trigger(ha.ID(), "db")
	waitFor(t, "b pulled the trigger", func() bool { return sb.count("db") == 21 })

	waitFor(t, "status", func() bool {
		st := rb.Status()
		i := slices.IndexFunc(st, func(s PeerDBStatus) bool { return s.DB == "db" })
		return i >= 0 && !st[i].Running && st[i].Checkpoint == 21 && st[i].LastError == "" && !st[i].LastSync.IsZero()
	})
	// Only databases the puller replicates are pulled.
	if n := sb.count("only-a"); n != 0 {
		t.Errorf("b pulled %d changes of a database it does not replicate", n)
	}
	_ = ra
}

// With no trigger at all, the anti-entropy tick brings peers level.
func TestReplicatorAntiEntropy(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	sa, sb := newMemStore(t), newMemStore(t)
	sa.createDB("db")
	sb.createDB("db")
	runReplicator(t, ha, sa, Config{AntiEntropy: 20 * time.Millisecond})
	runReplicator(t, hb, sb, Config{AntiEntropy: 20 * time.Millisecond})
	connect(t, ha, hb)
	for i := range 5 {
		sa.put(t, "db", "a", i)
		waitFor(t, "tick pulled", func() bool { return sb.count("db") == i+1 })
	}
}

// Triggers during a running pull coalesce into one more pull; nothing runs
// twice at once for one (peer, db).
func TestReplicatorCoalesce(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	sa, sb := newMemStore(t), newMemStore(t)
	sa.put(t, "db", "a", 0)
	sb.createDB("db")
	serve(t, ha, sa, Config{})
	release := make(chan struct{})
	entered := make(chan struct{}, 16)
	sb.onCheckpoint = func() {
		entered <- struct{}{}
		<-release
	}
	rb := runReplicator(t, hb, sb, Config{AntiEntropy: -1, MaxPulls: 4})
	connect(t, hb, ha)
	<-entered // the connection's pull is running
	for range 5 {
		rb.Trigger(ha.ID(), "db")
	}
	release <- struct{}{}
	<-entered // exactly one more pull
	release <- struct{}{}
	waitFor(t, "idle", func() bool {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return len(rb.mu.jobs) == 0
	})
	if n := len(entered); n != 0 {
		t.Errorf("%d more pulls ran, want none", n)
	}
	if sb.count("db") != 1 {
		t.Errorf("got %d changes, want 1", sb.count("db"))
	}
}
