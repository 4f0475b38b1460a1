package commit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/changes"
	"github.com/barrel-db/barrel/node/internal/layout"
	bsync "github.com/barrel-db/barrel/sync"
)

// testEnv is a database reduced to what the writer needs: a real Pebble
// store in a temporary directory, a key, a clock, and hooks that record
// what they are told. Its reads are the store's, as node's are.
type testEnv struct {
	t      *testing.T
	store  *datastore.Store
	keys   layout.Keys
	key    crypto.PrivKey
	author peer.ID
	clock  crdt.Clock

	views bool // what Views answers

	mu        sync.Mutex
	counters  Counters
	committed []Committed
	refused   map[string]int
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	st, err := datastore.Open(t.TempDir(), datastore.Config{ReserveBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, store: st, keys: layout.NewKeys(1), key: key, author: id, refused: map[string]int{}}
}

func (e *testEnv) Name() string            { return "db" }
func (e *testEnv) Author() peer.ID         { return e.author }
func (e *testEnv) Signer() crdt.Signer     { return e.key }
func (e *testEnv) Clock() *crdt.Clock      { return &e.clock }
func (e *testEnv) Now() time.Time          { return time.Now() }
func (e *testEnv) Store() *datastore.Store { return e.store }
func (e *testEnv) Keys() layout.Keys       { return e.keys }
func (e *testEnv) Logger() *slog.Logger    { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (e *testEnv) State(doc string) (*crdt.State, error) {
	st, _, err := e.doc(doc)
	return st, err
}

func (e *testEnv) DocSeq(doc string) (uint64, error) {
	_, seq, err := e.doc(doc)
	return seq, err
}

func (e *testEnv) doc(doc string) (*crdt.State, uint64, error) {
	v, err := e.store.Get(e.keys.Doc(doc))
	if errors.Is(err, datastore.ErrNotFound) {
		return crdt.NewState(), 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	seq, enc, err := layout.ParseDocRecord(v)
	if err != nil {
		return nil, 0, err
	}
	st, err := crdt.DecodeState(enc)
	return st, seq, err
}

func (e *testEnv) Fold(string) (*crdt.State, crdt.HLC, error) { return nil, crdt.HLC{}, nil }

func (e *testEnv) Change(id crdt.ID) (*crdt.Change, error) {
	c, err := changes.NewReader(e.keys, e.store.Get).Change(id)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, fmt.Errorf("change %s: %w", id, ErrNotFound)
	}
	return c, err
}

func (e *testEnv) History(doc string) ([]crdt.ID, error) {
	prefix := e.keys.History(doc)
	var ids []crdt.ID
	err := e.store.Range(prefix, datastore.PrefixEnd(prefix), false, func(_, v []byte) (bool, error) {
		var id crdt.ID
		copy(id[:], v)
		ids = append(ids, id)
		return true, nil
	})
	return ids, err
}

func (e *testEnv) Rejected(id crdt.ID) (bool, error) { return e.store.Has(e.keys.Rejected(id)) }

func (e *testEnv) Counters() Counters {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counters
}

func (e *testEnv) Purged() crdt.HLC             { return crdt.HLC{} }
func (e *testEnv) Owner() peer.ID               { return "" }
func (e *testEnv) CheckpointEpoch() uint64      { return 0 }
func (e *testEnv) FoldWritten()                 {}
func (e *testEnv) Views() bool                  { return e.views }
func (e *testEnv) MaxClockDrift() time.Duration { return time.Minute }
func (e *testEnv) Answered(int, int)            {}

func (e *testEnv) Committed(c Committed) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.counters = c.Counters
	e.committed = append(e.committed, c)
}

func (e *testEnv) Refused(_ peer.ID, counts map[string]int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, n := range counts {
		e.refused[k] += n
	}
}

// start runs a writer over env until the test ends.
func start(t *testing.T, env *testEnv) *Writer {
	t.Helper()
	quit := make(chan struct{})
	w := NewWriter(env, 64, 1024, quit)
	done := make(chan struct{})
	go func() { w.Run(); close(done) }()
	t.Cleanup(func() { close(quit); <-done })
	return w
}

// feed lists the seqs of the feed, failing on a gap.
func (e *testEnv) feed(t *testing.T) []uint64 {
	t.Helper()
	x := e.keys.Feeds()
	var seqs []uint64
	err := e.store.Range(x, datastore.PrefixEnd(x), false, func(k, _ []byte) (bool, error) {
		seq := uint64(len(seqs) + 1)
		if !bytes.Equal(k, e.keys.Feed(seq)) {
			return false, fmt.Errorf("feed entry %d is not seq %d: a gap", len(seqs), seq)
		}
		seqs = append(seqs, seq)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

// TestGroupOfLocalWrites: concurrent local writes are committed in groups,
// every caller answered with its revision only once durable, the feed
// gapless, the counters handed to Committed as the store holds them.
func TestGroupOfLocalWrites(t *testing.T) {
	env := newTestEnv(t)
	w := start(t, env)
	ctx := context.Background()
	const n = 200
	var wg sync.WaitGroup
	revs := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &Request{Docs: []DocWrite{{ID: fmt.Sprintf("d%03d", i), Body: map[string]any{"i": int64(i)}}}}
			resp := w.Submit(ctx, r, true)
			if resp.Err != nil {
				errs[i] = resp.Err
				return
			}
			revs[i], errs[i] = resp.Results[0].Rev, resp.Results[0].Error
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || revs[i] == "" {
			t.Fatalf("write %d: rev %q, %v", i, revs[i], errs[i])
		}
		// Answered means durable: the state is in the store with that revision.
		st, err := env.State(fmt.Sprintf("d%03d", i))
		if err != nil || st.Last.String() != revs[i] || st.Body["i"] != int64(i) {
			t.Fatalf("d%03d in the store: %v %v, want rev %s", i, st.Body, err, revs[i])
		}
	}
	c := env.Counters()
	if c.Seq != n || c.Count != n || c.NChange != n {
		t.Fatalf("counters %+v, want seq, count and changes %d", c, n)
	}
	if got := len(env.feed(t)); got != n {
		t.Fatalf("feed has %d entries, want %d", got, n)
	}
	// An atomic request with one bad write writes nothing.
	resp := w.Submit(ctx, &Request{Atomic: true, Docs: []DocWrite{
		{ID: "ok", Body: map[string]any{"a": int64(1)}},
		{ID: "d000", Rev: "not-a-rev", Body: map[string]any{}},
	}}, false)
	if !errors.Is(resp.Err, ErrTxAborted) {
		t.Fatalf("atomic with a bad write: %v, want ErrTxAborted", resp.Err)
	}
	if st, _ := env.State("ok"); st.Exists() {
		t.Fatal("an aborted transaction wrote a document")
	}
}

// TestViews: with Views on, every committed group hands over, in feed
// order, each merged change's document as the store then holds it (what
// DecodeView reads of its record), and nothing of an aborted transaction.
func TestViews(t *testing.T) {
	env := newTestEnv(t)
	env.views = true
	w := start(t, env)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				r := &Request{Docs: []DocWrite{{ID: fmt.Sprintf("d%d", i%5), Body: map[string]any{"g": int64(g), "i": int64(i)}}}}
				if resp := w.Submit(ctx, r, true); resp.Err != nil {
					t.Errorf("write: %v", resp.Err)
				}
			}
		}()
	}
	wg.Wait()
	if resp := w.Submit(ctx, &Request{Atomic: true, Docs: []DocWrite{
		{ID: "aborted", Body: map[string]any{"a": int64(1)}},
		{ID: "d0", Rev: "not-a-rev", Body: map[string]any{}},
	}}, false); !errors.Is(resp.Err, ErrTxAborted) {
		t.Fatalf("atomic with a bad write: %v, want ErrTxAborted", resp.Err)
	}
	env.mu.Lock()
	var views []View
	for _, c := range env.committed {
		views = append(views, c.Views...)
	}
	env.mu.Unlock()
	if len(views) != 160 {
		t.Fatalf("%d views, want one per change (160)", len(views))
	}
	last := map[string]View{}
	for i, v := range views {
		if v.Seq != uint64(i+1) {
			t.Fatalf("view %d has seq %d: views are the feed, in order", i, v.Seq)
		}
		if v.Doc == "aborted" {
			t.Fatal("a view of an aborted transaction")
		}
		last[v.Doc] = v
	}
	for doc, v := range last {
		raw, err := env.store.Get(env.keys.Doc(doc))
		if err != nil {
			t.Fatal(err)
		}
		seq, enc, err := layout.ParseDocRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		want, err := crdt.DecodeView(enc)
		if err != nil {
			t.Fatal(err)
		}
		if seq != v.Seq || v.Size != len(enc) || !cmp.Equal(want, v.State, cmp.AllowUnexported(crdt.State{}, crdt.Conflict{}), cmpopts.EquateEmpty()) {
			t.Fatalf("%s: view at seq %d (%d bytes) %+v, store at seq %d (%d bytes) %+v", doc, v.Seq, v.Size, v.State, seq, len(enc), want)
		}
	}
}

