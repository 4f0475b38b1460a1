package discovery

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// maxParallelDials bounds the redials running at once.
const maxParallelDials = 16

// redialLoop dials every known peer that is not connected and whose
// backoff has passed, until ctx ends; it waits for its dials before
// returning.
func (d *Discovery) redialLoop(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due, wait := d.due(time.Now())
		for _, ai := range due {
			wg.Go(func() { d.redial(ctx, ai) })
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// due marks the known peers to dial now as dialing and returns them, with
// how long to wait before the next one is due.
func (d *Discovery) due(now time.Time) ([]peer.AddrInfo, time.Duration) {
	wait := time.Hour
	var out []peer.AddrInfo
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, k := range d.mu.known {
		if k.dialing || d.connected(id) {
			continue
		}
		if until := k.next.Sub(now); until > 0 {
			wait = min(wait, until)
			continue
		}
		if d.mu.inflight >= maxParallelDials {
			// A finishing dial wakes the loop.
			break
		}
		k.dialing = true
		d.mu.inflight++
		out = append(out, peer.AddrInfo{ID: id, Addrs: append([]multiaddr.Multiaddr(nil), k.addrs...)})
	}
	return out, wait
}

// redial dials one known peer and schedules its next attempt.
func (d *Discovery) redial(ctx context.Context, ai peer.AddrInfo) {
	err := d.dial(ctx, ai)
	d.mu.Lock()
	d.mu.inflight--
	if k, ok := d.mu.known[ai.ID]; ok {
		k.dialing = false
		if err == nil {
			k.backoff, k.next = d.cfg.Backoff.Min, time.Time{}
		} else {
			k.next = time.Now().Add(jitter(k.backoff))
			k.backoff = min(2*k.backoff, d.cfg.Backoff.Max)
		}
	}
	d.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		d.log.Debug("redial failed", "peer", ai.ID, "err", err)
	} else if err == nil {
		d.h.ConnManager().Protect(ai.ID, protectTag)
		d.log.Debug("known peer redialed", "peer", ai.ID)
	}
	signal(d.wake)
}

// jitter spreads b over [0.8b, b] so peers that lost the same node do not
// redial it in step.
func jitter(b time.Duration) time.Duration {
	return b - time.Duration(rand.Int64N(int64(b)/5+1))
}

// disconnected schedules a redial of a known peer whose last connection
// closed: after its current backoff (Backoff.Min after a good dial).
func (d *Discovery) disconnected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	if d.connected(p) {
		return
	}
	d.mu.Lock()
	k, ok := d.mu.known[p]
	if ok && !k.dialing {
		k.next = time.Now().Add(jitter(k.backoff))
	}
	d.mu.Unlock()
	if ok {
		signal(d.wake)
	}
}
