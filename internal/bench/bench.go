package bench

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
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/httpapi"
	"github.com/barrel-db/barrel/node"
)

// Workload names, in the order they run.
var benchWorkloads = []string{"W1a", "W1b", "W1c", "W1d", "Q1", "MEM", "W2", "W3", "W4", "W4R", "W5", "W7", "C1", "C2", "W2S", "A1", "A2", "L1", "L2", "W6", "R1", "R2"}

// Fixed shape of the workloads.
const (
	benchBulkSize   = 1000  // documents per Bulk call (W1c, Q1 load, MEM)
	benchRSSEvery   = 10000 // MEM samples RSS after every this many documents
	benchMatchEvery = 100   // document i is in Iceland when i%benchMatchEvery == 0 (1%)
	benchCountry    = "Iceland"
	benchW4Writes   = 100 // documents each peer writes while W4's peers are apart
	benchIDBytes    = 40  // an id on the wire (32 bytes) plus its sequence, as all_ids_bytes counts it
	// benchPeakEvery is how often peak_rss_mb samples the resident set, as
	// the Node harnesses of the side-by-side comparison do (bench/common.mjs).
	benchPeakEvery = 50 * time.Millisecond
)

// Config is one run of the bench command: its flags, bound by AddFlags,
// and checked by Validate before Run.
type Config struct {
	workloadList string   // --workloads as given
	workloads    []string // parsed by Validate
	n            int      // W1a, W1b, W1d documents
	nBulk        int      // W1c documents
	nQuery       int      // Q1 documents loaded
	nMem         int      // MEM documents
	nRepl        int      // W2, W4 documents held by the first peer
	nLatency     int      // W3 documents written one by one
	writers      int      // W1b, W1d concurrent writers
	// Q1: the country queried (benchCountry matches 1%, any other about
	// 11%), the most documents returned (0: every match, in pages of
	// node.MaxListLimit) and how many times the query runs.
	queryCountry string
	queryLimit   int
	queryRuns    int
	latencyGap   time.Duration // W3: pause after each document is visible
	durability   string        // node.Config.Durability
	seed         uint64
	dataParent   string // parent of the temporary data dir; "" is the system default
	keep         bool
	cpuProfile   string // prefix of CPU profiles of the replication workloads' timed parts; "" none
	// backoff is how long a writer waits after ErrOverloaded (or HTTP 503)
	// before it retries.
	backoff time.Duration
	cmp     benchCompactConfig // C1, C2, W2S (bench_compact.go)
	att     benchAttachConfig  // A1, A2 (bench_attach.go)
	live    benchLiveConfig    // L1, L2 (bench_live.go)
	mesh    benchMeshConfig    // W6 (bench_mesh.go)
	reg     benchRegConfig     // R1, R2 (bench_regulate.go)
}

