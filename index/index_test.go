package index_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/index"
	"github.com/google/go-cmp/cmp"
)

var prefix = []byte("i\x00db1\x00")

func openStore(t testing.TB) *datastore.Store {
	t.Helper()
	s, err := datastore.Open(t.TempDir(), datastore.Config{Durability: datastore.DurabilityBatch})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// writeDocs indexes docs under prefix, one batch, as node does: Diff from
// nothing to the body.
func writeDocs(t testing.TB, s *datastore.Store, prefix []byte, docs map[string]map[string]any) {
	t.Helper()
	b := s.NewBatch()
	defer b.Close()
	for id, doc := range docs {
		del, put := index.Diff(prefix, id, nil, doc)
		if len(del) != 0 {
			t.Fatalf("diff %s: %d deletions", id, len(del))
		}
		for _, k := range put {
			b.Set(k, nil)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func loader(docs map[string]map[string]any) index.Loader {
	return func(id string) (map[string]any, bool, error) {
		d, ok := docs[id]
		return d, ok, nil
	}
}

// searchAll follows cursors to the end and returns every id.
func searchAll(t testing.TB, r index.Reader, prefix []byte, q index.Query, load index.Loader) []string {
	t.Helper()
	var all []string
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("too many pages")
		}
		ids, cursor, err := index.Search(r, prefix, q, load)
		if err != nil {
			t.Fatalf("search %+v: %v", q, err)
		}
		if q.Limit > 0 && len(ids) > q.Limit {
			t.Fatalf("page of %d ids, limit %d", len(ids), q.Limit)
		}
		all = append(all, ids...)
		if cursor == "" {
			return all
		}
		q.Cursor = cursor
	}
}

var fixture = map[string]map[string]any{
	"a": {"name": "alice", "age": int64(30), "tags": []any{"x", "y"}, "addr": map[string]any{"country": "DE"}, "score": 1.5},
	"b": {"name": "bob", "age": 25.0, "tags": []any{"y"}, "addr": map[string]any{"country": "FR"}, "active": true},
	"c": {"name": "carol", "age": int64(40), "tags": []any{}, "items": []any{map[string]any{"sku": "p1"}, map[string]any{"sku": "p2"}}, "active": false, "note": nil},
	"d": {"name": "dave", "age": "unknown", "tags": []any{"x", "z"}, "addr": map[string]any{"country": "DE"}, "a/b": "slash"},
	"e": {"name": "al", "nums": []any{int64(1), int64(5), int64(9)}},
}

func TestSearch(t *testing.T) {
	s := openStore(t)
	writeDocs(t, s, prefix, fixture)
	// An index under another prefix must not leak into results.
	writeDocs(t, s, []byte("i\x00db0\x00"), map[string]map[string]any{"z": {"name": "bob", "age": int64(25)}})

	c := func(path, op string, v any) index.Cond { return index.Cond{Path: path, Op: op, Value: v} }
	tests := []struct {
		name  string
		query index.Query
		want  []string
	}{
		{"eq string", index.Query{Where: []index.Cond{c("/name", "==", "bob")}}, []string{"b"}},
		{"eq int finds float", index.Query{Where: []index.Cond{c("/age", "==", int64(25))}}, []string{"b"}},
		{"eq float finds int", index.Query{Where: []index.Cond{c("/age", "==", 30.0)}}, []string{"a"}},
		{"eq go int", index.Query{Where: []index.Cond{c("/age", "==", 40)}}, []string{"c"}},
		{"eq null", index.Query{Where: []index.Cond{c("/note", "==", nil)}}, []string{"c"}},
		{"eq bool", index.Query{Where: []index.Cond{c("/active", "==", true)}}, []string{"b"}},
		{"eq escaped path", index.Query{Where: []index.Cond{c("/a~1b", "==", "slash")}}, []string{"d"}},
		{"eq none", index.Query{Where: []index.Cond{c("/name", "==", "zed")}}, nil},
		{"lt numbers only", index.Query{Where: []index.Cond{c("/age", "<", int64(35))}}, []string{"b", "a"}},
		{"le", index.Query{Where: []index.Cond{c("/age", "<=", int64(30))}}, []string{"b", "a"}},
		{"gt", index.Query{Where: []index.Cond{c("/age", ">", 25.0)}}, []string{"a", "c"}},
		{"ge", index.Query{Where: []index.Cond{c("/age", ">=", int64(25))}}, []string{"b", "a", "c"}},
		{"gt string class", index.Query{Where: []index.Cond{c("/age", ">", "a")}}, []string{"d"}},
		{"lt bool", index.Query{Where: []index.Cond{c("/active", "<", true)}}, []string{"c"}},
		{"ne any type", index.Query{Where: []index.Cond{c("/age", "!=", int64(30))}}, []string{"b", "c", "d"}},
		{"prefix", index.Query{Where: []index.Cond{c("/name", "prefix", "al")}}, []string{"e", "a"}},
		{"prefix empty", index.Query{Where: []index.Cond{c("/addr/country", "prefix", "")}}, []string{"a", "d", "b"}},
		{"exists skips empty array", index.Query{Where: []index.Cond{c("/tags", "exists", nil)}}, []string{"a", "d", "b"}},
		{"multikey eq", index.Query{Where: []index.Cond{c("/tags", "==", "x")}}, []string{"a", "d"}},
		{"multikey once", index.Query{Where: []index.Cond{c("/nums", ">", int64(4))}}, []string{"e"}},
		{"multikey different elements", index.Query{Where: []index.Cond{c("/nums", "<", int64(4)), c("/nums", ">", int64(6))}}, []string{"e"}},
		{"objects in arrays", index.Query{Where: []index.Cond{c("/items/sku", "==", "p2")}}, []string{"c"}},
		{"nested", index.Query{Where: []index.Cond{c("/addr/country", "==", "DE")}}, []string{"a", "d"}},
		{"and", index.Query{Where: []index.Cond{c("/tags", "==", "x"), c("/addr/country", "==", "DE"), c("/age", "exists", nil)}}, []string{"a", "d"}},
		{"and excludes", index.Query{Where: []index.Cond{c("/tags", "==", "x"), c("/age", "<", int64(100))}}, []string{"a"}},
		{"order by", index.Query{OrderBy: "/age"}, []string{"b", "a", "c", "d"}},
		{"order by desc", index.Query{OrderBy: "/age", Desc: true}, []string{"d", "c", "a", "b"}},
		{"order by with where", index.Query{OrderBy: "/name", Where: []index.Cond{c("/tags", "==", "x")}}, []string{"a", "d"}},
		{"order by multikey", index.Query{OrderBy: "/tags"}, []string{"a", "d", "b"}},
		{"order by multikey desc", index.Query{OrderBy: "/tags", Desc: true}, []string{"d", "b", "a"}},
		{"order by missing path", index.Query{OrderBy: "/nope"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, cursor, err := index.Search(s, prefix, tt.query, loader(fixture))
			if err != nil {
				t.Fatalf("search: %v", err)
			}
			if cursor != "" {
				t.Errorf("cursor %q for a query that fits one page", cursor)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("ids (-want +got):\n%s", diff)
			}
			// Match agrees with the index on every document.
			if tt.query.OrderBy == "" {
				var brute []string
				for id, doc := range fixture {
					ok := true
					for _, c := range tt.query.Where {
						ok = ok && index.Match(doc, c)
					}
					if ok {
						brute = append(brute, id)
					}
				}
				if diff := cmp.Diff(tt.want, brute, sortStrings); diff != "" {
					t.Fatalf("Match disagrees (-index +match):\n%s", diff)
				}
			}
			// Every page size returns every match exactly once, in order.
			for limit := 1; limit <= len(tt.want)+1; limit++ {
				q := tt.query
				q.Limit = limit
				if diff := cmp.Diff(tt.want, searchAll(t, s, prefix, q, loader(fixture))); diff != "" {
					t.Fatalf("limit %d: ids (-want +got):\n%s", limit, diff)
				}
			}
		})
	}
}

var sortStrings = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
})

