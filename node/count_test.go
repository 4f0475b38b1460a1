package node

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/barrel-db/barrel/index"
)

// TestQueryIDsAndCount: after random puts, patches and deletes (arrays
// included, so a document holds several values at a path), QueryIDs pages
// and Count agree with Query for every query shape, those the index alone
// answers (a single ==) and those it reads documents for.
func TestQueryIDsAndCount(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	_, d := testDB(t)
	ctx := t.Context()
	for round := range 5 {
		randomOps(t, r, d, 60)
		for _, where := range liveQueries[1:] {
			q := Query{Where: where, Limit: 1 + r.IntN(7), Desc: r.IntN(2) == 0}
			var want []string
			for page := q; ; {
				res, err := d.Query(ctx, page)
				if err != nil {
					t.Fatal(err)
				}
				for _, doc := range res.Docs {
					want = append(want, doc.ID)
					if g := mustGet(t, d, doc.ID); g.Rev != doc.Rev || g.Seq != doc.Seq || !reflect.DeepEqual(g.Body, doc.Body) {
						t.Fatalf("round %d, %v: Query gives %s as %+v, Get as %+v", round, where, doc.ID, doc, g)
					}
				}
				if res.Cursor == "" {
					break
				}
				page.Cursor = res.Cursor
			}
			if scan := scanMatches(t, d, where); !slices.Equal(scan, slices.Sorted(slices.Values(want))) { // Query's order is the index's
				t.Fatalf("round %d, %v: Query %v, a scan of every document %v", round, where, want, scan)
			}
			var got []string
			for page := q; ; {
				ids, cursor, err := d.QueryIDs(ctx, page)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ids...)
				if cursor == "" {
					break
				}
				page.Cursor = cursor
			}
			if !slices.Equal(got, want) {
				t.Fatalf("round %d, %v: QueryIDs %v, Query %v", round, where, got, want)
			}
			if n, err := d.Count(ctx, q); err != nil || n != int64(len(want)) {
				t.Fatalf("round %d, %v: Count %d (%v), want %d", round, where, n, err, len(want))
			}
		}
		info, err := d.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := d.Count(ctx, Query{}); err != nil || n != info.DocCount {
			t.Fatalf("Count of every document: %d (%v), want the doc count %d", n, err, info.DocCount)
		}
	}
	if _, err := d.Count(ctx, Query{Where: []Cond{{Path: "x", Op: "=="}}}); err == nil {
		t.Fatal("Count with a malformed path: no error")
	}
}

// scanMatches lists, in id order, the live documents matching every
// condition of where, reading each document (no index).
func scanMatches(t *testing.T, d *DB, where []Cond) []string {
	t.Helper()
	iq, err := indexQuery(Query{Where: where})
	if err != nil {
		t.Fatal(err)
	}
	list, err := d.List(t.Context(), ListOptions{Limit: MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range list {
		doc := mustGet(t, d, s.ID)
		ok := !doc.Deleted
		for _, c := range iq.Where {
			ok = ok && index.Match(doc.Body, c)
		}
		if ok {
			out = append(out, s.ID)
		}
	}
	return out
}
