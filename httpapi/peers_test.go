package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/node"
)

// newNetServer opens a node listening on 127.0.0.1 only (no mDNS, no DHT)
// and serves it; it returns the server and the node's first address.
func newNetServer(t *testing.T) (*httptest.Server, *node.Node) {
	t.Helper()
	n, err := node.Open(t.Context(), node.Config{
		DataDir: t.TempDir(),
		Logger:  slog.New(slog.DiscardHandler),
		P2P:     &node.P2PConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, NoDHT: true},
	})
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	srv := httptest.NewServer(New(n, Config{Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(func() {
		srv.Close()
		if err := n.Close(); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	if len(n.Addrs()) == 0 {
		t.Fatal("networked node has no addresses")
	}
	return srv, n
}

// TestReplicationNoNetwork checks the peer routes answer 503 no_network on
// a node without networking, and that replication settings still work.
func TestReplicationNoNetwork(t *testing.T) {
	srv := newTestServer(t, Config{})
	runSteps(t, srv, []step{
		{"peers", "GET", "/peers", "", 503, map[string]any{"error": "no_network"}},
		{"connect", "POST", "/peers", `{"addr":"/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"}`, 503, map[string]any{"error": "no_network"}},
		{"state of missing db", "GET", "/dbs/nope/replication", "", 404, map[string]any{"error": "not_found"}},
		{"set on missing db", "PUT", "/dbs/nope/replication", `{"off":true}`, 404, map[string]any{"error": "not_found"}},
		{"create db", "PUT", "/dbs/docs", "", 201, nil},
		{"default state", "GET", "/dbs/docs/replication", "", 200, map[string]any{"db": "docs", "setting": map[string]any{}, "peers": []any{}}},
		{"partial view", "PUT", "/dbs/docs/replication", `{"id_prefix":"keep-","where":[{"path":"/type","op":"==","value":"note"}]}`, 200,
			map[string]any{"setting": map[string]any{"id_prefix": "keep-", "where": []any{map[string]any{"path": "/type", "op": "==", "value": "note"}}}}},
		{"kept", "GET", "/dbs/docs/replication", "", 200, map[string]any{"setting": map[string]any{"id_prefix": "keep-", "where": []any{map[string]any{"path": "/type", "op": "==", "value": "note"}}}}},
		{"off", "PUT", "/dbs/docs/replication", `{"off":true}`, 200, map[string]any{"setting": map[string]any{"off": true}}},
		{"unknown field", "PUT", "/dbs/docs/replication", `{"of":true}`, 400, map[string]any{"error": "bad_request"}},
		{"off not a bool", "PUT", "/dbs/docs/replication", `{"off":"yes"}`, 400, map[string]any{"error": "bad_request"}},
		{"where not an array", "PUT", "/dbs/docs/replication", `{"where":{}}`, 400, map[string]any{"error": "bad_request"}},
		{"condition without op", "PUT", "/dbs/docs/replication", `{"where":[{"path":"/x"}]}`, 400, map[string]any{"error": "bad_request"}},
		{"bad json", "PUT", "/dbs/docs/replication", `{`, 400, map[string]any{"error": "bad_json"}},
		{"still off", "GET", "/dbs/docs/replication", "", 200, map[string]any{"setting": map[string]any{"off": true}}},
	})
}

// TestPeers connects two in-process nodes through POST /peers and checks
// the errors of bad and unreachable addresses.
func TestPeers(t *testing.T) {
	a, _ := newNetServer(t)
	_, nb := newNetServer(t)
	bAddr := nb.Addrs()[0]
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	runSteps(t, a, []step{
		{"no peers", "GET", "/peers", "", 200, map[string]any{"peers": []any{}}},
		{"not a multiaddr", "POST", "/peers", `{"addr":"nope"}`, 400, map[string]any{"error": "bad_request"}},
		{"no peer id", "POST", "/peers", `{"addr":"/ip4/127.0.0.1/tcp/1"}`, 400, map[string]any{"error": "bad_request"}},
		{"no addr", "POST", "/peers", `{}`, 400, map[string]any{"error": "bad_request"}},
		{"addr not a string", "POST", "/peers", `{"addr":1}`, 400, map[string]any{"error": "bad_request"}},
		{"unknown field", "POST", "/peers", `{"addr":"` + bAddr + `","x":1}`, 400, map[string]any{"error": "bad_request"}},
		// Port 1 on loopback refuses at once.
		{"unreachable", "POST", "/peers", `{"addr":"/ip4/127.0.0.1/tcp/1/p2p/` + stranger.String() + `"}`, 502, map[string]any{"error": "dial_failed"}},
		{"connect", "POST", "/peers", `{"addr":"` + bAddr + `"}`, 200, map[string]any{"id": nb.PeerID().String()}},
	})
	r := get(t, a.URL+"/peers")
	var got struct {
		Peers []PeerInfo `json:"peers"`
	}
	if err := json.Unmarshal(r, &got); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
	if len(got.Peers) != 1 || got.Peers[0].ID != nb.PeerID().String() || len(got.Peers[0].Addrs) == 0 {
		t.Fatalf("peers after connect: got %s, want one peer %s with addresses", r, nb.PeerID())
	}
}

// get fetches url and returns the body of a 200 answer.
func get(t *testing.T, url string) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %d %s (%v), want 200", url, resp.StatusCode, b, err)
	}
	return b
}
