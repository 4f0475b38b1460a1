package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/barrel-db/barrel/httpapi"
	"github.com/barrel-db/barrel/node"
)

// Workload names, in the order they run.
var benchWorkloads = []string{"W1a", "W1b", "W1c", "W1d", "Q1", "MEM"}

// Fixed shape of the workloads.
const (
	benchBulkSize   = 1000  // documents per Bulk call (W1c, Q1 load, MEM)
	benchQueryRuns  = 50    // Q1 repetitions
	benchQueryLimit = 1000  // Q1 page size
	benchRSSEvery   = 10000 // MEM samples RSS after every this many documents
	benchMatchEvery = 100   // document i is in Iceland when i%benchMatchEvery == 0 (1%)
	benchCountry    = "Iceland"
)

// benchConfig is one run of the bench command.
type benchConfig struct {
	workloads  []string
	n          int    // W1a, W1b, W1d documents
	nBulk      int    // W1c documents
	nQuery     int    // Q1 documents loaded
	nMem       int    // MEM documents
	writers    int    // W1b, W1d concurrent writers
	durability string // node.Config.Durability
	seed       uint64
	dataParent string // parent of the temporary data dir; "" is the system default
	keep       bool
	// backoff is how long a writer waits after ErrOverloaded (or HTTP 503)
	// before it retries.
	backoff time.Duration
}

func (a *app) benchCmd() *cobra.Command {
	c := benchConfig{backoff: time.Millisecond}
	var workloads string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure write, query and memory workloads on a fresh node in a temporary data dir",
		Long: "Each workload runs on a fresh node and database in a temporary data dir and prints one\n" +
			"line of key=value pairs to stdout, for example\n\n" +
			"  workload=W1a n=10000 seconds=2.91 docs_per_s=3436 rss_mb=61 durability=sync\n\n" +
			"Workloads: W1a sequential Put; W1b Put from --writers goroutines; W1c Bulk in calls of\n" +
			"1000; W1d PUT over HTTP from --writers clients to an in-process server; Q1 an equality\n" +
			"query on a nested field matching 1% of --n-query documents, run 50 times (median and\n" +
			"p99 ms); MEM --n-mem documents by Bulk, reporting peak RSS. Documents are about 200\n" +
			"bytes of JSON from an RNG seeded by --seed. rss_mb is the process's resident set at the\n" +
			"end of the workload (its peak for MEM), -1 where /proc/self/status is unavailable.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ws, err := parseWorkloads(workloads)
			if err != nil {
				return usageErr("%v", err)
			}
			c.workloads = ws
			if err := c.validate(); err != nil {
				return usageErr("%v", err)
			}
			return runBench(cmd.Context(), c, a.stdout, a.stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&workloads, "workloads", "W1a,W1b,W1c,W1d,Q1", `comma-separated workloads ("all" adds MEM): W1a,W1b,W1c,W1d,Q1,MEM`)
	f.IntVar(&c.n, "n", 10000, "documents written by W1a, W1b and W1d")
	f.IntVar(&c.nBulk, "n-bulk", 50000, "documents written by W1c")
	f.IntVar(&c.nQuery, "n-query", 100000, "documents loaded before Q1 (1% match)")
	f.IntVar(&c.nMem, "n-mem", 1000000, "documents written by MEM")
	f.IntVar(&c.writers, "writers", 64, "concurrent writers of W1b and W1d")
	f.StringVar(&c.durability, "durability", "sync", "sync (fsync before acknowledging) or batch")
	f.Uint64Var(&c.seed, "seed", 1, "seed of the document generator")
	f.StringVar(&c.dataParent, "data", "", "parent directory of the temporary data dir (default the system temp dir)")
	f.BoolVar(&c.keep, "keep", false, "keep the data dir instead of removing it at the end")
	return cmd
}

