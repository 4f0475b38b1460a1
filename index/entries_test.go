package index_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/barrel-db/barrel/index"
	"github.com/google/go-cmp/cmp"
)

func TestParsePointer(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"/", []string{""}, false},
		{"/a", []string{"a"}, false},
		{"/locations/country", []string{"locations", "country"}, false},
		{"/a~1b/c~0d", []string{"a/b", "c~d"}, false},
		{"/~01", []string{"~1"}, false},
		{"//", []string{"", ""}, false},
		{"a/b", nil, true},
		{"/a~", nil, true},
		{"/a~2", nil, true},
		{"/~x/b", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := index.ParsePointer(tt.in)
			if tt.wantErr {
				if !errors.Is(err, index.ErrBadPointer) {
					t.Fatalf("got %q, %v; want ErrBadPointer", got, err)
				}
				return
			}
			if err != nil || !cmp.Equal(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestEntries(t *testing.T) {
	tests := []struct {
		name string
		doc  map[string]any
		want []index.Entry
	}{
		{"nil", nil, nil},
		{"empty containers", map[string]any{"o": map[string]any{}, "a": []any{}}, nil},
		{
			"scalars and nesting",
			map[string]any{"b": true, "a": map[string]any{"y": int64(2), "x": nil}, "s": "str"},
			[]index.Entry{{"/a/x", nil}, {"/a/y", int64(2)}, {"/b", true}, {"/s", "str"}},
		},
		{
			"arrays are multikey",
			map[string]any{"t": []any{"b", "a", "b", []any{"c"}}},
			[]index.Entry{{"/t", "a"}, {"/t", "b"}, {"/t", "c"}},
		},
		{
			"objects in arrays",
			map[string]any{"items": []any{map[string]any{"name": "x", "n": 1.5}, map[string]any{"name": "y"}, int64(3)}},
			[]index.Entry{{"/items", int64(3)}, {"/items/n", 1.5}, {"/items/name", "x"}, {"/items/name", "y"}},
		},
		{
			"int and float dedup",
			map[string]any{"n": []any{int64(1), 1.0, 0.0, int64(0)}},
			[]index.Entry{{"/n", 0.0}, {"/n", int64(1)}},
		},
		{
			"escaped keys",
			map[string]any{"a/b": int64(1), "c~d": int64(2), "": "empty"},
			[]index.Entry{{"/", "empty"}, {"/a~1b", int64(1)}, {"/c~0d", int64(2)}},
		},
		{
			"unindexable skipped",
			map[string]any{"u": uint8(1), "ok": false},
			[]index.Entry{{"/ok", false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := index.Entries(tt.doc)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("entries (-want +got):\n%s", diff)
			}
			// Every entry matches its own equality condition.
			for _, e := range got {
				if !index.Match(tt.doc, index.Cond{Path: e.Path, Op: "==", Value: e.Value}) {
					t.Errorf("Match(%s == %v) false for its own entry", e.Path, e.Value)
				}
			}
		})
	}
}

func TestDiff(t *testing.T) {
	key := func(path string, v any) []byte {
		k, err := index.Key(prefix, path, v, "doc")
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	old := map[string]any{"a": int64(1), "t": []any{"x", "y"}, "gone": true}
	new := map[string]any{"a": 1.0, "t": []any{"y", "z"}, "added": nil}
	tests := []struct {
		name     string
		old, new map[string]any
		del, put [][]byte
	}{
		{"create", nil, map[string]any{"a": int64(1)}, nil, [][]byte{key("/a", int64(1))}},
		{"delete", map[string]any{"a": int64(1)}, nil, [][]byte{key("/a", int64(1))}, nil},
		{"unchanged", old, old, nil, nil},
		{"both nil", nil, nil, nil, nil},
		{
			"update",
			old, new,
			[][]byte{key("/gone", true), key("/t", "x")},
			[][]byte{key("/added", nil), key("/t", "z")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			del, put := index.Diff(prefix, "doc", tt.old, tt.new)
			sortKeys := func(ks [][]byte) [][]byte { ks = slices.Clone(ks); slices.SortFunc(ks, bytes.Compare); return ks }
			if diff := cmp.Diff(sortKeys(tt.del), del); diff != "" {
				t.Errorf("del (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(sortKeys(tt.put), put); diff != "" {
				t.Errorf("put (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKey(t *testing.T) {
	p := make([]byte, 2, 64)
	copy(p, "px")
	k1, err := index.Key(p, "/a", "v", "id1")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := index.Key(p, "/a", "v", "id2")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(k1, []byte("px")) || bytes.Equal(k1, k2) {
		t.Fatalf("keys %x and %x: prefix lost or aliased", k1, k2)
	}
	if _, err := index.Key(p, "/a", []any{}, "id"); err == nil {
		t.Fatal("non-scalar value: got nil error")
	}
}

// FuzzParsePointer checks that ParsePointer never panics and that valid
// pointers survive re-escaping.
func FuzzParsePointer(f *testing.F) {
	for _, s := range []string{"", "/", "/a/b", "/a~1b~0", "a", "/~", "/~2", "//x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks, err := index.ParsePointer(s)
		if err != nil {
			return
		}
		var b bytes.Buffer
		for _, tok := range toks {
			b.WriteByte('/')
			for _, c := range []byte(tok) {
				switch c {
				case '~':
					b.WriteString("~0")
				case '/':
					b.WriteString("~1")
				default:
					b.WriteByte(c)
				}
			}
		}
		if b.String() != s {
			t.Fatalf("re-escaped %q as %q", s, b.String())
		}
		// A cursor from fuzz input never panics Search either.
		_, _, _ = index.Search(readerFunc(func() {}), prefix, index.Query{OrderBy: "/a", Cursor: s}, loader(nil))
	})
}
