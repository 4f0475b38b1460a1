package node

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/barrel-db/barrel/index"
	"github.com/barrel-db/barrel/node/internal/commit"
)

// The views the writer hands over (liveHub.offer) are bounded: past these,
// a group's views are dropped and the dispatcher reads those documents back.
const (
	liveViewsMax      = 4096
	liveViewsMaxBytes = 32 << 20
)

// liveHub is a database's live-query dispatcher: the subscriptions handed
// over to it and the one goroutine (run) that follows the feed for them.
type liveHub struct {
	d    *DB
	wake chan struct{}  // buffered 1: a subscription registered
	wg   sync.WaitGroup // the subscriptions' own goroutines (Subscribe)

	// active is set while subscriptions are registered: the writer then
	// hands over the documents it commits (views), so that the dispatcher
	// does not read each one back from the store.
	active atomic.Bool
	views  struct {
		sync.Mutex
		list  []commit.View // ascending Seq
		bytes int           // sum of their Size
		max   int           // views held at most (liveViewsMax; tests lower it)
	}

	mu struct { // guards the dispatch state; held for no I/O (documents are read before it is taken)
		sync.Mutex
		closed  bool
		pos     uint64 // last feed seq dispatched
		subs    map[*Subscription]struct{}
		eq      map[string]map[*Subscription]struct{} // by Matcher.EqKey
		paths   map[string]*eqPath                    // by Matcher.EqPath: the == paths to look a document up at
		scan    map[*Subscription]struct{}            // those without an == condition: tested on every change
		holders map[string]holders                    // by document id: the subscriptions whose result holds it
		dirty   []*Subscription                       // those with an event queued since their last Current
		sweep   time.Time                             // when every subscription behind the feed was last sent a Current
		swept   uint64                                // the seq it was sent at
		cands   []*Subscription                       // scratch for dispatch
		keys    []string                              // scratch for dispatch
		mark    map[*Subscription]uint64              // seq a subscription was last tested at, to test it once
	}
}

// eqPath is one path of == conditions: a matcher to walk a document at it
// (Matcher.EqKeys) and the number of subscriptions on it.
type eqPath struct {
	m *index.Matcher
	n int
}

func newLiveHub(d *DB) *liveHub {
	h := &liveHub{d: d, wake: make(chan struct{}, 1)}
	h.mu.subs = map[*Subscription]struct{}{}
	h.mu.eq = map[string]map[*Subscription]struct{}{}
	h.mu.paths = map[string]*eqPath{}
	h.mu.scan = map[*Subscription]struct{}{}
	h.mu.holders = map[string]holders{}
	h.mu.mark = map[*Subscription]uint64{}
	h.views.max = liveViewsMax
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
		h.active.Store(true)
	}
	s.regPos = pos
	h.mu.subs[s] = struct{}{}
	if k, ok := s.m.EqKey(); ok {
		if h.mu.eq[k] == nil {
			h.mu.eq[k] = map[*Subscription]struct{}{}
		}
		h.mu.eq[k][s] = struct{}{}
		p := h.mu.paths[s.m.EqPath()]
		if p == nil {
			p = &eqPath{m: s.m}
			h.mu.paths[s.m.EqPath()] = p
		}
		p.n++
	} else {
		h.mu.scan[s] = struct{}{}
	}
	for id := range s.members {
		h.hold(s, id)
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
	if len(h.mu.subs) == 0 {
		h.active.Store(false)
		h.views.Lock()
		h.views.list, h.views.bytes = nil, 0
		h.views.Unlock()
	}
	if k, ok := s.m.EqKey(); ok {
		delete(h.mu.eq[k], s)
		if len(h.mu.eq[k]) == 0 {
			delete(h.mu.eq, k)
		}
		p := h.mu.paths[s.m.EqPath()]
		if p.n--; p.n == 0 {
			delete(h.mu.paths, s.m.EqPath())
		}
	} else {
		delete(h.mu.scan, s)
	}
	for id := range s.members {
		h.release(s, id)
	}
}

// holders are the subscriptions whose result holds one document: most
// often one, kept without a slice, since a subscriber's result is the
// most of what the dispatcher holds (and what the GC marks).
type holders struct {
	one  *Subscription
	more []*Subscription
}

func (h *liveHub) hold(s *Subscription, id string) {
	hs, ok := h.mu.holders[id]
	if !ok {
		h.mu.holders[id] = holders{one: s}
		return
	}
	hs.more = append(hs.more, s)
	h.mu.holders[id] = hs
}

func (h *liveHub) release(s *Subscription, id string) {
	hs, ok := h.mu.holders[id]
	if !ok {
		return
	}
	if hs.one == s {
		if len(hs.more) == 0 {
			delete(h.mu.holders, id)
			return
		}
		hs.one, hs.more = hs.more[len(hs.more)-1], hs.more[:len(hs.more)-1]
	} else {
		hs.more = slices.DeleteFunc(hs.more, func(x *Subscription) bool { return x == s })
	}
	if len(hs.more) == 0 {
		hs.more = nil
	}
	h.mu.holders[id] = hs
}

