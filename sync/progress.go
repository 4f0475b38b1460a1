package sync

import (
	"sync"
	"time"
)

// Progress is a running pull's position in the remote peer's feed. The
// protocol does not say where the remote feed ends until its last IDs
// batch (Done), so how much is left is the caller's to estimate, from the
// sequence the peer announced (node does it with gossip announcements).
type Progress struct {
	Started    time.Time // when the pull started (Config.Now)
	From       uint64    // the checkpoint the pull started from
	Checkpoint uint64    // the checkpoint reached so far: every entry up to it is applied
	Applied    int       // changes that were new here so far
	// Rate is the feed entries per second the checkpoint moved over the
	// last rateWindow (or since the start, when shorter); 0 until a batch
	// was applied.
	Rate float64
}

// Done is the feed entries the pull got through so far.
func (p Progress) Done() uint64 { return p.Checkpoint - p.From }

// Rate measurement: a ring of (time, checkpoint) samples taken at most
// every rateWindow/rateSamples, so it spans about rateWindow whatever the
// batch rate, in fixed memory.
const (
	rateWindow  = 10 * time.Second
	rateSamples = 16
)

type sample struct {
	at time.Time // monotonic
	cp uint64
}

// progress is the live state behind a Progress: the applier writes it
// after each batch, Status reads it. mu guards every field.
type progress struct {
	mu      sync.Mutex
	started time.Time // wall clock, for display
	begun   bool      // from is set (the first Pull of a pullOrSnapshot)
	from    uint64
	cp      uint64
	applied int
	movedAt time.Time // when cp last moved (monotonic)
	ring    [rateSamples]sample
	n       int // samples taken (ring index n % rateSamples is the next)
}

func newProgress(started time.Time) *progress { return &progress{started: started} }

// begin records the checkpoint a Pull starts from; only the first counts.
// A nil progress ignores every call.
func (p *progress) begin(since uint64, now time.Time) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.begun {
		p.begun, p.from = true, since
		p.ring[0] = sample{at: now, cp: since}
		p.n = 1
	}
	p.cp = max(p.cp, since)
}

// advance records an applied batch: applied new changes and, when it
// moved, the checkpoint.
func (p *progress) advance(applied int, cp uint64, now time.Time) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applied += applied
	if cp <= p.cp {
		return
	}
	p.cp, p.movedAt = cp, now
	if last := p.ring[(p.n-1+rateSamples)%rateSamples]; p.n == 0 || now.Sub(last.at) >= rateWindow/rateSamples {
		p.ring[p.n%rateSamples] = sample{at: now, cp: cp}
		p.n++
	}
}

// snapshot returns the progress as of now.
func (p *progress) snapshot(now time.Time) Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := Progress{Started: p.started, From: p.from, Checkpoint: max(p.cp, p.from), Applied: p.applied}
	// The oldest sample within the window, measured up to now: a pull
	// that stalls sees its rate fall.
	var oldest *sample
	for i := max(0, p.n-rateSamples); i < p.n; i++ {
		s := &p.ring[i%rateSamples]
		if now.Sub(s.at) <= rateWindow {
			oldest = s
			break
		}
	}
	if oldest == nil && p.n > 0 && now.Sub(p.movedAt) <= rateWindow {
		oldest = &p.ring[(p.n-1)%rateSamples] // every sample is older: rate since the latest
	}
	if oldest != nil {
		if dt := now.Sub(oldest.at).Seconds(); dt > 0 && p.cp > oldest.cp {
			out.Rate = float64(p.cp-oldest.cp) / dt
		}
	}
	return out
}
