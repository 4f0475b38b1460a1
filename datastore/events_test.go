package datastore

import (
	"testing"
	"time"
)

// TestLimiter: Pebble's log lines pass logBurst at once, then one per
// logEvery, and the first line after a drop counts the lines dropped.
func TestLimiter(t *testing.T) {
	var l limiter
	now := time.Unix(1000, 0)
	passed := 0
	for range 1000 { // a flood within one instant
		if ok, _ := l.allow(now); ok {
			passed++
		}
	}
	if passed != logBurst {
		t.Fatalf("a burst of 1000 let %d through, want %d", passed, logBurst)
	}
	ok, dropped := l.allow(now.Add(logEvery))
	if !ok || dropped != 1000-logBurst {
		t.Fatalf("after %v: ok %v, dropped %d; want true, %d", logEvery, ok, dropped, 1000-logBurst)
	}
	if ok, _ := l.allow(now.Add(logEvery)); ok {
		t.Fatal("a second line in the same interval passed")
	}
}
