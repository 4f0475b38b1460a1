package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/index"
	"github.com/barrel-db/barrel/node/internal/commit"
)

// Live queries (docs/design.md, "Live queries"). A subscription first
// delivers the query's result, then an event each time a document enters,
// changes in or leaves it. Events come from the changes feed, read after
// the writer has committed: the writer never waits for a subscriber. One
// dispatcher goroutine per database follows the feed for every subscriber,
// loading each changed document once and testing only the subscriptions
// it may concern (those whose first == condition it satisfies, those
// without one, and those whose result holds it). A subscriber that lets
// its buffer fill is cut off with a LaggingError naming the seq to resume
// from.

// Live query defaults.
const (
	// DefaultLiveBuffer is the events a subscription holds for a slow
	// consumer before it is cut off.
	DefaultLiveBuffer = 1024
	// MaxLiveBuffer bounds LiveQuery.Buffer.
	MaxLiveBuffer = 65536
	// LiveBufferBytes bounds, besides Buffer, what a subscription's queue
	// holds: about this many bytes of documents (at least one event is
	// always taken, so a document of any accepted size can be delivered).
	LiveBufferBytes = 16 << 20
	// liveCurrentEvery spaces the Current events of a subscription that
	// had no event of its own while the feed moved.
	liveCurrentEvery = 250 * time.Millisecond
	// livePage is the page size of the initial query and of feed reads.
	livePage = 500
)

// LiveQuery is a subscription's query: Where and OrderBy as Query has them
// (OrderBy orders the initial result only), no Limit or Cursor.
type LiveQuery struct {
	Query
	// Since resumes a subscription: 0 delivers the initial result; a seq
	// from an earlier subscription's events (the last Current, or the
	// LaggingError) delivers, for each document changed after it, its
	// state now: Changed when it matches, Removed when it does not (also
	// for a document the subscriber never had: removing an absent
	// document is a no-op). Afterwards events are exact.
	Since uint64
	// Buffer is the events held for a slow consumer; 0 means
	// DefaultLiveBuffer.
	Buffer int
}

// EventKind says what happened to a document of a live query's result.
type EventKind uint8

// Event kinds. A consumer applies Added and Changed as "put Doc", Removed
// as "delete ID if held"; Current says everything up to Seq is delivered.
const (
	EventAdded   EventKind = iota + 1 // the document entered the result (or is in the initial result)
	EventChanged                      // a document of the result has a new revision
	EventRemoved                      // the document left the result (changed, deleted or purged)
	EventCurrent                      // the result is up to date at Seq: a point to resume from
)

