package node

import (
	"fmt"
	"reflect"
	"testing"
)

// TestExport checks that an export lists the live documents as of the
// moment it opened (writes and deletes made during it are not seen), skips
// tombstones, and reports an unreadable record without stopping.
func TestExport(t *testing.T) {
	_, db := testDB(t)
	ctx := t.Context()
	const n = 50
	for i := range n {
		mustPut(t, db, fmt.Sprintf("d%03d", i), map[string]any{"i": int64(i)}, "")
	}
	if _, err := db.Delete(ctx, "d001", ""); err != nil {
		t.Fatal(err)
	}
	// A record the decoder refuses, written past the writer: what a damaged
	// store looks like to a reader.
	if err := db.store.DB().Set(db.keys.Doc("d002x"), []byte("\x00\x00\x00\x00\x00\x00\x00\x09garbage"), nil); err != nil {
		t.Fatal(err)
	}

	e, err := db.Export(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	seq := e.Seq()
	if info, _ := db.Info(ctx); seq != info.UpdateSeq || e.DocCount() != info.DocCount {
		t.Fatalf("export seq %d count %d, want %d and %d", seq, e.DocCount(), info.UpdateSeq, info.DocCount)
	}
	// Changes after the export opened: none of them may show.
	mustPut(t, db, "d000", map[string]any{"i": "changed"}, "")
	mustPut(t, db, "zzz", map[string]any{"new": true}, "")
	if _, err := db.Delete(ctx, "d003", ""); err != nil {
		t.Fatal(err)
	}

	var ids, failed []string
	for {
		doc, ok := e.Next(ctx)
		if !ok {
			break
		}
		if doc.Err != nil {
			failed = append(failed, doc.ID)
			continue
		}
		ids = append(ids, doc.ID)
		var want int64
		fmt.Sscanf(doc.ID, "d%03d", &want)
		if !reflect.DeepEqual(doc.Body, map[string]any{"i": want}) || doc.Rev == "" {
			t.Fatalf("%s: got body %v rev %q, want {i: %d} as of the snapshot", doc.ID, doc.Body, doc.Rev, want)
		}
	}
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ids) != n-1 || ids[0] != "d000" || ids[1] != "d002" || ids[len(ids)-1] != fmt.Sprintf("d%03d", n-1) {
		t.Fatalf("got %d ids %v, want the %d live ones as of the snapshot", len(ids), ids, n-1)
	}
	if !reflect.DeepEqual(failed, []string{"d002x"}) {
		t.Fatalf("failed: got %v, want [d002x]", failed)
	}
	e.Close()
	e.Close() // idempotent
}

func TestExportPrefix(t *testing.T) {
	_, db := testDB(t)
	for _, id := range []string{"a1", "b1", "b2", "bé", "c1"} {
		mustPut(t, db, id, map[string]any{"x": true}, "")
	}
	e, err := db.Export(t.Context(), "b")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var ids []string
	for doc, ok := e.Next(t.Context()); ok; doc, ok = e.Next(t.Context()) {
		ids = append(ids, doc.ID)
	}
	if want := []string{"b1", "b2", "bé"}; !reflect.DeepEqual(ids, want) || e.Err() != nil {
		t.Fatalf("got %q (%v), want %q", ids, e.Err(), want)
	}
}

// TestExportSkipsACL checks that the _acl document is neither exported
// nor counted in the export's total.
func TestExportSkipsACL(t *testing.T) {
	n, db := testDB(t)
	mustPut(t, db, "a", map[string]any{"x": true}, "")
	mustSetACL(t, n, "db", ACL{Owner: n.PeerID().String(), Readers: []string{"*"}, Writers: []string{"*"}})
	e, err := db.Export(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var ids []string
	for doc, ok := e.Next(t.Context()); ok; doc, ok = e.Next(t.Context()) {
		ids = append(ids, doc.ID)
	}
	if !reflect.DeepEqual(ids, []string{"a"}) || e.DocCount() != 1 {
		t.Fatalf("got ids %q, count %d; want [a] and 1", ids, e.DocCount())
	}
}