// Help is the bench command's long help: what each workload measures and
// the keys of its line.
const Help = "Each workload runs on a fresh node and database in a temporary data dir and prints one\n" +
	"line of key=value pairs to stdout, for example\n\n" +
	"  workload=W1a n=10000 seconds=2.91 docs_per_s=3436 rss_mb=61 durability=sync\n\n" +
	"Workloads: W1a sequential Put; W1b Put from --writers goroutines; W1c Bulk in calls of\n" +
	"1000; W1d PUT over HTTP from --writers clients to an in-process server; Q1 an equality\n" +
	"query on a nested field (/locations/country == --query-country: Iceland matches 1% of\n" +
	"--n-query documents, each other country about 11%), run --query-runs times (median and\n" +
	"p99 ms); MEM --n-mem documents by Bulk, reporting peak RSS. Documents are about 200\n" +
	"bytes of JSON from an RNG seeded by --seed. rss_mb is the process's resident set at the\n" +
	"end of the workload (its peak for MEM), peak_rss_mb the largest resident set sampled\n" +
	"every 50 ms during the whole workload; -1 where /proc/self/status is unavailable.\n\n" +
	"Replication workloads run two in-process peers on 127.0.0.1 (no mDNS, no DHT): W2 a fresh\n" +
	"peer pulls --n-repl documents (seconds until it holds them all); W3 --n-latency Puts, each\n" +
	"timed until the other peer can read it, --latency-gap apart (median and p99 ms); W4 two peers\n" +
	"holding the same --n-repl documents each write 100 while apart and reconnect (seconds\n" +
	"until both hold all, sync frame bytes received by both, body_bytes of them the change\n" +
	"bodies', recon_bytes the reconciliation's frames both ways, and all_ids_bytes = n*40, what\n" +
	"listing every id again would cost); W4R W4 without checkpoints (B's data dir a copy of\n" +
	"A's under a new identity), so the difference is found by reconciliation; W5 two peers holding the same --n-repl documents and no checkpoint of\n" +
	"each other meet (first_ms from the dial until both found the sets equal; check_ms and\n" +
	"check_bytes per anti-entropy in-sync check after, the mean of 5); W7 two peers holding the\n" +
	"same 10 x --n-repl documents met once (checkpoints); B stops, A writes --n-repl new ones, B\n" +
	"comes back: until B holds them all, next to W2's time for --n-repl in the same run (ratio).\n\n" +
	"Compaction workloads (issue 7): C1 --n-compact documents written --compact-revs times by\n" +
	"Bulk, then compacted folding everything (revisions folded per second, bytes on disk per\n" +
	"document before, after, and for a store of the final states only); C2 --writers Put new\n" +
	"documents while that history is compacted, against --n writes before it and --n after\n" +
	"(median and p99 ms, and their ratios); W2S W2 from a source of --n-snap documents with\n" +
	"--snap-revs revisions each, compacted before the fresh peer dials (snapshot catch-up),\n" +
	"next to W2 with one revision each in the same run (ratio of the times).\n\n" +
	"Attachment workloads (issue 6), one blob of --blob-bytes from a ChaCha8 stream seeded by\n" +
	"--seed, never held whole, checked by SHA-256 after it is read back: A1 PUT over HTTP to\n" +
	"an in-process server, then GET (put_mb_s, get_mb_s); A2 attached on one peer, then\n" +
	"replicated to a fresh peer on 127.0.0.1 (no mDNS, no DHT), timed from its dial until it\n" +
	"can open the attachment, complete and verified (replicate_mb_s). MB is 10^6 bytes.\n" +
	"vmhwm_mb is the kernel's peak resident set (VmHWM) since the workload started (-1 where\n" +
	"it cannot be reset), heap_peak_mb the Go heap sampled every 50 ms; A2's peers share the\n" +
	"process, so its figures are both peers'.\n\n" +
	"Live workloads (issue 14): L1 --live-subs live-query subscribers (each /k == its own\n" +
	"value, read by its own goroutine): --n documents by --writers without them, then\n" +
	"--live-rate documents/s for --live-seconds, each matching one subscriber (delivery\n" +
	"latency from the Put call to the event, median and p99 ms; idle memory per subscriber:\n" +
	"sub_heap_kb the Go heap, sub_total_kb with goroutine stacks), then --n documents by\n" +
	"--writers with them attached (with_over_without: the ratio of the write rates); L2 a\n" +
	"WebSocket changes-feed follower on an in-process server while W1b writes --n documents\n" +
	"(follower_over_writers: the writers' time over the time until the follower saw the last).\n\n" +
	"Mesh workload (issue 15): W6 --mesh-peers nodes in this process (real libp2p hosts on\n" +
	"127.0.0.1, each with its own Pebble store, --mesh-pebble-mb cache and memtable), connected in --topology\n" +
	"(random: degree 4-8; line; clusters: two random halves joined by one peer): (a) --mesh-writes\n" +
	"single writes on random peers, each timed from the Put call until the last peer's feed holds\n" +
	"it (median_ms, p99_ms); (b) --mesh-writers peers writing --mesh-rate documents/s each for\n" +
	"--mesh-seconds (load_median_ms, load_p99_ms; load_missing: writes not on every peer 2 minutes\n" +
	"after the end), then cpu_ms_per_write_peer, pulls_per_write_peer and anns_per_write_peer (the\n" +
	"process's CPU time from (a) on, pulls run and announcements received, over writes x peers), rss_per_peer_mb, goroutines_per_peer and fds_per_peer (process\n" +
	"totals over the peers). --gossip-* and --mesh-debounce tune the nodes' gossip for experiments.\n\n" +
	"Regulation workloads (issue 15), each phase --reg-seconds long, a steady writer at --reg-rate\n" +
	"documents/s timed alone, then beside a flood (median_ms, p99_ms; ratio: flooded p99 over alone),\n" +
	"with the budgets on, then off (off_*), the four phases --reg-rounds times: R1 over HTTP, the steady client from 127.0.0.3, the\n" +
	"flooder from 127.0.0.2 PUTting as fast as --reg-flooders connections allow, against a budget\n" +
	"of --reg-client-rate requests/s per client (flood_accepted, flood_refused: its 201s and 429s;\n" +
	"steady_refused must be 0); R2 on the sync server, writes on a node holding --reg-docs documents\n" +
	"timed until a steady peer's feed holds them, the flood a third peer pulling the whole database\n" +
	"in a loop from --reg-pullers streams (flood_pulls, flood_bodies_per_s; budget_wait_s: the time\n" +
	"the server slowed it by its per-peer budget of --reg-peer-bodies bodies/s; missing: writes not\n" +
	"on the steady peer 30 s after the phase)."

// NewConfig returns a Config holding the flags' defaults.
func NewConfig() *Config { return &Config{backoff: time.Millisecond} }

