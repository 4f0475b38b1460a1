package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/barrel-db/barrel/crdt"
	bsync "github.com/barrel-db/barrel/sync"
)

// TestHostileHeldSessions (issue 16, item 7): a peer holding many sync
// streams open (never sending a Hello, or stalling after it) cannot keep
// an honest peer from pulling: beyond its per-peer allowance its streams
// are answered busy at once, and the ones it holds are closed after the
// configured idle timeout.
func TestHostileHeldSessions(t *testing.T) {
	const (
		held = 120 // more than the 64 sessions a node serves
		idle = 1500 * time.Millisecond
	)
	v := openVictim(t, t.TempDir(), func(c *Config) { c.P2P.SyncIdle = idle })
	defer v.Close()
	honest := openVictim(t, t.TempDir(), nil)
	defer honest.Close()
	for _, n := range []*Node{v, honest} {
		if err := n.CreateDB(t.Context(), "db"); err != nil {
			t.Fatal(err)
		}
	}
	dv, _ := v.DB("db")
	mustPut(t, dv, "doc", map[string]any{"v": 1}, "")

	x := startHostile(t, v, &hostileStore{}, bsyncConfig())
	type outcome struct {
		closedAfter time.Duration
		busy        bool
	}
	results := make(chan outcome, held)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// A hostile session past its Hello that never asks for bodies: the
	// hostile client's Has blocks until the test ends.
	stall := make(chan struct{})
	defer close(stall)
	inHas := make(chan struct{}, 1)
	hs := x.store.(*hostileStore)
	hs.OnHas = func(ctx context.Context, db string, ids []crdt.ID) ([]bool, error) {
		select {
		case inHas <- struct{}{}:
		default:
		}
		select {
		case <-stall:
		case <-ctx.Done():
		}
		return make([]bool, len(ids)), nil
	}
	stallStart := time.Now()
	wg.Go(func() { _, _ = x.pull(ctx, "db") })

	select {
	case <-inHas:
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled session did not reach its IDs")
	}
	// The victim ends it at the idle timeout (the first of its sessions to
	// time out: the held streams are opened after it).
	stalled := make(chan time.Duration, 1)
	wg.Go(func() {
		for ctx.Err() == nil && serverSessions(t, v, "timeout") == 0 {
			time.Sleep(10 * time.Millisecond) // polling a metric
		}
		stalled <- time.Since(stallStart)
	})
	start := time.Now()
	for range held {
		st, err := x.openStream(ctx)
		if err != nil {
			t.Fatalf("open a held stream: %v", err)
		}
		wg.Go(func() {
			defer st.Reset()
			// Read until the victim ends the stream: an Error{busy} frame
			// then EOF, or a reset at the idle timeout.
			_ = st.SetReadDeadline(time.Now().Add(20 * time.Second))
			buf := make([]byte, 256)
			var got []byte
			var err error
			for err == nil {
				var n int
				n, err = st.Read(buf)
				got = append(got, buf[:n]...)
			}
			results <- outcome{closedAfter: time.Since(start), busy: errors.Is(err, io.EOF) && len(got) > 0 && containsBusy(got)}
		})
	}
	// The honest peer's pulls complete while the hostile one holds its
	// streams.
	if _, err := honest.Connect(t.Context(), v.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	cli := honest.net.Load().repl.Client()
	for i := range 3 {
		pctx, pcancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := cli.Pull(pctx, v.PeerID(), "db", nil)
		pcancel()
		if err != nil {
			t.Fatalf("honest pull %d while the hostile peer holds %d streams: %v", i, held, err)
		}
	}
	dh, _ := honest.DB("db")
	if !hasDoc(dh, "doc") {
		t.Fatal("honest peer did not get the document")
	}

	// Every held stream ends: most at once (answered busy by the server,
	// or reset by the resource manager beyond 4 x the allowance), the
	// allowed few at the idle timeout, none much later.
	busy, refused, timedOut := 0, 0, 0
	for range held {
		r := <-results
		if r.busy {
			busy++
		}
		switch {
		case r.busy || r.closedAfter < idle:
			refused++
		case r.closedAfter > idle+5*time.Second:
			t.Errorf("a held stream was closed after %v, idle timeout %v", r.closedAfter, idle)
		default:
			timedOut++
		}
	}
	t.Logf("%d held streams: %d answered busy, %d refused in all, %d closed at the idle timeout", held, busy, refused, timedOut)
	// The stalled session holds one of the peer's streams.
	if want := held - bsync.DefaultMaxPeerStreams + 1; refused < want {
		t.Errorf("%d of %d held streams refused at once, want at least %d", refused, held, want)
	}
	if busy == 0 {
		t.Error("no held stream was answered busy")
	}
	if timedOut == 0 {
		t.Error("no held stream was closed at the idle timeout")
	}
	select {
	case d := <-stalled:
		if d < idle || d > idle+5*time.Second {
			t.Errorf("a session stalled after its Hello ended after %v, idle timeout %v", d, idle)
		}
	case <-time.After(15 * time.Second):
		t.Error("a session stalled after its Hello was not closed")
	}
	if n := serverSessions(t, v, "timeout"); n < timedOut+1 {
		t.Errorf("victim counted %d sessions timed out, want %d", n, timedOut+1)
	}
}

// containsBusy reports whether a server's frames carry the busy code.
func containsBusy(b []byte) bool { return bytes.Contains(b, []byte(bsync.CodeBusy)) }

// serverSessions reads the victim's barrel_sync_sessions_total{role="server",result}.
func serverSessions(t *testing.T, n *Node, result string) int {
	mfs, err := n.Gatherer().Gather()
	if err != nil {
		t.Error(err)
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != "barrel_sync_sessions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["role"] == "server" && labels["result"] == result {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}
