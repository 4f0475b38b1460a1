package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/barrel-db/barrel/node"
)

// Live workloads (issue 14):
//
//   - L1: --live-subs live-query subscribers on one node, subscriber i on
//     /k == "v<i>", each read by its own goroutine. First --n documents
//     are written by --writers goroutines to the followed database and to
//     a second one of the same node (never followed), then the
//     subscribers start and their idle memory is measured (Go heap per
//     subscriber after a GC, and heap plus goroutine stacks with the
//     reading goroutine counted), then --live-rate documents/s are
//     written for --live-seconds, each matching one subscriber: delivery
//     latency from the Put call to the event's arrival (median, p99).
//     Last, --n more documents to each database by --writers, in
//     alternating rounds (so both databases grow alike and the machine's
//     noise falls on both): docs/s with the subscribers attached, without
//     (the other database), and their ratio.
//   - L2: a WebSocket changes-feed follower on an in-process HTTP server
//     while W1b's writers Put --n documents: the writers' docs/s, the
//     follower's (from the first write until it has seen the last seq)
//     and their ratio.

type benchLiveConfig struct {
	subs    int           // L1 subscribers
	rate    int           // L1 paced writes per second
	seconds time.Duration // L1 paced phase
}

func (c *benchLiveConfig) flags(f *pflag.FlagSet) {
	f.IntVar(&c.subs, "live-subs", 1000, "L1: live-query subscribers, each on its own == value")
	f.IntVar(&c.rate, "live-rate", 1000, "L1: documents written per second while latency is measured")
	f.DurationVar(&c.seconds, "live-seconds", 10*time.Second, "L1: how long the paced writes run")
}

func (c *benchLiveConfig) validate() error {
	if c.subs < 1 || c.rate < 1 || c.seconds <= 0 {
		return fmt.Errorf("--live-subs %d, --live-rate %d, --live-seconds %v: must be positive", c.subs, c.rate, c.seconds)
	}
	return nil
}

// liveRounds is the number of alternating rounds L1's throughput is
// measured in.
const liveRounds = 10

// liveDoc is L1's document i: it matches subscriber i % subs.
func (b *bench) liveDoc(i int) map[string]any {
	body := b.gen.doc(i)
	body["k"] = "v" + strconv.Itoa(i%b.c.live.subs)
	return body
}

// heapAndStacks is the Go heap in use and the goroutine stacks, after a GC.
func heapAndStacks() (heap, stacks uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.StackInuse
}

// L1: live-query subscribers under a write load.
func (b *bench) liveQueries(ctx context.Context, n *node.Node, d *node.DB) (string, error) {
	lc := b.c.live
	if err := n.CreateDB(ctx, benchDB+"-unfollowed"); err != nil {
		return "", err
	}
	plain, err := n.DB(benchDB + "-unfollowed")
	if err != nil {
		return "", err
	}
	put := func(d *node.DB, base, count int) (time.Duration, error) {
		start := time.Now()
		err := b.fanOutN(ctx, count, func(ctx context.Context, i int) error {
			return putRetry(ctx, d, docID(base+i), b.liveDoc(base+i), b.c.backoff, nil)
		})
		return time.Since(start), err
	}
	for _, d := range []*node.DB{d, plain} {
		if _, err := put(d, 0, b.c.n); err != nil {
			return "", err
		}
	}

	heap0, stacks0 := heapAndStacks()
	issued := make([]atomic.Int64, lc.rate*int(lc.seconds/time.Second+1)) // unix ns of each paced Put's call
	var mu sync.Mutex
	var lat []time.Duration
	sctx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	g, gctx := errgroup.WithContext(sctx)
	ready := make(chan struct{}, lc.subs)
	pacedBase := 2 * b.c.n
	for s := range lc.subs {
		sub, err := d.Subscribe(gctx, node.LiveQuery{Query: node.Query{Where: []node.Cond{{Path: "/k", Op: "==", Value: "v" + strconv.Itoa(s)}}}})
		if err != nil {
			return "", err
		}
		g.Go(func() error {
			defer sub.Close()
			first := true
			for {
				e, err := sub.Next(gctx)
				if err != nil {
					if gctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("subscriber %d: %w", s, err)
				}
				if e.Kind == node.EventCurrent && first {
					first = false
					ready <- struct{}{}
				}
				if e.Kind != node.EventAdded || e.Seq == 0 {
					continue
				}
				i, err := strconv.Atoi(strings.TrimPrefix(e.Doc.ID, "doc-"))
				if err != nil || i < pacedBase || i-pacedBase >= len(issued) {
					continue // The first phase's documents, in the initial result; or the last phase's.
				}
				if at := issued[i-pacedBase].Load(); at > 0 {
					mu.Lock()
					lat = append(lat, time.Since(time.Unix(0, at)))
					mu.Unlock()
				}
			}
		})
	}
	for range lc.subs {
		select {
		case <-ready:
		case <-gctx.Done():
			return "", g.Wait()
		}
	}
	heap1, stacks1 := heapAndStacks()
	subHeapKB := float64(int64(heap1)-int64(heap0)) / 1024 / float64(lc.subs)
	subTotalKB := float64(int64(heap1+stacks1)-int64(heap0+stacks0)) / 1024 / float64(lc.subs)

	paced := lc.rate * int(lc.seconds/time.Second)
	var writeLat []time.Duration
	tick := time.NewTicker(time.Second / time.Duration(lc.rate))
	for i := range paced {
		select {
		case <-tick.C:
		case <-ctx.Done():
			tick.Stop()
			return "", ctx.Err()
		}
		now := time.Now()
		issued[i].Store(now.UnixNano())
		if err := putRetry(ctx, d, docID(pacedBase+i), b.liveDoc(pacedBase+i), b.c.backoff, nil); err != nil {
			tick.Stop()
			return "", err
		}
		writeLat = append(writeLat, time.Since(now))
	}
	tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := len(lat)
		mu.Unlock()
		if got >= paced || time.Now().After(deadline) {
			break
		}
		if err := wait(ctx, 10*time.Millisecond); err != nil {
			return "", err
		}
	}
	var with, without time.Duration
	for r := range liveRounds {
		lo, hi := b.c.n*r/liveRounds, b.c.n*(r+1)/liveRounds
		for k := range 2 {
			followed := (r+k)%2 == 0
			db, sum := plain, &without
			if followed {
				db, sum = d, &with
			}
			took, err := put(db, b.c.n+lo, hi-lo)
			if err != nil {
				return "", err
			}
			*sum += took
		}
	}
	stopSubs()
	if err := g.Wait(); err != nil {
		return "", err
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lat) < paced {
		return "", fmt.Errorf("%d of %d paced writes reached their subscriber within 10 s of the last", len(lat), paced)
	}
	slices.Sort(lat)
	slices.Sort(writeLat)
	rate := func(d time.Duration) float64 { return float64(b.c.n) / d.Seconds() }
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(b.c.n),
		"subs=" + strconv.Itoa(lc.subs),
		"rate=" + strconv.Itoa(lc.rate),
		"events=" + strconv.Itoa(len(lat)),
		"median_ms=" + ms(percentile(lat, 0.50)),
		"p99_ms=" + ms(percentile(lat, 0.99)),
		"write_median_ms=" + ms(percentile(writeLat, 0.50)),
		"sub_heap_kb=" + strconv.FormatFloat(subHeapKB, 'f', 1, 64),
		"sub_total_kb=" + strconv.FormatFloat(subTotalKB, 'f', 1, 64),
		"docs_per_s_without=" + strconv.FormatFloat(rate(without), 'f', 0, 64),
		"docs_per_s_with=" + strconv.FormatFloat(rate(with), 'f', 0, 64),
		"with_over_without=" + strconv.FormatFloat(without.Seconds()/with.Seconds(), 'f', 2, 64),
		"writers=" + strconv.Itoa(b.c.writers),
		"rss_mb=" + strconv.Itoa(b.rss()),
		"durability=" + b.c.durability,
	}, " "), nil
}

