package index_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/barrel-db/barrel/datastore/tuple"
	"github.com/barrel-db/barrel/index"
	"pgregory.net/rapid"
)

// Small pools make documents collide with query values often enough that
// 100 runs exercise every op.
var scalarPool = []any{nil, true, false, int64(0), int64(1), 1.0, 1.5, "", "x", "xy", "x\x00"}

func genScalar() *rapid.Generator[any] { return rapid.SampledFrom(scalarPool) }

func genValue(depth int) *rapid.Generator[any] {
	if depth == 0 {
		return genScalar()
	}
	return rapid.OneOf(
		genScalar(), genScalar(), genScalar(), genScalar(),
		rapid.Map(rapid.SliceOfN(genValue(depth-1), 0, 3), func(s []any) any { return s }),
		rapid.Map(genDoc(depth-1), func(m map[string]any) any { return m }),
	)
}

func genDoc(depth int) *rapid.Generator[map[string]any] {
	return rapid.MapOfN(rapid.SampledFrom([]string{"a", "b"}), genValue(depth), 1, 2)
}

var pathPool = []string{"/a", "/b", "/a/b"}

func genCond() *rapid.Generator[index.Cond] {
	return rapid.Custom(func(t *rapid.T) index.Cond {
		c := index.Cond{
			Path: rapid.SampledFrom(pathPool).Draw(t, "path"),
			Op:   rapid.SampledFrom([]string{"==", "!=", "<", "<=", ">", ">=", "prefix", "exists"}).Draw(t, "op"),
		}
		switch c.Op {
		case "prefix":
			c.Value = rapid.SampledFrom([]string{"", "x", "xy", "x\x00"}).Draw(t, "prefix")
		case "exists":
		default:
			c.Value = genScalar().Draw(t, "value")
		}
		return c
	})
}

// TestSearchMatchesBruteForce checks that Search, followed through every
// page, returns exactly the documents brute-force Match selects, each once,
// and in order-by order when asked.
func TestSearchMatchesBruteForce(t *testing.T) {
	s := openStore(t)
	run := 0
	rapid.Check(t, func(rt *rapid.T) {
		run++
		p := fmt.Appendf(nil, "run%d\x00", run)
		n := rapid.IntRange(1, 10).Draw(rt, "docs")
		docs := make(map[string]map[string]any, n)
		for i := range n {
			docs[fmt.Sprintf("d%d", i)] = genDoc(2).Draw(rt, fmt.Sprintf("doc%d", i))
		}
		writeDocs(t, s, p, docs)

		q := index.Query{
			Where: rapid.SliceOfN(genCond(), 0, 3).Draw(rt, "where"),
			Desc:  rapid.Bool().Draw(rt, "desc"),
			Limit: rapid.IntRange(0, 4).Draw(rt, "limit"),
		}
		if len(q.Where) == 0 || rapid.Bool().Draw(rt, "ordered") {
			q.OrderBy = rapid.SampledFrom(pathPool).Draw(rt, "orderBy")
		}
		got := searchAll(t, s, p, q, loader(docs))

		var want []string
		for id, doc := range docs {
			ok := q.OrderBy == "" || index.Match(doc, index.Cond{Path: q.OrderBy, Op: "exists"})
			for _, c := range q.Where {
				ok = ok && index.Match(doc, c)
			}
			if ok {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		sorted := slices.Sorted(slices.Values(got))
		if !slices.Equal(sorted, want) {
			rt.Fatalf("query %+v: got %v, want %v", q, got, want)
		}
		// Counting, and the index alone where it answers, agree.
		if n, err := index.Count(s, p, q, loader(docs)); err != nil || n != len(want) {
			rt.Fatalf("Count(%+v) = %d, %v; want %d", q, n, err, len(want))
		}
		if index.IndexOnly(q) {
			if only := searchAll(t, s, p, q, nil); !slices.Equal(only, got) {
				rt.Fatalf("query %+v from the index alone: %v, with the documents: %v", q, only, got)
			}
			if n, err := index.Count(s, p, q, nil); err != nil || n != len(want) {
				rt.Fatalf("Count(%+v) from the index alone = %d, %v; want %d", q, n, err, len(want))
			}
		} else if _, _, err := index.Search(s, p, q, nil); !errors.Is(err, index.ErrBadQuery) {
			rt.Fatalf("Search(%+v) without a loader: %v, want ErrBadQuery", q, err)
		}
		if q.OrderBy == "" {
			return
		}
		// Ordered: each document sits at its smallest (Desc: largest) value.
		toks, _ := index.ParsePointer(q.OrderBy)
		var prev []byte
		for _, id := range got {
			k := sortKey(docs[id], toks, q.Desc)
			k = tuple.AppendString(k, id)
			if prev != nil && (bytes.Compare(prev, k) > 0) != q.Desc && !bytes.Equal(prev, k) {
				rt.Fatalf("query %+v: %v out of order at %s", q, got, id)
			}
			prev = k
		}
	})
}

// sortKey is the encoded smallest (desc: largest) scalar at toks, found via
// Entries.
func sortKey(doc map[string]any, toks []string, desc bool) []byte {
	var best []byte
	for _, e := range index.Entries(doc) {
		et, _ := index.ParsePointer(e.Path)
		if !slices.Equal(et, toks) {
			continue
		}
		enc, _ := tuple.AppendValue(nil, e.Value)
		if c := bytes.Compare(enc, best); best == nil || (c < 0) != desc && c != 0 {
			best = enc
		}
	}
	return best
}

// TestMatcherAgreesWithMatch: a compiled Matcher answers as Match does on
// each of its conditions, and a document it matches has the leaf key of
// its first == condition (so looking leaf keys up never misses one).
func TestMatcherAgreesWithMatch(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		doc := genDoc(2).Draw(t, "doc")
		conds := rapid.SliceOfN(genCond(), 0, 3).Draw(t, "conds")
		m, err := index.Compile(conds)
		if err != nil {
			for _, c := range conds {
				if c.Validate() != nil {
					return // Refused as Search refuses it.
				}
			}
			t.Fatalf("Compile(%v): %v, but every condition is valid", conds, err)
		}
		want := true
		for _, c := range conds {
			want = want && index.Match(doc, c)
		}
		if got := m.Match(doc); got != want {
			t.Fatalf("Matcher(%v).Match(%v) = %v, Match of each: %v", conds, doc, got, want)
		}
		k, ok := m.EqKey()
		if ok && want && !slices.Contains(index.LeafKeys(doc), k) {
			t.Fatalf("%v matches %v but its leaf keys lack the == key", doc, conds)
		}
		// EqKeys is LeafKeys restricted to the == path (the path part
		// ends with the string terminator, so a prefix is that path only).
		var atPath []string
		for _, l := range index.LeafKeys(doc) {
			if ok && strings.HasPrefix(l, m.EqPath()) {
				atPath = append(atPath, l)
			}
		}
		eq := m.EqKeys(nil, doc)
		slices.Sort(eq)
		eq = slices.Compact(eq)
		if !slices.Equal(eq, atPath) {
			t.Fatalf("EqKeys(%v) for %v: %q, want the leaf keys on its path %q", doc, conds, eq, atPath)
		}
	})
}
