package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeSwarmKey writes a swarm key file in the IPFS format with mode perm.
func writeSwarmKey(t *testing.T, hexKey string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "swarm.key")
	if err := os.WriteFile(path, []byte("/key/swarm/psk/1.0.0/\n/base16/\n"+hexKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestE2EPrivateNetwork: two daemons run with the same --swarm-key connect
// and replicate; a daemon without it, or with another key, cannot connect
// to them.
func TestE2EPrivateNetwork(t *testing.T) {
	key := writeSwarmKey(t, strings.Repeat("5a", 32), 0o600)
	other := writeSwarmKey(t, strings.Repeat("a5", 32), 0o600)
	a := startNetPeer(t, "a", t.TempDir(), "/ip4/127.0.0.1/tcp/0", "--swarm-key", key)
	b := startNetPeer(t, "b", t.TempDir(), "/ip4/127.0.0.1/tcp/0", "--swarm-key", key)
	c := startNetPeer(t, "c", t.TempDir(), "/ip4/127.0.0.1/tcp/0")
	d := startNetPeer(t, "d", t.TempDir(), "/ip4/127.0.0.1/tcp/0", "--swarm-key", other)
	for _, p := range []*netPeer{a, b, c, d} {
		mustStatus(t, http.StatusCreated, http.MethodPut, p.url+"/dbs/db", "")
	}
	mustStatus(t, http.StatusOK, http.MethodPost, a.url+"/peers", `{"addr":"`+b.addr+`"}`)
	for _, pair := range [][2]*netPeer{{c, a}, {a, c}, {d, b}, {b, d}} {
		r := call(t, http.MethodPost, pair[0].url+"/peers", `{"addr":"`+pair[1].addr+`"}`)
		if r.status != http.StatusBadGateway {
			t.Errorf("%s connects to %s: got %d %s, want 502 dial_failed", pair[0].name, pair[1].name, r.status, r.raw)
		}
	}
	a.put(t, "db", "secret", `{"v":1}`)
	b.waitDoc(t, "db", "secret", hasField("v", 1.0))
	for _, p := range []*netPeer{c, d} {
		if _, ok := p.tryGet(t, "db", "secret"); ok {
			t.Errorf("%s, outside the private network, holds the document", p.name)
		}
		if ids := p.peerIDs(t); len(ids) != 0 {
			t.Errorf("%s is connected to %v", p.name, ids)
		}
	}
	if ids := a.peerIDs(t); !slices.Equal(ids, []string{b.id}) {
		t.Errorf("a's peers: got %v, want only b (%s)", ids, b.id)
	}
}

// TestE2ESecurityStartup: the daemon refuses a swarm key others can read,
// a malformed one, and QUIC with a key; it warns when its HTTP API is
// reachable beyond loopback without a token, and not with one.
func TestE2ESecurityStartup(t *testing.T) {
	good := writeSwarmKey(t, strings.Repeat("5a", 32), 0o600)
	for _, tt := range []struct {
		name, stderr string
		args         []string
	}{
		{"key readable by others", "chmod 600", []string{"--swarm-key", writeSwarmKey(t, strings.Repeat("5a", 32), 0o644)}},
		{"malformed key", "truncated", []string{"--swarm-key", writeSwarmKey(t, "5a5a", 0o600)}},
		{"missing key", "no such file", []string{"--swarm-key", filepath.Join(t.TempDir(), "none")}},
		{"quic with a key", "TCP only", []string{"--swarm-key", good, "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			args := append([]string{"run", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--no-mdns", "--no-dht"}, tt.args...)
			cmd := exec.CommandContext(ctx, binPath, args...)
			var errb bytes.Buffer
			cmd.Stderr = &errb
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("got %v, want exit 1 (stderr %q)", err, errb.String())
			}
			if !strings.Contains(errb.String(), tt.stderr) {
				t.Fatalf("got stderr %q, want a message mentioning %q", errb.String(), tt.stderr)
			}
		})
	}

	const warning = "beyond loopback without a token"
	open := startPeer(t, t.TempDir(), "--http", "0.0.0.0:0")
	if !strings.Contains(open.stderr.String(), warning) {
		t.Errorf("no warning for 0.0.0.0 without a token; stderr:\n%s", open.stderr.String())
	}
	guarded := startPeer(t, t.TempDir(), "--http", "0.0.0.0:0", "--http-token", "t0k")
	if strings.Contains(guarded.stderr.String(), warning) {
		t.Errorf("a warning with a token set; stderr:\n%s", guarded.stderr.String())
	}
	if r := call(t, http.MethodGet, guarded.url+"/dbs", ""); r.status != http.StatusUnauthorized {
		t.Errorf("GET /dbs without the token: got %d, want 401", r.status)
	}
	if r := call(t, http.MethodGet, guarded.url+"/dbs", "", "Authorization", "Bearer t0k"); r.status != http.StatusOK {
		t.Errorf("GET /dbs with the token: got %d, want 200", r.status)
	}
	loop := startPeer(t, t.TempDir())
	if strings.Contains(loop.stderr.String(), warning) {
		t.Errorf("a warning on loopback; stderr:\n%s", loop.stderr.String())
	}
}