// AddFlags binds c to the bench command's flags.
func (c *Config) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&c.workloadList, "workloads", "W1a,W1b,W1c,W1d,Q1", `comma-separated workloads ("all" is every one): W1a,W1b,W1c,W1d,Q1,MEM,W2,W3,W4,W4R,W5,W7,C1,C2,W2S,A1,A2,L1,L2,W6,R1,R2`)
	f.IntVar(&c.n, "n", 10000, "documents written by W1a, W1b and W1d")
	f.IntVar(&c.nBulk, "n-bulk", 50000, "documents written by W1c")
	f.IntVar(&c.nQuery, "n-query", 100000, "documents loaded before Q1 (1% match)")
	f.IntVar(&c.nMem, "n-mem", 1000000, "documents written by MEM")
	f.IntVar(&c.nRepl, "n-repl", 100000, "documents replicated by W2 and held by both peers of W4 and W5; W7's peers hold 10 times as many and one writes this many while the other is away")
	f.IntVar(&c.nLatency, "n-latency", 1000, "documents written one by one by W3")
	f.IntVar(&c.writers, "writers", 64, "concurrent writers of W1b and W1d")
	f.StringVar(&c.queryCountry, "query-country", benchCountry, "Q1 queries /locations/country == this (Iceland: 1% of documents, other countries about 11%)")
	f.IntVar(&c.queryLimit, "query-limit", 1000, "most documents Q1 returns (0: every match, in pages of 10000)")
	f.IntVar(&c.queryRuns, "query-runs", 50, "times Q1 runs the query")
	f.DurationVar(&c.latencyGap, "latency-gap", 5*time.Millisecond, "W3 waits this long after each document is visible before the next Put")
	f.StringVar(&c.durability, "durability", "sync", "sync (fsync before acknowledging) or batch")
	f.Uint64Var(&c.seed, "seed", 1, "seed of the document generator")
	f.StringVar(&c.dataParent, "data", "", "parent directory of the temporary data dir (default the system temp dir)")
	f.BoolVar(&c.keep, "keep", false, "keep the data dir instead of removing it at the end")
	f.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of each workload to PREFIX.<workload>.pprof (W2, W3, W4: the timed part; C1: the compaction; C2: the writes during it; W2S: the snapshot catch-up; the others: all after the node opens)")
	c.cmp.flags(f)
	c.att.flags(f)
	c.live.flags(f)
	c.mesh.flags(f)
	c.reg.flags(f)
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

// Validate parses --workloads and checks every flag, reporting every
// contradiction at once; Run needs a Config it accepted.
func (c *Config) Validate() error {
	ws, err := parseWorkloads(c.workloadList)
	if err != nil {
		return err
	}
	c.workloads = ws
	return c.validate()
}

func (c *Config) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"n", c.n}, {"n-bulk", c.nBulk}, {"n-query", c.nQuery}, {"n-mem", c.nMem}, {"n-repl", c.nRepl}, {"n-latency", c.nLatency}, {"writers", c.writers}, {"query-runs", c.queryRuns}} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("--%s %d: must be positive", f.name, f.v))
		}
	}
	if c.queryLimit < 0 {
		errs = append(errs, fmt.Errorf("--query-limit %d: want 0 (every match) or more", c.queryLimit))
	}
	if c.latencyGap < 0 {
		errs = append(errs, fmt.Errorf("--latency-gap %v: must not be negative", c.latencyGap))
	}
	if !slices.Contains(benchCountries, c.queryCountry) && c.queryCountry != benchCountry {
		errs = append(errs, fmt.Errorf("--query-country %q: want %s or one of %s", c.queryCountry, benchCountry, strings.Join(benchCountries, ",")))
	}
	if c.durability != "sync" && c.durability != "batch" {
		errs = append(errs, fmt.Errorf("--durability %q: want sync or batch", c.durability))
	}
	errs = append(errs, c.cmp.validate(), c.att.validate(), c.live.validate(), c.mesh.validate(), c.reg.validate())
	return errors.Join(errs...)
}

// Run runs every workload of c in order, each on a fresh node, and writes
// one result line per workload to out as soon as it is done; warnings and
// the kept data dir go to errOut.
func Run(ctx context.Context, c *Config, out, errOut io.Writer) (err error) {
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
		b := &bench{c: *c, gen: docGen{seed: c.seed}, dir: dir + "/" + w, log: log, name: w, peak: startPeakRSS(benchPeakEvery)}
		line, err := b.run(ctx)
		peakMB := b.peak.stop()
		if err != nil {
			return fmt.Errorf("workload %s: %w", w, err)
		}
		line += " peak_rss_mb=" + strconv.Itoa(peakMB)
		if _, err := fmt.Fprintln(out, line); err != nil {
			return fmt.Errorf("write result: %w", err)
		}
	}
	return nil
}

// bench is one workload run.
type bench struct {
	c    Config
	gen  docGen
	dir  string
	log  *slog.Logger
	name string
	peak *peakRSS // peak_rss_mb of the line; nil: none
}

