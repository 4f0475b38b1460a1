package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/httpapi"
	"github.com/barrel-db/barrel/node"
	bsync "github.com/barrel-db/barrel/sync"
)

// Regulation workloads (issue 15, "Regulation"; docs/design.md and
// docs/sync-protocol.md, "Budgets"): what one client or peer that floods
// costs another that writes at a steady --reg-rate, with the budgets on
// and off. Each phase lasts --reg-seconds; the phases alternate, --reg-rounds
// times over (the latencies of a phase's rounds pooled), so the machine's
// drift falls on both settings alike.
//
//   - R1 (HTTP): a node serving its HTTP API on 127.0.0.1 twice, with a
//     per-client budget of --reg-client-rate requests/s and without. A
//     steady client connecting from 127.0.0.3 PUTs --reg-rate documents/s
//     and times each; first alone, then while a client from 127.0.0.2
//     PUTs as fast as --reg-flooders connections allow; then both again on
//     the unregulated server.
//   - R2 (sync server): a server node holding --reg-docs documents and a
//     steady peer replicating it over libp2p on 127.0.0.1; the server
//     writes --reg-rate documents/s, each timed from its Put call until
//     the steady peer's feed holds it. First alone, then while a third
//     peer pulls the whole database in a loop from --reg-pullers streams:
//     a raw client of the sync protocol whose store holds nothing and
//     keeps no checkpoint, so every pull lists the whole feed and fetches
//     every body, the most a peer can ask of the server. Then the server
//     reopens with its per-peer budgets off and both phases run again.
//
// The flooders run in this process, on the same cores as the server: what
// they cost the steady writer is partly CPU they take from it, which no
// budget returns.

type benchRegConfig struct {
	seconds    time.Duration // each phase
	rounds     int           // times the four phases run, alternating
	rate       int           // the steady writer's documents per second
	clientRate float64       // R1: the regulated server's requests/s per client
	flooders   int           // R1: the flooding client's connections
	docs       int           // R2: documents on the server before the phases
	pullers    int           // R2: the flooding peer's concurrent pulls
	peerBodies int64         // R2: the server's bodies/s per peer; 0 the default
}

func (c *benchRegConfig) flags(f *pflag.FlagSet) {
	f.DurationVar(&c.seconds, "reg-seconds", 5*time.Second, "R1, R2: how long each phase (alone, flooded; budgets on, off) writes")
	f.IntVar(&c.rounds, "reg-rounds", 1, "R1, R2: times the four phases run one after another (each phase's latencies pooled over its rounds)")
	f.IntVar(&c.rate, "reg-rate", 50, "R1, R2: documents the steady writer writes per second")
	f.Float64Var(&c.clientRate, "reg-client-rate", 100, "R1: the regulated server's budget per client, requests/s (http.client_rate; burst twice that)")
	f.IntVar(&c.flooders, "reg-flooders", 16, "R1: connections of the flooding client")
	f.IntVar(&c.docs, "reg-docs", 10000, "R2: documents the server holds before the phases (each flooding pull fetches them all)")
	f.IntVar(&c.pullers, "reg-pullers", 4, "R2: concurrent pulls of the flooding peer (at most the server's 8 streams per peer)")
	f.Int64Var(&c.peerBodies, "reg-peer-bodies", 0, "R2: the server's budget per peer with budgets on, change bodies/s (0: the node default, 100000)")
}

func (c *benchRegConfig) validate() error {
	var errs []error
	if c.seconds <= 0 || c.rounds < 1 || c.rate < 1 || c.clientRate <= 0 || c.flooders < 1 || c.docs < 1 || c.peerBodies < 0 {
		errs = append(errs, fmt.Errorf("--reg-seconds %v, --reg-rounds %d, --reg-rate %d, --reg-client-rate %g, --reg-flooders %d, --reg-docs %d: must be positive; --reg-peer-bodies %d: must not be negative",
			c.seconds, c.rounds, c.rate, c.clientRate, c.flooders, c.docs, c.peerBodies))
	}
	if c.pullers < 1 || c.pullers > bsync.DefaultMaxPeerStreams {
		errs = append(errs, fmt.Errorf("--reg-pullers %d: want 1 to %d (more are answered busy)", c.pullers, bsync.DefaultMaxPeerStreams))
	}
	if float64(c.rate) >= c.clientRate {
		errs = append(errs, fmt.Errorf("--reg-rate %d: must be under --reg-client-rate %g, or the steady client is refused too", c.rate, c.clientRate))
	}
	return errors.Join(errs...)
}

