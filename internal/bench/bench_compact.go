package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/barrel-db/barrel/node"
)

// Workloads of history compaction and snapshot catch-up (issue 7):
//
//   - C1: --n-compact documents written --compact-revs times by Bulk, then
//     compacted with a retention that folds everything; revisions folded
//     per second and bytes on disk per live document before and after,
//     next to a store written with only the final states.
//   - C2: the same history; --writers goroutines Put new documents one by
//     one (W1b) while it is compacted, against the same writers without a
//     compaction (--n writes before it and --n after, pooled): median and
//     p99 of each write's latency, and their ratios.
//   - W2S: W2 with a source holding --n-snap documents of --snap-revs
//     revisions each, compacted before the fresh peer dials it, so that
//     the peer installs a snapshot; next to W2 with one revision per
//     document in the same run, and the ratio of their times.

// benchCompactConfig sizes the compaction workloads.
type benchCompactConfig struct {
	nDocs    int // C1, C2: documents of the history
	revs     int // C1, C2: revisions per document
	nSnap    int // W2S: documents the source holds
	snapRevs int // W2S: revisions per document before the compaction
}

func (c *benchCompactConfig) flags(f *pflag.FlagSet) {
	f.IntVar(&c.nDocs, "n-compact", 10000, "documents C1 and C2 write --compact-revs times before compacting")
	f.IntVar(&c.revs, "compact-revs", 10, "revisions per document of C1 and C2")
	f.IntVar(&c.nSnap, "n-snap", 100000, "documents W2S's source holds (and its one-revision W2)")
	f.IntVar(&c.snapRevs, "snap-revs", 10, "revisions per document of W2S's source before it compacts")
}

func (c *benchCompactConfig) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"n-compact", c.nDocs}, {"compact-revs", c.revs}, {"n-snap", c.nSnap}, {"snap-revs", c.snapRevs}} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("--%s %d: must be positive", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// foldAll is the retention of the compaction workloads: no revision kept,
// no horizon, so every change is folded into its document's base.
var foldAll = &node.Retention{}

// keepAll folds nothing: Compact with it only flushes and measures.
var keepAll = &node.Retention{KeepRevisions: math.MaxInt32}

// benchC2MaxWrites bounds C2's writes during the compaction: the writers
// stop there even if the compaction goes on.
const benchC2MaxWrites = 2_000_000

// benchC2IDs is the first index of the documents C2's writers create, far
// from the history's.
const benchC2IDs = 1 << 30

// revDoc is document i at revision r: the generator's document with its
// revision number, so every revision changes the body.
func (b *bench) revDoc(i, r int) map[string]any {
	doc := b.gen.doc(i)
	doc["rev"] = int64(r)
	return doc
}

// loadRevs writes documents [0, n) revs times, one revision of every
// document after the other, in non-atomic Bulk calls of benchBulkSize.
func (b *bench) loadRevs(ctx context.Context, d *node.DB, n, revs int) error {
	for r := range revs {
		for lo := 0; lo < n; lo += benchBulkSize {
			hi := min(lo+benchBulkSize, n)
			ops := make([]node.DocOp, 0, hi-lo)
			for i := lo; i < hi; i++ {
				ops = append(ops, node.DocOp{ID: docID(i), Body: b.revDoc(i, r)})
			}
			res, err := d.Bulk(ctx, ops, false)
			if err != nil {
				return fmt.Errorf("bulk %s..%s revision %d: %w", docID(lo), docID(hi-1), r, err)
			}
			for _, x := range res {
				if x.Error != nil {
					return fmt.Errorf("bulk: document %s revision %d: %w", x.ID, r, x.Error)
				}
			}
		}
	}
	return nil
}

// perDoc formats bytes per document.
func perDoc(bytes uint64, n int) string {
	return strconv.FormatFloat(float64(bytes)/float64(n), 'f', 0, 64)
}

// C1: nDocs documents written revs times, then compacted with foldAll.
// final_only_bytes_per_doc is a store in its own node written with only
// the last revision of each document (flushed, nothing folded).
func (b *bench) compactThroughput(ctx context.Context) (line string, err error) {
	c := b.c.cmp
	n, d, err := b.openPeer(ctx, b.dir+"/history", false)
	if err != nil {
		return "", err
	}
	defer closePeer(n, &err)
	start := time.Now()
	if err := b.loadRevs(ctx, d, c.nDocs, c.revs); err != nil {
		return "", err
	}
	loaded := time.Since(start)
	stop, err := b.profile()
	if err != nil {
		return "", err
	}
	start = time.Now()
	st, err := d.Compact(ctx, foldAll)
	elapsed := time.Since(start)
	stop(&err)
	if err != nil {
		return "", err
	}
	if want := c.nDocs * c.revs; st.Folded != want {
		return "", fmt.Errorf("compaction folded %d revisions, want %d", st.Folded, want)
	}
	rss := b.rss()
	final, err := b.finalOnlyBytes(ctx)
	if err != nil {
		return "", err
	}
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(c.nDocs),
		"revs=" + strconv.Itoa(c.revs),
		"folded=" + strconv.Itoa(st.Folded),
		"seconds=" + strconv.FormatFloat(elapsed.Seconds(), 'f', 2, 64),
		"folded_per_s=" + strconv.FormatFloat(float64(st.Folded)/elapsed.Seconds(), 'f', 0, 64),
		"bytes_per_doc_before=" + perDoc(st.BytesBefore, c.nDocs),
		"bytes_per_doc_after=" + perDoc(st.BytesAfter, c.nDocs),
		"final_only_bytes_per_doc=" + perDoc(final, c.nDocs),
		"load_seconds=" + strconv.FormatFloat(loaded.Seconds(), 'f', 2, 64),
		"rss_mb=" + strconv.Itoa(rss),
		"durability=" + b.c.durability,
	}, " "), nil
}

