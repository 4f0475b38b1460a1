package index

import (
	"bytes"
	"math"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"
)

// TestKeysMatchEntries: the one-walk keys are exactly the keys of Entries
// (Key of each), sorted and without duplicates, for documents with member
// names that need escaping, nested arrays, equal numbers of two types and
// values that cannot be indexed.
func TestKeysMatchEntries(t *testing.T) {
	names := []string{"a", "b", "a/b", "~", "x\x00y", ""}
	scalars := []any{nil, true, false, int64(1), 1.0, 2.5, "", "s", "s\x00", math.NaN(), struct{}{}}
	var value func(depth int) *rapid.Generator[any]
	value = func(depth int) *rapid.Generator[any] {
		if depth == 0 {
			return rapid.SampledFrom(scalars)
		}
		return rapid.OneOf(
			rapid.SampledFrom(scalars),
			rapid.Map(rapid.SliceOfN(value(depth-1), 0, 3), func(s []any) any { return s }),
			rapid.Map(rapid.MapOfN(rapid.SampledFrom(names), value(depth-1), 0, 3), func(m map[string]any) any { return m }),
		)
	}
	prefix := []byte("d\x01i")
	rapid.Check(t, func(t *rapid.T) {
		doc := rapid.MapOfN(rapid.SampledFrom(names), value(3), 0, 4).Draw(t, "doc")
		var want [][]byte
		for _, e := range Entries(doc) {
			k, err := Key(prefix, e.Path, e.Value, "doc1")
			if err != nil {
				t.Fatalf("Key(%q, %v): %v", e.Path, e.Value, err)
			}
			want = append(want, k)
		}
		got := keys(prefix, "doc1", doc)
		if !slices.IsSortedFunc(want, bytes.Compare) {
			t.Fatalf("Entries' keys are not sorted")
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("keys(%v) (-Entries +keys):\n%s", doc, diff)
		}
	})
}
