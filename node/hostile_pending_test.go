package node

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
)

// openVictim opens a networked node on 127.0.0.1 (no mDNS, no DHT) for
// the hostile-peer tests; mod changes its config.
func openVictim(t *testing.T, dir string, mod func(*Config)) *Node {
	t.Helper()
	cfg := Config{DataDir: dir, Durability: "batch", Logger: discardLogger(), P2P: &P2PConfig{
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, NoDHT: true,
		Debounce: 5 * time.Millisecond, Heartbeat: 200 * time.Millisecond, AntiEntropy: 200 * time.Millisecond,
	}}
	if mod != nil {
		mod(&cfg)
	}
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open victim: %v", err)
	}
	return n
}

// dirBytes is the size of the files under dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// pendingKeys counts the pending-transaction keys of a database on disk.
func pendingKeys(t *testing.T, d *DB) int {
	t.Helper()
	base := d.keys.Pendings()
	n := 0
	if err := d.store.Range(base, datastore.PrefixEnd(base), false, func(k, v []byte) (bool, error) {
		n++
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHostilePendingFlood (issue 16, item 6): a peer that may not write
// sends changes of transactions that never complete, 100 KB each. The
// victim refuses them before keeping anything pending: its data dir and
// memory do not grow by what was sent, no pending key is written, and
// every change is counted as rejected (not_writer), also after a restart.
// Once the peer is granted write access, what it can make the victim hold
// pending is bounded by Config.PendingPeerChanges (the rest is refused and
// counted as pending_full), and a restart holds counts, not bodies.
func TestHostilePendingFlood(t *testing.T) {
	const (
		flood = 200
		size  = 100 << 10
		bound = 40
	)
	dir := t.TempDir()
	mod := func(c *Config) { c.PendingPeerChanges = bound }
	v := openVictim(t, dir, mod)
	defer func() { v.Close() }()
	if err := v.CreateDB(t.Context(), "db"); err != nil {
		t.Fatal(err)
	}
	mustSetACL(t, v, "db", ACL{Readers: []string{AnyPeer}, Writers: ids(v)})

	hs := &hostileStore{}
	x := startHostile(t, v, hs, bsyncConfig())
	big := strings.Repeat("x", size)
	for i := range flood {
		// Each transaction claims two changes and only one is ever sent.
		hs.serveChanges(t, x.change("db", fmt.Sprintf("flood-%03d", i), &crdt.Tx{ID: fmt.Sprintf("tx-%03d", i), Count: 2},
			crdt.Op{Kind: crdt.OpSet, Path: "/pad", Value: big}))
	}
	d, err := v.DB("db")
	if err != nil {
		t.Fatal(err)
	}
	beforeDir := dirBytes(t, dir)
	x.victim.net.Load().repl.Trigger(x.id(), "db")
	waitFor(t, "every flood change rejected", 30*time.Second, func() bool {
		return rejectedCount(t, v, "db", rejectNotWriter) >= flood
	})
	sent := int64(flood * size)
	if n := pendingKeys(t, d); n != 0 {
		t.Errorf("non-writer: %d pending keys on disk, want 0", n)
	}
	grew := dirBytes(t, dir) - beforeDir
	t.Logf("non-writer sent %d changes, %d bytes: data dir grew by %d bytes", flood, sent, grew)
	if grew > sent/4 {
		t.Errorf("non-writer: data dir grew by %d bytes for %d sent, want under %d", grew, sent, sent/4)
	}
	d.pendingTx.Lock()
	held := d.pendingTx.n
	d.pendingTx.Unlock()
	if held != 0 {
		t.Errorf("non-writer: %d pending changes counted in memory, want 0", held)
	}

	// Granted, the same peer fills its pending allowance and no more.
	mustSetACL(t, v, "db", ACL{Readers: []string{AnyPeer}, Writers: append(ids(v), x.id().String())})
	waitFor(t, "pending allowance filled and the rest refused", 30*time.Second, func() bool {
		return pendingKeys(t, d) == bound && rejectedCount(t, v, "db", rejectPendingFull) > 0
	})
	if n := pendingKeys(t, d); n != bound {
		t.Errorf("writer: %d pending keys, want the bound %d", n, bound)
	}

	// A restart counts what is pending; bodies stay on disk.
	v.Close()
	v = openVictim(t, dir, mod)
	d, err = v.DB("db")
	if err != nil {
		t.Fatal(err)
	}
	// Memory holds per transaction and per peer counts, not the bodies
	// (which are read back from disk when a transaction completes).
	d.pendingTx.Lock()
	held, txs, use := d.pendingTx.n, len(d.pendingTx.byTx), d.pendingTx.byPeer[x.id()]
	d.pendingTx.Unlock()
	if held != bound || txs != bound || use == nil || use.n != bound || use.bytes < bound*size {
		t.Errorf("after restart: %d pending changes of %d transactions, peer's use %+v, want %d of %d, at least %d bytes",
			held, txs, use, bound, bound, bound*size)
	}
}