// TestRemoteChangeWithMissingParents: a received change whose parent the
// database lacks is not applied, and the answer names the missing parent
// (the puller fetches it); once the parent came, the child applies.
func TestRemoteChangeWithMissingParents(t *testing.T) {
	env := newTestEnv(t)
	w := start(t, env)
	ctx := context.Background()
	// Another peer's two changes of one document: a, then b on a.
	other := newTestEnv(t)
	a := seal(t, other, &crdt.Change{DB: "db", Doc: "x", Clock: crdt.HLC{Wall: 1}, Ops: []crdt.Op{{Kind: crdt.OpSet, Path: "/v", Value: int64(1)}}})
	b := seal(t, other, &crdt.Change{DB: "db", Doc: "x", Parents: []crdt.ID{a.ID()}, Clock: crdt.HLC{Wall: 2}, Ops: []crdt.Op{{Kind: crdt.OpSet, Path: "/v", Value: int64(2)}}})

	resp := w.Submit(ctx, &Request{Remote: []*crdt.Change{b}, From: other.author}, true)
	var me *bsync.MissingError
	if !errors.As(resp.Err, &me) || len(me.IDs) != 1 || me.IDs[0] != a.ID() || resp.Applied != 0 {
		t.Fatalf("child without its parent: applied %d, %v; want MissingError{%s}", resp.Applied, resp.Err, a.ID())
	}
	if has, _ := env.store.Has(env.keys.Change(b.ID())); has {
		t.Fatal("the child was stored without its parent")
	}
	resp = w.Submit(ctx, &Request{Remote: []*crdt.Change{a, b}, From: other.author}, true)
	if resp.Err != nil || resp.Applied != 2 {
		t.Fatalf("parent then child: applied %d, %v; want 2, nil", resp.Applied, resp.Err)
	}
	st, _ := env.State("x")
	if st.Body["v"] != int64(2) || st.Last != b.ID() {
		t.Fatalf("x = %v (rev %s), want v=2 at %s", st.Body, st.Last, b.ID())
	}
	// A duplicate is not applied again.
	if resp = w.Submit(ctx, &Request{Remote: []*crdt.Change{a, b}, From: other.author}, true); resp.Err != nil || resp.Applied != 0 {
		t.Fatalf("duplicate: applied %d, %v; want 0, nil", resp.Applied, resp.Err)
	}
}

