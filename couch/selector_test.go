package couch

import (
	"encoding/json"
	"testing"
)

func TestSelector(t *testing.T) {
	doc := map[string]any{"_id": "a", "type": "note", "n": int64(3), "tags": []any{"x"}, "meta": map[string]any{"by": "ann"}}
	for _, tc := range []struct {
		sel  string
		want bool
	}{
		{`{}`, true},
		{`{"type":"note"}`, true},
		{`{"type":"task"}`, false},
		{`{"n":3}`, true},
		{`{"n":{"$gt":2,"$lte":3}}`, true},
		{`{"n":{"$lt":3}}`, false},
		{`{"meta.by":"ann"}`, true},
		{`{"meta":{"by":"ann"}}`, true},
		{`{"missing":{"$exists":false}}`, true},
		{`{"type":{"$in":["task","note"]}}`, true},
		{`{"type":{"$nin":["note"]}}`, false},
		{`{"$or":[{"type":"task"},{"n":3}]}`, true},
		{`{"$nor":[{"type":"note"}]}`, false},
		{`{"type":{"$ne":"note"}}`, false},
		{`{"n":{"$gt":"2"}}`, false}, // a string never orders against a number
	} {
		s, err := parseSelector(json.RawMessage(tc.sel))
		if err != nil {
			t.Fatalf("%s: %v", tc.sel, err)
		}
		if got := s(doc); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.sel, got, tc.want)
		}
	}
	for _, bad := range []string{`[]`, `{"$where":"x"}`, `{"n":{"$regex":"x"}}`, `{"$or":{}}`, `{"n":{"$exists":1}}`, `{"n":{"$in":3}}`} {
		if _, err := parseSelector(json.RawMessage(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// FuzzParseSelector: no selector a client sends panics the parser or its
// evaluation, and what parses evaluates on any document.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":{"$gt":1,"$lt":"x"}}`, `{"$or":[{"a":null},{"b.c":{"$in":[1,2]}}]}`,
		`{"a":{"$exists":true}}`, `{"$nor":[{"$and":[{}]}]}`, `[`, `{"a":{"$regex":"x"}}`} {
		f.Add([]byte(s))
	}
	doc := map[string]any{"a": int64(1), "b": map[string]any{"c": "x"}, "d": []any{1.5, "y"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseSelector(json.RawMessage(b))
		if err != nil {
			return
		}
		s(doc)
		s(map[string]any{})
	})
}
