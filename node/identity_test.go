package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIdentityKeyFile: the key is created 0600 on first start and kept
// across restarts; a key file others can read stops the node from opening.
func TestIdentityKeyFile(t *testing.T) {
	dir := t.TempDir()
	n := openTestNode(t, dir, nil)
	id := n.PeerID()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, identityFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("identity key mode %v, want 0600", got)
	}
	n = openTestNode(t, dir, nil)
	if got := n.PeerID(); got != id {
		t.Fatalf("peer id after restart %s, want %s", got, id)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		n, err := Open(context.Background(), Config{DataDir: dir, Logger: discardLogger()})
		if err == nil {
			n.Close()
			t.Fatalf("mode %v: the node opened, want a refusal", mode)
		}
		if !strings.Contains(err.Error(), "readable by others") {
			t.Errorf("mode %v: got %v, want an error saying the key is readable by others", mode, err)
		}
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := Open(context.Background(), Config{DataDir: dir, Logger: discardLogger()}); err == nil {
		n.Close()
		t.Fatal("the node opened with a corrupt identity key")
	}
}
