package node

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"

	"github.com/barrel-db/barrel/datastore"
)

// tree lists every file under dir with its size: what a refused Open must
// leave exactly as it was.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out = append(out, rel+"/")
		} else {
			out = append(out, fmt.Sprintf("%s %d", rel, fi.Size()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// filledNode creates a node in a new dir with database "db" holding n
// documents, closes it and returns the dir.
func filledNode(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	nd, err := Open(t.Context(), Config{DataDir: dir, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.CreateDB(t.Context(), "db"); err != nil {
		t.Fatal(err)
	}
	db, _ := nd.DB("db")
	for i := range n {
		mustPut(t, db, fmt.Sprintf("doc%04d", i), map[string]any{"i": i, "pad": strings.Repeat("p", 200)}, "")
	}
	if err := nd.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// flipByte inverts the byte at off of path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestOpenRefusesDamagedStore: a data dir whose store cannot be opened as
// it was (a damaged MANIFEST, a store deleted next to its identity) used to
// open as a new, empty node and delete the data. Open must refuse with
// ErrCorrupt and change nothing in the data dir.
func TestOpenRefusesDamagedStore(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, store string)
		opens  bool // Pebble opens the store (and rotates its log) before the node refuses it
	}{
		{"manifest", func(t *testing.T, store string) {
			ms, _ := filepath.Glob(filepath.Join(store, "MANIFEST-*"))
			slices.Sort(ms)
			fi, err := os.Stat(ms[len(ms)-1])
			if err != nil {
				t.Fatal(err)
			}
			flipByte(t, ms[len(ms)-1], fi.Size()/2)
		}, false},
		{"store removed", func(t *testing.T, store string) {
			if err := os.RemoveAll(store); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"store emptied", func(t *testing.T, store string) {
			// A valid but empty store next to the identity (as if Pebble
			// had been made to start over): not a new node either.
			if err := os.RemoveAll(store); err != nil {
				t.Fatal(err)
			}
			s, err := datastore.Open(store, datastore.Config{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filledNode(t, 50)
			tc.damage(t, filepath.Join(dir, "store"))
			before := tree(t, dir)
			n, err := Open(t.Context(), Config{DataDir: dir, Logger: discardLogger()})
			if err == nil {
				dbs, _ := n.ListDBs(t.Context())
				n.Close()
				t.Fatalf("Open of a damaged data dir succeeded with databases %v, want ErrCorrupt", dbs)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: got %v, want ErrCorrupt", err)
			}
			t.Logf("refused: %v", err)
			if tc.opens {
				return
			}
			if diff := cmp.Diff(before, tree(t, dir)); diff != "" {
				t.Fatalf("a refused Open changed the data dir (-before +after):\n%s", diff)
			}
		})
	}
}

// TestCorruptBlockRead: a damaged sstable block made the daemon exit on
// the first read of a document in it, and on every restart. The read must
// fail with ErrCorrupt, the other documents stay readable, and the damage
// shows in Info (status) and barrel_store_corruption_total.
func TestCorruptBlockRead(t *testing.T) {
	dir := filledNode(t, 2000)
	ssts, _ := filepath.Glob(filepath.Join(dir, "store", "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no sstable after close")
	}
	var biggest string
	var size int64
	for _, p := range ssts {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			biggest, size = p, fi.Size()
		}
	}
	for pct := int64(5); pct < 100; pct += 5 { // a byte in every twentieth of the table
		flipByte(t, biggest, size*pct/100)
	}
	t.Logf("damaged %s (%d bytes, of %d tables)", filepath.Base(biggest), size, len(ssts))
	n := openTestNode(t, dir, func(c *Config) { c.Logger = discardLogger() })
	db, err := n.DB("db")
	if err != nil {
		t.Fatal(err)
	}
	bad, good := 0, 0
	for i := range 2000 {
		_, err := db.Get(t.Context(), fmt.Sprintf("doc%04d", i))
		switch {
		case err == nil:
			good++
		case errors.Is(err, ErrCorrupt):
			bad++
		default:
			t.Fatalf("get doc%04d: %v, want nil or ErrCorrupt", i, err)
		}
	}
	if _, err := db.List(t.Context(), ListOptions{}); err != nil && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("listing: %v, want nil or ErrCorrupt", err)
	}
	t.Logf("%d documents readable, %d damaged", good, bad)
	if good == 0 {
		t.Fatal("no document readable")
	}
	st := n.Info().Store
	if st == nil || st.Corruptions == 0 || !strings.Contains(st.Advice, "re-sync") {
		t.Fatalf("Info().Store = %+v, want the damage counted with advice to re-sync", st)
	}
	mfs, err := n.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got float64
	for _, mf := range mfs {
		if mf.GetName() == "barrel_store_corruption_total" {
			got = metricValue(mf.GetMetric()[0])
		}
	}
	if got != float64(st.Corruptions) {
		t.Fatalf("barrel_store_corruption_total = %v, want %d", got, st.Corruptions)
	}
}

func metricValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

// TestFullDiskNode fills a real 20 MB tmpfs through the node: a write that
// cannot be made durable fails with ErrNoSpace, reads go on, Close returns,
// and after space is freed every acknowledged document is there.
func TestFullDiskNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs to fill needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{DataDir: filepath.Join(mnt, "data"), MemTable: 1 << 20, CacheBytes: 1 << 20, Logger: discardLogger()}
	n, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() }) // before the unmount
	if err := n.CreateDB(t.Context(), "db"); err != nil {
		t.Fatal(err)
	}
	db, _ := n.DB("db")
	var acked []string
	pad := make([]byte, 3000)
	var werr error
	for i := 0; i < 10000 && werr == nil; i++ { // 10000 x 6 KB: far more than the disk
		_, _ = rand.Read(pad)
		id := fmt.Sprintf("doc%05d", i)
		if _, werr = db.Put(t.Context(), id, map[string]any{"pad": hex.EncodeToString(pad)}, ""); werr == nil {
			acked = append(acked, id)
		}
	}
	if !errors.Is(werr, ErrNoSpace) {
		t.Fatalf("writing until the disk is full: got %v after %d documents, want ErrNoSpace", werr, len(acked))
	}
	t.Logf("refused after %d documents: %v", len(acked), werr)
	if st := n.Info().Store; st == nil || !st.NoSpace {
		t.Fatalf("Info().Store = %+v, want NoSpace", st)
	}
	mustGet(t, db, acked[0])
	mustGet(t, db, acked[len(acked)-1])
	closeStart := time.Now()
	if err := n.Close(); err != nil {
		t.Fatalf("close on a full disk: %v", err)
	}
	t.Logf("closed in %v on a full disk", time.Since(closeStart))
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if n, err = Open(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if db, err = n.DB("db"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, db, "after", map[string]any{"x": 1}, "")
	acked = append(acked, "after")
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return within 20 s")
	}
	n2, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	db2, _ := n2.DB("db")
	for _, id := range acked {
		mustGet(t, db2, id)
	}
}

// TestFullDiskLogsOnce: while the disk is full every write is refused,
// and the node says so once, not once per refused write (a log line per
// write fills the disk further); once space is freed, writes resume
// without a restart and the node says that too.
func TestFullDiskLogsOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs to fill needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &lockedLog{}
	cfg := Config{DataDir: filepath.Join(mnt, "data"), MemTable: 1 << 20, CacheBytes: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	n, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() }) // before the unmount
	if err := n.CreateDB(t.Context(), "db"); err != nil {
		t.Fatal(err)
	}
	db, _ := n.DB("db")
	pad := make([]byte, 3000)
	refused := 0
	for i := 0; i < 10000 && refused < 50; i++ {
		_, _ = rand.Read(pad)
		if _, err := db.Put(t.Context(), fmt.Sprintf("doc%05d", i), map[string]any{"pad": hex.EncodeToString(pad)}, ""); errors.Is(err, ErrNoSpace) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if refused < 50 {
		t.Fatalf("only %d writes refused: the disk never filled", refused)
	}
	if c := strings.Count(logs.String(), "writes refused"); c != 1 {
		t.Fatalf("%d refused writes logged %d lines, want 1:\n%s", refused, c, logs.String())
	}
	if c := strings.Count(logs.String(), "group commit failed"); c != 0 {
		t.Fatalf("refused writes logged %d 'group commit failed' lines", c)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	mustPut(t, db, "after", map[string]any{"x": 1}, "")
	if !strings.Contains(logs.String(), "writes resumed") {
		t.Fatalf("no 'writes resumed' line once space was freed:\n%s", logs.String())
	}
}

// lockedLog is a log sink safe for the node's goroutines.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
