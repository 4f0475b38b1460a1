package httpapi

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Regulation (docs/design.md, "Regulation"): every client has a budget of
// requests, a token bucket refilled at Config.ClientRate per second up to
// Config.ClientBurst. A client over it gets 429 rate_limited at once, with
// Retry-After, instead of a place in a queue, so one client sending as fast
// as it can takes its share and no more. A client is its remote address:
// with one HTTP token shared by every application, the address is what
// tells them apart.

// errRateLimited is a request over its client's budget; it answers 429.
var errRateLimited = errors.New("rate limited")

// rateLimitedError says which budget a request was over and when the
// client may send again.
type rateLimitedError struct {
	client     string
	perSecond  float64
	burst      int
	retryAfter time.Duration
}

func (e *rateLimitedError) Error() string {
	return fmt.Sprintf("%v: client %s is over its budget of %g requests/s (burst %d); retry after %s",
		errRateLimited, e.client, e.perSecond, e.burst, e.retryAfter.Round(time.Millisecond))
}

func (e *rateLimitedError) Unwrap() error { return errRateLimited }

// retryAfterSeconds is Retry-After's value: whole seconds, at least 1.
func (e *rateLimitedError) retryAfterSeconds() string {
	return strconv.Itoa(max(1, int(math.Ceil(e.retryAfter.Seconds()))))
}

// A refusal is answered after refusalDelay, not at once (a client told to
// retry after a second or more loses nothing by it): one that ignores
// Retry-After and sends again the moment it is refused would otherwise
// turn each write it may not make into a 429 at thousands per second,
// whose CPU the clients within their budget wait for (R1: the steady
// client's p99 at 4.6x its value alone without the delay).
// The delay holds nothing but a goroutine and the client's own connection;
// at most refusalDelayed refusals wait at once, beyond which the rest are
// answered at once, so a client with many connections cannot make the
// server hold many goroutines.
const (
	refusalDelay   = 100 * time.Millisecond
	refusalDelayed = 1024
)

// delayRefusal waits out a refusal's delay, or less when the request ends
// first or too many refusals wait already.
func (g *regulator) delayRefusal(r *http.Request) {
	select {
	case g.delayed <- struct{}{}:
		defer func() { <-g.delayed }()
	default:
		return
	}
	t := time.NewTimer(refusalDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// regulatorMaxClients bounds the buckets held; past it the idle ones are
// dropped first, and if every one is busy, new clients share one bucket.
const regulatorMaxClients = 16384

// regulator holds a bucket per client. Safe for concurrent use.
type regulator struct {
	perSecond rate.Limit
	burst     int
	idle      time.Duration // a bucket unused this long is full again and can be dropped
	now       func() time.Time
	delayed   chan struct{} // a slot per refusal waiting out its delay (delayRefusal)

	mu struct { // guards the map; held for no I/O
		sync.Mutex
		buckets  map[string]*bucket
		overflow *rate.Limiter // shared by the clients beyond regulatorMaxClients
		swept    time.Time
	}
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// newRegulator returns nil when regulation is off (perSecond <= 0).
func newRegulator(perSecond float64, burst int) *regulator {
	if perSecond <= 0 {
		return nil
	}
	g := &regulator{perSecond: rate.Limit(perSecond), burst: burst, now: time.Now, delayed: make(chan struct{}, refusalDelayed)}
	g.idle = time.Duration(float64(burst)/perSecond*float64(time.Second)) + time.Second
	g.mu.buckets = map[string]*bucket{}
	g.mu.overflow = rate.NewLimiter(g.perSecond, burst)
	return g
}

// allow takes one request from client's budget; the error is a
// *rateLimitedError when there is none left.
func (g *regulator) allow(client string) error {
	now := g.now()
	lim := g.limiter(client, now)
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // Refused: the request takes nothing.
		return &rateLimitedError{client: client, perSecond: float64(g.perSecond), burst: g.burst, retryAfter: d}
	}
	return nil
}

func (g *regulator) limiter(client string, now time.Time) *rate.Limiter {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b, ok := g.mu.buckets[client]; ok {
		b.used = now
		return b.lim
	}
	if len(g.mu.buckets) >= regulatorMaxClients && now.Sub(g.mu.swept) > time.Second {
		g.mu.swept = now
		for k, b := range g.mu.buckets {
			if now.Sub(b.used) > g.idle {
				delete(g.mu.buckets, k)
			}
		}
	}
	if len(g.mu.buckets) >= regulatorMaxClients {
		return g.mu.overflow
	}
	b := &bucket{lim: rate.NewLimiter(g.perSecond, g.burst), used: now}
	g.mu.buckets[client] = b
	return b.lim
}

// clientOf is the client a request is charged to: its remote host.
func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
