package datastore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// smallDisk mounts a tmpfs of size bytes on a fresh directory and returns
// it; the test is skipped when not root.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs to fill needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// countHandler counts the records logged through it.
type countHandler struct{ n *atomic.Int64 }

func (h countHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h countHandler) Handle(context.Context, slog.Record) error { h.n.Add(1); return nil }
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h countHandler) WithGroup(string) slog.Handler             { return h }

// TestFullDisk fills a real 20 MB tmpfs. A write that cannot be made
// durable must fail with ErrNoSpace (not end the process, not hang), reads
// go on, Pebble's log stays bounded, Close returns, writes resume once
// space is freed, and every acknowledged write survives a reopen.
func TestFullDisk(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reserve int64
	}{{"reserve", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := smallDisk(t, "20m")
			ballast := filepath.Join(mnt, "ballast")
			if err := os.WriteFile(ballast, make([]byte, 8<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			var logged atomic.Int64
			cfg := Config{MemTableBytes: 1 << 20, CacheBytes: 1 << 20, ReserveBytes: tc.reserve, Logger: slog.New(countHandler{&logged})}
			dir := filepath.Join(mnt, "store")
			s, err := Open(dir, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() }) // before the unmount; Close is idempotent
			var acked []string
			value := make([]byte, 4096)
			var werr error
			for i := 0; i < 2000 && werr == nil; i++ { // 2000 x 16 KiB: far more than the disk
				_, _ = rand.Read(value)
				b := s.NewBatch()
				var keys []string
				for j := range 4 {
					k := fmt.Sprintf("k%05d-%d", i, j)
					b.Set([]byte(k), value)
					keys = append(keys, k)
				}
				if werr = b.Commit(); werr == nil {
					acked = append(acked, keys...)
				}
			}
			if !errors.Is(werr, ErrNoSpace) {
				t.Fatalf("writing until the disk is full: got %v after %d keys, want ErrNoSpace", werr, len(acked))
			}
			t.Logf("refused after %d keys: %v", len(acked), werr)
			if !s.Health().NoSpace {
				t.Error("Health().NoSpace is false after a refused write")
			}
			// Observe a second of the full disk: the background work must
			// back off and log at a bounded rate.
			before := logged.Load()
			for end := time.Now().Add(time.Second); time.Now().Before(end); {
				if _, err := s.Get([]byte(acked[0])); err != nil {
					t.Fatalf("read on a full disk: %v", err)
				}
				b := s.NewBatch()
				b.Set([]byte("more"), value)
				if err := b.Commit(); !errors.Is(err, ErrNoSpace) {
					t.Fatalf("write on a full disk: got %v, want ErrNoSpace", err)
				}
				time.Sleep(10 * time.Millisecond) // pace the probe writes
			}
			if n := logged.Load() - before; n > 2*logBurst {
				t.Errorf("%d log records in one second of a full disk, want at most %d", n, 2*logBurst)
			}
			if err := os.Remove(ballast); err != nil {
				t.Fatal(err)
			}
			b := s.NewBatch()
			b.Set([]byte("after"), value)
			err = b.Commit()
			if tc.reserve == 0 {
				if err != nil {
					t.Fatalf("write after freeing space: %v", err)
				}
				acked = append(acked, "after")
			}
			closed := make(chan error, 1)
			go func() { closed <- s.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Logf("close: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Close did not return within 20 s on a full disk")
			}
			s, err = Open(dir, cfg)
			if err != nil {
				t.Fatalf("reopen after freeing space: %v", err)
			}
			for _, k := range acked {
				if _, err := s.Get([]byte(k)); err != nil {
					t.Fatalf("acknowledged key %s after reopen: %v", k, err)
				}
			}
		})
	}
}

// TestFullDiskBackoff turns the free-space reserve off, so that Pebble
// itself runs out of room: its flush fails and, left alone, it retried at
// once, forever (the daemon at 100% CPU with an ERROR line per attempt),
// and once the memtables were full every commit waited. Wanted: the
// retries back off and the log stays bounded while the disk is full, a
// commit Pebble cannot make fails with ErrNoSpace instead of ending the
// process, and once space is freed the store recovers with every
// acknowledged write.
func TestFullDiskBackoff(t *testing.T) {
	mnt := smallDisk(t, "20m")
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var logged, flushes atomic.Int64
	cfg := Config{MemTableBytes: 1 << 20, CacheBytes: 1 << 20, ReserveBytes: -1, Logger: slog.New(countHandler{&logged}),
		PebbleOptions: &pebble.Options{EventListener: &pebble.EventListener{
			FlushBegin: func(pebble.FlushInfo) { flushes.Add(1) },
		}}}
	dir := filepath.Join(mnt, "store")
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	var mu sync.Mutex
	var acked []string
	var lastAck atomic.Int64
	var stop atomic.Bool
	done := make(chan error, 1)
	go func() { // the writer: owned by the test, stopped by stop and waited on done
		value := make([]byte, 4096)
		for i := 0; i < 5000 && !stop.Load(); i++ {
			_, _ = rand.Read(value)
			b := s.NewBatch()
			k := fmt.Sprintf("k%05d", i)
			b.Set([]byte(k), value)
			if err := b.Commit(); err != nil {
				done <- err
				return
			}
			mu.Lock()
			acked = append(acked, k)
			mu.Unlock()
			lastAck.Store(time.Now().UnixNano())
		}
		done <- nil
	}()
	// Wait until the writer is stuck (commits wait for a flush that cannot
	// succeed) or failed.
	var werr error
	stuck := false
	for deadline := time.Now().Add(60 * time.Second); !stuck && werr == nil; {
		select {
		case werr = <-done:
		default:
			if last := lastAck.Load(); last > 0 && time.Since(time.Unix(0, last)) > time.Second {
				stuck = true
			}
			if time.Now().After(deadline) {
				t.Fatal("the disk did not fill within 60 s")
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
	}
	if werr != nil && !errors.Is(werr, ErrNoSpace) {
		t.Fatalf("commit on a full disk: %v, want ErrNoSpace", werr)
	}
	t.Logf("full disk: stuck=%v err=%v", stuck, werr)
	// Observe two seconds of the full disk.
	f0, l0 := flushes.Load(), logged.Load()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond) // the observation window, not a wait for an outcome
	}
	df, dl := flushes.Load()-f0, logged.Load()-l0
	t.Logf("in 2 s of a full disk: %d flush attempts, %d log records", df, dl)
	if df > 20 {
		t.Errorf("%d flush attempts in 2 s: the retries do not back off", df)
	}
	if dl > 3*logBurst {
		t.Errorf("%d log records in 2 s, want at most %d", dl, 3*logBurst)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	if werr == nil { // the writer is stuck in a commit: freeing space must release it
		select {
		case err := <-done:
			if err != nil {
				t.Logf("writer after space was freed: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the stuck commit did not finish within 30 s of freeing space")
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Logf("close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return within 20 s")
	}
	s, err = Open(dir, Config{MemTableBytes: 1 << 20, CacheBytes: 1 << 20})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, k := range acked {
		if _, err := s.Get([]byte(k)); err != nil {
			t.Fatalf("acknowledged key %s after reopen: %v", k, err)
		}
	}
	t.Logf("%d acknowledged keys after reopen", len(acked))
}
