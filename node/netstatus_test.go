package node

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// A network part that fails is logged when it fails and reported failed;
// the other parts keep running (issue 17, item 5: a discovery error took
// the sync handler down with it, and was logged only at shutdown).
func TestNetGroupPartFailureIsolated(t *testing.T) {
	var logs syncLog
	n := &Node{log: slog.New(slog.NewTextHandler(&logs, nil))}
	g := newNetGroup(n)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	g.Go(ctx, "broken", func(context.Context) error { return errors.New("start mdns: no supported interface") })
	g.Go(ctx, "sync", func(ctx context.Context) error { <-ctx.Done(); return nil })
	waitFor(t, "the broken part reported", 5*time.Second, func() bool {
		c := g.components()
		return len(c) == 2 && c[0].State == StateFailed
	})
	if out := logs.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "component=broken") || !strings.Contains(out, "no supported interface") {
		t.Errorf("want the failure logged at once, got:\n%s", out)
	}
	c := g.components()
	if c[0].Error != "start mdns: no supported interface" || c[1].Name != "sync" || c[1].State != StateRunning {
		t.Errorf("components %+v: want broken failed with its error, sync running", c)
	}
	cancel()
	g.Wait()
	if c := g.components(); c[1].State != StateStopped || c[0].State != StateFailed {
		t.Errorf("after stop: %+v, want sync stopped, broken still failed", c)
	}
}

// syncLog is a log sink safe for concurrent writes.
type syncLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
