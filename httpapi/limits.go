package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/semaphore"
)

// What a request is charged against Config.MemoryBudgetBytes. The figures
// are peak RSS growth of the daemon per unit, measured on one request into
// a fresh daemon and rounded up (docs/design.md, "What a peer can make you
// hold"); they cover decoding, the change, its index entries and the
// batch, and the garbage the collector has not yet reclaimed.
const (
	// costPerBodyByte is charged per byte of a JSON body read: a 7 MB
	// string value raised peak RSS by 105 MB.
	costPerBodyByte = 16
	// costPerValue is charged per JSON value decoded (object, array,
	// string, number, literal): an array of 1M integers raised it by
	// 338 MB beyond its bytes.
	costPerValue = 320
	// costPerBulkDoc is charged per document of a bulk request, each of
	// which becomes a signed change, a feed entry and its index entries:
	// 100,000 three-field documents raised it by 729 MB.
	costPerBulkDoc = 8 << 10
	// costPerUpload is what an attachment upload holds while it streams:
	// a 256 KiB chunk buffer and up to 4 MiB of small-ingest buffer in the
	// datastore.
	costPerUpload = 5 << 20
	// costPerWrite is the fixed part of every write request: its
	// goroutine's stack, the request, the connection's buffers.
	costPerWrite = 32 << 10
)

// Errors of the request bounds.
var (
	// errBusy is a request refused because the requests in flight hold the
	// whole memory budget, the in-flight write cap or the upload cap; it
	// answers 503 with Retry-After.
	errBusy = errors.New("server busy")
	// errTooCostly is a request that would need more memory than the whole
	// budget; it answers 413.
	errTooCostly = errors.New("request needs more memory than the budget")
	// errTooSlow is a body that arrived slower than MinBodyRate; it
	// answers 408.
	errTooSlow = errors.New("request body arrived too slowly")
)

// limits holds what all requests share: the memory budget and the caps on
// write requests and uploads in flight. Its methods are safe for
// concurrent use.
type limits struct {
	mem     *semaphore.Weighted
	memMax  int64
	writes  chan struct{}
	uploads chan struct{}
}

func newLimits(cfg Config) *limits {
	return &limits{
		mem:     semaphore.NewWeighted(cfg.MemoryBudgetBytes),
		memMax:  cfg.MemoryBudgetBytes,
		writes:  make(chan struct{}, cfg.MaxInFlightWrites),
		uploads: make(chan struct{}, cfg.MaxUploads),
	}
}

// tryWrite takes a write slot, or answers errBusy at once.
func (l *limits) tryWrite() (release func(), err error) {
	select {
	case l.writes <- struct{}{}:
		return func() { <-l.writes }, nil
	default:
		return nil, &reqError{kind: errBusy, reason: fmt.Sprintf("%d write requests in flight: retry later", cap(l.writes))}
	}
}

// tryUpload takes an upload slot, or answers errBusy at once.
func (l *limits) tryUpload() (release func(), err error) {
	select {
	case l.uploads <- struct{}{}:
		return func() { <-l.uploads }, nil
	default:
		return nil, &reqError{kind: errBusy, reason: fmt.Sprintf("%d attachment uploads in flight: retry later", cap(l.uploads))}
	}
}

// charge is one request's share of the memory budget. It takes from the
// budget as the request's cost grows and gives everything back at release.
// It is used by the request's goroutine only.
type charge struct {
	l     *limits
	held  int64 // taken from the budget
	used  int64 // cost so far, <= held
	after []func()
}

// onRelease has release call f (to give back a slot).
func (c *charge) onRelease(f func()) { c.after = append(c.after, f) }

// add adds n to the request's cost, taking more of the budget when needed:
// errTooCostly when the cost passes the whole budget, errBusy when other
// requests hold what it needs. It never waits.
func (c *charge) add(n int64) error {
	if c == nil {
		return nil
	}
	c.used += n
	if c.used <= c.held {
		return nil
	}
	if c.used > c.l.memMax {
		return &reqError{kind: errTooCostly, reason: fmt.Sprintf(
			"request needs more than the memory budget of %d bytes once decoded: send it in smaller parts", c.l.memMax)}
	}
	// Take ahead, doubling, so that a large body asks the semaphore a
	// few dozen times rather than once per value.
	need := max(c.used-c.held, min(c.held, 4<<20), 64<<10)
	need = min(need, c.l.memMax-c.held)
	if !c.l.mem.TryAcquire(need) {
		// Taking ahead must not refuse what would fit exactly.
		if need = c.used - c.held; !c.l.mem.TryAcquire(need) {
			return &reqError{kind: errBusy, reason: "requests in flight hold the memory budget: retry later"}
		}
	}
	c.held += need
	return nil
}

// release gives back what the request took.
func (c *charge) release() {
	if c.held > 0 {
		c.l.mem.Release(c.held)
		c.held, c.used = 0, 0
	}
	for _, f := range c.after {
		f()
	}
	c.after = nil
}

// body wraps a request body (already bounded by http.MaxBytesReader). It
// charges perByte for every byte read, and keeps the connection's read
// deadline at the earlier of the request's time limit and the time by which
// the body must have reached MinBodyRate: after grace, a body must have
// delivered minRate bytes per second since it began, or its read fails with
// errTooSlow.
type body struct {
	r       io.ReadCloser
	rc      *http.ResponseController
	c       *charge
	perByte int64

	start   time.Time
	n       int64
	minRate int64
	grace   time.Duration
	// timeout is ReadTimeout; sliding moves it ahead on every read (an
	// upload may take as long as its bytes keep coming), else it counts
	// from start.
	timeout time.Duration
	sliding bool
}

func (b *body) Read(p []byte) (int, error) {
	now := time.Now()
	limit := b.start.Add(b.timeout)
	if b.sliding {
		limit = now.Add(b.timeout)
	}
	slow := false
	if b.minRate > 0 {
		// The next byte must come before start + grace + (n+1)/minRate.
		due := b.start.Add(b.grace + time.Duration(float64(b.n+1)/float64(b.minRate)*float64(time.Second)))
		if due.Before(limit) {
			// A due time already past fails the read at once unless the
			// bytes are buffered: the rate counts what we read, so a
			// handler slow to read is not blamed on the client.
			limit, slow = due, true
		}
	}
	// ErrNotSupported (a recorder in tests): the server's ReadTimeout stays
	// in force.
	_ = b.rc.SetReadDeadline(limit)
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil && slow && errors.Is(err, os.ErrDeadlineExceeded) {
		return n, b.tooSlow()
	}
	if n > 0 && b.perByte > 0 {
		if cerr := b.c.add(int64(n) * b.perByte); cerr != nil {
			return 0, cerr
		}
	}
	return n, err
}

func (b *body) tooSlow() error {
	return &reqError{kind: errTooSlow, reason: fmt.Sprintf(
		"request body arrived slower than %d bytes/s (%d bytes in %v)", b.minRate, b.n, time.Since(b.start).Round(time.Millisecond))}
}

func (b *body) Close() error { return b.r.Close() }

// chargeOf returns the charge of the body r, or nil when r is not one (a
// body decoded outside ServeHTTP, as in unit tests).
func chargeOf(r io.Reader) *charge {
	if b, ok := r.(*body); ok {
		return b.c
	}
	return nil
}
