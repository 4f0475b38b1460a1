package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestRegulator: a client's budget is its own, a refused request takes
// nothing from it and says when to retry, and the map of clients stays
// bounded.
func TestRegulator(t *testing.T) {
	now := time.Unix(1000, 0)
	g := newRegulator(10, 5)
	g.now = func() time.Time { return now }
	for i := range 5 {
		if err := g.allow("a"); err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	err := g.allow("a")
	var rl *rateLimitedError
	if !errors.As(err, &rl) || !errors.Is(err, errRateLimited) {
		t.Fatalf("request past the burst: %v, want a *rateLimitedError", err)
	}
	if rl.retryAfter <= 0 || rl.retryAfter > 100*time.Millisecond || rl.retryAfterSeconds() != "1" {
		t.Fatalf("retry after %v (%s s), want up to 100 ms (10/s), said as 1 s", rl.retryAfter, rl.retryAfterSeconds())
	}
	if err := g.allow("b"); err != nil {
		t.Fatalf("another client: %v, want its own budget", err)
	}
	now = now.Add(100 * time.Millisecond) // One token back; the refusals took none.
	if err := g.allow("a"); err != nil {
		t.Fatalf("after 100 ms: %v", err)
	}
	if err := g.allow("a"); err == nil {
		t.Fatal("a second request 100 ms later: allowed, want refused")
	}

	for i := range regulatorMaxClients + 10 {
		g.allow(fmt.Sprintf("c%d", i))
	}
	if n := len(g.mu.buckets); n > regulatorMaxClients {
		t.Fatalf("%d buckets held, want at most %d", n, regulatorMaxClients)
	}
	now = now.Add(time.Minute) // All idle: a newcomer gets its own bucket again.
	g.allow("late")
	if _, ok := g.mu.buckets["late"]; !ok {
		t.Fatal("idle buckets were not dropped for a new client")
	}
	if newRegulator(0, 0) != nil || newRegulator(-1, 0) != nil {
		t.Fatal("a rate of 0 or less must turn regulation off")
	}
}

// TestRateLimitedAnswer: the 429 a client over its budget gets, after a
// delay.
func TestRateLimitedAnswer(t *testing.T) {
	srv := newTestServer(t, Config{ClientRate: 1, ClientBurst: 1})
	if resp, err := http.Get(srv.URL + "/dbs"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: %v %v", resp, err)
	}
	start := time.Now()
	resp, err := http.Get(srv.URL + "/dbs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// A refusal is answered after refusalDelay (its Retry-After is later),
	// so a client that sends again at once cannot turn refusals into a
	// flood of 429s. A lower bound: load only makes it later.
	if took := time.Since(start); took < refusalDelay*9/10 {
		t.Fatalf("the refusal came after %v, want about %v", took, refusalDelay)
	}
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("second request: %d Retry-After %q, want 429 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, err := http.Get(srv.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz over the budget: %v %v, want 200 (liveness is never refused)", resp, err)
	}
}
