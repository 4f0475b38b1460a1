package datastore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestIngest: keys set through an Ingest are readable after Commit, across
// several table files, next to keys written by batches; the table files
// are gone.
func TestIngest(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustCommit(t, s, "a", "before", "z", "after")
	in := s.NewIngest()
	value := bytes.Repeat([]byte{7}, 1<<20)
	const n = 100 // 100 MiB: two table files
	for i := range n {
		value[0] = byte(i)
		if err := in.Set(fmt.Appendf(nil, "m%04d", i), value); err != nil {
			t.Fatalf("set %d: %v", i, err)
		}
	}
	if _, err := s.Get([]byte("m0000")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("before commit: got %v, want ErrNotFound", err)
	}
	if err := in.Commit(t.Context(), nil); err != nil {
		t.Fatalf("commit: %v", err)
	}
	for i := range n {
		v, err := s.Get(fmt.Appendf(nil, "m%04d", i))
		if err != nil || len(v) != len(value) || v[0] != byte(i) {
			t.Fatalf("key %d after commit: %d bytes, %v", i, len(v), err)
		}
	}
	for k, want := range map[string]string{"a": "before", "z": "after"} {
		if v, err := s.Get([]byte(k)); err != nil || string(v) != want {
			t.Fatalf("%s: got %q, %v; want %q", k, v, err, want)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(dir, ingestDir)); len(left) != 0 {
		t.Fatalf("table files left after commit: %v", left)
	}
	if err := in.Commit(t.Context(), nil); !errors.Is(err, ErrBatchDone) {
		t.Fatalf("second commit: got %v, want ErrBatchDone", err)
	}
}

// TestIngestAbandoned: a closed Ingest, or one with keys out of order,
// adds nothing and leaves no file; a file left by a crash is removed by
// the next Open.
func TestIngestAbandoned(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	in := s.NewIngest()
	if err := in.Set([]byte("k1"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	in.Close()
	bad := s.NewIngest()
	if err := bad.Set([]byte("k2"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := bad.Set([]byte("k1"), []byte("v")); err == nil {
		t.Fatal("a key below the previous one: got nil error")
	}
	if err := bad.Commit(t.Context(), nil); err == nil {
		t.Fatal("commit after a failed set: got nil error")
	}
	for _, k := range []string{"k1", "k2"} {
		if _, err := s.Get([]byte(k)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: got %v, want ErrNotFound", k, err)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(dir, ingestDir)); len(left) != 0 {
		t.Fatalf("table files left: %v", left)
	}
	crashed := filepath.Join(dir, ingestDir, "crashed.sst")
	if err := os.WriteFile(crashed, []byte("half a table"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Config{})
	if err != nil {
		t.Fatalf("reopen with a leftover table file: %v", err)
	}
	defer s.Close()
	if _, err := os.Stat(crashed); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover table file after Open: %v", err)
	}
}

// TestIngestSmall: a few keys commit through the caller's batch, together
// with its own writes; a large ingest commits the batch after its tables.
func TestIngestSmall(t *testing.T) {
	for _, size := range []int{10, 12 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s := openTest(t, Config{})
			in := s.NewIngest()
			chunk := bytes.Repeat([]byte{1}, 1<<20)
			for i := 0; i*len(chunk) < size; i++ {
				v := chunk[:min(len(chunk), size-i*len(chunk))]
				if err := in.Set(fmt.Appendf(nil, "c%04d", i), v); err != nil {
					t.Fatal(err)
				}
			}
			b := s.NewWriteBatch()
			defer b.Close()
			b.Set([]byte("meta"), []byte("done"))
			if err := in.Commit(t.Context(), b); err != nil {
				t.Fatalf("commit: %v", err)
			}
			if v, err := s.Get([]byte("meta")); err != nil || string(v) != "done" {
				t.Fatalf("the batch's write: got %q, %v", v, err)
			}
			total := 0
			if err := s.Range([]byte("c"), []byte("d"), false, func(k, v []byte) (bool, error) {
				total += len(v)
				return true, nil
			}); err != nil {
				t.Fatal(err)
			}
			if total != size {
				t.Fatalf("bytes under the ingested keys: got %d, want %d", total, size)
			}
		})
	}
}
