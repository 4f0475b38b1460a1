package datastore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"
	ds "github.com/ipfs/go-datastore"
)

func openTest(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func mustCommit(t testing.TB, s *Store, kv ...string) {
	t.Helper()
	b := s.NewBatch()
	for i := 0; i < len(kv); i += 2 {
		b.Set([]byte(kv[i]), []byte(kv[i+1]))
	}
	if err := b.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func TestParseDurability(t *testing.T) {
	tests := []struct {
		in      string
		want    Durability
		wantErr bool
	}{
		{"sync", DurabilitySync, false},
		{"batch", DurabilityBatch, false},
		{"", 0, true},
		{"SYNC", 0, true},
		{"none", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDurability(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadDurability) {
					t.Fatalf("got %v, want ErrBadDurability", err)
				}
				return
			}
			if err != nil || got != tt.want || got.String() != tt.in {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestOpenBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"durability", Config{Durability: 7}},
		{"cache", Config{CacheBytes: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := Open(t.TempDir(), tt.cfg); err == nil {
				s.Close()
				t.Fatal("got nil error")
			}
		})
	}
}

func TestGetHas(t *testing.T) {
	s := openTest(t, Config{})
	mustCommit(t, s, "a", "1", "empty", "")
	tests := []struct {
		key     string
		want    string
		wantErr error
	}{
		{"a", "1", nil},
		{"empty", "", nil},
		{"missing", "", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, err := s.Get([]byte(tt.key))
			if !errors.Is(err, tt.wantErr) || string(got) != tt.want {
				t.Fatalf("Get: got %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			has, err := s.Has([]byte(tt.key))
			if err != nil || has != (tt.wantErr == nil) {
				t.Fatalf("Has: got %v, %v", has, err)
			}
		})
	}
}

func TestBatch(t *testing.T) {
	s := openTest(t, Config{})
	mustCommit(t, s, "a", "old", "b", "old", "c", "old", "d", "old")

	b := s.NewBatch()
	b.Set([]byte("a"), []byte("new"))
	b.Delete([]byte("b"))
	b.DeleteRange([]byte("c"), []byte("e"))
	b.Set([]byte("d"), []byte("again")) // After the range delete: survives.
	b.Set([]byte("x"), []byte("new"))

	// Read-your-batch, while the store still shows the old state.
	batchWant := map[string]string{"a": "new", "b": "", "c": "", "d": "again", "x": "new", "y": ""}
	storeWant := map[string]string{"a": "old", "b": "old", "c": "old", "d": "old", "x": "", "y": ""}
	for k, want := range batchWant {
		got, ok, err := b.Get([]byte(k))
		if err != nil || ok != (want != "") || string(got) != want {
			t.Errorf("batch Get(%q): got %q, %v, %v; want %q", k, got, ok, err, want)
		}
		v, err := s.Get([]byte(k))
		if sw := storeWant[k]; string(v) != sw || (sw == "") != errors.Is(err, ErrNotFound) {
			t.Errorf("store Get(%q) before commit: got %q, %v; want %q", k, v, err, sw)
		}
	}
	if b.Len() != 5 || b.Bytes() == 0 {
		t.Errorf("Len, Bytes: got %d, %d; want 5, >0", b.Len(), b.Bytes())
	}
	if err := b.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	for k, want := range batchWant {
		v, err := s.Get([]byte(k))
		if string(v) != want || (want == "") != errors.Is(err, ErrNotFound) {
			t.Errorf("store Get(%q) after commit: got %q, %v; want %q", k, v, err, want)
		}
	}
	if err := b.Commit(); !errors.Is(err, ErrBatchDone) {
		t.Errorf("second commit: got %v, want ErrBatchDone", err)
	}
	b.Close() // Harmless after commit.

	// A closed batch writes nothing.
	b = s.NewBatch()
	b.Set([]byte("z"), []byte("never"))
	b.Close()
	if has, _ := s.Has([]byte("z")); has {
		t.Error("closed batch was applied")
	}
}

func TestRange(t *testing.T) {
	s := openTest(t, Config{})
	mustCommit(t, s, "a", "1", "b", "2", "b\x00", "3", "c", "4", "d", "5")
	tests := []struct {
		name    string
		lo, hi  string
		nilHi   bool
		reverse bool
		stop    int // stop after this many keys; 0: never
		want    []string
	}{
		{name: "all", nilHi: true, want: []string{"a", "b", "b\x00", "c", "d"}},
		{name: "all reverse", nilHi: true, reverse: true, want: []string{"d", "c", "b\x00", "b", "a"}},
		{name: "half open", lo: "b", hi: "d", want: []string{"b", "b\x00", "c"}},
		{name: "half open reverse", lo: "b", hi: "d", reverse: true, want: []string{"c", "b\x00", "b"}},
		{name: "from", lo: "c", nilHi: true, want: []string{"c", "d"}},
		{name: "empty", lo: "x", hi: "z", want: nil},
		{name: "stop", nilHi: true, stop: 2, want: []string{"a", "b"}},
		{name: "stop reverse", nilHi: true, reverse: true, stop: 1, want: []string{"d"}},
		{name: "prefix", lo: "b", hi: string(PrefixEnd([]byte("b"))), want: []string{"b", "b\x00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hi []byte
			if !tt.nilHi {
				hi = []byte(tt.hi)
			}
			var got []string
			err := s.Range([]byte(tt.lo), hi, tt.reverse, func(k, v []byte) (bool, error) {
				got = append(got, string(k))
				if want, _ := s.Get(k); string(want) != string(v) {
					t.Errorf("value of %q: got %q, want %q", k, v, want)
				}
				return tt.stop == 0 || len(got) < tt.stop, nil
			})
			if err != nil {
				t.Fatalf("range: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("keys (-want +got):\n%s", diff)
			}

			// Iter walks the same keys.
			it, err := s.Iter([]byte(tt.lo), hi, tt.reverse)
			if err != nil {
				t.Fatal(err)
			}
			var iterGot []string
			for it.Next() && (tt.stop == 0 || len(iterGot) < tt.stop) {
				iterGot = append(iterGot, string(it.Key()))
			}
			if err := it.Close(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, iterGot); diff != "" {
				t.Fatalf("iter keys (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("error stops", func(t *testing.T) {
		boom := errors.New("boom")
		n := 0
		err := s.Range(nil, nil, false, func(k, v []byte) (bool, error) {
			n++
			return true, boom
		})
		if !errors.Is(err, boom) || n != 1 {
			t.Fatalf("got %v after %d calls; want boom after 1", err, n)
		}
	})
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct {
		in, want []byte
	}{
		{nil, nil},
		{[]byte{}, nil},
		{[]byte{0xFF, 0xFF}, nil},
		{[]byte("ab"), []byte("ac")},
		{[]byte{1, 0xFF}, []byte{2}},
		{[]byte{1, 0xFE, 0xFF}, []byte{1, 0xFF}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%x", tt.in), func(t *testing.T) {
			in := append([]byte(nil), tt.in...)
			if got := PrefixEnd(in); !cmp.Equal(got, tt.want) {
				t.Fatalf("got %x, want %x", got, tt.want)
			}
			if !cmp.Equal(in, tt.in) && len(tt.in) > 0 {
				t.Fatalf("input modified: %x", in)
			}
		})
	}
}

func TestReopenAndClose(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, s, "k", "v")
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Get([]byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: got %v, want ErrClosed", err)
	}
	if err := s.NewBatch().Commit(); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit after close: got %v, want ErrClosed", err)
	}
	s, err = Open(dir, Config{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("after reopen: got %q, %v; want \"v\"", v, err)
	}
}

func TestDatastoreView(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Config{})
	p2p := s.Datastore("/p2p")
	if err := p2p.Put(ctx, ds.NewKey("/peers/a"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if v, err := p2p.Get(ctx, ds.NewKey("/peers/a")); err != nil || string(v) != "x" {
		t.Fatalf("view get: got %q, %v", v, err)
	}
	// The view's keys live under the namespace in the store's keyspace.
	if v, err := s.Get([]byte("/p2p/peers/a")); err != nil || string(v) != "x" {
		t.Fatalf("store get: got %q, %v", v, err)
	}
	if _, err := s.Datastore("/other").Get(ctx, ds.NewKey("/peers/a")); !errors.Is(err, ds.ErrNotFound) {
		t.Fatalf("other namespace: got %v, want ds.ErrNotFound", err)
	}
}

func TestDiskUsageCompact(t *testing.T) {
	s := openTest(t, Config{Durability: DurabilityBatch})
	b := s.NewBatch()
	for i := range 1000 {
		b.Set(fmt.Appendf(nil, "k%04d", i), make([]byte, 100))
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b = s.NewBatch()
	b.DeleteRange([]byte("k"), []byte("l"))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2][]byte{{nil, nil}, {[]byte("k"), []byte("l")}} {
		if err := s.Compact(r[0], r[1]); err != nil {
			t.Fatalf("compact [%q, %q): %v", r[0], r[1], err)
		}
	}
	if n, err := s.DiskUsage(); err != nil || n == 0 {
		t.Fatalf("disk usage: got %d, %v", n, err)
	}
}

// TestCrashDurability checks Invariant 2 (DESIGN.md): with DurabilitySync,
// every batch whose Commit returned is in the store after a crash that keeps
// only synced data. With DurabilityBatch, the same crash loses the commits
// since the last sync: that is the documented cost of the weaker setting.
func TestCrashDurability(t *testing.T) {
	tests := []struct {
		durability Durability
		wantKept   bool
	}{
		{DurabilitySync, true},
		{DurabilityBatch, false},
	}
	for _, tt := range tests {
		t.Run(tt.durability.String(), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			opts := &pebble.Options{FS: fs}
			s, err := Open("db", Config{Durability: tt.durability, PebbleOptions: opts})
			if err != nil {
				t.Fatal(err)
			}
			const n = 50
			for i := range n {
				b := s.NewBatch()
				b.Set(fmt.Appendf(nil, "a%03d", i), []byte("v"))
				b.Set(fmt.Appendf(nil, "b%03d", i), []byte("v"))
				if err := b.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s, err = Open("db", Config{PebbleOptions: &pebble.Options{FS: crashed}})
			if err != nil {
				t.Fatalf("open after crash: %v", err)
			}
			defer s.Close()
			kept := 0
			for i := range n {
				a, _ := s.Has(fmt.Appendf(nil, "a%03d", i))
				b, _ := s.Has(fmt.Appendf(nil, "b%03d", i))
				if a != b {
					t.Fatalf("batch %d half applied after crash", i)
				}
				if a {
					kept++
				}
			}
			if tt.wantKept && kept != n {
				t.Fatalf("kept %d of %d synced batches", kept, n)
			}
			if !tt.wantKept && kept == n {
				t.Fatalf("unsynced commits all survived; the test no longer shows what %v loses", tt.durability)
			}
			t.Logf("%v: %d of %d committed batches survived the crash", tt.durability, kept, n)
		})
	}
}

func BenchmarkCommitSync(b *testing.B) {
	for _, size := range []int{1, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := openTest(b, Config{})
			val := make([]byte, 100)
			i := 0
			for b.Loop() {
				bt := s.NewBatch()
				for range size {
					bt.Set(AppendUint64([]byte("k"), uint64(i)), val)
					i++
				}
				if err := bt.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/commit")
		})
	}
}

func TestWriteBatch(t *testing.T) {
	s := openTest(t, Config{})
	b := s.NewWriteBatch()
	b.Set([]byte("k"), []byte("v"))
	if _, _, err := b.Get([]byte("k")); !errors.Is(err, ErrNoIndex) {
		t.Fatalf("Get on a write batch: got %v, want ErrNoIndex", err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("after commit: %q, %v", v, err)
	}
}
