package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
)

func newPair(t *testing.T, scfg, ccfg Config) (srv, cli *memStore, c *Client, pull func(ctx context.Context, db string, f *Filter) (Stats, error)) {
	t.Helper()
	hs, hc := newHost(t), newHost(t)
	srv, cli = newMemStore(t), newMemStore(t)
	serve(t, hs, srv, scfg)
	connect(t, hc, hs)
	ccfg.Logger = testLogger(t)
	c = NewClient(hc, cli, ccfg)
	return srv, cli, c, func(ctx context.Context, db string, f *Filter) (Stats, error) {
		return c.Pull(ctx, hs.ID(), db, f)
	}
}

func TestPull(t *testing.T) {
	tests := []struct {
		name      string
		batch     int
		first     int // changes before the first pull
		more      int // changes written between the pulls
		wantBatch int // batches of the first pull
	}{
		{"one batch", 0, 20, 5, 1},
		{"many batches", 7, 50, 13, 8},
		{"exact batches", 10, 30, 10, 4},
		{"empty database", 0, 0, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{BatchSize: tt.batch}
			srv, cli, _, pull := newPair(t, cfg, cfg)
			srv.createDB("db")
			for i := range tt.first {
				srv.put(t, "db", fmt.Sprintf("doc%d", i%4), i)
			}
			st, err := pull(t.Context(), "db", nil)
			if err != nil {
				t.Fatalf("first pull: %v", err)
			}
			if got, want := cli.ids("db"), srv.ids("db"); !slices.Equal(got, want) {
				t.Fatalf("after first pull: got %d changes, want %d", len(got), len(want))
			}
			if st.Applied != tt.first || st.Fetched != tt.first || st.IDs != tt.first || st.Batches != tt.wantBatch {
				t.Errorf("first pull stats %+v, want %d applied in %d batches", st, tt.first, tt.wantBatch)
			}
			if st.Checkpoint != uint64(tt.first) {
				t.Errorf("checkpoint %d, want %d", st.Checkpoint, tt.first)
			}

			// A repeated pull lists nothing new.
			st, err = pull(t.Context(), "db", nil)
			if err != nil || st.Fetched != 0 || st.IDs != 0 {
				t.Errorf("repeated pull: %+v, %v; want nothing fetched", st, err)
			}

			// An incremental pull fetches only the new changes.
			for i := range tt.more {
				srv.put(t, "db", fmt.Sprintf("doc%d", i%3), -i)
			}
			st, err = pull(t.Context(), "db", nil)
			if err != nil {
				t.Fatalf("incremental pull: %v", err)
			}
			if st.Fetched != tt.more || st.IDs != tt.more || st.Applied != tt.more {
				t.Errorf("incremental pull stats %+v, want %d fetched", st, tt.more)
			}
			if got, want := cli.ids("db"), srv.ids("db"); !slices.Equal(got, want) {
				t.Fatalf("after incremental pull: got %d changes, want %d", len(got), len(want))
			}
		})
	}
}

