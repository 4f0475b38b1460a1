package node

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/barrel-db/barrel/index"
)

// liveHub is a database's live-query dispatcher: the subscriptions handed
// over to it and the one goroutine (run) that follows the feed for them.
type liveHub struct {
	d    *DB
	wake chan struct{}  // buffered 1: a subscription registered
	wg   sync.WaitGroup // the subscriptions' own goroutines (Subscribe)

	mu struct { // guards the dispatch state; held for no I/O (documents are read before it is taken)
		sync.Mutex
		closed  bool
		pos     uint64 // last feed seq dispatched
		subs    map[*Subscription]struct{}
		eq      map[string]map[*Subscription]struct{} // by Matcher.EqKey
		scan    map[*Subscription]struct{}            // those without an == condition: tested on every change
		holders map[string][]*Subscription            // by document id: the subscriptions whose result holds it
		cands   []*Subscription                       // scratch for dispatch
		mark    map[*Subscription]uint64              // seq a subscription was last tested at, to test it once
	}
}

func newLiveHub(d *DB) *liveHub {
	h := &liveHub{d: d, wake: make(chan struct{}, 1)}
	h.mu.subs = map[*Subscription]struct{}{}
	h.mu.eq = map[string]map[*Subscription]struct{}{}
	h.mu.scan = map[*Subscription]struct{}{}
	h.mu.holders = map[string][]*Subscription{}
	h.mu.mark = map[*Subscription]uint64{}
	return h
}

// begin counts a subscription goroutine about to start; false once the
// database is closing.
func (h *liveHub) begin() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.closed {
		return false
	}
	h.wg.Add(1)
	return true
}

func (h *liveHub) end() { h.wg.Done() }

// register hands s over to the dispatcher if the subscription has read the
// feed up to pos and the dispatcher is not past it; otherwise it returns
// the seq to catch up to first. A subscription that ended, or a database
// closing, ends registration too (s then holds its end).
func (h *liveHub) register(s *Subscription, pos uint64) (target uint64, done bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.closed {
		s.fail(ErrClosed)
		return 0, true
	}
	if s.ended() {
		return 0, true
	}
	if len(h.mu.subs) > 0 && pos < h.mu.pos {
		return h.mu.pos, false
	}
	if len(h.mu.subs) == 0 {
		h.mu.pos = pos // Idle until now: follow the feed from here.
	}
	s.regPos = pos
	h.mu.subs[s] = struct{}{}
	if k, ok := s.m.EqKey(); ok {
		if h.mu.eq[k] == nil {
			h.mu.eq[k] = map[*Subscription]struct{}{}
		}
		h.mu.eq[k][s] = struct{}{}
	} else {
		h.mu.scan[s] = struct{}{}
	}
	for id := range s.members {
		h.mu.holders[id] = append(h.mu.holders[id], s)
	}
	signal(h.wake)
	return 0, true
}

func (h *liveHub) unregister(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unregisterLocked(s)
}

func (h *liveHub) unregisterLocked(s *Subscription) {
	if _, ok := h.mu.subs[s]; !ok {
		return
	}
	delete(h.mu.subs, s)
	delete(h.mu.mark, s)
	if k, ok := s.m.EqKey(); ok {
		delete(h.mu.eq[k], s)
		if len(h.mu.eq[k]) == 0 {
			delete(h.mu.eq, k)
		}
	} else {
		delete(h.mu.scan, s)
	}
	for id := range s.members {
		h.release(s, id)
	}
}

func (h *liveHub) release(s *Subscription, id string) {
	hs := slices.DeleteFunc(h.mu.holders[id], func(x *Subscription) bool { return x == s })
	if len(hs) == 0 {
		delete(h.mu.holders, id)
	} else {
		h.mu.holders[id] = hs
	}
}

