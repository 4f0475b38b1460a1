package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/barrel-db/barrel/gossip"
	"github.com/barrel-db/barrel/node"
)

// Mesh workload (issue 15):
//
//   - W6: --mesh-peers nodes in this process, each a real libp2p host on
//     127.0.0.1 with its own Pebble store, connected in --topology (a
//     random graph of degree 4 to 8, a line, or two such clusters joined
//     by one peer). (a) --mesh-writes single writes, each on a random
//     peer, --mesh-gap apart: time from the Put call until the last peer
//     has the document in its feed (median, p99). (b) --mesh-writers peers
//     each Put --mesh-rate documents/s for --mesh-seconds: every write
//     must reach every peer; latency of each write until the last peer
//     has it (median, p99), and resources per peer (RSS, goroutines, file
//     descriptors). Every node runs with a small Pebble cache and memtable
//     (--mesh-pebble-mb, meshPebbleMB): the node's defaults are sized for
//     one node per process.

// meshPebbleMB is the default Pebble block cache and memtable of each W6
// node, in MiB each: a hundred nodes share one process, and the node's
// defaults (128 MiB, 32 MiB) are sized for one.
const meshPebbleMB = 4

// meshSettle is how long W6 lets gossipsub settle after the last
// connection, before the warm-up write: the router grafts its mesh on its
// heartbeat (1 s by default).
const meshSettle = 2 * time.Second

type benchMeshConfig struct {
	peers    int
	topology string
	writes   int           // (a) single writes
	gap      time.Duration // (a) pause after each write reached every peer
	writers  int           // (b) writing peers
	rate     int           // (b) writes per second per writer
	seconds  time.Duration // (b) duration; 0 skips (b)
	debounce time.Duration // node P2PConfig.Debounce; 0 the default
	pebbleMB int           // each node's Pebble cache and memtable, MiB; 0 the node defaults
	mesh     gossip.Mesh   // gossipsub tuning; zero the defaults
}

func (c *benchMeshConfig) flags(f *pflag.FlagSet) {
	f.IntVar(&c.peers, "mesh-peers", 100, "W6: nodes in the mesh, all in this process")
	f.StringVar(&c.topology, "topology", "random", "W6: random (degree 4-8), line, or clusters (two random halves joined by one peer)")
	f.IntVar(&c.writes, "mesh-writes", 50, "W6 (a): single writes timed until every peer has them")
	f.DurationVar(&c.gap, "mesh-gap", 200*time.Millisecond, "W6 (a): pause after each write reached every peer")
	f.IntVar(&c.writers, "mesh-writers", 10, "W6 (b): peers writing at once")
	f.IntVar(&c.rate, "mesh-rate", 10, "W6 (b): writes per second of each writer")
	f.DurationVar(&c.seconds, "mesh-seconds", 60*time.Second, "W6 (b): how long the writers write (0 skips (b))")
	f.IntVar(&c.pebbleMB, "mesh-pebble-mb", meshPebbleMB, "W6: each node's Pebble block cache and memtable, in MiB each (0: the node defaults, 128 and 32)")
	f.DurationVar(&c.debounce, "mesh-debounce", 0, "W6: the nodes' announcement debounce (0: the node default)")
	f.IntVar(&c.mesh.D, "gossip-d", 0, "W6, with --gossip-relay: gossipsub mesh degree D (0: gossipsub's 6; set with --gossip-dlo and --gossip-dhi)")
	f.IntVar(&c.mesh.Dlo, "gossip-dlo", 0, "W6, with --gossip-relay: gossipsub Dlo")
	f.IntVar(&c.mesh.Dhi, "gossip-dhi", 0, "W6, with --gossip-relay: gossipsub Dhi")
	f.DurationVar(&c.mesh.Heartbeat, "gossip-heartbeat", 0, "W6, with --gossip-relay: gossipsub router heartbeat (0: gossipsub's 1s)")
	f.BoolVar(&c.mesh.Relay, "gossip-relay", false, "W6: forward announcements through gossipsub's mesh (the default: to connected peers only)")
	f.BoolVar(&c.mesh.NoFloodPublish, "gossip-no-flood", false, "W6, with --gossip-relay: publish to mesh peers only, not every subscribed peer")
}