// finalOnlyBytes writes the last revision of C1's documents into a fresh
// node and returns its bytes on disk, measured by a compaction that folds
// nothing (it flushes first).
func (b *bench) finalOnlyBytes(ctx context.Context) (bytes uint64, err error) {
	c := b.c.cmp
	n, d, err := b.openPeer(ctx, b.dir+"/final", false)
	if err != nil {
		return 0, err
	}
	defer closePeer(n, &err)
	for lo := 0; lo < c.nDocs; lo += benchBulkSize {
		hi := min(lo+benchBulkSize, c.nDocs)
		ops := make([]node.DocOp, 0, hi-lo)
		for i := lo; i < hi; i++ {
			ops = append(ops, node.DocOp{ID: docID(i), Body: b.revDoc(i, c.revs-1)})
		}
		if _, err := d.Bulk(ctx, ops, false); err != nil {
			return 0, fmt.Errorf("bulk final states: %w", err)
		}
	}
	st, err := d.Compact(ctx, keepAll)
	if err != nil {
		return 0, err
	}
	return st.BytesBefore, nil
}

// latencies are the durations of one phase's writes.
type latencies struct {
	times   []time.Duration
	retries int64
}

// C2: the history of C1; W1b's writers Put new documents one by one
// without a compaction (n writes), while the history is compacted (until
// the compaction returns), and without again (n writes). Each write is
// timed from the Put call until it is acknowledged, retries included.
func (b *bench) compactLatency(ctx context.Context) (line string, err error) {
	c := b.c.cmp
	n, d, err := b.openPeer(ctx, b.dir+"/history", false)
	if err != nil {
		return "", err
	}
	defer closePeer(n, &err)
	if err := b.loadRevs(ctx, d, c.nDocs, c.revs); err != nil {
		return "", err
	}
	var next atomic.Int64
	next.Store(benchC2IDs)
	before, err := b.timedWrites(ctx, d, &next, func(int) bool { return true }, b.c.n)
	if err != nil {
		return "", fmt.Errorf("writes before the compaction: %w", err)
	}

	stop, err := b.profile()
	if err != nil {
		return "", err
	}
	var compacting atomic.Bool
	compacting.Store(true)
	var st node.CompactionStats
	var compactTook time.Duration
	g, gctx := errgroup.WithContext(ctx)
	var during latencies
	started := make(chan struct{})
	g.Go(func() error {
		var err error
		during, err = b.timedWrites(gctx, d, &next, func(k int) bool {
			if k == 0 {
				close(started)
			}
			return compacting.Load()
		}, benchC2MaxWrites)
		return err
	})
	g.Go(func() error {
		defer compacting.Store(false)
		select { // the writers are running before the compaction starts
		case <-started:
		case <-gctx.Done():
			return gctx.Err()
		}
		start := time.Now()
		var err error
		st, err = d.Compact(gctx, foldAll)
		compactTook = time.Since(start)
		return err
	})
	err = g.Wait()
	stop(&err)
	if err != nil {
		return "", fmt.Errorf("writes during the compaction: %w", err)
	}
	if len(during.times) == 0 {
		return "", errors.New("no write during the compaction")
	}

	after, err := b.timedWrites(ctx, d, &next, func(int) bool { return true }, b.c.n)
	if err != nil {
		return "", fmt.Errorf("writes after the compaction: %w", err)
	}
	without := slices.Concat(before.times, after.times)
	slices.Sort(without)
	slices.Sort(during.times)
	medW, p99W := percentile(without, 0.50), percentile(without, 0.99)
	medC, p99C := percentile(during.times, 0.50), percentile(during.times, 0.99)
	ratio := func(a, b time.Duration) string {
		return strconv.FormatFloat(float64(a)/float64(b), 'f', 2, 64)
	}
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(c.nDocs),
		"revs=" + strconv.Itoa(c.revs),
		"folded=" + strconv.Itoa(st.Folded),
		"compact_seconds=" + strconv.FormatFloat(compactTook.Seconds(), 'f', 2, 64),
		"writers=" + strconv.Itoa(b.c.writers),
		"writes=" + strconv.Itoa(len(without)),
		"median_ms=" + ms(medW),
		"p99_ms=" + ms(p99W),
		"compacting_writes=" + strconv.Itoa(len(during.times)),
		"compacting_median_ms=" + ms(medC),
		"compacting_p99_ms=" + ms(p99C),
		"median_ratio=" + ratio(medC, medW),
		"p99_ratio=" + ratio(p99C, p99W),
		"retries=" + strconv.FormatInt(before.retries+during.retries+after.retries, 10),
		"rss_mb=" + strconv.Itoa(b.rss()),
		"durability=" + b.c.durability,
	}, " "), nil
}