func (k EventKind) String() string {
	switch k {
	case EventAdded:
		return "added"
	case EventChanged:
		return "changed"
	case EventRemoved:
		return "removed"
	case EventCurrent:
		return "current"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one event of a subscription. Seq is the feed seq the event
// comes from (the initial result's: the seq it was read at); Doc is the
// document as read then (for Removed: its ID, Rev and Deleted only; for
// Current: empty).
type Event struct {
	Kind EventKind
	Seq  uint64
	Doc  Document
	size int // what the event holds, about (docSize): the queue's bytes
}

// ErrLagging: a subscriber let its buffer fill. The error is a
// *LaggingError carrying the seq to resume from.
var ErrLagging = errors.New("subscriber fell behind")

// ErrUnsubscribed: Next on a subscription that was closed or whose context
// ended.
var ErrUnsubscribed = errors.New("subscription closed")

// LaggingError is the end of a subscription whose consumer fell behind:
// every event up to Seq was delivered, and a subscription with Since: Seq
// continues from there. It matches ErrLagging.
type LaggingError struct{ Seq uint64 }

func (e *LaggingError) Error() string {
	return fmt.Sprintf("%v: its buffer filled; resume from seq %d", ErrLagging, e.Seq)
}

func (e *LaggingError) Unwrap() error { return ErrLagging }

// Subscribe starts a live query. It validates the query (ErrInvalid) and
// returns at once; the initial result and the events that follow are read
// with Next. The subscription ends when ctx ends, on Close, when the
// database closes (ErrClosed) or when the consumer falls behind
// (*LaggingError).
func (d *DB) Subscribe(ctx context.Context, q LiveQuery) (*Subscription, error) {
	if err := d.checkOpen(); err != nil {
		return nil, err
	}
	if q.Limit != 0 || q.Cursor != "" {
		return nil, invalid("query", "a live query takes no limit or cursor: it follows its whole result")
	}
	if q.Buffer == 0 {
		q.Buffer = DefaultLiveBuffer
	}
	if q.Buffer < 1 || q.Buffer > MaxLiveBuffer {
		return nil, invalid("query", "buffer %d: want 1..%d", q.Buffer, MaxLiveBuffer)
	}
	m, err := compileWhere(q.Where)
	if err != nil {
		return nil, err
	}
	if q.OrderBy != "" { // Checked as Query checks it, before anything starts.
		if _, err := d.Query(ctx, Query{Where: q.Where, OrderBy: q.OrderBy, Desc: q.Desc, Limit: 1}); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Subscription{d: d, q: q, m: m, cancel: cancel, members: map[string]uint64{},
		ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
	if !d.live.begin() {
		cancel()
		return nil, ErrClosed
	}
	stop := context.AfterFunc(ctx, s.Close)
	go func() {
		defer d.live.end()
		if err := s.start(ctx); err != nil {
			if ctx.Err() != nil {
				err = ErrUnsubscribed
			}
			s.fail(err)
			stop()
		}
	}()
	return s, nil
}

// compileWhere compiles a query's conditions with the values normalized as
// Query does.
func compileWhere(where []Cond) (*index.Matcher, error) {
	conds := make([]index.Cond, 0, len(where))
	for _, c := range where {
		v, err := crdt.Normalize(c.Value)
		if err != nil {
			return nil, invalid("query", "%v", err)
		}
		conds = append(conds, index.Cond{Path: c.Path, Op: c.Op, Value: v})
	}
	m, err := index.Compile(conds)
	if err != nil {
		return nil, invalid("query", "%s", strings.TrimPrefix(err.Error(), index.ErrBadQuery.Error()+": "))
	}
	return m, nil
}

// Subscription is a live query's stream of events (Subscribe).
type Subscription struct {
	d      *DB
	q      LiveQuery
	m      *index.Matcher
	cancel context.CancelFunc

	// Owned by the subscription's goroutine until it registers with the
	// database's dispatcher, then guarded by the dispatcher's mutex.
	members map[string]uint64 // id -> Document.Seq of the documents in the result as the consumer has them
	regPos  uint64            // feed seq the subscription was handed over at: the dispatcher skips entries up to it
	dirty   bool              // an event was queued since the last Current (it is in the dispatcher's dirty list)
	curSeq  uint64            // seq of the last Current queued

	ready chan struct{} // buffered 1: an event or the end was queued
	space chan struct{} // buffered 1: the consumer took an event
	mu    struct {      // guards the queue; held for no I/O
		sync.Mutex
		queue []Event
		head  int
		bytes int   // sum of the queued events' size
		err   error // the end, once set; returned by Next after the queue drains
	}
}

// Next returns the next event, waiting for one until ctx ends. After the
// subscription ended it returns the events still queued, then the reason:
// ErrUnsubscribed, ErrClosed, a *LaggingError or a read error.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		if s.mu.head < len(s.mu.queue) {
			e := s.mu.queue[s.mu.head]
			s.mu.queue[s.mu.head] = Event{}
			s.mu.head++
			s.mu.bytes -= e.size
			e.size = 0
			if s.mu.head == len(s.mu.queue) {
				s.mu.queue, s.mu.head = s.mu.queue[:0], 0
				if cap(s.mu.queue) > 16 {
					s.mu.queue = nil // Drained: an idle subscription holds no backing array of its initial result's size.
				}
			} else if s.mu.head > cap(s.mu.queue)/2 && s.mu.head > 64 {
				n := copy(s.mu.queue, s.mu.queue[s.mu.head:])
				s.mu.queue, s.mu.head = s.mu.queue[:n], 0
			}
			s.mu.Unlock()
			signal(s.space)
			return e, nil
		}
		err := s.mu.err
		s.mu.Unlock()
		if err != nil {
			return Event{}, err
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Pending is the number of events queued for Next now.
func (s *Subscription) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.queue) - s.mu.head
}

// Close ends the subscription; Next then drains what is queued and returns
// ErrUnsubscribed. It is idempotent.
func (s *Subscription) Close() {
	s.cancel()
	s.fail(ErrUnsubscribed) // Before unregister: register refuses an ended subscription.
	s.d.live.unregister(s)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// push queues e; false when the queue holds Buffer events already, or
// LiveBufferBytes with e.
func (s *Subscription) push(e Event) bool {
	s.mu.Lock()
	if s.mu.err != nil {
		s.mu.Unlock()
		return true // Ended: the event goes nowhere, as after Close.
	}
	n := len(s.mu.queue) - s.mu.head
	if n >= s.q.Buffer || (n > 0 && s.mu.bytes+e.size > LiveBufferBytes) {
		s.mu.Unlock()
		return false
	}
	s.mu.queue = append(s.mu.queue, e)
	s.mu.bytes += e.size
	s.mu.Unlock()
	signal(s.ready)
	return true
}

// pushWait queues e, waiting for room (the subscription's own goroutine,
// before it is handed to the dispatcher: a slow consumer slows only it).
func (s *Subscription) pushWait(ctx context.Context, e Event) error {
	for !s.push(e) {
		select {
		case <-s.space:
		case <-s.d.quit:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// fail ends the subscription with err unless it has ended already.
func (s *Subscription) fail(err error) {
	s.mu.Lock()
	if s.mu.err == nil {
		s.mu.err = err
	}
	s.mu.Unlock()
	signal(s.ready)
}

// ended reports whether the subscription has its end.
func (s *Subscription) ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.err != nil
}

// start reads the initial result (or, resuming, the result now, sent only
// as the feed since Since names its documents), follows the feed to where
// the dispatcher is and hands the subscription over to it.
func (s *Subscription) start(ctx context.Context) error {
	d := s.d
	resume := s.q.Since > 0
	pos := s.q.Since
	if !resume {
		pos = d.seq.Load()
	}
	err := d.liveResult(ctx, s.q.Query, func(doc Document) error {
		s.members[doc.ID] = doc.Seq
		if resume {
			return nil
		}
		return s.pushWait(ctx, Event{Kind: EventAdded, Seq: pos, Doc: doc, size: docSize(doc)})
	})
	if err != nil {
		return err
	}
	if err := s.pushWait(ctx, Event{Kind: EventCurrent, Seq: pos}); err != nil {
		return err
	}
	s.curSeq = pos
	if resume {
		// Everything the result was read with must be sent as it is: a
		// document changed after Since may hold its new state in members
		// already, and only the feed names it.
		head := d.seq.Load()
		if err := s.catchUp(ctx, pos, head, true); err != nil {
			return err
		}
		pos = head
	}
	for {
		target, registered := d.live.register(s, pos)
		if registered {
			return nil
		}
		if err := s.catchUp(ctx, pos, target, resume); err != nil {
			return err
		}
		pos = target
	}
}

// liveResult calls fn with every document of q's result, a page at a
// time: the query's, or without conditions and order every live
// document in id order.
func (d *DB) liveResult(ctx context.Context, q Query, fn func(Document) error) error {
	if len(q.Where) == 0 && q.OrderBy == "" {
		o := ListOptions{Limit: livePage}
		for {
			list, err := d.List(ctx, o)
			if err != nil {
				return err
			}
			for _, ds := range list {
				doc, err := d.liveDoc(ds.ID)
				if err != nil {
					return err
				}
				if doc.Deleted {
					continue // Deleted since it was listed: the feed tells.
				}
				if err := fn(doc); err != nil {
					return err
				}
			}
			if len(list) < livePage {
				return nil
			}
			o.StartAfter = list[len(list)-1].ID
		}
	}
	q.Limit = livePage
	for {
		res, err := d.Query(ctx, q)
		if err != nil {
			return err
		}
		for _, doc := range res.Docs {
			if err := fn(doc); err != nil {
				return err
			}
		}
		if res.Cursor == "" {
			return nil
		}
		q.Cursor = res.Cursor
	}
}

// catchUp applies the feed entries in (from, to] to the subscription
// before it is registered. Resuming, every document named is sent as it
// is now; otherwise the consumer has exactly members and events are exact.
func (s *Subscription) catchUp(ctx context.Context, from, to uint64, resume bool) error {
	d := s.d
	for from < to {
		cs, _, err := d.Changes(ctx, from, livePage)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			return nil
		}
		for _, c := range cs {
			if c.Seq > to {
				return nil
			}
			doc, err := d.liveDoc(c.ID)
			if err != nil {
				return err
			}
			e, ok := s.step(c.Seq, doc, resume)
			if ok {
				e.size = docSize(e.Doc)
				if err := s.pushWait(ctx, e); err != nil {
					return err
				}
			}
			from = c.Seq
		}
	}
	return nil
}

// step is what the change of doc at seq means to the subscription: the
// event to send (ok false: none) and the result updated. With force (a
// resumed subscription's catch-up) the document's state is sent whatever
// the consumer is believed to hold.
func (s *Subscription) step(seq uint64, doc Document, force bool) (Event, bool) {
	// A document's Seq moves with every change applied to it; its Rev
	// does not when a merged concurrent change loses on some paths only.
	ver, held := s.members[doc.ID]
	if held && !force && doc.Seq != 0 && doc.Seq < ver {
		// Older than the consumer's: it was read from the store after
		// newer changes committed, and a view of an earlier one follows.
		return Event{}, false
	}
	match := !doc.Deleted && s.m.Match(doc.Body)
	var kind EventKind
	switch {
	case match && !held && !force:
		kind = EventAdded
	case match && (force || ver != doc.Seq):
		kind = EventChanged
	case !match && (held || force):
		kind = EventRemoved
	default:
		return Event{}, false
	}
	if kind == EventRemoved {
		delete(s.members, doc.ID)
		doc = Document{ID: doc.ID, Rev: doc.Rev, Deleted: doc.Deleted, Seq: doc.Seq}
	} else {
		s.members[doc.ID] = doc.Seq
	}
	return Event{Kind: kind, Seq: seq, Doc: doc}, true
}

// docSize is about the bytes a queued event's document holds (a walk of
// its body, without the allocator's rounding): what bounds a queue by bytes.
func docSize(doc Document) int {
	n := 64 + len(doc.ID) + len(doc.Rev)
	for _, r := range doc.Revs {
		n += 16 + len(r)
	}
	for _, c := range doc.Conflicts {
		n += 64 + len(c.Path) + len(c.Rev) + valueSize(c.Value)
	}
	if doc.Body != nil {
		n += valueSize(doc.Body)
	}
	return n
}

func valueSize(v any) int {
	switch x := v.(type) {
	case map[string]any:
		n := 48
		for k, e := range x {
			n += 16 + len(k) + valueSize(e)
		}
		return n
	case []any:
		n := 24
		for _, e := range x {
			n += valueSize(e)
		}
		return n
	case string:
		return 16 + len(x)
	default:
		return 16
	}
}

// viewDoc is a document as the writer handed it over, as liveDoc would read it then.
func viewDoc(v commit.View) Document {
	if !v.State.Exists() {
		return Document{ID: v.Doc, Deleted: true}
	}
	return render(v.Doc, v.State, v.Seq)
}

// liveDoc reads a document for a live query: a purged one reads as deleted.
func (d *DB) liveDoc(id string) (Document, error) {
	st, seq, err := d.readView(id)
	if err != nil {
		return Document{}, fmt.Errorf("live query: read %s: %w", id, err)
	}
	if !st.Exists() {
		return Document{ID: id, Deleted: true}, nil
	}
	return render(id, st, seq), nil
}