// run opens a fresh node with one database, runs the workload and closes
// the node. Memory left by earlier workloads is returned to the OS first
// so that rss_mb describes this workload as far as the runtime allows.
func (b *bench) run(ctx context.Context) (line string, err error) {
	runtime.GC()
	debug.FreeOSMemory()
	switch b.name {
	case "W2":
		return b.replicate(ctx)
	case "W3":
		return b.latency(ctx)
	case "W4":
		return b.reconnect(ctx)
	case "W4R":
		return b.reconnectFresh(ctx)
	case "W5":
		return b.inSyncCheck(ctx)
	case "W7":
		return b.returningPeer(ctx)
	case "C1":
		return b.compactThroughput(ctx)
	case "C2":
		return b.compactLatency(ctx)
	case "W2S":
		return b.snapshotCatchUp(ctx)
	case "A2":
		return b.replicateBlob(ctx)
	case "W6":
		return b.mesh(ctx)
	case "R2":
		return b.regulateSync(ctx)
	}
	n, err := node.Open(ctx, node.Config{DataDir: b.dir, Durability: b.c.durability, Logger: b.log})
	if err != nil {
		return "", err
	}
	defer func() {
		if cerr := n.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close node: %w", cerr)
		}
	}()
	db := benchDB
	if err := n.CreateDB(ctx, db); err != nil {
		return "", err
	}
	d, err := n.DB(db)
	if err != nil {
		return "", err
	}
	stop, err := b.profile()
	if err != nil {
		return "", err
	}
	defer stop(&err)
	switch b.name {
	case "W1a":
		return b.putSequential(ctx, d)
	case "W1b":
		return b.putConcurrent(ctx, d)
	case "W1c":
		return b.bulkGrowth(ctx, d)
	case "W1d":
		return b.putHTTP(ctx, n, db)
	case "Q1":
		return b.query(ctx, d)
	case "MEM":
		return b.bulk(ctx, d, b.c.nMem, true)
	case "A1":
		return b.attachHTTP(ctx, n, db)
	case "L1":
		return b.liveQueries(ctx, n, d)
	case "L2":
		return b.followWebSocket(ctx, n, d)
	case "R1":
		return b.regulateHTTP(ctx, n, db)
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
	return b.result(b.c.n, time.Since(start), b.rss()), nil
}

// W1b: --writers goroutines take the next document index until n are
// written. ErrOverloaded is retried after the backoff and counted.
func (b *bench) putConcurrent(ctx context.Context, d *node.DB) (string, error) {
	var retries atomic.Int64
	put := func(ctx context.Context, i int) error {
		return putRetry(ctx, d, docID(i), b.gen.doc(i), b.c.backoff, &retries)
	}
	start := time.Now()
	if err := b.fanOut(ctx, put); err != nil {
		return "", err
	}
	elapsed := time.Since(start)
	return b.result(b.c.n, elapsed, b.rss(), "writers="+strconv.Itoa(b.c.writers), "retries="+strconv.FormatInt(retries.Load(), 10)), nil
}

// fanOut calls fn for every document index below b.c.n from b.c.writers
// goroutines; the first error stops them all.
func (b *bench) fanOut(ctx context.Context, fn func(ctx context.Context, i int) error) error {
	return b.fanOutN(ctx, b.c.n, fn)
}

// fanOutN is fanOut for the indexes below n.
func (b *bench) fanOutN(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range b.c.writers {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
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
			maxRSS = max(maxRSS, b.rss())
		}
	}
	elapsed := time.Since(start)
	rss := b.rss()
	if peak {
		rss = max(maxRSS, rss)
	}
	return b.result(n, elapsed, rss), nil
}

// bulkGrowth is bulk for W1c, with the store's growth per document after a
// flush (bytes_per_doc: sstables, the write-ahead log aside), taken
// outside the timed writes.
func (b *bench) bulkGrowth(ctx context.Context, d *node.DB) (string, error) {
	size := func() (uint64, error) {
		if err := d.Flush(); err != nil {
			return 0, err
		}
		info, err := d.Info(ctx)
		return info.DiskBytes, err
	}
	before, err := size()
	if err != nil {
		return "", err
	}
	line, err := b.bulk(ctx, d, b.c.nBulk, false)
	if err != nil {
		return "", err
	}
	after, err := size()
	if err != nil {
		return "", err
	}
	line += fmt.Sprintf(" bytes_per_doc=%d", (after-before)/uint64(max(b.c.nBulk, 1)))
	rate, err := b.batchBaseline(b.c.nBulk)
	if err != nil {
		return "", fmt.Errorf("baseline: %w", err)
	}
	docs, _ := strconv.ParseFloat(field(line, "docs_per_s"), 64)
	return line + fmt.Sprintf(" baseline_values_per_s=%.0f of_baseline=%.2f", rate, docs/rate), nil
}