// timedWrites runs b.c.writers goroutines that Put new documents (indexes
// from next) one by one, ErrOverloaded retried after the backoff, until
// limit writes are done or more(k), asked before the k-th write, is false.
// It returns every write's latency.
func (b *bench) timedWrites(ctx context.Context, d *node.DB, next *atomic.Int64, more func(k int) bool, limit int) (latencies, error) {
	var (
		taken   atomic.Int64
		retries atomic.Int64
	)
	per := make([][]time.Duration, b.c.writers)
	g, gctx := errgroup.WithContext(ctx)
	for w := range per {
		g.Go(func() error {
			for {
				k := int(taken.Add(1) - 1)
				if k >= limit || !more(k) {
					return nil
				}
				i := int(next.Add(1) - 1)
				id, body := docID(i), b.gen.doc(i)
				start := time.Now()
				for {
					_, err := d.Put(gctx, id, body, "")
					if err == nil {
						break
					}
					if !errors.Is(err, node.ErrOverloaded) {
						return fmt.Errorf("put %s: %w", id, err)
					}
					retries.Add(1)
					if err := wait(gctx, b.c.backoff); err != nil {
						return err
					}
				}
				per[w] = append(per[w], time.Since(start))
			}
		})
	}
	if err := g.Wait(); err != nil {
		return latencies{}, err
	}
	return latencies{times: slices.Concat(per...), retries: retries.Load()}, nil
}