// following reports whether subscriptions are registered (commit.Env.Views).
func (h *liveHub) following() bool { return h.active.Load() }

// offer takes the views of a committed group (the writer's commit
// goroutine calls it, so it never waits on the dispatcher: it drops them
// when the dispatcher is that far behind, or when no one follows).
func (h *liveHub) offer(vs []commit.View) {
	if len(vs) == 0 || !h.active.Load() {
		return
	}
	size := 0
	for _, v := range vs {
		size += v.Size
	}
	h.views.Lock()
	defer h.views.Unlock()
	if len(h.views.list)+len(vs) > h.views.max || h.views.bytes+size > liveViewsMaxBytes {
		return
	}
	h.views.list = append(h.views.list, vs...)
	h.views.bytes += size
}

// take returns the views handed over for the feed entries right after
// pos (at most livePage, with no gap), dropping those up to pos; nil when
// the next entry has none (it was written without views, or dropped).
func (h *liveHub) take(pos uint64) []commit.View {
	h.views.Lock()
	defer h.views.Unlock()
	l := h.views.list
	skip := 0
	for skip < len(l) && l[skip].Seq <= pos {
		skip++
	}
	n := 0
	for skip+n < len(l) && n < livePage && l[skip+n].Seq == pos+uint64(n)+1 {
		n++
	}
	out := slices.Clone(l[skip : skip+n])
	for _, v := range l[:skip+n] {
		h.views.bytes -= v.Size
	}
	h.views.list = slices.Delete(l, 0, skip+n)
	return out
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

// dispatchFrom dispatches one page of feed entries after pos: from the
// writer's views when it handed them over, else read from the store.
func (h *liveHub) dispatchFrom(ctx context.Context, pos uint64) error {
	if vs := h.take(pos); len(vs) > 0 {
		for _, v := range vs {
			h.dispatch(v.Seq, viewDoc(v), -1)
		}
		return nil
	}
	cs, _, err := h.d.Changes(ctx, pos, livePage)
	if err != nil {
		return err
	}
	for _, c := range cs {
		doc, err := h.d.liveDoc(c.ID)
		if err != nil {
			return err
		}
		h.dispatch(c.Seq, doc, -1)
	}
	return nil
}

// dispatch tests the subscriptions doc may concern and queues their
// events. size is what the document holds (docSize; -1: not known yet,
// computed if an event carries it).
func (h *liveHub) dispatch(seq uint64, doc Document, size int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cands := h.mu.cands[:0]
	add := func(s *Subscription) {
		if h.mu.mark[s] != seq {
			h.mu.mark[s] = seq
			cands = append(cands, s)
		}
	}
	if !doc.Deleted {
		keys := h.mu.keys[:0]
		for _, p := range h.mu.paths {
			keys = p.m.EqKeys(keys, doc.Body)
		}
		for _, k := range keys {
			for s := range h.mu.eq[k] {
				add(s)
			}
		}
		clear(keys)
		h.mu.keys = keys[:0]
	}
	for s := range h.mu.scan {
		add(s)
	}
	if hs, ok := h.mu.holders[doc.ID]; ok {
		add(hs.one)
		for _, s := range hs.more {
			add(s)
		}
	}
	for _, s := range cands {
		if seq <= s.regPos {
			continue
		}
		e, ok := s.step(seq, doc, false)
		if !ok {
			continue
		}
		if e.Kind != EventRemoved {
			if size < 0 {
				size = docSize(doc)
			}
			e.size = size
		}
		switch e.Kind {
		case EventAdded:
			h.hold(s, doc.ID)
		case EventRemoved:
			h.release(s, doc.ID)
		}
		if !s.push(e) {
			h.unregisterLocked(s)
			s.fail(&LaggingError{Seq: max(s.regPos, h.mu.pos)})
			continue
		}
		if !s.dirty {
			s.dirty = true
			h.mu.dirty = append(h.mu.dirty, s)
		}
	}
	clear(cands)
	h.mu.cands = cands[:0]
	h.mu.pos = seq
}

// currents queues a Current at pos for the subscriptions that are due one:
// at once for those with an event of their own since their last, and for
// every other one behind pos once per liveCurrentEvery (a sweep). It
// returns the time until the next sweep is due (0: none is needed). A
// full queue skips it: a Current can be left out.
func (h *liveHub) currents(pos uint64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	current := func(s *Subscription) {
		if s.push(Event{Kind: EventCurrent, Seq: pos}) {
			s.curSeq = pos
		}
	}
	for _, s := range h.mu.dirty {
		s.dirty = false
		if _, ok := h.mu.subs[s]; ok && s.curSeq < pos {
			current(s)
		}
	}
	clear(h.mu.dirty)
	h.mu.dirty = h.mu.dirty[:0]
	if pos <= h.mu.swept {
		return 0 // Every subscription had a Current at pos or later (but those whose queue was full).
	}
	now := time.Now()
	if wait := liveCurrentEvery - now.Sub(h.mu.sweep); wait > 0 {
		return wait
	}
	h.mu.sweep, h.mu.swept = now, pos
	for s := range h.mu.subs {
		if s.curSeq < pos {
			current(s)
		}
	}
	return 0
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