// parseWorkloads splits a --workloads value; "all" is every workload.
func parseWorkloads(s string) ([]string, error) {
	var out []string
	for w := range strings.SplitSeq(s, ",") {
		w = strings.TrimSpace(w)
		switch {
		case w == "":
			continue
		case strings.EqualFold(w, "all"):
			return slices.Clone(benchWorkloads), nil
		}
		i := slices.IndexFunc(benchWorkloads, func(k string) bool { return strings.EqualFold(k, w) })
		if i < 0 {
			return nil, fmt.Errorf("unknown workload %q: want some of %s or all", w, strings.Join(benchWorkloads, ","))
		}
		if !slices.Contains(out, benchWorkloads[i]) {
			out = append(out, benchWorkloads[i])
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no workload given")
	}
	return out, nil
}

func (c *benchConfig) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"n", c.n}, {"n-bulk", c.nBulk}, {"n-query", c.nQuery}, {"n-mem", c.nMem}, {"writers", c.writers}} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("--%s %d: must be positive", f.name, f.v))
		}
	}
	if c.durability != "sync" && c.durability != "batch" {
		errs = append(errs, fmt.Errorf("--durability %q: want sync or batch", c.durability))
	}
	return errors.Join(errs...)
}

// runBench runs every workload of c in order, each on a fresh node, and
// writes one result line per workload to out as soon as it is done.
func runBench(ctx context.Context, c benchConfig, out, errOut io.Writer) (err error) {
	dir, err := os.MkdirTemp(c.dataParent, "barrel-bench-")
	if err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	defer func() {
		if c.keep {
			fmt.Fprintf(errOut, "bench: data kept in %s\n", dir)
			return
		}
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("remove data dir: %w", rerr)
		}
	}()
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, w := range c.workloads {
		b := &bench{c: c, gen: docGen{seed: c.seed}, dir: dir + "/" + w, log: log, name: w}
		line, err := b.run(ctx)
		if err != nil {
			return fmt.Errorf("workload %s: %w", w, err)
		}
		if _, err := fmt.Fprintln(out, line); err != nil {
			return fmt.Errorf("write result: %w", err)
		}
	}
	return nil
}

// bench is one workload run.
type bench struct {
	c    benchConfig
	gen  docGen
	dir  string
	log  *slog.Logger
	name string
}

// run opens a fresh node with one database, runs the workload and closes
// the node. Memory left by earlier workloads is returned to the OS first
// so that rss_mb describes this workload as far as the runtime allows.
func (b *bench) run(ctx context.Context) (line string, err error) {
	runtime.GC()
	debug.FreeOSMemory()
	n, err := node.Open(ctx, node.Config{DataDir: b.dir, Durability: b.c.durability, Logger: b.log})
	if err != nil {
		return "", err
	}
	defer func() {
		if cerr := n.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close node: %w", cerr)
		}
	}()
	db := "bench"
	if err := n.CreateDB(ctx, db); err != nil {
		return "", err
	}
	d, err := n.DB(db)
	if err != nil {
		return "", err
	}
	switch b.name {
	case "W1a":
		return b.putSequential(ctx, d)
	case "W1b":
		return b.putConcurrent(ctx, d)
	case "W1c":
		return b.bulk(ctx, d, b.c.nBulk, false)
	case "W1d":
		return b.putHTTP(ctx, n, db)
	case "Q1":
		return b.query(ctx, d)
	case "MEM":
		return b.bulk(ctx, d, b.c.nMem, true)
	}
	return "", fmt.Errorf("unknown workload %q", b.name)
}

// result formats a write workload's line.
func (b *bench) result(n int, elapsed time.Duration, rss int, extra ...string) string {
	s := elapsed.Seconds()
	fields := []string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(n),
		"seconds=" + strconv.FormatFloat(s, 'f', 2, 64),
		"docs_per_s=" + strconv.FormatFloat(float64(n)/s, 'f', 0, 64),
		"rss_mb=" + strconv.Itoa(rss),
		"durability=" + b.c.durability,
	}
	return strings.Join(append(fields, extra...), " ")
}

// W1a: one Put after another.
func (b *bench) putSequential(ctx context.Context, d *node.DB) (string, error) {
	start := time.Now()
	for i := range b.c.n {
		if _, err := d.Put(ctx, docID(i), b.gen.doc(i), ""); err != nil {
			return "", fmt.Errorf("put %s: %w", docID(i), err)
		}
	}
	return b.result(b.c.n, time.Since(start), rssMB()), nil
}