// A client that already holds changes (received from elsewhere) lists them
// but does not fetch their bodies.
func TestPullSkipsHeld(t *testing.T) {
	srv, cli, _, pull := newPair(t, Config{}, Config{})
	for i := range 10 {
		c := srv.put(t, "db", "d", i)
		if i < 6 {
			cli.insert("db", c)
		}
	}
	st, err := pull(t.Context(), "db", nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.IDs != 10 || st.Fetched != 4 || st.Applied != 4 {
		t.Errorf("got %+v, want 10 listed, 4 fetched", st)
	}
}

func TestPullFilter(t *testing.T) {
	srv, cli, _, pull := newPair(t, Config{BatchSize: 4}, Config{BatchSize: 4})
	want := 0
	for i := range 40 {
		doc := fmt.Sprintf("other/%d", i)
		if i%5 == 0 {
			doc = fmt.Sprintf("user/%d", i)
			want++
		}
		srv.put(t, "db", doc, i)
	}
	st, err := pull(t.Context(), "db", &Filter{IDPrefix: "user/"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cli.count("db"); got != want || st.Applied != want {
		t.Errorf("got %d changes (%+v), want %d", got, st, want)
	}
	if st.Checkpoint != 40 {
		t.Errorf("checkpoint %d, want 40 (skipped entries advance it)", st.Checkpoint)
	}
	for _, id := range cli.ids("db") {
		_ = id
	}
	cli.mu.Lock()
	for _, e := range cli.mu.dbs["db"].feed {
		if !strings.HasPrefix(e.Doc, "user/") {
			t.Errorf("pulled %s outside the filter", e.Doc)
		}
	}
	cli.mu.Unlock()
}

func TestPullNoDB(t *testing.T) {
	_, _, _, pull := newPair(t, Config{}, Config{})
	_, err := pull(t.Context(), "nope", nil)
	if !errors.Is(err, ErrNoDB) {
		t.Fatalf("got %v, want ErrNoDB", err)
	}
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeNoDB {
		t.Errorf("got %v, want a RemoteError with code %s", err, CodeNoDB)
	}
}

// A store's AuthorizeRead is asked before a session is served: a refusal
// reaches the client as forbidden, with nothing of the database sent, and
// the store is asked about the right peer and database.
func TestPullForbidden(t *testing.T) {
	srv, cli, c, pull := newPair(t, Config{}, Config{})
	srv.createDB("db")
	srv.put(t, "db", "doc", 1)
	type asked struct {
		db     string
		remote peer.ID
	}
	calls := make(chan asked, 8)
	srv.onAuthorize = func(db string, remote peer.ID) error {
		calls <- asked{db, remote}
		return fmt.Errorf("%s may not read %s: %w", remote, db, ErrForbidden)
	}
	cli.createDB("db")
	_, err := pull(t.Context(), "db", nil)
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("got %v, want ErrForbidden", err)
	}
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeForbidden {
		t.Errorf("got %v, want a RemoteError with code %s", err, CodeForbidden)
	}
	if got := <-calls; got.db != "db" || got.remote != c.h.ID() {
		t.Errorf("AuthorizeRead asked about %s of %s, want db of %s", got.db, got.remote, c.h.ID())
	}
	if n := len(cli.ids("db")); n != 0 {
		t.Errorf("a refused pull applied %d changes", n)
	}
}

// A pull interrupted mid-way (its stream reset) keeps the checkpoint of the
// batches it applied; the next pull resumes there.
func TestPullResume(t *testing.T) {
	cfg := Config{BatchSize: 10}
	srv, cli, _, pull := newPair(t, cfg, cfg)
	for i := range 35 {
		srv.put(t, "db", fmt.Sprintf("d%d", i%5), i)
	}
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	cli.onApply = func(_ context.Context, _ string, _ []*crdt.Change) error {
		calls++
		if calls == 3 {
			cancel() // resets the stream
			return context.Canceled
		}
		return nil
	}
	st, err := pull(ctx, "db", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted pull: got %v, want context.Canceled", err)
	}
	if st.Checkpoint != 20 || cli.count("db") != 20 {
		t.Fatalf("interrupted pull: checkpoint %d, %d changes; want 20, 20", st.Checkpoint, cli.count("db"))
	}
	cli.onApply = nil
	st, err = pull(t.Context(), "db", nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.IDs != 15 || st.Fetched != 15 || cli.count("db") != 35 {
		t.Errorf("resumed pull: %+v, %d changes; want 15 listed and fetched, 35 held", st, cli.count("db"))
	}
}

// A body whose content does not match the listed id is rejected and
// nothing of it applied.
func TestPullWrongContentID(t *testing.T) {
	srv, cli, _, pull := newPair(t, Config{}, Config{})
	for i := range 5 {
		srv.put(t, "db", "d", i)
	}
	evil := srv.seal(t, "db", "x", nil, 99, "evil")
	evilBody, err := evil.Encode()
	if err != nil {
		t.Fatal(err)
	}
	srv.onChanges = func(_ string, ids []crdt.ID, bodies [][]byte) [][]byte {
		out := slices.Clone(bodies)
		out[len(out)-1] = evilBody
		return out
	}
	_, err = pull(t.Context(), "db", nil)
	if !errors.Is(err, ErrWrongContentID) {
		t.Fatalf("got %v, want ErrWrongContentID", err)
	}
	if n := cli.count("db"); n != 0 {
		t.Errorf("applied %d changes from a bad frame", n)
	}
	if st, _ := cli.Checkpoint(t.Context(), "db", ""); st != 0 {
		t.Errorf("checkpoint moved to %d", st)
	}
}

// Missing parents (a feed out of causal order) are fetched by id, deepest
// first, and the batch is retried; too many rounds give ErrTooManyMissing.
func TestPullMissingParents(t *testing.T) {
	tests := []struct {
		name   string
		depth  int // chain length, listed newest first
		rounds int
		want   error
	}{
		{"one parent", 2, 0, nil},
		{"chain", 6, 0, nil},
		{"too deep", 6, 2, ErrTooManyMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, cli, _, pull := newPair(t, Config{BatchSize: 1}, Config{BatchSize: 1, MaxMissingRounds: tt.rounds})
			var chain []*crdt.Change
			var parents []crdt.ID
			for i := range tt.depth {
				c := srv.seal(t, "db", "d", parents, int64(i+1), i)
				chain = append(chain, c)
				parents = []crdt.ID{c.ID()}
			}
			for _, c := range slices.Backward(chain) {
				srv.insert("db", c)
			}
			st, err := pull(t.Context(), "db", nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				return
			}
			if cli.count("db") != tt.depth || st.Applied != tt.depth {
				t.Errorf("got %d changes (%+v), want %d", cli.count("db"), st, tt.depth)
			}
		})
	}
}

// The client fetches the next batch while it applies one. A pull
// interrupted while bodies of later batches were fetched and not yet
// applied keeps the checkpoint of the last batch it applied, and the next
// pull fetches everything after it again.
func TestPullPipelinedResume(t *testing.T) {
	cfg := Config{BatchSize: 10}
	srv, cli, _, pull := newPair(t, cfg, cfg)
	for i := range 50 {
		srv.put(t, "db", fmt.Sprintf("d%d", i%7), i)
	}
	served := make(chan int, 16) // ids served per Want
	srv.onChanges = func(_ string, ids []crdt.ID, bodies [][]byte) [][]byte {
		served <- len(ids)
		return bodies
	}
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	cli.onApply = func(ctx context.Context, _ string, _ []*crdt.Change) error {
		calls++
		if calls < 2 {
			return nil
		}
		// Hold the second batch until the server has served the third:
		// the client fetched ahead of what it applied. Then interrupt.
		total := 0
		timeout := time.After(10 * time.Second)
		for total < 30 {
			select {
			case n := <-served:
				total += n
			case <-timeout:
				t.Errorf("server served %d bodies while batch 2 was applied, want 30", total)
				cancel()
				return context.Canceled
			}
		}
		cancel()
		return context.Canceled
	}
	st, err := pull(ctx, "db", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted pull: got %v, want context.Canceled", err)
	}
	if st.Checkpoint != 10 || cli.count("db") != 10 {
		t.Fatalf("interrupted pull: checkpoint %d, %d changes; want 10, 10", st.Checkpoint, cli.count("db"))
	}
	cli.onApply, srv.onChanges = nil, nil
	st, err = pull(t.Context(), "db", nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.IDs != 40 || st.Fetched != 40 || st.Applied != 40 || st.Checkpoint != 50 {
		t.Errorf("resumed pull: %+v; want 40 listed, fetched and applied, checkpoint 50", st)
	}
	if got, want := cli.ids("db"), srv.ids("db"); !slices.Equal(got, want) {
		t.Errorf("after resume: got %d changes, want %d", len(got), len(want))
	}
}

// After a batch of which nothing was held the client stops asking its
// store (a fresh replica), and asks again once Apply finds held changes:
// every change ends up held once, whatever was skipped.
func TestPullSkipsHasOnlyWhileNothingHeld(t *testing.T) {
	cfg := Config{BatchSize: 5}
	srv, cli, _, pull := newPair(t, cfg, cfg)
	for i := range 40 {
		c := srv.put(t, "db", fmt.Sprintf("d%d", i%3), i)
		if i >= 20 && i < 30 {
			cli.insert("db", c) // received from elsewhere
		}
	}
	st, err := pull(t.Context(), "db", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cli.ids("db"), srv.ids("db"); !slices.Equal(got, want) {
		t.Fatalf("got %d changes, want %d", len(got), len(want))
	}
	if st.Applied != 30 || st.IDs != 40 || st.Checkpoint != 40 {
		t.Errorf("got %+v, want 30 applied of 40 listed", st)
	}
	// Held bodies are resent only for the batches in flight when Apply
	// first found held changes: here at most two of the two held batches.
	if st.Fetched > 40 || st.Fetched < 30 {
		t.Errorf("fetched %d bodies, want 30..40", st.Fetched)
	}
}