func (c *benchMeshConfig) validate() error {
	var errs []error
	if c.peers < 2 || c.writes < 1 || c.writers < 1 || c.rate < 1 {
		errs = append(errs, fmt.Errorf("--mesh-peers %d (at least 2), --mesh-writes %d, --mesh-writers %d, --mesh-rate %d: must be positive",
			c.peers, c.writes, c.writers, c.rate))
	}
	if c.writers > c.peers {
		errs = append(errs, fmt.Errorf("--mesh-writers %d: at most --mesh-peers %d", c.writers, c.peers))
	}
	if c.pebbleMB < 0 {
		errs = append(errs, fmt.Errorf("--mesh-pebble-mb %d: must not be negative", c.pebbleMB))
	}
	if c.gap < 0 || c.seconds < 0 || c.debounce < 0 {
		errs = append(errs, fmt.Errorf("--mesh-gap %v, --mesh-seconds %v, --mesh-debounce %v: must not be negative", c.gap, c.seconds, c.debounce))
	}
	if !slices.Contains([]string{"random", "line", "clusters"}, c.topology) {
		errs = append(errs, fmt.Errorf("--topology %q: want random, line or clusters", c.topology))
	}
	if c.topology == "clusters" && c.peers < 11 {
		errs = append(errs, fmt.Errorf("--topology clusters needs 11 peers or more, got %d", c.peers))
	}
	return errors.Join(errs...)
}

// meshEdges returns the edges of topology on k peers, deterministic for a
// seed.
func meshEdges(topology string, k int, seed uint64) [][2]int {
	r := rand.New(rand.NewPCG(seed, 15))
	switch topology {
	case "line":
		var edges [][2]int
		for i := 1; i < k; i++ {
			edges = append(edges, [2]int{i - 1, i})
		}
		return edges
	case "clusters":
		// Peers [0, h) and [h, k-1) are two random graphs; peer k-1 is
		// the only link between them, connected to 4 peers of each.
		h := (k - 1) / 2
		edges := randomGraph(r, seq(0, h), 4, 8)
		edges = append(edges, randomGraph(r, seq(h, k-1), 4, 8)...)
		for _, side := range [][]int{seq(0, h), seq(h, k-1)} {
			for _, i := range r.Perm(len(side))[:4] {
				edges = append(edges, [2]int{side[i], k - 1})
			}
		}
		return edges
	}
	return randomGraph(r, seq(0, k), 4, 8)
}