// putRetry puts one document, retrying ErrOverloaded after backoff and
// counting the retries in retries (nil: not counted).
func putRetry(ctx context.Context, d *node.DB, id string, body map[string]any, backoff time.Duration, retries *atomic.Int64) error {
	for {
		_, err := d.Put(ctx, id, body, "")
		if !errors.Is(err, node.ErrOverloaded) {
			if err != nil {
				return fmt.Errorf("put %s: %w", id, err)
			}
			return nil
		}
		if retries != nil {
			retries.Add(1)
		}
		if err := wait(ctx, backoff); err != nil {
			return err
		}
	}
}

// L2: a WebSocket changes-feed follower while W1b writes.
func (b *bench) followWebSocket(ctx context.Context, n *node.Node, d *node.DB) (string, error) {
	addr, stop, err := b.serveHTTP(n)
	if err != nil {
		return "", err
	}
	defer stop()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/dbs/"+benchDB+"/_ws", nil)
	if err != nil {
		return "", fmt.Errorf("websocket: %w", err)
	}
	defer func() { _ = c.CloseNow() }()
	c.SetReadLimit(64 << 20)
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","sub":"f","changes":{},"since":0}`)); err != nil {
		return "", err
	}
	var lastSeq atomic.Uint64
	var seen atomic.Int64
	done := make(chan struct{})
	var caughtUp time.Time
	go func() {
		defer close(done)
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			var m struct {
				Type    string `json:"type"`
				Results []any  `json:"results"`
				LastSeq uint64 `json:"last_seq"`
			}
			if json.Unmarshal(data, &m) != nil || m.Type != "changes" {
				continue
			}
			seen.Add(int64(len(m.Results)))
			lastSeq.Store(m.LastSeq)
			if m.LastSeq >= uint64(b.c.n) {
				caughtUp = time.Now()
				return
			}
		}
	}()
	start := time.Now()
	err = b.fanOut(ctx, func(ctx context.Context, i int) error {
		return putRetry(ctx, d, docID(i), b.gen.doc(i), b.c.backoff, nil)
	})
	if err != nil {
		return "", err
	}
	written := time.Since(start)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("the follower is at seq %d of %d 30 s after the last write", lastSeq.Load(), b.c.n)
	}
	if caughtUp.IsZero() {
		return "", fmt.Errorf("the follower's connection ended at seq %d of %d", lastSeq.Load(), b.c.n)
	}
	followed := caughtUp.Sub(start)
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(b.c.n),
		"writers=" + strconv.Itoa(b.c.writers),
		"docs_per_s=" + strconv.FormatFloat(float64(b.c.n)/written.Seconds(), 'f', 0, 64),
		"follower_docs_per_s=" + strconv.FormatFloat(float64(seen.Load())/followed.Seconds(), 'f', 0, 64),
		"follower_lag_ms=" + ms(followed-written),
		"follower_over_writers=" + strconv.FormatFloat(written.Seconds()/followed.Seconds(), 'f', 2, 64),
		"rss_mb=" + strconv.Itoa(b.rss()),
		"durability=" + b.c.durability,
	}, " "), nil
}
