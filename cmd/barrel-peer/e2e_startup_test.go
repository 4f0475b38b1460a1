package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EStartupErrors checks that the daemon refuses to start with a
// clear message and exit code 1 when it cannot open its data dir or bind
// its address.
func TestE2EStartupErrors(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := startPeer(t, t.TempDir())
	busyDir := busy.cmd.Args[3] // run --data DIR

	tests := []struct {
		name   string
		args   []string
		stderr string
		code   int
	}{
		{"data dir is a file", []string{"--data", notDir, "--http", "127.0.0.1:0"}, "data dir", 1},
		{"address in use", []string{"--data", t.TempDir(), "--http", ln.Addr().String(), "--no-network"}, "listen on", 1},
		{"data dir in use", []string{"--data", busyDir, "--http", "127.0.0.1:0", "--no-network"}, fmt.Sprintf("data dir %s is in use by another barrel-peer (pid %d)", busyDir, busy.cmd.Process.Pid), 1},
		{"data dir in use, networking on", []string{"--data", busyDir, "--http", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--no-dht"}, fmt.Sprintf("data dir %s is in use by another barrel-peer (pid %d)", busyDir, busy.cmd.Process.Pid), 1},
		{"bad listen address", []string{"--data", t.TempDir(), "--http", "127.0.0.1:0", "--listen", "not-a-multiaddr"}, "not-a-multiaddr", 1},
		{"bootstrap without peer id", []string{"--data", t.TempDir(), "--http", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--no-dht", "--bootstrap", "/ip4/127.0.0.1/tcp/1"}, "/p2p/", 1},
		{"p2p address file without network", []string{"--data", t.TempDir(), "--no-network", "--p2p-addr-file", filepath.Join(t.TempDir(), "p2p")}, "--no-network", 1},
		{"missing config", []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, "none.yaml", 1},
		{"bad durability", []string{"--data", t.TempDir(), "--durability", "never"}, "durability", 1},
		{"stray argument", []string{"extra"}, "unknown command", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binPath, append([]string{"run"}, tt.args...)...)
			var errb bytes.Buffer
			cmd.Stderr = &errb
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tt.code {
				t.Fatalf("got %v, want exit %d (stderr %q)", err, tt.code, errb.String())
			}
			if s := errb.String(); !strings.Contains(s, "barrel-peer: ") || !strings.Contains(s, tt.stderr) {
				t.Fatalf("got stderr %q, want a barrel-peer: message mentioning %q", s, tt.stderr)
			}
			if strings.HasPrefix(tt.name, "data dir in use") {
				// A start that failed prints why, and nothing else.
				if lines := strings.Split(strings.TrimSpace(errb.String()), "\n"); len(lines) != 1 {
					t.Fatalf("got %d lines on stderr, want only the error:\n%s", len(lines), errb.String())
				}
			}
		})
	}
}