// batchBaseline is what this machine's store does without barrel: n
// values of about a document's size (200 random bytes, under 12-byte
// keys) in batches of benchBulkSize, each committed with the durability of
// the run, into a Pebble store of its own opened as the node opens its
// own. W1c's of_baseline is its rate over this one, measured in the same
// run (issue 13: W1c at 0.3x or more).
func (b *bench) batchBaseline(n int) (float64, error) {
	dur, err := datastore.ParseDurability(b.c.durability)
	if err != nil {
		return 0, err
	}
	s, err := datastore.Open(filepath.Join(b.dir, "baseline"), datastore.Config{Durability: dur, Logger: b.log})
	if err != nil {
		return 0, err
	}
	defer func() { _ = s.Close() }() // a throwaway store: its data is not kept
	r := rand.New(rand.NewPCG(b.gen.seed, 7))
	val := make([]byte, 200)
	start := time.Now()
	for lo := 0; lo < n; lo += benchBulkSize {
		batch := s.NewWriteBatch()
		for i := lo; i < min(lo+benchBulkSize, n); i++ {
			for j := range val {
				val[j] = byte(r.Uint32())
			}
			batch.Set([]byte(docID(i)), val)
		}
		err := batch.Commit()
		batch.Close()
		if err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// field is the value of key in a bench line ("" when absent).
func field(line, key string) string {
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
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
	addr, stop, err := b.serveHTTP(n)
	if err != nil {
		return "", err
	}
	defer stop()

	tr := &http.Transport{MaxIdleConnsPerHost: b.c.writers, MaxIdleConns: b.c.writers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	base := "http://" + addr + "/dbs/" + db + "/docs/"

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
	return b.result(b.c.n, elapsed, b.rss(), "writers="+strconv.Itoa(b.c.writers), "retries="+strconv.FormatInt(retries.Load(), 10)), nil
}

// serveHTTP serves n's HTTP API on a loopback port until stop, which
// returns once the server has stopped.
func (b *bench) serveHTTP(n *node.Node) (addr string, stop func(), err error) {
	return b.serveHTTPWith(n, httpapi.Config{Logger: b.log})
}

// serveHTTPWith is serveHTTP with the API configured by cfg.
func (b *bench) serveHTTPWith(n *node.Node, cfg httpapi.Config) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           httpapi.New(n, cfg),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return ln.Addr().String(), func() {
		_ = srv.Close()
		<-served //nolint:errcheck // http.ErrServerClosed
	}, nil
}

// Q1: load nQuery documents by Bulk, then run the equality query on
// /locations/country queryRuns times. Each run reads min(matches,
// queryLimit) documents, paging by node.MaxListLimit.
func (b *bench) query(ctx context.Context, d *node.DB) (string, error) {
	if err := b.load(ctx, d, 0, b.c.nQuery); err != nil {
		return "", err
	}
	want := 0
	for i := range b.c.nQuery {
		if b.gen.country(i) == b.c.queryCountry {
			want++
		}
	}
	if b.c.queryLimit > 0 {
		want = min(want, b.c.queryLimit)
	}
	times := make([]time.Duration, b.c.queryRuns)
	for r := range times {
		start := time.Now()
		got, err := b.queryOnce(ctx, d, want)
		times[r] = time.Since(start)
		if err != nil {
			return "", fmt.Errorf("query: %w", err)
		}
		if got != want {
			return "", fmt.Errorf("query: got %d documents, want %d", got, want)
		}
	}
	slices.Sort(times)
	// The same query's ids and count, from the index alone (one ==).
	idTimes := make([]time.Duration, b.c.queryRuns)
	countTimes := make([]time.Duration, b.c.queryRuns)
	for r := range idTimes {
		start := time.Now()
		got, err := b.queryIDsOnce(ctx, d, want)
		idTimes[r] = time.Since(start)
		if err != nil || got != want {
			return "", fmt.Errorf("query ids: got %d, want %d (%v)", got, want, err)
		}
		start = time.Now()
		n, err := d.Count(ctx, node.Query{Where: []node.Cond{{Path: "/locations/country", Op: "==", Value: b.c.queryCountry}}})
		countTimes[r] = time.Since(start)
		if err != nil || (b.c.queryLimit == 0 && n != int64(want)) {
			return "", fmt.Errorf("count: got %d, want %d (%v)", n, want, err)
		}
	}
	slices.Sort(idTimes)
	slices.Sort(countTimes)
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(b.c.nQuery),
		"matches=" + strconv.Itoa(want),
		"runs=" + strconv.Itoa(b.c.queryRuns),
		"median_ms=" + ms(percentile(times, 0.50)),
		"p99_ms=" + ms(percentile(times, 0.99)),
		"ids_median_ms=" + ms(percentile(idTimes, 0.50)),
		"count_median_ms=" + ms(percentile(countTimes, 0.50)),
		"rss_mb=" + strconv.Itoa(b.rss()),
		"durability=" + b.c.durability,
	}, " "), nil
}

// queryOnce reads the documents of Q1's query, page after page until the
// last one or want documents, and returns how many it read. The number of
// pages is bounded by what nQuery documents can fill.
func (b *bench) queryOnce(ctx context.Context, d *node.DB, want int) (int, error) {
	return b.queryPages(want, func(q node.Query) (int, string, error) {
		res, err := d.Query(ctx, q)
		return len(res.Docs), res.Cursor, err
	})
}

// queryIDsOnce is queryOnce for the ids only.
func (b *bench) queryIDsOnce(ctx context.Context, d *node.DB, want int) (int, error) {
	return b.queryPages(want, func(q node.Query) (int, string, error) {
		ids, cursor, err := d.QueryIDs(ctx, q)
		return len(ids), cursor, err
	})
}

