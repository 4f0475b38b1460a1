package datastore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/go-cmp/cmp"
)

// listing returns "name size" for every file in dir, sorted: what a damaged
// open must leave exactly as it was.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if e.IsDir() {
			out = append(out, e.Name()+"/")
			continue
		}
		out = append(out, fmt.Sprintf("%s %d", e.Name(), fi.Size()))
	}
	slices.Sort(out)
	return out
}

// fill writes n keys of about 100 bytes, one synced batch each.
func fill(t *testing.T, s *Store, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		mustCommit(t, s, fmt.Sprintf("k%06d", i), fmt.Sprintf("value %d %s", i, strings.Repeat("x", 90)))
	}
}

// countKeys returns the number of keys in the store.
func countKeys(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.Range(nil, nil, false, func(k, v []byte) (bool, error) { n++; return true, nil }); err != nil {
		t.Fatalf("range: %v", err)
	}
	return n
}

// newest returns the file matching pattern in dir with the largest name.
func newest(t *testing.T, dir, pattern string) string {
	t.Helper()
	ms, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(ms) == 0 {
		t.Fatalf("no %s in %s", pattern, dir)
	}
	slices.Sort(ms)
	return ms[len(ms)-1]
}

// flip inverts n bytes of path starting at off.
func flip(t *testing.T, path string, off, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := off; i < off+n; i++ {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestOpenRefusesDamagedManifest: a flipped byte in the newest MANIFEST made
// Pebble open an older, empty version and delete the sstables. Open must
// refuse with ErrCorrupt, naming the file, and change nothing; once the
// byte is restored every key is there.
func TestOpenRefusesDamagedManifest(t *testing.T) {
	for _, pct := range []int{25, 50, 75, 95} {
		t.Run(fmt.Sprintf("at%d%%", pct), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Config{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 4 { // four flushes: four edits in the MANIFEST
				fill(t, s, i*100, 100)
				if err := s.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			mf := newest(t, dir, "MANIFEST-*")
			fi, err := os.Stat(mf)
			if err != nil {
				t.Fatal(err)
			}
			off := int(fi.Size()) * pct / 100
			before := listing(t, dir)
			flip(t, mf, off, 1)
			s, err = Open(dir, Config{})
			if err == nil {
				n := countKeys(t, s)
				s.Close()
				t.Fatalf("open of a store with a damaged MANIFEST (byte %d of %d) succeeded with %d of 400 keys, want ErrCorrupt", off, fi.Size(), n)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(mf)) {
				t.Fatalf("open: got %v, want ErrCorrupt naming %s", err, filepath.Base(mf))
			}
			t.Logf("refused: %v", err)
			if diff := cmp.Diff(before, listing(t, dir)); diff != "" {
				t.Fatalf("a refused open changed the dir (-before +after):\n%s", diff)
			}
			flip(t, mf, off, 1) // repaired: everything is back
			s, err = Open(dir, Config{})
			if err != nil {
				t.Fatalf("open after repair: %v", err)
			}
			defer s.Close()
			if n := countKeys(t, s); n != 400 {
				t.Fatalf("after repair got %d keys, want 400", n)
			}
		})
	}
}

// TestOpenRefusesFilesWithoutManifest: Pebble files without a current
// MANIFEST are not a new store.
func TestOpenRefusesFilesWithoutManifest(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 0, 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ms, _ := filepath.Glob(filepath.Join(dir, "marker.manifest.*"))
	for _, m := range ms {
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
	before := listing(t, dir)
	if s, err := Open(dir, Config{}); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open without a MANIFEST marker: got %v, want ErrCorrupt", err)
	}
	if diff := cmp.Diff(before, listing(t, dir)); diff != "" {
		t.Fatalf("a refused open changed the dir (-before +after):\n%s", diff)
	}
}

// TestOpenMustExist: MustExist refuses to create a store.
func TestOpenMustExist(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := Open(dir, Config{MustExist: true}); !errors.Is(err, ErrNoStore) {
		t.Fatalf("got %v, want ErrNoStore", err)
	}
}

// crashCopy copies the files of the open store in dir to a new directory,
// as kill -9 would leave them (every batch was synced).
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	cp := t.TempDir()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.IsDir() || e.Name() == pidFile { // kill -9 leaves the pid file too; the store's Close removes it
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cp, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return cp
}

// walEnd returns the offset after the last non-zero byte of a WAL (Pebble
// preallocates and recycles logs).
func walEnd(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data) - 1; i >= 0; i-- {
		if data[i] != 0 {
			return i + 1
		}
	}
	return 0
}

// TestOpenRefusesDamagedWAL: 4 bytes flipped in the middle of the newest
// WAL, after a kill -9, made Pebble replay up to the damage, drop the
// acknowledged writes after it, and delete the log. Open must refuse with
// ErrCorrupt naming the log and keep it; a torn tail (the log cut inside
// its last record) is the normal crash and opens.
func TestOpenRefusesDamagedWAL(t *testing.T) {
	for _, reopen := range []bool{false, true} {
		t.Run(fmt.Sprintf("reopened=%v", reopen), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Config{})
			if err != nil {
				t.Fatal(err)
			}
			if reopen { // a store that existed before: its WAL comes from a later open
				fill(t, s, 0, 10)
				s.Close()
				if s, err = Open(dir, Config{}); err != nil {
					t.Fatal(err)
				}
			}
			fill(t, s, 1000, 400)
			cp := crashCopy(t, dir)
			torn := crashCopy(t, dir)
			s.Close()
			want := 400
			if reopen {
				want += 10
			}

			wal := newest(t, cp, "*.log")
			end := walEnd(t, wal)
			before := listing(t, cp)
			flip(t, wal, end/2, 4)
			s2, err := Open(cp, Config{})
			if err == nil {
				n := countKeys(t, s2)
				s2.Close()
				t.Fatalf("open of a store with a damaged WAL succeeded with %d of %d keys, want ErrCorrupt", n, want)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), strings.TrimSuffix(filepath.Base(wal), ".log")) {
				t.Fatalf("open: got %v, want ErrCorrupt naming %s", err, filepath.Base(wal))
			}
			t.Logf("refused: %v", err)
			if diff := cmp.Diff(before, listing(t, cp)); diff != "" {
				t.Fatalf("a refused open changed the dir (-before +after):\n%s", diff)
			}

			tornWAL := newest(t, torn, "*.log")
			if err := os.Truncate(tornWAL, int64(walEnd(t, tornWAL)-20)); err != nil {
				t.Fatal(err)
			}
			s3, err := Open(torn, Config{})
			if err != nil {
				t.Fatalf("open after a torn tail: %v", err)
			}
			defer s3.Close()
			if n := countKeys(t, s3); n != want-1 {
				t.Fatalf("after a torn tail got %d keys, want %d (all but the torn last one)", n, want-1)
			}
		})
	}
}