// writes is how many documents the steady writer writes in one phase.
func (c *benchRegConfig) writes() int {
	return max(1, int(float64(c.rate)*c.seconds.Seconds()))
}

// regDrain bounds the wait, after a phase's last write, for its writes
// still travelling to the steady peer; those not there by then are
// counted as missing.
const regDrain = 30 * time.Second

// regHTTPTimeout bounds one request of R1's clients.
const regHTTPTimeout = 30 * time.Second

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (Linux answers on all of 127.0.0.0/8), so the server sees it
// as its own client.
func clientFrom(ip string, conns int) (*http.Client, *http.Transport) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	return &http.Client{Timeout: regHTTPTimeout, Transport: tr}, tr
}

// httpFlood counts the flooding client's answers.
type httpFlood struct {
	accepted, limited, overloaded atomic.Int64
}

// R1: the steady HTTP client beside a flooding one, with and without
// per-client budgets.
func (b *bench) regulateHTTP(ctx context.Context, n *node.Node, db string) (string, error) {
	rc := b.c.reg
	regAddr, stopReg, err := b.serveHTTPWith(n, httpapi.Config{Logger: b.log, ClientRate: rc.clientRate})
	if err != nil {
		return "", err
	}
	defer stopReg()
	offAddr, stopOff, err := b.serveHTTPWith(n, httpapi.Config{Logger: b.log})
	if err != nil {
		return "", err
	}
	defer stopOff()

	steady, str := clientFrom("127.0.0.3", 2)
	defer str.CloseIdleConnections()
	body, err := json.Marshal(b.gen.doc(0))
	if err != nil {
		return "", err
	}
	var refused int // the steady client's 429s: none while under its budget
	// run runs one phase; with fl, beside a flood whose answers it counts.
	run := func(addr, phase string, fl *httpFlood) ([]time.Duration, error) {
		base := "http://" + addr + "/dbs/" + db + "/docs/"
		// One untimed write first: the first request of a server opens
		// its connection and warms what the first write to a database
		// touches.
		if _, _, err := steadyHTTP(ctx, steady, base+phase+"-warmup-", body, rc.rate, 1); err != nil {
			return nil, err
		}
		stop := make(chan struct{})
		var g errgroup.Group
		if fl != nil {
			fc, ftr := clientFrom("127.0.0.2", rc.flooders)
			defer ftr.CloseIdleConnections()
			for w := range rc.flooders {
				g.Go(func() error { return floodHTTP(ctx, stop, fc, base+phase+"-flood-"+strconv.Itoa(w)+"-", body, fl) })
			}
		}
		lat, r, err := steadyHTTP(ctx, steady, base+phase+"-steady-", body, rc.rate, rc.writes())
		refused += r
		close(stop)
		if ferr := g.Wait(); err == nil {
			err = ferr
		}
		return lat, err
	}
	flood, offFlood := &httpFlood{}, &httpFlood{}
	phases := []struct {
		addr, phase string
		flood       *httpFlood
	}{{regAddr, "alone", nil}, {regAddr, "flood", flood}, {offAddr, "off-alone", nil}, {offAddr, "off-flood", offFlood}}
	var lat [4][]time.Duration // of each phase, its rounds pooled
	for round := range rc.rounds {
		for i, p := range phases {
			name := p.phase + "-" + strconv.Itoa(round)
			l, err := run(p.addr, name, p.flood)
			if err != nil {
				return "", fmt.Errorf("phase %s: %w", name, err)
			}
			lat[i] = append(lat[i], l...)
		}
	}
	for i := range lat {
		slices.Sort(lat[i])
	}
	alone, flooded, offAlone, offFlooded := lat[0], lat[1], lat[2], lat[3]
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(rc.writes()),
		"seconds=" + secs(rc.seconds),
		"rounds=" + strconv.Itoa(rc.rounds),
		"rate=" + strconv.Itoa(rc.rate),
		"client_rate=" + strconv.FormatFloat(rc.clientRate, 'f', -1, 64),
		"flooders=" + strconv.Itoa(rc.flooders),
		"alone_median_ms=" + ms(percentile(alone, 0.50)),
		"alone_p99_ms=" + ms(percentile(alone, 0.99)),
		"flood_median_ms=" + ms(percentile(flooded, 0.50)),
		"flood_p99_ms=" + ms(percentile(flooded, 0.99)),
		"ratio=" + ratio(percentile(flooded, 0.99), percentile(alone, 0.99)),
		"flood_accepted=" + strconv.FormatInt(flood.accepted.Load(), 10),
		"flood_refused=" + strconv.FormatInt(flood.limited.Load(), 10),
		"off_alone_median_ms=" + ms(percentile(offAlone, 0.50)),
		"off_alone_p99_ms=" + ms(percentile(offAlone, 0.99)),
		"off_flood_median_ms=" + ms(percentile(offFlooded, 0.50)),
		"off_flood_p99_ms=" + ms(percentile(offFlooded, 0.99)),
		"off_ratio=" + ratio(percentile(offFlooded, 0.99), percentile(offAlone, 0.99)),
		"off_flood_accepted=" + strconv.FormatInt(offFlood.accepted.Load(), 10),
		"off_flood_overloaded=" + strconv.FormatInt(offFlood.overloaded.Load(), 10),
		"steady_refused=" + strconv.Itoa(refused),
		"rss_mb=" + strconv.Itoa(b.rss()),
		"durability=" + b.c.durability,
	}, " "), nil
}