// run follows the feed while subscriptions are registered, until ctx (the
// database's) ends; then every subscription ends with ErrClosed.
func (h *liveHub) run(ctx context.Context) {
	defer h.closeAll()
	d := h.d
	for {
		h.mu.Lock()
		n, pos := len(h.mu.subs), h.mu.pos
		h.mu.Unlock()
		if n == 0 {
			select {
			case <-h.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		ch := d.waitChan()
		if d.seq.Load() <= pos {
			var tick <-chan time.Time
			var t *time.Timer
			if wait := h.currents(pos); wait > 0 {
				t = time.NewTimer(wait)
				tick = t.C
			}
			select {
			case <-ch:
			case <-h.wake:
			case <-tick:
			case <-ctx.Done():
				return
			}
			if t != nil {
				t.Stop()
			}
			continue
		}
		if err := h.dispatchFrom(ctx, pos); err != nil {
			if ctx.Err() != nil {
				return
			}
			d.log.Error("live queries stopped: cannot read the changes feed", "seq", pos, "err", err)
			h.failAll(err)
		}
	}
}

// dispatchFrom dispatches one page of feed entries after pos.
func (h *liveHub) dispatchFrom(ctx context.Context, pos uint64) error {
	cs, _, err := h.d.Changes(ctx, pos, livePage)
	if err != nil {
		return err
	}
	for _, c := range cs {
		doc, err := h.d.liveDoc(c.ID)
		if err != nil {
			return err
		}
		h.dispatch(c.Seq, doc)
	}
	return nil
}

// dispatch tests the subscriptions doc may concern and queues their events.
func (h *liveHub) dispatch(seq uint64, doc Document) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cands := h.mu.cands[:0]
	add := func(s *Subscription) {
		if h.mu.mark[s] != seq {
			h.mu.mark[s] = seq
			cands = append(cands, s)
		}
	}
	if !doc.Deleted && len(h.mu.eq) > 0 {
		for _, k := range index.LeafKeys(doc.Body) {
			for s := range h.mu.eq[k] {
				add(s)
			}
		}
	}
	for s := range h.mu.scan {
		add(s)
	}
	for _, s := range h.mu.holders[doc.ID] {
		add(s)
	}
	for _, s := range cands {
		if seq <= s.regPos {
			continue
		}
		e, ok := s.step(seq, doc, false)
		if !ok {
			continue
		}
		switch e.Kind {
		case EventAdded:
			h.mu.holders[doc.ID] = append(h.mu.holders[doc.ID], s)
		case EventRemoved:
			h.release(s, doc.ID)
		}
		if !s.push(e) {
			h.unregisterLocked(s)
			s.fail(&LaggingError{Seq: max(s.regPos, h.mu.pos)})
			continue
		}
		s.dirty = true
	}
	clear(cands)
	h.mu.cands = cands[:0]
	h.mu.pos = seq
}

// currents queues a Current at pos for the subscriptions that are due one:
// at once after an event of their own, else once liveCurrentEvery has
// passed since their last. It returns the time until the next is due (0:
// none pending). A full queue skips it: a Current can be left out.
func (h *liveHub) currents(pos uint64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	var next time.Duration
	for s := range h.mu.subs {
		if s.curSeq >= pos {
			continue
		}
		if since := now.Sub(s.curAt); !s.dirty && since < liveCurrentEvery {
			if w := liveCurrentEvery - since; next == 0 || w < next {
				next = w
			}
			continue
		}
		if s.push(Event{Kind: EventCurrent, Seq: pos}) {
			s.curSeq, s.curAt, s.dirty = pos, now, false
		}
	}
	return next
}

func (h *liveHub) failAll(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.mu.subs {
		h.unregisterLocked(s)
		s.fail(err)
	}
}

// closeAll ends every subscription with ErrClosed and refuses new ones.
func (h *liveHub) closeAll() {
	h.mu.Lock()
	h.mu.closed = true
	h.mu.Unlock()
	h.failAll(ErrClosed)
}

// wait returns when every subscription goroutine has returned.
func (h *liveHub) wait() { h.wg.Wait() }