// W1b: --writers goroutines take the next document index until n are
// written. ErrOverloaded is retried after the backoff and counted.
func (b *bench) putConcurrent(ctx context.Context, d *node.DB) (string, error) {
	var retries atomic.Int64
	put := func(ctx context.Context, i int) error {
		id, body := docID(i), b.gen.doc(i)
		for {
			_, err := d.Put(ctx, id, body, "")
			if !errors.Is(err, node.ErrOverloaded) {
				if err != nil {
					return fmt.Errorf("put %s: %w", id, err)
				}
				return nil
			}
			retries.Add(1)
			if err := wait(ctx, b.c.backoff); err != nil {
				return err
			}
		}
	}
	start := time.Now()
	if err := b.fanOut(ctx, put); err != nil {
		return "", err
	}
	elapsed := time.Since(start)
	return b.result(b.c.n, elapsed, rssMB(), "writers="+strconv.Itoa(b.c.writers), "retries="+strconv.FormatInt(retries.Load(), 10)), nil
}

// fanOut calls fn for every document index below b.c.n from b.c.writers
// goroutines; the first error stops them all.
func (b *bench) fanOut(ctx context.Context, fn func(ctx context.Context, i int) error) error {
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range b.c.writers {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.c.n {
					return nil
				}
				if err := fn(gctx, i); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// bulk writes n documents in non-atomic Bulk calls of benchBulkSize (W1c,
// MEM). With peak, RSS is sampled every benchRSSEvery documents and the
// line reports the largest sample instead of the final RSS.
func (b *bench) bulk(ctx context.Context, d *node.DB, n int, peak bool) (string, error) {
	maxRSS := -1
	start := time.Now()
	for lo := 0; lo < n; lo += benchBulkSize {
		hi := min(lo+benchBulkSize, n)
		if err := b.bulkRange(ctx, d, lo, hi); err != nil {
			return "", err
		}
		if peak && (hi%benchRSSEvery == 0 || hi == n) {
			maxRSS = max(maxRSS, rssMB())
		}
	}
	elapsed := time.Since(start)
	rss := rssMB()
	if peak {
		rss = max(maxRSS, rss)
	}
	return b.result(n, elapsed, rss), nil
}

// bulkRange writes documents [lo, hi) in one non-atomic Bulk call.
func (b *bench) bulkRange(ctx context.Context, d *node.DB, lo, hi int) error {
	ops := make([]node.DocOp, 0, hi-lo)
	for i := lo; i < hi; i++ {
		ops = append(ops, node.DocOp{ID: docID(i), Body: b.gen.doc(i)})
	}
	res, err := d.Bulk(ctx, ops, false)
	if err != nil {
		return fmt.Errorf("bulk %s..%s: %w", docID(lo), docID(hi-1), err)
	}
	for _, r := range res {
		if r.Error != nil {
			return fmt.Errorf("bulk: document %s: %w", r.ID, r.Error)
		}
	}
	return nil
}

// W1d: --writers clients PUT documents over HTTP to an in-process server
// on a loopback port, through one shared client. 503 (overloaded) is
// retried after the backoff and counted.
func (b *bench) putHTTP(ctx context.Context, n *node.Node, db string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           httpapi.New(n, httpapi.Config{Logger: b.log}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		_ = srv.Close()
		<-served
	}()

	tr := &http.Transport{MaxIdleConnsPerHost: b.c.writers, MaxIdleConns: b.c.writers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	base := "http://" + ln.Addr().String() + "/dbs/" + db + "/docs/"

	var retries atomic.Int64
	put := func(ctx context.Context, i int) error {
		id := docID(i)
		body, err := json.Marshal(b.gen.doc(i))
		if err != nil {
			return fmt.Errorf("encode %s: %w", id, err)
		}
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+id, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("put %s: %w", id, err)
			}
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusCreated, http.StatusOK:
				return nil
			case http.StatusServiceUnavailable:
				retries.Add(1)
				if err := wait(ctx, b.c.backoff); err != nil {
					return err
				}
			default:
				return fmt.Errorf("put %s: %s: %s", id, resp.Status, bytes.TrimSpace(msg))
			}
		}
	}
	start := time.Now()
	if err := b.fanOut(ctx, put); err != nil {
		return "", err
	}
	elapsed := time.Since(start)
	return b.result(b.c.n, elapsed, rssMB(), "writers="+strconv.Itoa(b.c.writers), "retries="+strconv.FormatInt(retries.Load(), 10)), nil
}

