package sync

import (
	"math"
	"testing"
	"time"
)

// TestProgressRate: the rate is measured over the last rateWindow, falls
// when the pull stalls, and Done counts from the starting checkpoint.
func TestProgressRate(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	p := newProgress(t0)
	p.begin(100, t0)
	p.begin(500, t0) // a second Pull (after a snapshot) keeps the start
	if got := p.snapshot(t0); got.From != 100 || got.Checkpoint != 500 || got.Rate != 0 {
		t.Fatalf("at the start: got %+v, want from 100, checkpoint 500, no rate", got)
	}
	// 100 entries a second for 30 s, in batches every 100 ms.
	cp := uint64(500)
	for i := 1; i <= 300; i++ {
		cp += 10
		p.advance(10, cp, t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	now := t0.Add(30 * time.Second)
	got := p.snapshot(now)
	if got.Done() != cp-100 || got.Applied != 3000 {
		t.Errorf("done %d, applied %d; want %d, 3000", got.Done(), got.Applied, cp-100)
	}
	if math.Abs(got.Rate-100) > 5 {
		t.Errorf("rate %.1f, want about 100/s", got.Rate)
	}
	// Stalled for 5 s: the window now holds half as many entries.
	if stalled := p.snapshot(now.Add(5 * time.Second)); stalled.Rate >= got.Rate*0.75 {
		t.Errorf("rate after a 5 s stall %.1f, want well below %.1f", stalled.Rate, got.Rate)
	}
	// Stalled beyond the window: nothing moved in it.
	if stalled := p.snapshot(now.Add(time.Minute)); stalled.Rate != 0 {
		t.Errorf("rate after a minute's stall %.1f, want 0", stalled.Rate)
	}
	var none *progress
	none.begin(1, now) // a Pull outside the replicator reports nowhere
	none.advance(1, 2, now)
}