// ratio formats a/b to two decimals.
func ratio(a, b time.Duration) string {
	return strconv.FormatFloat(float64(a)/float64(max(b, 1)), 'f', 2, 64)
}

// steadyHTTP PUTs n documents at rate per second (a write that runs late
// delays the next, as a client waiting on its answers does) and returns
// each latency, sorted, and the writes refused by the budget (429, counted,
// not retried). Any other answer but 201 is an error.
func steadyHTTP(ctx context.Context, c *http.Client, prefix string, body []byte, rate, n int) ([]time.Duration, int, error) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	lat := make([]time.Duration, 0, n)
	refused := 0
	for i := range n {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, refused, ctx.Err()
		}
		start := time.Now()
		code, err := putBody(ctx, c, prefix+strconv.Itoa(i), body)
		if err != nil {
			return nil, refused, fmt.Errorf("steady write %d: %w", i, err)
		}
		switch code {
		case http.StatusCreated:
			lat = append(lat, time.Since(start))
		case http.StatusTooManyRequests:
			refused++
		default:
			return nil, refused, fmt.Errorf("steady write %d: status %d, want 201", i, code)
		}
	}
	if len(lat) == 0 {
		return nil, refused, fmt.Errorf("all %d steady writes refused", n)
	}
	slices.Sort(lat)
	return lat, refused, nil
}

// floodHTTP PUTs documents one after another, at least one, until stop is
// closed (it finishes the request under way: one cancelled midway would be
// logged by the server as a failure), counting the answers in fl. An
// answer other than 201, 429 or 503 is an error.
func floodHTTP(ctx context.Context, stop <-chan struct{}, c *http.Client, prefix string, body []byte, fl *httpFlood) error {
	for i := 0; ; i++ {
		if stopped(stop) && i > 0 {
			return nil
		}
		code, err := putBody(ctx, c, prefix+strconv.Itoa(i), body)
		if err != nil {
			return fmt.Errorf("flood: %w", err)
		}
		switch code {
		case http.StatusCreated:
			fl.accepted.Add(1)
		case http.StatusTooManyRequests:
			fl.limited.Add(1)
		case http.StatusServiceUnavailable:
			fl.overloaded.Add(1)
		default:
			return fmt.Errorf("flood: status %d", code)
		}
	}
}