// Q1: load nQuery documents by Bulk (1% in Iceland), then run the equality
// query on /locations/country benchQueryRuns times.
func (b *bench) query(ctx context.Context, d *node.DB) (string, error) {
	for lo := 0; lo < b.c.nQuery; lo += benchBulkSize {
		if err := b.bulkRange(ctx, d, lo, min(lo+benchBulkSize, b.c.nQuery)); err != nil {
			return "", err
		}
	}
	want := min((b.c.nQuery+benchMatchEvery-1)/benchMatchEvery, benchQueryLimit)
	q := node.Query{
		Where: []node.Cond{{Path: "/locations/country", Op: "==", Value: benchCountry}},
		Limit: benchQueryLimit,
	}
	times := make([]time.Duration, benchQueryRuns)
	for r := range times {
		start := time.Now()
		res, err := d.Query(ctx, q)
		times[r] = time.Since(start)
		if err != nil {
			return "", fmt.Errorf("query: %w", err)
		}
		if len(res.Docs) != want {
			return "", fmt.Errorf("query: got %d documents, want %d", len(res.Docs), want)
		}
	}
	slices.Sort(times)
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
	}
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(b.c.nQuery),
		"matches=" + strconv.Itoa(want),
		"runs=" + strconv.Itoa(benchQueryRuns),
		"median_ms=" + ms(percentile(times, 0.50)),
		"p99_ms=" + ms(percentile(times, 0.99)),
		"rss_mb=" + strconv.Itoa(rssMB()),
		"durability=" + b.c.durability,
	}, " "), nil
}

// percentile returns the nearest-rank p-quantile of sorted (with 50 runs,
// p99 is the slowest).
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// wait waits d or until ctx is done.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func docID(i int) string { return fmt.Sprintf("doc-%08d", i) }

// docGen generates the benchmark's documents: about 200 bytes of JSON with
// nested fields. Document i depends only on the seed and i, so concurrent
// writers produce the same data as sequential ones, and exactly one in
// benchMatchEvery is in benchCountry.
type docGen struct{ seed uint64 }

var (
	benchCountries = []string{"France", "Germany", "Italy", "Spain", "Portugal", "Norway", "Japan", "Brazil", "Canada"}
	benchCities    = map[string][]string{
		"Iceland":  {"Reykjavik", "Akureyri", "Selfoss"},
		"France":   {"Paris", "Lyon", "Nantes"},
		"Germany":  {"Berlin", "Hamburg", "Leipzig"},
		"Italy":    {"Rome", "Milan", "Turin"},
		"Spain":    {"Madrid", "Seville", "Bilbao"},
		"Portugal": {"Lisbon", "Porto", "Braga"},
		"Norway":   {"Oslo", "Bergen", "Tromso"},
		"Japan":    {"Tokyo", "Osaka", "Sapporo"},
		"Brazil":   {"Recife", "Manaus", "Curitiba"},
		"Canada":   {"Toronto", "Halifax", "Calgary"},
	}
	benchFirst = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Leslie"}
	benchLast  = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Lamport"}
	benchTags  = []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "omicron"}
)

// doc returns document i. The caller owns the map.
func (g docGen) doc(i int) map[string]any {
	r := rand.New(rand.NewPCG(g.seed, uint64(i)))
	country := benchCountry
	if i%benchMatchEvery != 0 {
		country = benchCountries[r.IntN(len(benchCountries))]
	}
	cities := benchCities[country]
	tags := make([]any, 2+r.IntN(3))
	for j := range tags {
		tags[j] = benchTags[r.IntN(len(benchTags))]
	}
	return map[string]any{
		"name":   benchFirst[r.IntN(len(benchFirst))] + " " + benchLast[r.IntN(len(benchLast))],
		"age":    int64(18 + r.IntN(70)),
		"email":  fmt.Sprintf("user%d@example.org", r.IntN(1_000_000)),
		"active": r.IntN(2) == 0,
		"locations": map[string]any{
			"country": country,
			"city":    cities[r.IntN(len(cities))],
			"zip":     fmt.Sprintf("%05d", r.IntN(100000)),
		},
		"tags":  tags,
		"score": math.Round(r.Float64()*1e6) / 1e6,
	}
}

// rssMB returns the process's resident set size in MiB from
// /proc/self/status, or -1 where that file is unavailable.
func rssMB() int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		if err != nil {
			return -1
		}
		return kb / 1024
	}
	return -1
}