func seq(lo, hi int) []int {
	out := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// randomGraph connects peers in a connected random graph in which every
// peer has lo to hi neighbours (fewer when there are not enough peers): a
// random ring first, then random edges from peers below lo.
func randomGraph(r *rand.Rand, peers []int, lo, hi int) [][2]int {
	k := len(peers)
	lo, hi = min(lo, k-1), min(hi, k-1)
	perm := r.Perm(k)
	deg := make([]int, k)
	has := map[[2]int]bool{}
	var edges [][2]int
	add := func(a, b int) {
		if a == b || deg[a] >= hi || deg[b] >= hi {
			return
		}
		e := [2]int{min(a, b), max(a, b)}
		if has[e] {
			return
		}
		has[e] = true
		deg[a]++
		deg[b]++
		edges = append(edges, [2]int{peers[e[0]], peers[e[1]]})
	}
	if k > 2 {
		for i := range k {
			add(perm[i], perm[(i+1)%k])
		}
	} else if k == 2 {
		add(0, 1)
	}
	for a := range k {
		for tries := 0; deg[a] < lo && tries < 100*k; tries++ {
			add(a, r.IntN(k))
		}
	}
	return edges
}

// diameter is the longest shortest path of the graph, in hops.
func diameter(k int, edges [][2]int) int {
	adj := make([][]int, k)
	for _, e := range edges {
		adj[e[0]] = append(adj[e[0]], e[1])
		adj[e[1]] = append(adj[e[1]], e[0])
	}
	longest := 0
	for s := range k {
		dist := make([]int, k)
		for i := range dist {
			dist[i] = -1
		}
		dist[s] = 0
		queue := []int{s}
		for len(queue) > 0 {
			v := queue[0]
			queue = queue[1:]
			for _, w := range adj[v] {
				if dist[w] < 0 {
					dist[w] = dist[v] + 1
					longest = max(longest, dist[w])
					queue = append(queue, w)
				}
			}
		}
	}
	return longest
}

// meshTracker records when each timed write reaches each peer's feed.
type meshTracker struct {
	peers int
	mu    sync.Mutex
	w     map[string]*meshWrite
}

type meshWrite struct {
	start time.Time
	seen  int
	took  time.Duration // set when the last peer has it
	done  chan struct{} // closed then
}

func newMeshTracker(peers int) *meshTracker {
	return &meshTracker{peers: peers, w: map[string]*meshWrite{}}
}

// add registers a write about to start.
func (t *meshTracker) add(id string) *meshWrite {
	w := &meshWrite{start: time.Now(), done: make(chan struct{})}
	t.mu.Lock()
	t.w[id] = w
	t.mu.Unlock()
	return w
}

// seen records that a peer's feed holds id (each document is written
// once, so each peer reports it once).
func (t *meshTracker) seen(id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.w[id]
	if w == nil {
		return
	}
	w.seen++
	if w.seen == t.peers {
		w.took = at.Sub(w.start)
		close(w.done)
	}
}

// follow reports every entry of d's feed to t until ctx ends.
func (t *meshTracker) follow(ctx context.Context, d *node.DB) error {
	var since uint64
	for {
		changes, _, err := d.Changes(ctx, since, 0)
		if err != nil {
			return err
		}
		now := time.Now()
		for _, c := range changes {
			t.seen(c.ID, now)
			since = c.Seq
		}
		if len(changes) > 0 {
			continue
		}
		if err := d.WaitChanges(ctx, since); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// W6: a many-peer mesh in one process.
func (b *bench) mesh(ctx context.Context) (line string, err error) {
	mc := b.c.mesh
	k := mc.peers
	edges := meshEdges(mc.topology, k, b.c.seed)
	setupStart := time.Now()
	nodes := make([]*node.Node, k)
	dbs := make([]*node.DB, k)
	defer func() {
		// Closed in parallel: a node's Close waits for its network parts.
		var eg errgroup.Group
		eg.SetLimit(8)
		for _, n := range nodes {
			if n != nil {
				eg.Go(func() error { return n.Close() })
			}
		}
		if cerr := eg.Wait(); cerr != nil && err == nil {
			err = fmt.Errorf("close node: %w", cerr)
		}
	}()
	for i := range k {
		cfg := node.Config{
			DataDir:    b.dir + "/" + strconv.Itoa(i),
			Durability: b.c.durability,
			Logger:     b.log,
			CacheBytes: int64(mc.pebbleMB) << 20,
			MemTable:   int64(mc.pebbleMB) << 20,
			P2P: &node.P2PConfig{
				Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, NoDHT: true,
				Debounce:   mc.debounce,
				GossipMesh: mc.mesh,
			},
		}
		n, err := node.Open(ctx, cfg)
		if err != nil {
			return "", fmt.Errorf("open peer %d: %w", i, err)
		}
		nodes[i] = n
		if err := n.CreateDB(ctx, benchDB); err != nil {
			return "", err
		}
		if dbs[i], err = n.DB(benchDB); err != nil {
			return "", err
		}
	}
	openSeconds := time.Since(setupStart).Seconds()
	var eg errgroup.Group
	eg.SetLimit(8)
	for _, e := range edges {
		eg.Go(func() error {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := connect(cctx, nodes[e[0]], nodes[e[1]]); err != nil {
				return fmt.Errorf("connect %d-%d: %w", e[0], e[1], err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return "", err
	}
	tr := newMeshTracker(k)
	fctx, stopFollow := context.WithCancel(ctx)
	var followers errgroup.Group
	for _, d := range dbs {
		followers.Go(func() error { return tr.follow(fctx, d) })
	}
	defer func() {
		stopFollow()
		if ferr := followers.Wait(); ferr != nil && err == nil {
			err = fmt.Errorf("follow feed: %w", ferr)
		}
	}()
	if err := wait(ctx, meshSettle); err != nil {
		return "", err
	}
	// A warm-up write reaches everyone before anything is timed.
	if err := meshPut(ctx, tr, dbs[0], "warmup", map[string]any{}); err != nil {
		return "", err
	}
	setupSeconds := time.Since(setupStart).Seconds()
	stop, err := b.profile()
	if err != nil {
		return "", err
	}
	defer stop(&err)
	cpuStart := cpuTime()

	// (a) single writes.
	r := rand.New(rand.NewPCG(b.c.seed, 6))
	single := make([]time.Duration, mc.writes)
	for i := range single {
		id := "one-" + strconv.Itoa(i)
		w := tr.add(id)
		if err := putRetry(ctx, dbs[r.IntN(k)], id, b.gen.doc(i), b.c.backoff, nil); err != nil {
			return "", err
		}
		if err := waitWrite(ctx, w, id); err != nil {
			return "", err
		}
		single[i] = w.took
		if err := wait(ctx, mc.gap); err != nil {
			return "", err
		}
	}
	slices.Sort(single)
	fields := []string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(k),
		"topology=" + mc.topology,
		"edges=" + strconv.Itoa(len(edges)),
		"diameter=" + strconv.Itoa(diameter(k, edges)),
		"open_seconds=" + strconv.FormatFloat(openSeconds, 'f', 1, 64),
		"setup_seconds=" + strconv.FormatFloat(setupSeconds, 'f', 1, 64),
		"writes=" + strconv.Itoa(mc.writes),
		"median_ms=" + ms(percentile(single, 0.50)),
		"p99_ms=" + ms(percentile(single, 0.99)),
	}

	// (b) writers at a steady rate.
	load, missing, err := b.meshLoad(ctx, tr, dbs)
	if err != nil {
		return "", err
	}
	slices.Sort(load)
	loadMedian, loadP99, loadMax := time.Duration(0), time.Duration(0), time.Duration(0)
	if len(load) > 0 {
		loadMedian, loadP99, loadMax = percentile(load, 0.50), percentile(load, 0.99), load[len(load)-1]
	}
	// Work per write and peer, from the nodes' own counters: pulls run and
	// announcements received (heartbeats and anti-entropy included).
	written := float64(1+mc.writes+len(load)+missing) * float64(k)
	pulls, anns := meshCounters(nodes)
	cpu := cpuTime() - cpuStart
	rss := b.rss()
	fds := countFDs()
	gor := runtime.NumGoroutine()
	perPeer := func(v int) string {
		if v < 0 {
			return "-1"
		}
		return strconv.FormatFloat(float64(v)/float64(k), 'f', 1, 64)
	}
	fields = append(fields,
		"writers="+strconv.Itoa(mc.writers),
		"rate="+strconv.Itoa(mc.rate),
		"load_seconds="+strconv.FormatFloat(mc.seconds.Seconds(), 'f', 0, 64),
		"load_writes="+strconv.Itoa(len(load)+missing),
		"load_missing="+strconv.Itoa(missing),
		"load_median_ms="+ms(loadMedian),
		"load_p99_ms="+ms(loadP99),
		"load_max_ms="+ms(loadMax),
		"cpu_ms_per_write_peer="+strconv.FormatFloat(float64(cpu)/float64(time.Millisecond)/written, 'f', 3, 64),
		"pulls_per_write_peer="+strconv.FormatFloat(pulls/written, 'f', 2, 64),
		"anns_per_write_peer="+strconv.FormatFloat(anns/written, 'f', 2, 64),
		"rss_mb="+strconv.Itoa(rss),
		"rss_per_peer_mb="+perPeer(rss),
		"goroutines_per_peer="+perPeer(gor),
		"fds_per_peer="+perPeer(fds),
		"durability="+b.c.durability,
	)
	return strings.Join(fields, " "), nil
}

// meshPut writes one untimed document and waits until every peer has it.
func meshPut(ctx context.Context, tr *meshTracker, d *node.DB, id string, body map[string]any) error {
	w := tr.add(id)
	if _, err := d.Put(ctx, id, body, ""); err != nil {
		return fmt.Errorf("put %s: %w", id, err)
	}
	return waitWrite(ctx, w, id)
}

// waitWrite waits until w reached every peer, for at most benchReplTimeout.
func waitWrite(ctx context.Context, w *meshWrite, id string) error {
	t := time.NewTimer(benchReplTimeout)
	defer t.Stop()
	select {
	case <-w.done:
		return nil
	case <-t.C:
		return fmt.Errorf("write %s did not reach every peer within %v", id, benchReplTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// meshDrain bounds W6 (b)'s wait, after the writers stop, for the writes
// still travelling: those that have not reached every peer by then are
// counted as missing.
const meshDrain = 2 * time.Minute

// meshLoad runs W6 (b): the latency of every write that reached every
// peer, and how many did not within meshDrain of the end.
func (b *bench) meshLoad(ctx context.Context, tr *meshTracker, dbs []*node.DB) (lat []time.Duration, missing int, err error) {
	mc := b.c.mesh
	if mc.seconds == 0 {
		return nil, 0, nil
	}
	var mu sync.Mutex
	var writes []*meshWrite
	var eg errgroup.Group
	every := time.Second / time.Duration(mc.rate)
	for wi := range mc.writers {
		d := dbs[wi*len(dbs)/mc.writers]
		eg.Go(func() error {
			t := time.NewTicker(every)
			defer t.Stop()
			end := time.Now().Add(mc.seconds)
			for i := 0; time.Now().Before(end); i++ {
				id := "load-" + strconv.Itoa(wi) + "-" + strconv.Itoa(i)
				w := tr.add(id)
				if err := putRetry(ctx, d, id, b.gen.doc(i), b.c.backoff, nil); err != nil {
					return err
				}
				mu.Lock()
				writes = append(writes, w)
				mu.Unlock()
				select {
				case <-t.C:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, 0, err
	}
	drain := time.NewTimer(meshDrain)
	defer drain.Stop()
	late := false // meshDrain passed: count what arrived, wait no more
	for _, w := range writes {
		if !late {
			select {
			case <-w.done:
			case <-drain.C:
				late = true
			case <-ctx.Done():
				return nil, 0, ctx.Err()
			}
		}
		select {
		case <-w.done:
			lat = append(lat, w.took)
		default:
		}
	}
	return lat, len(writes) - len(lat), nil
}

// meshCounters sums, over nodes, the pulls they ran (client sync
// sessions) and the announcements they received.
func meshCounters(nodes []*node.Node) (pulls, anns float64) {
	for _, n := range nodes {
		mfs, err := n.Gatherer().Gather()
		if err != nil {
			continue
		}
		for _, mf := range mfs {
			switch mf.GetName() {
			case "barrel_sync_sessions_total":
				for _, m := range mf.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "role" && l.GetValue() == "client" {
							pulls += m.GetCounter().GetValue()
						}
					}
				}
			case "barrel_gossip_announcements_received_total":
				for _, m := range mf.GetMetric() {
					anns += m.GetCounter().GetValue()
				}
			}
		}
	}
	return pulls, anns
}

// cpuTime is the CPU time (user and system) the process used so far; 0
// where getrusage fails.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countFDs counts the process's open file descriptors; -1 where
// /proc/self/fd is unavailable.
func countFDs() int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(es)
}