// stopped reports whether stop is closed.
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// putBody PUTs one JSON document at url and returns the status.
func putBody(ctx context.Context, c *http.Client, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// R2: the steady peer's arrival latency beside a peer pulling in a loop,
// with the server's per-peer budgets on and off.
func (b *bench) regulateSync(ctx context.Context) (line string, err error) {
	rc := b.c.reg
	dirS := b.dir + "/server"
	budget := func(on bool) func(*node.P2PConfig) {
		return func(c *node.P2PConfig) {
			c.SyncPeerBodiesPerSec, c.SyncPeerBytesPerSec = rc.peerBodies, 0 // 0: the defaults
			if !on {
				c.SyncPeerBodiesPerSec, c.SyncPeerBytesPerSec = -1, -1
			}
		}
	}
	ns, ds, err := b.openPeer(ctx, dirS, false)
	if err != nil {
		return "", err
	}
	defer func() { closePeer(ns, &err) }() // the server as last reopened
	if err := b.load(ctx, ds, 0, rc.docs); err != nil {
		return "", err
	}
	np, dp, err := b.openPeer(ctx, b.dir+"/steady", true)
	if err != nil {
		return "", err
	}
	defer closePeer(np, &err)
	fl, err := newFlooder(b.log)
	if err != nil {
		return "", err
	}
	defer func() { _ = fl.h.Close() }() // closing a client-only host loses nothing
	tr := newMeshTracker(1)
	fctx, stopFollow := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() { followed <- tr.follow(fctx, dp) }()
	defer func() {
		stopFollow()
		if ferr := <-followed; ferr != nil && err == nil {
			err = fmt.Errorf("follow the steady peer's feed: %w", ferr)
		}
	}()

	type result struct {
		lat     []time.Duration
		missing int
		flood   *syncFlood
		waited  float64 // seconds the server's sessions waited on budgets
	}
	var res [4]result // of each phase, its rounds pooled
	for i := range res {
		res[i].flood = &syncFlood{}
	}
	phases := []struct {
		name  string
		on    bool
		flood bool
	}{{"alone", true, false}, {"flood", true, true}, {"off-alone", false, false}, {"off-flood", false, true}}
	for k := range rc.rounds * len(phases) {
		p, name := phases[k%len(phases)], phases[k%len(phases)].name+"-"+strconv.Itoa(k/len(phases))
		if k == 0 || p.on != phases[(k-1)%len(phases)].on {
			// The budgets are the server's configuration: reopen it.
			cerr := ns.Close()
			ns = nil
			if cerr != nil {
				return "", fmt.Errorf("close node: %w", cerr)
			}
			if ns, ds, err = b.openPeerWith(ctx, dirS, budget(p.on)); err != nil {
				return "", err
			}
			if err := connect(ctx, np, ns); err != nil {
				return "", err
			}
			if err := waitCount(ctx, dp, rc.docs); err != nil {
				return "", fmt.Errorf("first replication: %w", err)
			}
			if err := meshPut(ctx, tr, ds, "warmup-"+name, map[string]any{}); err != nil {
				return "", err
			}
		}
		r := &res[k%len(phases)]
		waited0 := metric(ns, "barrel_sync_budget_wait_seconds_total")
		var g errgroup.Group
		stop := make(chan struct{})
		if p.flood {
			g.Go(func() error { return fl.flood(ctx, stop, ns, rc.pullers, r.flood) })
		}
		lat, missing, err := b.steadySync(ctx, tr, ds, name)
		close(stop)
		if ferr := g.Wait(); err == nil {
			err = ferr
		}
		if err != nil {
			return "", fmt.Errorf("phase %s: %w", name, err)
		}
		r.lat, r.missing = append(r.lat, lat...), r.missing+missing
		r.waited += metric(ns, "barrel_sync_budget_wait_seconds_total") - waited0
	}
	for i := range res {
		slices.Sort(res[i].lat)
	}

	alone, flood, offAlone, offFlood := res[0], res[1], res[2], res[3]
	bodies := rc.peerBodies
	if bodies == 0 {
		bodies = bsync.DefaultPeerBodiesPerSec
	}
	perS := func(f *syncFlood) string {
		return strconv.FormatFloat(float64(f.bodies.Load())/time.Duration(max(1, f.nanos.Load())).Seconds(), 'f', 0, 64)
	}
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(rc.docs),
		"seconds=" + secs(rc.seconds),
		"rounds=" + strconv.Itoa(rc.rounds),
		"rate=" + strconv.Itoa(rc.rate),
		"pullers=" + strconv.Itoa(rc.pullers),
		"peer_bodies_per_s=" + strconv.FormatInt(bodies, 10),
		"alone_median_ms=" + ms(percentile(alone.lat, 0.50)),
		"alone_p99_ms=" + ms(percentile(alone.lat, 0.99)),
		"flood_median_ms=" + ms(percentile(flood.lat, 0.50)),
		"flood_p99_ms=" + ms(percentile(flood.lat, 0.99)),
		"ratio=" + ratio(percentile(flood.lat, 0.99), percentile(alone.lat, 0.99)),
		"flood_pulls=" + strconv.FormatInt(flood.flood.pulls.Load(), 10),
		"flood_bodies_per_s=" + perS(flood.flood),
		"budget_wait_s=" + strconv.FormatFloat(flood.waited, 'f', 2, 64),
		"off_alone_median_ms=" + ms(percentile(offAlone.lat, 0.50)),
		"off_alone_p99_ms=" + ms(percentile(offAlone.lat, 0.99)),
		"off_flood_median_ms=" + ms(percentile(offFlood.lat, 0.50)),
		"off_flood_p99_ms=" + ms(percentile(offFlood.lat, 0.99)),
		"off_ratio=" + ratio(percentile(offFlood.lat, 0.99), percentile(offAlone.lat, 0.99)),
		"off_flood_pulls=" + strconv.FormatInt(offFlood.flood.pulls.Load(), 10),
		"off_flood_bodies_per_s=" + perS(offFlood.flood),
		"flood_busy=" + strconv.FormatInt(flood.flood.busy.Load()+offFlood.flood.busy.Load(), 10),
		"missing=" + strconv.Itoa(alone.missing+flood.missing+offAlone.missing+offFlood.missing),
		"rss_mb=" + strconv.Itoa(b.rss()),
		"durability=" + b.c.durability,
	}, " "), nil
}

