package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// liveClient is what a consumer of a subscription holds: the events
// applied as the Event kinds document (put on Added/Changed, delete on
// Removed), and the seq of the last Current.
type liveClient struct {
	sub  *Subscription
	q    LiveQuery
	docs map[string]Document
	cur  uint64
	got  bool   // a Current arrived
	last uint64 // seq of the last event
	bad  error  // an event out of order: an older seq, or a document older than the one held
}

func subscribe(t *testing.T, d *DB, q LiveQuery) *liveClient {
	t.Helper()
	s, err := d.Subscribe(t.Context(), q)
	if err != nil {
		t.Fatalf("subscribe %+v: %v", q, err)
	}
	return &liveClient{sub: s, q: q, docs: map[string]Document{}}
}

func (c *liveClient) apply(e Event) {
	if e.Seq < c.last && c.bad == nil {
		c.bad = fmt.Errorf("event %s %q at seq %d after one at seq %d", e.Kind, e.Doc.ID, e.Seq, c.last)
	}
	c.last = e.Seq
	if old, ok := c.docs[e.Doc.ID]; ok && e.Doc.Seq != 0 && e.Doc.Seq < old.Seq && c.bad == nil {
		c.bad = fmt.Errorf("event %s %q carries the document at seq %d, older than the one held (%d)", e.Kind, e.Doc.ID, e.Doc.Seq, old.Seq)
	}
	switch e.Kind {
	case EventAdded, EventChanged:
		c.docs[e.Doc.ID] = e.Doc
	case EventRemoved:
		delete(c.docs, e.Doc.ID)
	case EventCurrent:
		c.cur, c.got = e.Seq, true
	}
}

// until applies events until a Current at or past seq; it returns the
// subscription's end if it ends first.
func (c *liveClient) until(t *testing.T, seq uint64) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for c.cur < seq || !c.got {
		e, err := c.sub.Next(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("no Current at seq %d within 10s (last %d)", seq, c.cur)
		}
		if err != nil {
			return err
		}
		c.apply(e)
		if c.bad != nil {
			t.Fatal(c.bad)
		}
	}
	return nil
}

