package node

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
)

// Benchmarks of the engine on about 200-byte documents with nested fields,
// the same shape as `barrel-peer bench` writes. Each runs on a fresh node in
// b.TempDir() with durability sync unless it says otherwise; setup is
// outside the timed loop.

// benchDB opens a fresh node and database for a benchmark.
func benchDB(b *testing.B, durability string) *DB {
	b.Helper()
	n, err := Open(b.Context(), Config{DataDir: b.TempDir(), Durability: durability, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	b.Cleanup(func() { n.Close() })
	if err := n.CreateDB(b.Context(), "bench"); err != nil {
		b.Fatal(err)
	}
	db, err := n.DB("bench")
	if err != nil {
		b.Fatal(err)
	}
	return db
}

var (
	benchCountries = []string{"France", "Germany", "Italy", "Spain", "Portugal", "Norway", "Japan", "Brazil", "Canada"}
	benchTags      = []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}
)

// benchDoc returns document i for seed 1: about 200 bytes of JSON, in
// Iceland when i%100 == 0 and in one of nine other countries otherwise.
func benchDoc(i int) map[string]any {
	r := rand.New(rand.NewPCG(1, uint64(i)))
	country := "Iceland"
	if i%100 != 0 {
		country = benchCountries[r.IntN(len(benchCountries))]
	}
	tags := make([]any, 2+r.IntN(3))
	for j := range tags {
		tags[j] = benchTags[r.IntN(len(benchTags))]
	}
	return map[string]any{
		"name":   fmt.Sprintf("person %d", r.IntN(1_000_000)),
		"age":    int64(18 + r.IntN(70)),
		"email":  fmt.Sprintf("user%d@example.org", r.IntN(1_000_000)),
		"active": r.IntN(2) == 0,
		"locations": map[string]any{
			"country": country,
			"city":    fmt.Sprintf("city %d", r.IntN(50)),
			"zip":     fmt.Sprintf("%05d", r.IntN(100000)),
		},
		"tags":  tags,
		"score": r.Float64(),
	}
}

// benchBodies returns n pre-generated documents, reused across iterations
// so that generating them is not timed (Put and Bulk copy the body).
func benchBodies(n int) []map[string]any {
	docs := make([]map[string]any, n)
	for i := range docs {
		docs[i] = benchDoc(i)
	}
	return docs
}

func benchID(i int) string { return fmt.Sprintf("doc-%09d", i) }

// bulkLoad writes documents [0, n) in non-atomic Bulk calls of 1000.
func bulkLoad(b *testing.B, db *DB, n int) {
	b.Helper()
	for lo := 0; lo < n; lo += 1000 {
		ops := make([]DocOp, 0, 1000)
		for i := lo; i < min(lo+1000, n); i++ {
			ops = append(ops, DocOp{ID: benchID(i), Body: benchDoc(i)})
		}
		res, err := db.Bulk(b.Context(), ops, false)
		if err != nil {
			b.Fatalf("bulk at %d: %v", lo, err)
		}
		for _, r := range res {
			if r.Error != nil {
				b.Fatalf("bulk %s: %v", r.ID, r.Error)
			}
		}
	}
}

// BenchmarkPutSequential: one new document per Put, one caller, so every
// Put waits for its own fsync.
func BenchmarkPutSequential(b *testing.B) {
	db := benchDB(b, "sync")
	bodies := benchBodies(1024)
	i := 0
	for b.Loop() {
		if _, err := db.Put(b.Context(), benchID(i), bodies[i%len(bodies)], ""); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "docs/s")
}

// BenchmarkPutParallel: about 64 goroutines Put new documents, so the
// writer loop commits them in groups. ErrOverloaded is retried and counted;
// with 64 callers and the default queue of 4096 it should not happen.
func BenchmarkPutParallel(b *testing.B) {
	db := benchDB(b, "sync")
	bodies := benchBodies(1024)
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var next, retries atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1) - 1)
			for {
				_, err := db.Put(b.Context(), benchID(i), bodies[i%len(bodies)], "")
				if errors.Is(err, ErrOverloaded) {
					retries.Add(1)
					runtime.Gosched()
					continue
				}
				if err != nil {
					b.Error(err)
					return
				}
				break
			}
		}
	})
	b.ReportMetric(float64(next.Load())/b.Elapsed().Seconds(), "docs/s")
	b.ReportMetric(float64(retries.Load()), "retries")
}

// BenchmarkBulk1000: one non-atomic Bulk of 1000 new documents per op.
func BenchmarkBulk1000(b *testing.B) {
	db := benchDB(b, "sync")
	bodies := benchBodies(1000)
	ops := make([]DocOp, len(bodies))
	n := 0
	for b.Loop() {
		b.StopTimer()
		for j := range ops {
			ops[j] = DocOp{ID: benchID(n), Body: bodies[j]}
			n++
		}
		b.StartTimer()
		res, err := db.Bulk(b.Context(), ops, false)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Error != nil {
				b.Fatalf("bulk %s: %v", r.ID, r.Error)
			}
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "docs/s")
}

// BenchmarkQueryEq: an equality on a nested field that 1000 of 100,000
// documents match, one page of 1000. The load uses durability batch: it
// does not change what the query reads and keeps setup short.
func BenchmarkQueryEq(b *testing.B) {
	db := benchDB(b, "batch")
	bulkLoad(b, db, 100_000)
	q := Query{Where: []Cond{{Path: "/locations/country", Op: "==", Value: "Iceland"}}, Limit: 1000}
	for b.Loop() {
		res, err := db.Query(b.Context(), q)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Docs) != 1000 {
			b.Fatalf("got %d documents, want 1000", len(res.Docs))
		}
	}
}
