package commit

import (
	"errors"
	"testing"

	"github.com/barrel-db/barrel/crdt"
)

// TestCheckStateBytes: a local write whose state (body, merge bookkeeping,
// conflicts) would pass MaxStateBytes is refused by that limit, however
// small its body; a delete never is.
func TestCheckStateBytes(t *testing.T) {
	st := crdt.NewState()
	st.Count = 1
	st.Body = map[string]any{"a": int64(1)}
	var le *crdt.LimitError
	if err := checkState(st, crdt.MaxStateBytes+1); !errors.As(err, &le) || le.Limit != crdt.LimitStateBytes {
		t.Fatalf("state of MaxStateBytes+1: got %v, want %s", err, crdt.LimitStateBytes)
	}
	if err := checkState(st, crdt.MaxStateBytes); err != nil {
		t.Fatalf("state of MaxStateBytes: %v", err)
	}
	st.Deleted = true
	st.Body = arrayBody(crdt.MaxArrayElements + 1)
	if err := checkState(st, crdt.MaxStateBytes+1); err != nil {
		t.Fatalf("a delete refused: %v", err)
	}
}

func arrayBody(n int) map[string]any {
	a := make([]any, n)
	for i := range a {
		a[i] = i
	}
	return map[string]any{"a": a}
}