// TestCorruptBlockIsReported: a damaged sstable block made the process
// exit on the first read of a key in it. The read must fail with
// ErrCorrupt, other reads go on, and Health counts it.
func TestCorruptBlockIsReported(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 0, 2000)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	fill(t, s, 5000, 10) // in a second table after a second flush
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	slices.Sort(ssts)
	fi, err := os.Stat(ssts[0])
	if err != nil {
		t.Fatal(err)
	}
	flip(t, ssts[0], int(fi.Size())/4, 1) // a data block near the start
	s, err = Open(dir, Config{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	bad := 0
	for i := 0; i < 2000; i += 50 {
		_, err := s.Get(fmt.Appendf(nil, "k%06d", i))
		switch {
		case errors.Is(err, ErrCorrupt):
			bad++
		case err != nil:
			t.Fatalf("get k%06d: %v, want nil or ErrCorrupt", i, err)
		}
	}
	if bad == 0 {
		t.Fatal("no read reported the damaged block")
	}
	if _, err := s.Get([]byte("k005003")); err != nil {
		t.Fatalf("read of an undamaged table: %v", err)
	}
	h := s.Health()
	if h.Corruptions == 0 || !strings.Contains(h.LastCorruption, filepath.Base(ssts[0])) {
		t.Fatalf("health %+v: want the damage counted and naming %s", h, filepath.Base(ssts[0]))
	}
	t.Logf("%d of 40 reads hit the damaged block; health: %+v", bad, h)
}

// TestOpenLocked: a second Open of a store in use says so, with the pid.
func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(dir, Config{})
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || le.PID != os.Getpid() {
		t.Fatalf("second open: got %v, want a *LockedError with pid %d", err, os.Getpid())
	}
	if _, err := s.Get([]byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the first store after the refused open: %v", err)
	}
}

// TestDamagedWALBatchDurability: under DurabilityBatch nothing is synced
// per commit, so damage followed by records is also what a power loss can
// leave; Pebble replays up to it. The store must say so (Health) and keep a
// copy of the log, and a torn tail must not be taken for damage.
func TestDamagedWALBatchDurability(t *testing.T) {
	cfg := Config{Durability: DurabilityBatch}
	dir := t.TempDir()
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 0, 400)
	// Batch commits reach the OS when Pebble's log writer gets to them;
	// one synced record makes sure the 400 are in the file.
	if err := s.DB().LogData([]byte("sync"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	base := crashCopy(t, dir)
	s.Close()
	cp, torn := crashCopy(t, base), crashCopy(t, base)
	s, err = Open(base, cfg)
	if err != nil {
		t.Fatal(err)
	}
	had := countKeys(t, s)
	s.Close()

	wal := newest(t, cp, "*.log")
	flip(t, wal, walEnd(t, wal)/2, 4)
	s, err = Open(cp, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	n := countKeys(t, s)
	h := s.Health()
	s.Close()
	if h.Corruptions != 1 || !strings.Contains(h.LastCorruption, filepath.Base(wal)) {
		t.Fatalf("health %+v after replaying a damaged WAL (%d of %d keys): want the damage reported", h, n, had)
	}
	t.Logf("%d of %d keys; %s", n, had, h.LastCorruption)
	kept, _ := filepath.Glob(filepath.Join(cp, damagedDir, filepath.Base(wal)+".*"))
	if len(kept) != 1 {
		t.Fatalf("copies of the damaged WAL: %v, want one", kept)
	}

	tornWAL := newest(t, torn, "*.log")
	if err := os.Truncate(tornWAL, int64(walEnd(t, tornWAL)-20)); err != nil {
		t.Fatal(err)
	}
	s, err = Open(torn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if h := s.Health(); h.Corruptions != 0 {
		t.Fatalf("a torn tail reported as damage: %+v", h)
	}
	if n := countKeys(t, s); n != had { // the torn record is the sync marker
		t.Fatalf("after a torn tail got %d keys, want %d", n, had)
	}
}