func TestSearchSkipsMissingDocs(t *testing.T) {
	s := openStore(t)
	writeDocs(t, s, prefix, fixture)
	docs := map[string]map[string]any{"a": fixture["a"]} // d was deleted; its keys linger.
	got, _, err := index.Search(s, prefix, index.Query{Where: []index.Cond{{Path: "/tags", Op: "==", Value: "x"}}}, loader(docs))
	if err != nil || !cmp.Equal(got, []string{"a"}) {
		t.Fatalf("got %v, %v; want [a]", got, err)
	}
	boom := errors.New("boom")
	_, _, err = index.Search(s, prefix, index.Query{OrderBy: "/name"}, func(string) (map[string]any, bool, error) { return nil, false, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("loader error: got %v, want boom", err)
	}
}

func TestSearchBadQuery(t *testing.T) {
	s := openStore(t)
	writeDocs(t, s, prefix, fixture)
	_, otherCursor, err := index.Search(s, prefix, index.Query{OrderBy: "/name", Limit: 1}, loader(fixture))
	if err != nil || otherCursor == "" {
		t.Fatalf("setup: %v, cursor %q", err, otherCursor)
	}
	c := func(path, op string, v any) []index.Cond { return []index.Cond{{Path: path, Op: op, Value: v}} }
	tests := []struct {
		name  string
		query index.Query
	}{
		{"empty", index.Query{}},
		{"unknown op", index.Query{Where: c("/a", "~=", "x")}},
		{"object value", index.Query{Where: c("/a", "==", map[string]any{})}},
		{"array value", index.Query{Where: c("/a", "==", []any{int64(1)})}},
		{"unsupported type", index.Query{Where: c("/a", "==", uint8(1))}},
		{"prefix of number", index.Query{Where: c("/a", "prefix", int64(1))}},
		{"path without slash", index.Query{Where: c("a/b", "==", "x")}},
		{"path bad escape", index.Query{Where: c("/a~2", "==", "x")}},
		{"path trailing tilde", index.Query{Where: c("/a~", "==", "x")}},
		{"root path", index.Query{Where: c("", "exists", nil)}},
		{"exists false", index.Query{Where: c("/a", "exists", false)}},
		{"exists with a value", index.Query{Where: c("/a", "exists", "banana")}},
		{"missing", index.Query{Where: c("/a", "missing", nil)}},
		{"bad order by", index.Query{OrderBy: "name"}},
		{"negative limit", index.Query{OrderBy: "/name", Limit: -1}},
		{"limit too large", index.Query{OrderBy: "/name", Limit: index.MaxLimit + 1}},
		{"cursor not base64", index.Query{OrderBy: "/name", Cursor: "!!"}},
		{"cursor of other query", index.Query{OrderBy: "/age", Cursor: otherCursor}},
		{"bad second condition", index.Query{Where: []index.Cond{{Path: "/a", Op: "==", Value: "x"}, {Path: "/b", Op: "like", Value: "x"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scanned := false
			r := readerFunc(func() { scanned = true })
			if _, _, err := index.Search(r, prefix, tt.query, loader(fixture)); !errors.Is(err, index.ErrBadQuery) {
				t.Fatalf("got %v, want ErrBadQuery", err)
			}
			if scanned {
				t.Fatal("scanned before validating")
			}
		})
	}
}

type readerFunc func()

func (f readerFunc) Range(lo, hi []byte, reverse bool, fn func(k, v []byte) (bool, error)) error {
	f()
	return nil
}

func TestSearchCorruptIndex(t *testing.T) {
	s := openStore(t)
	b := s.NewBatch()
	k, _ := index.Key(prefix, "/name", "x", "a")
	b.Set(append(k[:len(k)-1], 0x07), nil) // Bad document id terminator.
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	_, _, err := index.Search(s, prefix, index.Query{OrderBy: "/name"}, loader(fixture))
	if !errors.Is(err, index.ErrCorruptIndex) {
		t.Fatalf("got %v, want ErrCorruptIndex", err)
	}
}

func BenchmarkSearchEq(b *testing.B) {
	const n, groups = 100_000, 100
	s := openStore(b)
	docs := make(map[string]map[string]any, n)
	for i := range n {
		docs[fmt.Sprintf("doc%06d", i)] = map[string]any{
			"group": int64(i % groups),
			"name":  fmt.Sprintf("name %d", i),
			"tags":  []any{"t" + fmt.Sprint(i%7), "common"},
		}
	}
	for lo := 0; lo < n; lo += 10_000 {
		chunk := make(map[string]map[string]any, 10_000)
		for i := lo; i < lo+10_000; i++ {
			id := fmt.Sprintf("doc%06d", i)
			chunk[id] = docs[id]
		}
		writeDocs(b, s, prefix, chunk)
	}
	q := index.Query{Where: []index.Cond{{Path: "/group", Op: "==", Value: int64(7)}}, Limit: 1000}
	load := loader(docs)
	for b.Loop() {
		ids, _, err := index.Search(s, prefix, q, load)
		if err != nil || len(ids) != n/groups {
			b.Fatalf("got %d ids, %v; want %d", len(ids), err, n/groups)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
}
