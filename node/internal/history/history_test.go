package history

import (
	"testing"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// storeEnv is an Env over a bare store, for what needs no documents.
type storeEnv struct{ s *datastore.Store }

func (e storeEnv) Store() *datastore.Store { return e.s }
func (e storeEnv) Keys() layout.Keys       { return layout.NewKeys(1) }
func (e storeEnv) State(string) (*crdt.State, uint64, error) {
	return crdt.NewState(), 0, nil
}
func (e storeEnv) View(string) (*crdt.State, uint64, error)      { return crdt.NewState(), 0, nil }
func (e storeEnv) FoldRecord(string) (*layout.FoldRecord, error) { return nil, nil }
func (e storeEnv) Change(crdt.ID) (*crdt.Change, error)          { return nil, datastore.ErrNotFound }
func (e storeEnv) FoldWritten()                                  {}

// TestMarkSeq: the seq a horizon gets is the one the database had
// reached that long ago, as marked by earlier runs; with no mark that old
// it is 0, so nothing received since is folded.
func TestMarkSeq(t *testing.T) {
	s, err := datastore.Open(t.TempDir(), datastore.Config{ReserveBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	env := storeEnv{s}
	t0 := time.Unix(1_000_000, 0)
	if h, _, err := MarkSeq(env, t0, 10, time.Hour, time.Hour); err != nil || h != 0 {
		t.Fatalf("first run: %d %v, want 0 (no mark an hour old)", h, err)
	}
	if h, _, _ := MarkSeq(env, t0.Add(30*time.Minute), 50, time.Hour, time.Hour); h != 0 {
		t.Fatalf("half an hour later: %d, want 0", h)
	}
	h, tombs, _ := MarkSeq(env, t0.Add(61*time.Minute), 90, time.Hour, 0)
	if h != 10 || tombs != 90 {
		t.Fatalf("an hour later: history seq %d, tombstone seq %d; want 10 (the mark an hour old) and 90 (no window)", h, tombs)
	}
}

// TestStepEmpty: a database with no history has nothing to compact.
func TestStepEmpty(t *testing.T) {
	s, err := datastore.Open(t.TempDir(), datastore.Config{ReserveBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next, b, res, err := Step(storeEnv{s}, nil, Horizons{Keep: 1})
	if next != nil || b != nil || res != (Result{}) || err != nil {
		t.Fatalf("Step on nothing: %v %v %+v %v", next, b, res, err)
	}
}
