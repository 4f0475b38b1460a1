package couch_test

import (
	"context"
	"testing"
	"time"

	"github.com/barrel-db/barrel/couch"
)

// waitFor polls cond until it holds or the test's patience runs out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLiveConnector: a live connector of barrel B to barrel A's /couch/
// carries writes both ways as they are made, shows its state, and stops
// with its context.
func TestLiveConnector(t *testing.T) {
	ctx := context.Background()
	a := newBarrel(t, false, couch.Config{})
	b := newBarrel(t, false, couch.Config{})
	for _, x := range []*barrel{a, b} {
		if err := x.n.CreateDB(ctx, "notes"); err != nil {
			t.Fatal(err)
		}
	}
	srv := couch.New(b.n, couch.Config{})
	cctx, stop := context.WithCancel(ctx)
	err := srv.StartConnectors(cctx, []couch.Connector{{Name: "to-a", DB: "notes", URL: a.url + "/couch/notes", Pull: true, Push: true, Live: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stop(); srv.WaitConnectors() }()
	has := func(x *barrel, id string) func() bool {
		return func() bool { _, err := x.db(t, "notes").Get(ctx, id); return err == nil }
	}
	if _, err := b.db(t, "notes").Put(ctx, "from-b", map[string]any{"v": 1}, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "from-b in A", has(a, "from-b"))
	if _, err := a.db(t, "notes").Put(ctx, "from-a", map[string]any{"v": 2}, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "from-a in B", has(b, "from-a"))
	waitFor(t, "the connector's state", func() bool {
		st := srv.Connectors("notes")
		return len(st) == 1 && st[0].DocsPulled >= 1 && st[0].DocsPushed >= 1 && st[0].LastError == "" && !st[0].LastSync.IsZero()
	})
	stop()
	srv.WaitConnectors()
	if st := srv.Connectors(""); st[0].State != "stopped" {
		t.Fatalf("after stop: %+v", st[0])
	}
}

// TestConnectorRetries: a connector whose remote is down reports the
// error and retries; once the remote is there it syncs.
func TestConnectorRetries(t *testing.T) {
	ctx := context.Background()
	b := newBarrel(t, false, couch.Config{})
	if err := b.n.CreateDB(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	a := newBarrel(t, false, couch.Config{})
	srv := couch.New(b.n, couch.Config{})
	cctx, stop := context.WithCancel(ctx)
	defer func() { stop(); srv.WaitConnectors() }()
	// A pull from a database A does not have yet fails, and is retried.
	if err := srv.StartConnectors(cctx, []couch.Connector{{Name: "pull-a", DB: "n", URL: a.url + "/couch/n", Pull: true, Live: true}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the error in the state", func() bool {
		st := srv.Connectors("n")
		return len(st) == 1 && st[0].LastError != ""
	})
	if err := a.n.CreateDB(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.db(t, "n").Put(ctx, "x", map[string]any{}, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "x pulled after the retry", func() bool {
		_, err := b.db(t, "n").Get(ctx, "x")
		return err == nil
	})
	if err := srv.StartConnectors(cctx, []couch.Connector{{Name: "bad", DB: "n", URL: "ftp://x", Pull: true}}); err == nil {
		t.Fatal("a connector with an ftp URL started")
	}
}