// steadySync writes the phase's documents on d at --reg-rate, each timed
// until the steady peer's feed holds it, and returns the latencies of
// those that arrived (sorted) and how many had not within regDrain of the
// last write.
func (b *bench) steadySync(ctx context.Context, tr *meshTracker, d *node.DB, phase string) ([]time.Duration, int, error) {
	rc := b.c.reg
	tick := time.NewTicker(time.Second / time.Duration(rc.rate))
	defer tick.Stop()
	ws := make([]*meshWrite, rc.writes())
	for i := range ws {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		id := phase + "-" + docID(i)
		ws[i] = tr.add(id)
		if _, err := d.Put(ctx, id, b.gen.doc(i), ""); err != nil {
			return nil, 0, fmt.Errorf("put %s: %w", id, err)
		}
	}
	deadline := time.NewTimer(regDrain)
	defer deadline.Stop()
	var lat []time.Duration
	missing, expired := 0, false
	for _, w := range ws {
		if !expired { // After the deadline, count the rest without waiting.
			select {
			case <-w.done:
			case <-deadline.C:
				expired = true
			case <-ctx.Done():
				return nil, 0, ctx.Err()
			}
		}
		select {
		case <-w.done:
			lat = append(lat, w.took)
		default:
			missing++
		}
	}
	if len(lat) == 0 {
		return nil, missing, fmt.Errorf("none of %d writes reached the steady peer within %v", len(ws), regDrain)
	}
	slices.Sort(lat)
	return lat, missing, nil
}