// check compares the consumer's result with the query run afresh: the
// same documents, revisions and bodies.
func (c *liveClient) check(t *testing.T, d *DB, what string) {
	t.Helper()
	want := map[string]Document{}
	err := d.liveResult(t.Context(), c.q.Query, func(doc Document) error {
		want[doc.ID] = doc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(c.docs) {
		t.Fatalf("%s: query %v: subscriber holds %d documents, the query finds %d", what, c.q.Where, len(c.docs), len(want))
	}
	for id, w := range want {
		g, ok := c.docs[id]
		if !ok {
			t.Fatalf("%s: query %v: subscriber lacks %s", what, c.q.Where, id)
		}
		wb, _ := json.Marshal(w.Body)
		gb, _ := json.Marshal(g.Body)
		if g.Rev != w.Rev || string(wb) != string(gb) {
			t.Fatalf("%s: query %v: %s is %s %s at the subscriber, %s %s afresh", what, c.q.Where, id, g.Rev, gb, w.Rev, wb)
		}
	}
}

var liveQueries = [][]Cond{
	nil, // every document
	{{Path: "/color", Op: "==", Value: "red"}},
	{{Path: "/n", Op: ">", Value: int64(5)}},
	{{Path: "/tags", Op: "==", Value: "x"}},
	{{Path: "/color", Op: "==", Value: "blue"}, {Path: "/n", Op: "<", Value: int64(4)}},
	{{Path: "/color", Op: "prefix", Value: "gr"}},
}

func randomBody(r *rand.Rand) map[string]any {
	colors := []string{"red", "blue", "green", "grey", "black"}
	b := map[string]any{"color": colors[r.IntN(len(colors))], "n": int64(r.IntN(10))}
	if r.IntN(2) == 0 {
		tags := []any{}
		for _, t := range []string{"x", "y", "z"} {
			if r.IntN(2) == 0 {
				tags = append(tags, t)
			}
		}
		b["tags"] = tags
	}
	return b
}

// randomOps writes n random puts, patches and deletes on d over ids doc0..doc29.
func randomOps(t *testing.T, r *rand.Rand, d *DB, n int) {
	t.Helper()
	ctx := t.Context()
	for range n {
		id := fmt.Sprintf("doc%d", r.IntN(30))
		var err error
		switch r.IntN(6) {
		case 0:
			_, err = d.Delete(ctx, id, "")
		case 1:
			_, err = d.Patch(ctx, id, Patch{Merge: map[string]any{"n": int64(r.IntN(10))}})
		default:
			_, err = d.Put(ctx, id, randomBody(r), "")
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("write %s: %v", id, err)
		}
	}
}

// TestLiveQueryProperty: random writes and deletes on this peer, random
// writes replicated from a second one, subscribers started at different
// points and one resumed after a drop: at every point where the feed is
// quiet, each subscriber's initial result with its events applied equals
// its query run afresh.
func TestLiveQueryProperty(t *testing.T) {
	t.Run("views", func(t *testing.T) { liveQueryProperty(t, liveViewsMax) })
	// The writer's views dropped all the time: the dispatcher mixes them
	// with documents it reads back (newer, at times, than the views after).
	t.Run("few-views", func(t *testing.T) { liveQueryProperty(t, 3) })
}

func liveQueryProperty(t *testing.T, viewsMax int) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	tn := newTestNet(t, 2)
	tn.createDB("db")
	tn.connect(0, 1)
	d0, d1 := tn.db(0, "db"), tn.db(1, "db")
	d0.live.views.Lock()
	d0.live.views.max = viewsMax
	d0.live.views.Unlock()

	var clients []*liveClient
	for round := range 12 {
		if round%4 == 0 { // Subscribers join at different points of the history.
			for _, w := range liveQueries {
				clients = append(clients, subscribe(t, d0, LiveQuery{Query: Query{Where: w}}))
			}
		}
		randomOps(t, r, d0, 10+r.IntN(20))
		randomOps(t, r, d1, r.IntN(20))
		if round == 6 { // A partition: both sides write, then it heals.
			tn.cut(0, 1)
			randomOps(t, r, d0, 20)
			randomOps(t, r, d1, 20)
			tn.heal(0, 1)
			tn.connect(0, 1)
		}
		waitFor(t, "peers converged", 20*time.Second, func() bool { return tn.converged("db") })
		seq := d0.seq.Load()
		for i, c := range clients {
			if err := c.until(t, seq); err != nil {
				t.Fatalf("round %d: subscriber %d: %v", round, i, err)
			}
			c.check(t, d0, fmt.Sprintf("round %d, subscriber %d", round, i))
		}
		if round == 3 || round == 8 { // A drop: the consumer resumes from its last Current.
			c := clients[r.IntN(len(clients))]
			c.sub.Close()
			randomOps(t, r, d0, 15)
			q := c.q
			q.Since = c.cur
			s, err := d0.Subscribe(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			c.sub, c.got, c.last = s, false, c.cur
		}
	}
	for _, c := range clients {
		c.sub.Close()
	}
}

// TestLiveQuerySlowConsumer: a consumer that does not read is cut off once
// its buffer fills, without holding the writer up; it resumes from the
// seq it is given and ends with the query's result.
func TestLiveQuerySlowConsumer(t *testing.T) {
	_, d := testDB(t)
	q := LiveQuery{Query: Query{Where: []Cond{{Path: "/n", Op: ">=", Value: int64(0)}}}, Buffer: 8}
	c := subscribe(t, d, q)
	if err := c.until(t, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 200 { // The consumer reads nothing meanwhile: every write still returns.
		mustPut(t, d, fmt.Sprintf("d%03d", i), map[string]any{"n": int64(i)}, "")
	}
	var lag *LaggingError
	for {
		e, err := c.sub.Next(t.Context())
		if err != nil {
			if !errors.As(err, &lag) || !errors.Is(err, ErrLagging) {
				t.Fatalf("end of a slow subscription: %v, want a *LaggingError", err)
			}
			break
		}
		c.apply(e)
	}
	if len(c.docs) >= 200 || lag.Seq == 0 {
		t.Fatalf("cut off with %d documents delivered at seq %d", len(c.docs), lag.Seq)
	}
	q.Since, q.Buffer = lag.Seq, 0
	s, err := d.Subscribe(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	c.sub, c.got = s, false
	if err := c.until(t, d.seq.Load()); err != nil {
		t.Fatal(err)
	}
	c.check(t, d, "after resuming")
	if len(c.docs) != 200 {
		t.Fatalf("resumed subscriber holds %d documents, want 200", len(c.docs))
	}
}

// TestLiveQueryBufferBytes: a consumer that does not read is cut off once
// its queue holds LiveBufferBytes of documents, well before Buffer events,
// and resumes to the whole result.
func TestLiveQueryBufferBytes(t *testing.T) {
	_, d := testDB(t)
	q := LiveQuery{Query: Query{Where: []Cond{{Path: "/n", Op: ">=", Value: int64(0)}}}, Buffer: MaxLiveBuffer}
	c := subscribe(t, d, q)
	if err := c.until(t, 0); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 1<<20-64)
	const n = 24 // 24 MiB of documents against a 16 MiB queue
	for i := range n {
		mustPut(t, d, fmt.Sprintf("d%02d", i), map[string]any{"n": int64(i), "big": big}, "")
	}
	waitFor(t, "the subscription cut off", 10*time.Second, func() bool { return c.sub.ended() })
	c.sub.mu.Lock()
	held, docs := c.sub.mu.bytes, 0
	for _, e := range c.sub.mu.queue[c.sub.mu.head:] {
		if e.Kind == EventAdded {
			docs++
		}
	}
	c.sub.mu.Unlock()
	if docs >= n || held > LiveBufferBytes {
		t.Fatalf("%d documents (%d bytes) queued: want fewer than %d, at most %d bytes", docs, held, n, LiveBufferBytes)
	}
	var lag *LaggingError
	for {
		e, err := c.sub.Next(t.Context())
		if err != nil {
			if !errors.As(err, &lag) {
				t.Fatalf("end of a slow subscription: %v, want a *LaggingError", err)
			}
			break
		}
		c.apply(e)
	}
	q.Since = lag.Seq
	s, err := d.Subscribe(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	c.sub, c.got, c.last = s, false, lag.Seq
	if err := c.until(t, d.seq.Load()); err != nil {
		t.Fatal(err)
	}
	if len(c.docs) != n {
		t.Fatalf("resumed subscriber holds %d documents, want %d", len(c.docs), n)
	}
}

func TestLiveQueryRefusesBadQueries(t *testing.T) {
	_, d := testDB(t)
	for _, q := range []LiveQuery{
		{Query: Query{Limit: 10}},
		{Query: Query{Cursor: "x"}},
		{Query: Query{Where: []Cond{{Path: "/a", Op: "~", Value: int64(1)}}}},
		{Query: Query{Where: []Cond{{Path: "", Op: "==", Value: int64(1)}}}},
		{Buffer: -1},
		{Buffer: MaxLiveBuffer + 1},
	} {
		if _, err := d.Subscribe(t.Context(), q); !errors.Is(err, ErrInvalid) {
			t.Errorf("Subscribe(%+v) = %v, want ErrInvalid", q, err)
		}
	}
}

// TestLiveQueryEnds: Close, the caller's context and dropping the database
// end a subscription with the documented errors.
func TestLiveQueryEnds(t *testing.T) {
	n, d := testDB(t)
	mustPut(t, d, "a", map[string]any{"x": int64(1)}, "")
	c := subscribe(t, d, LiveQuery{})
	if err := c.until(t, 1); err != nil {
		t.Fatal(err)
	}
	c.sub.Close()
	c.sub.Close()
	if _, err := c.sub.Next(t.Context()); !errors.Is(err, ErrUnsubscribed) {
		t.Fatalf("Next after Close: %v, want ErrUnsubscribed", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	s, err := d.Subscribe(ctx, LiveQuery{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for {
		if _, err := s.Next(t.Context()); err != nil {
			if !errors.Is(err, ErrUnsubscribed) {
				t.Fatalf("Next after the context ended: %v, want ErrUnsubscribed", err)
			}
			break
		}
	}

	c = subscribe(t, d, LiveQuery{})
	if err := c.until(t, 1); err != nil {
		t.Fatal(err)
	}
	if err := n.DropDB(t.Context(), "db"); err != nil {
		t.Fatal(err)
	}
	if err := c.until(t, 100); !errors.Is(err, ErrClosed) {
		t.Fatalf("subscription of a dropped database: %v, want ErrClosed", err)
	}
}