// queryPages runs Q1's query a page at a time with page (which returns
// the page's length and the next cursor) until the last page or want.
func (b *bench) queryPages(want int, page func(node.Query) (int, string, error)) (int, error) {
	q := node.Query{Where: []node.Cond{{Path: "/locations/country", Op: "==", Value: b.c.queryCountry}}}
	got := 0
	for range b.c.nQuery/node.MaxListLimit + 2 {
		q.Limit = node.MaxListLimit
		if b.c.queryLimit > 0 {
			q.Limit = min(b.c.queryLimit-got, node.MaxListLimit)
		}
		n, cursor, err := page(q)
		if err != nil {
			return got, err
		}
		got += n
		if cursor == "" || got >= want {
			return got, nil
		}
		q.Cursor = cursor
	}
	return got, fmt.Errorf("more pages than %d documents can fill", b.c.nQuery)
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
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
	country := drawCountry(r, i)
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

// country returns document i's /locations/country without the rest.
func (g docGen) country(i int) string {
	return drawCountry(rand.New(rand.NewPCG(g.seed, uint64(i))), i)
}

// drawCountry is document i's country, the first draw from its generator.
func drawCountry(r *rand.Rand, i int) string {
	if i%benchMatchEvery == 0 {
		return benchCountry
	}
	return benchCountries[r.IntN(len(benchCountries))]
}

// rssMB returns the process's resident set size in MiB from
// /proc/self/status, or -1 where that file is unavailable.
func rssMB() int { return statusMB("VmRSS") }

// statusMB returns a field of /proc/self/status counted in kB (VmRSS,
// VmHWM) in MiB, or -1 where that file or field is unavailable.
func statusMB(field string) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
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

// peakRSS samples a reading in MiB (the resident set, unless started by
// startPeak) from its own goroutine until stop; readings taken elsewhere
// count too (observe).
type peakRSS struct {
	read     func() int
	max      atomic.Int64
	done     chan struct{}
	finished chan struct{}
	stopOnce sync.Once
}

// startPeakRSS samples rssMB every interval until stop is called.
func startPeakRSS(every time.Duration) *peakRSS { return startPeak(every, rssMB) }

// startPeak samples read every interval until stop is called.
func startPeak(every time.Duration, read func() int) *peakRSS {
	p := &peakRSS{read: read, done: make(chan struct{}), finished: make(chan struct{})}
	p.max.Store(-1)
	p.observe(read())
	go func() {
		defer close(p.finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.observe(p.read())
			case <-p.done:
				return
			}
		}
	}()
	return p
}

// observe counts a reading of the resident set in MiB.
func (p *peakRSS) observe(mb int) {
	for {
		cur := p.max.Load()
		if int64(mb) <= cur || p.max.CompareAndSwap(cur, int64(mb)) {
			return
		}
	}
}

// stop ends the sampler and returns the largest reading in MiB (-1 where
// /proc/self/status is unavailable). Later calls return the same.
func (p *peakRSS) stop() int {
	p.stopOnce.Do(func() {
		close(p.done)
		<-p.finished
		p.observe(p.read())
	})
	return int(p.max.Load())
}

// rss reads the resident set for a result line; the workload's peak counts it.
func (b *bench) rss() int {
	mb := rssMB()
	if b.peak != nil {
		b.peak.observe(mb)
	}
	return mb
}

// profile starts the CPU profile of this workload when --cpuprofile is
// set; stop ends it, keeping the first error in *err.
func (b *bench) profile() (stop func(err *error), err error) {
	if b.c.cpuProfile == "" {
		return func(*error) {}, nil
	}
	f, err := os.Create(b.c.cpuProfile + "." + b.name + ".pprof")
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func(err *error) {
		pprof.StopCPUProfile()
		if cerr := f.Close(); cerr != nil && *err == nil {
			*err = fmt.Errorf("cpu profile: %w", cerr)
		}
	}, nil
}

// benchDB is the database every workload uses.
const benchDB = "bench"

// openPeer opens a node in dir. With p2p it is a libp2p peer on a loopback
// port with no mDNS and no DHT: it meets only the peers it is told to
// connect to (and those it knew before a restart).
func (b *bench) openPeer(ctx context.Context, dir string, p2p bool) (*node.Node, *node.DB, error) {
	cfg := node.Config{DataDir: dir, Durability: b.c.durability, Logger: b.log}
	if p2p {
		cfg.P2P = &node.P2PConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, NoDHT: true}
	}
	n, err := node.Open(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if _, err := n.DB(benchDB); err != nil {
		if err := n.CreateDB(ctx, benchDB); err != nil {
			_ = n.Close()
			return nil, nil, err
		}
	}
	d, err := n.DB(benchDB)
	if err != nil {
		_ = n.Close()
		return nil, nil, err
	}
	return n, d, nil
}

// closePeer closes n, keeping the first error in *err.
func closePeer(n *node.Node, err *error) {
	if n == nil {
		return
	}
	if cerr := n.Close(); cerr != nil && *err == nil {
		*err = fmt.Errorf("close node: %w", cerr)
	}
}

// connect dials b from a.
func connect(ctx context.Context, a, b *node.Node) error {
	addrs := b.Addrs()
	if len(addrs) == 0 {
		return errors.New("connect: peer has no address")
	}
	if _, err := a.Connect(ctx, addrs[0]); err != nil {
		return err
	}
	return nil
}

// benchReplTimeout bounds every wait for replication: a bench that stalls
// fails instead of hanging.
const benchReplTimeout = 10 * time.Minute

