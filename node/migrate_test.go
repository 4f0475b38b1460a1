package node

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/barrel-db/barrel/node/internal/layout"
)

// extractFixture unpacks testdata/format1.tgz (a data dir written by the
// format-1 binary, commit bcb324e, with testdata/format1-gen.go.txt, and
// what that binary read from it) into dir: the data dir at dir/data and
// dir/expected.json.
func extractFixture(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open("testdata/format1.tgz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(io.LimitReader(tr, 16<<20))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// syncBuffer is a log sink safe for the node's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// normJSON re-encodes JSON so that two encodings of the same value compare
// equal.
func normJSON(t *testing.T, v []byte) string {
	t.Helper()
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(x)
	return string(b)
}

// TestMigrateFormat1: a data dir written by the format-1 binary opens, is
// migrated to format 2 (said once in the log), and reads as that binary
// read it: every document with its conflicts and tombstones, every
// history, an attachment and a local record. It then takes new writes
// (stored in signing groups), replicates its old and new changes to a new
// peer (the compacted database by snapshot), and purges the new documents
// with their groups.
func TestMigrateFormat1(t *testing.T) {
	fix := t.TempDir()
	extractFixture(t, fix)
	dir := filepath.Join(fix, "data")
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	n, err := Open(t.Context(), Config{DataDir: dir, Logger: logger})
	if err != nil {
		t.Fatalf("open the format-1 data dir: %v", err)
	}
	if v, err := n.store.Get(layout.FormatKey); err != nil || !bytes.Equal(v, layout.FormatValue(2)) {
		t.Fatalf("format record after the migration: %x, %v; want 2", v, err)
	}
	if !strings.Contains(logs.String(), "store migrated") {
		t.Fatalf("the log does not say the store was migrated:\n%s", logs)
	}

	raw, err := os.ReadFile(filepath.Join(fix, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var expected map[string]struct {
		Docs map[string]json.RawMessage
		Info DBInfo
	}
	if err := json.Unmarshal(raw, &expected); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for name, want := range expected {
		d, err := n.DB(name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := d.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.DocCount != want.Info.DocCount || info.UpdateSeq != want.Info.UpdateSeq || info.Revisions != want.Info.Revisions || info.Tombstones != want.Info.Tombstones {
			t.Fatalf("%s: info %+v, want %+v", name, info, want.Info)
		}
		list, err := d.List(ctx, ListOptions{Limit: 10000, Deleted: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != len(want.Docs) {
			t.Fatalf("%s: %d documents, want %d", name, len(list), len(want.Docs))
		}
		for id, w := range want.Docs {
			doc, err := d.Get(ctx, id)
			if err != nil {
				t.Fatalf("%s/%s: %v", name, id, err)
			}
			h, err := d.History(ctx, id)
			if err != nil {
				t.Fatalf("%s/%s history: %v", name, id, err)
			}
			got, _ := json.Marshal(map[string]any{"doc": doc, "history": h})
			if g, w := normJSON(t, got), normJSON(t, w); g != w {
				t.Fatalf("%s/%s reads\n%s\nthe format-1 binary read\n%s", name, id, g, w)
			}
		}
	}
	notes, _ := n.DB("notes")
	if doc, _ := notes.Get(ctx, "doc-100"); len(doc.Revs) != 2 {
		t.Fatalf("doc-100 has heads %v, want the two concurrent writes", doc.Revs)
	}
	_, rc, err := notes.Attachment(ctx, "doc-200", "note.txt")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	if string(body) != strings.Repeat("barrel format 1\n", 4096) {
		t.Fatalf("attachment: %d bytes, not what was written", len(body))
	}
	if v, err := notes.GetLocal("c/checkpoint"); err != nil || string(v) != `{"seq":"7"}` {
		t.Fatalf("local record: %q, %v", v, err)
	}

	// New writes go in groups beside the old whole records.
	var ops []DocOp
	for i := range 100 {
		ops = append(ops, DocOp{ID: fmt.Sprintf("new-%03d", i), Body: benchDoc(i)})
	}
	if _, err := notes.Bulk(ctx, ops, false); err != nil {
		t.Fatal(err)
	}
	if g := groupRecords(t, notes); g == 0 {
		t.Fatal("a bulk of 100 after the migration wrote no group record")
	}
	n.Close()

	// A new peer gets everything, old and new, the compacted database by
	// snapshot; both hold byte-identical documents.
	tn := newTestNet(t, 2)
	tn.stop(0)
	tn.dirs[0] = dir
	tn.start(0)
	tn.nodes[1].CreateDB(ctx, "notes")
	tn.nodes[1].CreateDB(ctx, "cities")
	tn.connect(1, 0)
	waitFor(t, "the new peer to converge", 60*time.Second, func() bool { return tn.converged("notes") && tn.converged("cities") })
	tn.sameDocs("notes")
	tn.sameDocs("cities")

	// Purging the new documents takes their groups with them.
	a := tn.db(0, "notes")
	ids := make([]string, len(ops))
	for i, op := range ops {
		ids[i] = op.ID
	}
	if _, err := a.Purge(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	if g := groupRecords(t, a); g != 0 {
		t.Fatalf("%d group records left after purging every member", g)
	}
	if _, err := a.Get(ctx, "doc-005"); err != nil {
		t.Fatalf("an old document after the purge: %v", err)
	}
}

// groupRecords counts a database's signing-group records.
func groupRecords(t *testing.T, d *DB) int {
	t.Helper()
	lo, _ := d.keys.All()
	p := append(append([]byte{}, lo...), 'g')
	n := 0
	if err := d.store.Range(p, append(append([]byte{}, lo...), 'g'+1), false, func(k, v []byte) (bool, error) { n++; return true, nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
