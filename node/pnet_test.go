package node

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSwarmKeyConfig: the node refuses a bad key or a UDP address with a
// key, and defaults to TCP only in a private network.
func TestSwarmKeyConfig(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "swarm.key")
	if err := os.WriteFile(keyFile, []byte("/key/swarm/psk/1.0.0/\n/base16/\n"+strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    P2PConfig
		want string // "" for valid
	}{
		{"key file", P2PConfig{SwarmKeyFile: keyFile}, ""},
		{"short key", P2PConfig{SwarmKey: []byte("short")}, "swarm key is 5 bytes, want 32"},
		{"missing key file", P2PConfig{SwarmKeyFile: filepath.Join(dir, "nope")}, "no such file"},
		{"key and another file", P2PConfig{SwarmKey: make([]byte, 32), SwarmKeyFile: keyFile}, "both as bytes and as a file"},
		{"quic listen", P2PConfig{SwarmKey: make([]byte, 32), Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}}, "works over TCP only"},
		{"quic bootstrap", P2PConfig{SwarmKey: make([]byte, 32), Bootstrap: []string{"/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooWDQqJMxZW2dQh8toc6Ra2i9FY13ZYB5zShCZsnvZy7X5T"}}, "works over TCP only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			err := c.validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	c := P2PConfig{SwarmKeyFile: keyFile}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Listen, DefaultPrivateListen) || len(c.SwarmKey) != SwarmKeyBytes {
		t.Errorf("got listen %v and a %d-byte key, want %v and 32 bytes", c.Listen, len(c.SwarmKey), DefaultPrivateListen)
	}
	if err := c.validate(); err != nil {
		t.Errorf("validating twice: %v", err)
	}
	_, err := Open(t.Context(), Config{DataDir: t.TempDir(), Logger: discardLogger(),
		P2P: &P2PConfig{SwarmKey: []byte("short"), NoMDNS: true, NoDHT: true}})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("open with a short key: got %v, want ErrInvalidConfig", err)
	}
}

func TestReadSwarmKey(t *testing.T) {
	hexKey := strings.Repeat("0123456789abcdef", 4)
	want := make([]byte, 32)
	for i := range want {
		want[i] = []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}[i%8]
	}
	const header = "/key/swarm/psk/1.0.0/\n"
	for _, tc := range []struct {
		name string
		data string
		perm os.FileMode
		err  string // "" for valid
	}{
		{"base16", header + "/base16/\n" + hexKey + "\n", 0o600, ""},
		{"base16 upper case, CRLF, no final newline", "/key/swarm/psk/1.0.0/\r\n/base16/\r\n" + strings.ToUpper(hexKey), 0o400, ""},
		{"base64", header + "/base64/\n" + "ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8=\n", 0o600, ""},
		{"bin", header + "/bin/\n" + string(want), 0o600, ""},
		{"readable by group", header + "/base16/\n" + hexKey + "\n", 0o640, "readable by others"},
		{"readable by all", header + "/base16/\n" + hexKey + "\n", 0o644, "chmod 600"},
		{"empty", "", 0o600, "truncated"},
		{"wrong header", "/key/swarm/psk/2.0.0/\n/base16/\n" + hexKey + "\n", 0o600, "malformed"},
		{"unknown encoding", header + "/base32/\n" + hexKey + "\n", 0o600, "unknown encoding"},
		{"short key", header + "/base16/\n" + hexKey[:40] + "\n", 0o600, "truncated"},
		{"long key", header + "/base16/\n" + hexKey + "00\n", 0o600, "exactly 64 hex digits"},
		{"not hex", header + "/base16/\n" + strings.Repeat("zz", 32) + "\n", 0o600, "malformed"},
		{"huge", header + "/base16/\n" + hexKey + strings.Repeat(" ", 8<<10), 0o600, "not a swarm key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "swarm.key")
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.perm); err != nil {
				t.Fatal(err)
			}
			got, err := ReadSwarmKey(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %x, %v; want an error with %q", got, err, tc.err)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("got %x, %v; want %x", got, err, want)
			}
		})
	}
	if _, err := ReadSwarmKey(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: got %v", err)
	}
}
