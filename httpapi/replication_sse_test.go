package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/barrel-db/barrel/node"
)

// openSyncNode opens a networked node on 127.0.0.1 whose pulls ask for
// batch feed entries at a time (small: a pull slow enough to watch).
func openSyncNode(t *testing.T, batch int) *node.Node {
	t.Helper()
	n, err := node.Open(t.Context(), node.Config{
		DataDir: t.TempDir(), Durability: "batch", Logger: slog.New(slog.DiscardHandler),
		P2P: &node.P2PConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, NoDHT: true,
			Heartbeat: 200 * time.Millisecond, AntiEntropy: time.Hour, SyncBatch: batch},
	})
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestReplicationEventStream: GET /dbs/{db}/replication?feed=eventsource
// sends the state at once, then while a long pull runs at least one state
// with its progress (done below expected), and at the end the synced state
// (lag 0, synced once, no progress).
func TestReplicationEventStream(t *testing.T) {
	const docs = 4000
	ctx := t.Context()
	a, b := openSyncNode(t, 0), openSyncNode(t, 2)
	for _, n := range []*node.Node{a, b} {
		if err := n.CreateDB(ctx, "db"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SetReplication(ctx, "db", node.Replication{Off: true}); err != nil {
		t.Fatal(err)
	}
	da, err := a.DB("db")
	if err != nil {
		t.Fatal(err)
	}
	for start := 0; start < docs; start += 1000 {
		var ops []node.DocOp
		for i := start; i < start+1000; i++ {
			ops = append(ops, node.DocOp{ID: fmt.Sprintf("doc-%05d", i), Body: map[string]any{"n": i}})
		}
		if _, err := da.Bulk(ctx, ops, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Connect(ctx, a.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(b, Config{Logger: slog.New(slog.DiscardHandler), SSEHeartbeat: 100 * time.Millisecond}))
	t.Cleanup(srv.Close)

	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, srv.URL+"/dbs/db/replication?feed=eventsource", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("got %d %s, want 200 text/event-stream", resp.StatusCode, ct)
	}
	events := make(chan ReplicationState)
	heartbeats := make(chan struct{}, 1)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == ": heartbeat" {
				select {
				case heartbeats <- struct{}{}:
				default:
				}
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			var st ReplicationState
			if err := json.Unmarshal([]byte(data), &st); err != nil {
				t.Errorf("event %q: %v", data, err)
				return
			}
			select {
			case events <- st:
			case <-sctx.Done():
				return
			}
		}
	}()
	first, ok := <-events
	if !ok || first.DB != "db" || !first.Setting.Off || len(first.Peers) != 0 {
		t.Fatalf("first event %+v (ok %v), want db's state with replication off and no peers", first, ok)
	}
	// Idle: the stream says it is alive.
	select {
	case <-heartbeats:
	case <-sctx.Done():
		t.Fatal("no heartbeat on an idle stream")
	}
	if err := b.SetReplication(ctx, "db", node.Replication{}); err != nil {
		t.Fatal(err)
	}
	var progress *PullProgress
	for st := range events {
		if len(st.Peers) != 1 {
			continue
		}
		p := st.Peers[0]
		if pp := p.Progress; pp != nil && pp.Done > 0 && pp.Done < pp.Expected {
			progress = pp
		}
		if p.Connected && !p.Running && p.Progress == nil && p.Lag == 0 && p.SyncedOnce && !p.LastSynced.IsZero() && p.Checkpoint == docs {
			if progress == nil {
				t.Fatal("synced without an event showing the pull in progress")
			}
			t.Logf("progress seen: %+v", *progress)
			return
		}
	}
	t.Fatalf("the stream ended before the synced state: %v", sctx.Err())
}

// TestReplicationFeedParam: an unknown feed is a 400, a missing database a
// 404 before the stream starts.
func TestReplicationFeedParam(t *testing.T) {
	srv := newTestServer(t, Config{})
	runSteps(t, srv, []step{
		{"create db", "PUT", "/dbs/docs", "", 201, nil},
		{"unknown feed", "GET", "/dbs/docs/replication?feed=websocket", "", 400, map[string]any{"error": "bad_request"}},
		{"stream of a missing db", "GET", "/dbs/nope/replication?feed=eventsource", "", 404, map[string]any{"error": "not_found"}},
		{"normal feed", "GET", "/dbs/docs/replication?feed=normal", "", 200, map[string]any{"db": "docs"}},
	})
}