// TestExclusiveJobBetweenGroups: an exclusive job runs with no group in
// flight: every write answered before it started is in the store when it
// reads, and no write commits while it runs.
func TestExclusiveJobBetweenGroups(t *testing.T) {
	env := newTestEnv(t)
	w := start(t, env)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	acked := 0
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 2000; i++ {
				r := &Request{Docs: []DocWrite{{ID: fmt.Sprintf("g%d-%d", g, i), Body: map[string]any{"i": int64(i)}}}}
				if resp := w.Submit(ctx, r, true); resp.Err == nil && resp.Results[0].Error == nil {
					mu.Lock()
					acked++
					mu.Unlock()
				}
			}
		}()
	}
	for range 20 {
		mu.Lock()
		before := acked
		mu.Unlock()
		err := w.Exclusive(ctx, func() error {
			seq := env.Counters().Seq
			if seq < uint64(before) {
				return fmt.Errorf("job sees seq %d, but %d writes were answered before it", seq, before)
			}
			n1 := len(env.feed(t))
			time.Sleep(2 * time.Millisecond) // a write committing now would show
			if n2 := len(env.feed(t)); n1 != n2 || uint64(n1) != seq {
				return fmt.Errorf("feed moved during the job: %d then %d entries, seq %d", n1, n2, seq)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	// A job's error reaches its caller.
	want := errors.New("job failed")
	if err := w.Exclusive(context.Background(), func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("Exclusive returned %v, want the job's error", err)
	}
}

func seal(t *testing.T, e *testEnv, c *crdt.Change) *crdt.Change {
	t.Helper()
	c.Author = []byte(e.author)
	if err := c.Seal(e.key); err != nil {
		t.Fatal(err)
	}
	return c
}
