package sync

import (
	"fmt"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestPeerBudgetSlowsOnePeer: a peer pulling in a loop from a server with
// a budget of 1,000 bodies per second per peer is held to it, while a
// second peer pulling at the same time gets its own budget, not what the
// first one left.
func TestPeerBudgetSlowsOnePeer(t *testing.T) {
	hs := newHost(t)
	srv := newMemStore(t)
	reg := serve(t, hs, srv, Config{PeerBodiesPerSec: 1000, BatchSize: 500})
	srv.createDB("db")
	for i := range 3000 {
		srv.put(t, "db", fmt.Sprintf("doc%d", i), i)
	}
	pullAll := func(t *testing.T) (time.Duration, error) {
		hc := newHost(t)
		connect(t, hc, hs)
		c := NewClient(hc, newMemStore(t), Config{Logger: testLogger(t), BatchSize: 500})
		start := time.Now()
		_, err := c.Pull(t.Context(), hs.ID(), "db", nil)
		return time.Since(start), err
	}

	// One peer: 3,000 bodies at 1,000/s past a first bucketful of 1,000
	// take at least two seconds (slower than a pull without a budget, even
	// under the race detector, so the budget, not the machine, is what
	// holds it back and the wait is counted).
	d, err := pullAll(t)
	if err != nil {
		t.Fatal(err)
	}
	if d < 1800*time.Millisecond {
		t.Fatalf("3000 bodies in %v: the budget of 1000/s did not hold", d)
	}

	// Two fresh peers at once: each has its own budget, so together they
	// take about as long as one.
	var wg sync.WaitGroup
	var times [2]time.Duration
	var errs [2]error
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); times[i], errs[i] = pullAll(t) }()
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if times[i] > 4*d+time.Second {
			t.Fatalf("peer %d took %v beside another, alone %v: budgets are not per peer", i, times[i], d)
		}
	}
	if waited := gaugeValue(t, reg, "barrel_sync_budget_wait_seconds_total"); waited <= 0 {
		t.Fatalf("barrel_sync_budget_wait_seconds_total = %v, want the time the pulls were slowed", waited)
	}
}

// gaugeValue reads an unlabeled counter or gauge from reg (-1: absent).
func gaugeValue(t *testing.T, reg interface {
	Gather() ([]*dto.MetricFamily, error)
}, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// TestPeerBudgetWaitsOnlyWhenSpent: a frame the budget holds is taken at
// once and reported as no wait (so neither the log nor the wait metric
// counts an ordinary pull); one past it waits and says how long.
func TestPeerBudgetWaitsOnlyWhenSpent(t *testing.T) {
	pb := newPeerBudgets(1000, 1<<20).of("peer")
	if waited, err := pb.take(t.Context(), 10, 4096); err != nil || waited != 0 {
		t.Fatalf("a frame within the budget: waited %v (%v), want 0", waited, err)
	}
	if waited, err := pb.take(t.Context(), 1000, 4096); err != nil || waited < 5*time.Millisecond {
		t.Fatalf("a frame past the budget: waited %v (%v), want about 10 ms", waited, err)
	}
}