// syncFlood counts the flooding peer's pulls.
type syncFlood struct {
	pulls, bodies, busy atomic.Int64
	nanos               atomic.Int64 // how long it flooded
}

// flooder is R2's flooding peer: a libp2p host of its own (so the server
// knows it as another peer, with a budget of its own) and a sync client
// whose store holds nothing, so every pull lists the feed from its start
// and fetches every body.
type flooder struct {
	h host.Host
	c *bsync.Client
}

func newFlooder(log *slog.Logger) (*flooder, error) {
	h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.DisableRelay())
	if err != nil {
		return nil, fmt.Errorf("flooding host: %w", err)
	}
	c := bsync.NewClient(h, emptyStore{}, bsync.Config{Logger: log, MaxFrameBytes: crdt.MaxChangeBytes + 64<<10})
	return &flooder{h: h, c: c}, nil
}

// flood pulls the whole of server's database in a loop from pullers
// streams until stop is closed, counting in fl. Each stream's first pull
// runs to its end, so each pulls at least once; the pulls under way when
// stop closes are cut (the server logs a failed session), or with a tight
// budget the last ones would run on for seconds past the phase.
func (f *flooder) flood(ctx context.Context, stop <-chan struct{}, server *node.Node, pullers int, fl *syncFlood) error {
	if err := dialNode(ctx, f.h, server); err != nil {
		return err
	}
	start := time.Now()
	defer func() { fl.nanos.Add(int64(time.Since(start))) }()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-sctx.Done():
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	for range pullers {
		g.Go(func() error {
			for i := 0; i == 0 || sctx.Err() == nil; i++ {
				pctx := sctx
				if i == 0 {
					pctx = gctx
				}
				st, err := f.c.Pull(pctx, server.PeerID(), benchDB, nil)
				fl.bodies.Add(int64(st.Fetched))
				switch {
				case gctx.Err() != nil:
					return gctx.Err()
				case pctx.Err() != nil:
					return nil // stopped
				case errors.Is(err, bsync.ErrBusy):
					fl.busy.Add(1)
					if err := wait(sctx, 10*time.Millisecond); err != nil {
						return nil
					}
				case err != nil:
					return fmt.Errorf("flooding pull: %w", err)
				default:
					fl.pulls.Add(1)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// dialNode connects h to n's first address.
func dialNode(ctx context.Context, h host.Host, n *node.Node) error {
	addrs := n.Addrs()
	if len(addrs) == 0 {
		return errors.New("dial: node has no address")
	}
	ai, err := peer.AddrInfoFromString(addrs[0])
	if err != nil {
		return fmt.Errorf("dial %s: %w", addrs[0], err)
	}
	if err := h.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("dial %s: %w", addrs[0], err)
	}
	return nil
}

// emptyStore is the flooding peer's store: it holds nothing, keeps no
// checkpoint and drops what it is sent, so each pull asks the server for
// its whole feed again. It serves nothing.
type emptyStore struct{}

func (emptyStore) AuthorizeRead(context.Context, string, peer.ID) error { return bsync.ErrForbidden }
func (emptyStore) Feed(context.Context, string, uint64, int, *bsync.Filter) ([]bsync.Entry, uint64, error) {
	return nil, 0, bsync.ErrNoDB
}

func (emptyStore) Has(_ context.Context, _ string, ids []crdt.ID) ([]bool, error) {
	return make([]bool, len(ids)), nil
}

func (emptyStore) Changes(context.Context, string, []crdt.ID) ([][]byte, error) {
	return nil, bsync.ErrNoDB
}

func (emptyStore) Apply(_ context.Context, _ string, _ peer.ID, changes []*crdt.Change) (int, error) {
	return len(changes), nil
}

func (emptyStore) Checkpoint(context.Context, string, peer.ID) (uint64, error)  { return 0, nil }
func (emptyStore) SetCheckpoint(context.Context, string, peer.ID, uint64) error { return nil }
func (emptyStore) Databases(context.Context) ([]bsync.Replicated, error)        { return nil, nil }
