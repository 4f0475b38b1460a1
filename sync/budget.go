package sync

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// Per-peer budgets of the server (docs/sync-protocol.md, "Budgets"): the
// bodies and bytes one peer's sessions are sent per second, token buckets
// kept per peer across its sessions, so a peer that pulls in a loop gets
// its share of the server's reads and no more. A session over its peer's
// budget is slowed (its next frame waits), not refused: a pull is the
// peer's catch-up, and the wait holds only one of its MaxPeerStreams.
// MaxPeerStreams bounds its concurrent pulls.

// budgetsMaxPeers bounds the buckets kept; past it the idle ones go.
const budgetsMaxPeers = 4096

type peerBudgets struct {
	bodies, bytes           rate.Limit // per second; rate.Inf: unlimited
	burstBodies, burstBytes int
	idle                    time.Duration

	mu struct { // guards m; held for no I/O
		sync.Mutex
		m     map[peer.ID]*peerBudget
		swept time.Time
	}
}

type peerBudget struct {
	bodies, bytes *rate.Limiter
	used          time.Time
}

// newPeerBudgets takes the configured rates (negative: unlimited). A
// bucket holds one second of its rate.
func newPeerBudgets(bodiesPerSec, bytesPerSec int64) *peerBudgets {
	b := &peerBudgets{bodies: rate.Inf, bytes: rate.Inf, burstBodies: 1, burstBytes: 1, idle: time.Minute}
	if bodiesPerSec > 0 {
		b.bodies, b.burstBodies = rate.Limit(bodiesPerSec), int(bodiesPerSec)
	}
	if bytesPerSec > 0 {
		b.bytes, b.burstBytes = rate.Limit(bytesPerSec), int(bytesPerSec)
	}
	b.mu.m = map[peer.ID]*peerBudget{}
	return b
}

func (b *peerBudgets) of(p peer.ID) *peerBudget {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if pb, ok := b.mu.m[p]; ok {
		pb.used = now
		return pb
	}
	if len(b.mu.m) >= budgetsMaxPeers && now.Sub(b.mu.swept) > time.Second {
		b.mu.swept = now
		for k, pb := range b.mu.m {
			if now.Sub(pb.used) > b.idle {
				delete(b.mu.m, k)
			}
		}
	}
	pb := &peerBudget{bodies: rate.NewLimiter(b.bodies, b.burstBodies), bytes: rate.NewLimiter(b.bytes, b.burstBytes), used: now}
	if len(b.mu.m) < budgetsMaxPeers {
		b.mu.m[p] = pb
	}
	return pb
}

// take waits until the peer's budget has given bodies and bytes, a
// bucketful at a time, and returns how long it waited: 0 when the budget
// had them at once (the common case, which neither the log nor the wait
// metric should count).
func (pb *peerBudget) take(ctx context.Context, bodies, bytes int) (time.Duration, error) {
	var waited time.Duration
	for _, t := range []struct {
		l *rate.Limiter
		n int
	}{{pb.bodies, bodies}, {pb.bytes, bytes}} {
		if t.l.Limit() == rate.Inf {
			continue
		}
		for n := t.n; n > 0; {
			k := min(n, t.l.Burst())
			n -= k
			if t.l.AllowN(time.Now(), k) {
				continue
			}
			start := time.Now()
			err := t.l.WaitN(ctx, k)
			waited += time.Since(start)
			if err != nil {
				return waited, err
			}
		}
	}
	return waited, nil
}