// waitCount waits until d holds at least want live documents.
func waitCount(ctx context.Context, d *node.DB, want int) error {
	ctx, cancel := context.WithTimeout(ctx, benchReplTimeout)
	defer cancel()
	for {
		// The writer stores the sequence before the count: read them in
		// that order, and wait at most a few ms in case the count of the
		// commit just seen lags.
		before, err := d.Info(ctx)
		if err != nil {
			return err
		}
		info, err := d.Info(ctx)
		if err != nil {
			return err
		}
		if info.DocCount >= int64(want) {
			return nil
		}
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Millisecond)
		err = d.WaitChanges(wctx, before.UpdateSeq)
		wcancel()
		if ctx.Err() != nil {
			return fmt.Errorf("%d of %d documents: %w", info.DocCount, want, ctx.Err())
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

// load writes documents [lo, hi) into d by Bulk.
func (b *bench) load(ctx context.Context, d *node.DB, lo, hi int) error {
	for i := lo; i < hi; i += benchBulkSize {
		if err := b.bulkRange(ctx, d, i, min(i+benchBulkSize, hi)); err != nil {
			return err
		}
	}
	return nil
}

// W2: peer A holds nRepl documents; a fresh peer B creates the database
// and connects; timed from the dial until B holds them all.
func (b *bench) replicate(ctx context.Context) (line string, err error) {
	na, da, err := b.openPeer(ctx, b.dir+"/a", true)
	if err != nil {
		return "", err
	}
	defer closePeer(na, &err)
	if err := b.load(ctx, da, 0, b.c.nRepl); err != nil {
		return "", err
	}
	nb, db, err := b.openPeer(ctx, b.dir+"/b", true)
	if err != nil {
		return "", err
	}
	defer closePeer(nb, &err)
	stop, err := b.profile()
	if err != nil {
		return "", err
	}
	defer stop(&err)
	start := time.Now()
	if err := connect(ctx, nb, na); err != nil {
		return "", err
	}
	if err := waitCount(ctx, db, b.c.nRepl); err != nil {
		return "", fmt.Errorf("replicate: %w", err)
	}
	return b.result(b.c.nRepl, time.Since(start), b.rss()), nil
}

// W3: two connected peers; A writes nLatency documents one by one, each
// timed from the Put call until B can read it, latencyGap apart. One
// untimed document first, as the peer harnesses do, so that the gossip
// topic is joined before anything is timed.
func (b *bench) latency(ctx context.Context) (line string, err error) {
	na, da, err := b.openPeer(ctx, b.dir+"/a", true)
	if err != nil {
		return "", err
	}
	defer closePeer(na, &err)
	nb, db, err := b.openPeer(ctx, b.dir+"/b", true)
	if err != nil {
		return "", err
	}
	defer closePeer(nb, &err)
	if err := connect(ctx, nb, na); err != nil {
		return "", err
	}
	if _, err := da.Put(ctx, "warmup", map[string]any{}, ""); err != nil {
		return "", fmt.Errorf("put warmup: %w", err)
	}
	if err := waitDoc(ctx, db, "warmup"); err != nil {
		return "", err
	}
	stop, err := b.profile()
	if err != nil {
		return "", err
	}
	defer stop(&err)
	times := make([]time.Duration, b.c.nLatency)
	for i := range times {
		id := docID(i)
		start := time.Now()
		if _, err := da.Put(ctx, id, b.gen.doc(i), ""); err != nil {
			return "", fmt.Errorf("put %s: %w", id, err)
		}
		if err := waitDoc(ctx, db, id); err != nil {
			return "", err
		}
		times[i] = time.Since(start)
		if err := wait(ctx, b.c.latencyGap); err != nil {
			return "", err
		}
	}
	slices.Sort(times)
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(b.c.nLatency),
		"gap_ms=" + ms(b.c.latencyGap),
		"median_ms=" + ms(percentile(times, 0.50)),
		"p99_ms=" + ms(percentile(times, 0.99)),
		"rss_mb=" + strconv.Itoa(b.rss()),
		"durability=" + b.c.durability,
	}, " "), nil
}

// waitDoc waits until d can read document id.
func waitDoc(ctx context.Context, d *node.DB, id string) error {
	ctx, cancel := context.WithTimeout(ctx, benchReplTimeout)
	defer cancel()
	for {
		// The sequence moves only after a commit is readable, so a miss
		// followed by a wait past the sequence read before it cannot skip
		// the commit that brings the document.
		info, err := d.Info(ctx)
		if err != nil {
			return err
		}
		_, err = d.Get(ctx, id)
		if err == nil {
			return nil
		}
		if !errors.Is(err, node.ErrNotFound) {
			return fmt.Errorf("get %s: %w", id, err)
		}
		if err := d.WaitChanges(ctx, info.UpdateSeq); err != nil {
			return fmt.Errorf("wait for %s: %w", id, err)
		}
	}
}

