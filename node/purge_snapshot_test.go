package node

import (
	"errors"
	"testing"
	"time"
)

// TestPurgeSurvivesSnapshot: a document purged on a peer does not come back
// when that peer later catches up from a snapshot of a peer that still
// holds it.
func TestPurgeSurvivesSnapshot(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.createDB("db")
	s, f := tn.db(0, "db"), tn.db(1, "db")
	fillDocs(t, s, "d", 50, 3)
	mustCompact(t, s, &Retention{KeepRevisions: 1})
	tn.connect(0, 1)
	waitFor(t, "snapshot catch-up", 30*time.Second, func() bool { return docCount(t, f) == 50 })
	if _, err := f.Purge(t.Context(), []string{"d000001"}); err != nil {
		t.Fatal(err)
	}
	// s moves past f's checkpoint and folds it: f's next pull is a snapshot.
	tn.cut(0, 1)
	for range 3 {
		mustPut(t, s, "d000002", map[string]any{"more": 1}, "")
	}
	mustCompact(t, s, &Retention{KeepRevisions: 1})
	tn.heal(0, 1)
	tn.connect(0, 1)
	waitFor(t, "the snapshot", 30*time.Second, func() bool {
		d, _ := f.Get(t.Context(), "d000002")
		return d.Body["more"] != nil
	})
	if d, err := f.Get(t.Context(), "d000001"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the purged document came back with the snapshot: %+v, %v", d, err)
	}
}