// W2S: a fresh peer catches up with a source of nSnap documents, first
// with one revision each (W2), then with snapRevs revisions each,
// compacted before the peer dials (a snapshot). ratio is the second time
// over the first; fresh_revisions is the history the fresh peer holds
// after the second (0: it installed bases, not changes).
func (b *bench) snapshotCatchUp(ctx context.Context) (string, error) {
	c := b.c.cmp
	one, err := b.catchUp(ctx, b.dir+"/one", 1, false)
	if err != nil {
		return "", fmt.Errorf("one revision: %w", err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	snap, err := b.catchUp(ctx, b.dir+"/snap", c.snapRevs, true)
	if err != nil {
		return "", fmt.Errorf("%d revisions: %w", c.snapRevs, err)
	}
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) }
	rate := func(d time.Duration) string { return strconv.FormatFloat(float64(c.nSnap)/d.Seconds(), 'f', 0, 64) }
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(c.nSnap),
		"revs=" + strconv.Itoa(c.snapRevs),
		"seconds=" + secs(snap.took),
		"docs_per_s=" + rate(snap.took),
		"w2_seconds=" + secs(one.took),
		"w2_docs_per_s=" + rate(one.took),
		"ratio=" + strconv.FormatFloat(snap.took.Seconds()/one.took.Seconds(), 'f', 2, 64),
		"folded=" + strconv.Itoa(snap.folded),
		"compact_seconds=" + secs(snap.compact),
		"fresh_revisions=" + strconv.FormatInt(snap.freshRevs, 10),
		"rss_mb=" + strconv.Itoa(snap.rss),
		"durability=" + b.c.durability,
	}, " "), nil
}

// catchUpResult is one fresh peer's catch-up.
type catchUpResult struct {
	took      time.Duration // from the dial until the fresh peer holds every document
	compact   time.Duration
	folded    int
	freshRevs int64 // history entries the fresh peer keeps
	rss       int
}

// catchUp fills a source peer in dir with nSnap documents of revs
// revisions, compacts it with foldAll when compact is set, then opens a
// fresh peer that dials it and times it until it holds every document.
// With compact the timed part is profiled.
func (b *bench) catchUp(ctx context.Context, dir string, revs int, compact bool) (res catchUpResult, err error) {
	c := b.c.cmp
	na, da, err := b.openPeer(ctx, dir+"/a", true)
	if err != nil {
		return res, err
	}
	defer closePeer(na, &err)
	if err := b.loadRevs(ctx, da, c.nSnap, revs); err != nil {
		return res, err
	}
	if compact {
		start := time.Now()
		st, err := da.Compact(ctx, foldAll)
		if err != nil {
			return res, err
		}
		res.compact, res.folded = time.Since(start), st.Folded
	}
	nb, db, err := b.openPeer(ctx, dir+"/b", true)
	if err != nil {
		return res, err
	}
	defer closePeer(nb, &err)
	stop := func(*error) {}
	if compact {
		if stop, err = b.profile(); err != nil {
			return res, err
		}
	}
	start := time.Now()
	err = connect(ctx, nb, na)
	if err == nil {
		err = waitCount(ctx, db, c.nSnap)
	}
	res.took = time.Since(start)
	stop(&err)
	if err != nil {
		return res, fmt.Errorf("catch up: %w", err)
	}
	info, err := db.Info(ctx)
	if err != nil {
		return res, err
	}
	res.freshRevs, res.rss = info.Revisions, b.rss()
	return res, nil
}