// W4: A and B hold the same nRepl documents (replicated from A to B, and
// B's feed listed back to A, so both have checkpoints). B's node stops;
// A writes 100 documents, B (reopened without networking) writes 100 of
// its own; B reopens as a peer and dials A, and a new connection
// reconciles (sync protocol version 2). Timed from B's reopen until
// both hold nRepl+200; bytes are the sync frame bytes both peers' pulls
// received meanwhile (change bodies included; body_bytes those), recon_bytes
// the reconciliations' frames both ways. With checkpoints and 100 new
// entries after each, the reconciliation's first round trip finds the sets
// differ and the client lists the feed after its checkpoint (version 1):
// W4R is the same without checkpoints.
func (b *bench) reconnect(ctx context.Context) (line string, err error) {
	na, da, err := b.openPeer(ctx, b.dir+"/a", true)
	if err != nil {
		return "", err
	}
	defer closePeer(na, &err)
	if err := b.load(ctx, da, 0, b.c.nRepl); err != nil {
		return "", err
	}
	dirB := b.dir + "/b"
	nb, db, err := b.openPeer(ctx, dirB, true)
	if err != nil {
		return "", err
	}
	if err := connect(ctx, nb, na); err != nil {
		closePeer(nb, &err)
		return "", err
	}
	if err := waitCount(ctx, db, b.c.nRepl); err != nil {
		closePeer(nb, &err)
		return "", fmt.Errorf("first replication: %w", err)
	}
	if err := waitCheckpoint(ctx, na, nb, db); err != nil {
		closePeer(nb, &err)
		return "", err
	}
	if err := nb.Close(); err != nil {
		return "", fmt.Errorf("close node: %w", err)
	}

	// Apart: each side writes documents the other lacks.
	const lo = 1 << 30 // ids far from the first nRepl
	if err := b.load(ctx, da, lo, lo+benchW4Writes); err != nil {
		return "", err
	}
	nb, db, err = b.openPeer(ctx, dirB, false)
	if err != nil {
		return "", err
	}
	if err := b.load(ctx, db, lo+benchW4Writes, lo+2*benchW4Writes); err != nil {
		closePeer(nb, &err)
		return "", err
	}
	if err := nb.Close(); err != nil {
		return "", fmt.Errorf("close node: %w", err)
	}

	bytesA, reconA, bodiesA := syncBytes(na), metric(na, "barrel_sync_recon_bytes_total"), metric(na, "barrel_sync_body_bytes_received_total")
	want := b.c.nRepl + 2*benchW4Writes
	stop, err := b.profile()
	if err != nil {
		return "", err
	}
	defer stop(&err)
	start := time.Now()
	nb, db, err = b.openPeer(ctx, dirB, true)
	if err != nil {
		return "", err
	}
	defer closePeer(nb, &err)
	if err := connect(ctx, nb, na); err != nil {
		return "", err
	}
	if err := waitCount(ctx, db, want); err != nil {
		return "", fmt.Errorf("catch up B: %w", err)
	}
	if err := waitCount(ctx, da, want); err != nil {
		return "", fmt.Errorf("catch up A: %w", err)
	}
	elapsed := time.Since(start)
	// A pull counts its bytes when its session ends, which can be just after
	// the documents became readable: wait for the count to settle.
	moved := syncBytes(na) - bytesA + syncBytes(nb)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		now := syncBytes(na) - bytesA + syncBytes(nb)
		if now == moved && moved > 0 {
			break
		}
		moved = now
	}
	recon := metric(na, "barrel_sync_recon_bytes_total") - reconA + metric(nb, "barrel_sync_recon_bytes_total")
	bodies := metric(na, "barrel_sync_body_bytes_received_total") - bodiesA + metric(nb, "barrel_sync_body_bytes_received_total")
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(b.c.nRepl),
		"writes=" + strconv.Itoa(2*benchW4Writes),
		"seconds=" + strconv.FormatFloat(elapsed.Seconds(), 'f', 2, 64),
		"bytes=" + strconv.FormatInt(moved, 10),
		"body_bytes=" + strconv.FormatFloat(bodies, 'f', 0, 64),
		"recon_bytes=" + strconv.FormatFloat(recon, 'f', 0, 64),
		"all_ids_bytes=" + strconv.Itoa(b.c.nRepl*benchIDBytes),
		"rss_mb=" + strconv.Itoa(b.rss()),
		"durability=" + b.c.durability,
	}, " "), nil
}

// waitCheckpoint makes a pull b's database and waits until a's checkpoint
// of it reaches b's sequence: a has listed b's whole feed once, so a later
// pull lists only what is new. (a's own pulls of b while b was still
// catching up stopped short, and announcements of a change set a already
// holds trigger none.)
func waitCheckpoint(ctx context.Context, a, b *node.Node, d *node.DB) error {
	ctx, cancel := context.WithTimeout(ctx, benchReplTimeout)
	defer cancel()
	if err := connect(ctx, a, b); err != nil { // Connect pulls every database
		return err
	}
	bid := b.PeerID().String()
	for {
		info, err := d.Info(ctx)
		if err != nil {
			return err
		}
		st, err := a.ReplicationState(benchDB)
		if err != nil {
			return err
		}
		for _, p := range st.Peers {
			if p.Peer == bid && !p.Running && p.Checkpoint >= info.UpdateSeq {
				return nil
			}
		}
		if err := wait(ctx, 10*time.Millisecond); err != nil {
			return fmt.Errorf("checkpoint of %s: %w", bid, err)
		}
	}
}

// syncBytes reads a node's barrel_sync_bytes_received_total: the frame
// bytes its pulls received (IDs and Bodies; the small requests it sent are
// not counted). -1 if the metric is missing.
func syncBytes(n *node.Node) int64 {
	mfs, err := n.Gatherer().Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() == "barrel_sync_bytes_received_total" && len(mf.GetMetric()) == 1 {
			return int64(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	return -1
}
