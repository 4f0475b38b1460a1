package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	bsync "github.com/barrel-db/barrel/sync"
)

// Blob fetching, the trigger side. A received change that references a
// blob this node lacks records a want (blob_replica.go) and hands it to
// the fetcher, which pulls it in the background: from the peer that sent
// the change first, then from the other connected peers; at most
// maxBlobFetches transfers at once, one per blob; a failed round is
// retried after a delay that doubles from P2PConfig.BlobRetry up to
// blobRetryMax (notYetRetryMax when every peer only lacked the blob). Nothing waits for a fetch: the writer loop has answered
// before the want is noted, and a read of an attachment whose blob has not
// arrived answers ErrNotFound at once.

const (
	// maxBlobFetches bounds the concurrent blob transfers of a node.
	maxBlobFetches = 4
	// maxWantedBlobs bounds the wants held in memory; more stay in their
	// durable records and are loaded again once the fetcher drained.
	maxWantedBlobs = 100_000
	// maxBlobPeers bounds the peers one round asks for a blob.
	maxBlobPeers = 16
	// defaultBlobRetry and blobRetryMax bound the retry delays.
	defaultBlobRetry = 500 * time.Millisecond
	blobRetryMax     = 30 * time.Second
	// notYetRetryMax caps the delay when every peer answered that it
	// lacks the blob: a peer between us and the author is likely fetching
	// it (A to B to C), so asking again soon costs one short stream.
	notYetRetryMax = 4 * time.Second
)

type blobKey struct {
	db string
	dg digest
}

// wantState is the fetcher's view of one wanted blob.
type wantState struct {
	length  int64
	from    peer.ID // the peer whose change referenced it ("" unknown)
	running bool
	fails   int
	next    time.Time // not before
}

// blobFetcher pulls wanted blobs from peers. Run owns its goroutines.
type blobFetcher struct {
	n      *Node
	host   host.Host
	client *bsync.BlobClient
	retry  time.Duration
	log    *slog.Logger
	wake   chan struct{} // capacity 1: something changed

	mu struct { // guards wants, running and overflow
		sync.Mutex
		wants    map[blobKey]*wantState
		running  int
		overflow bool // a want was left to its durable record
	}
}

// startBlobs starts the blob server and fetcher of a starting network on
// eg; np.blobs is the fetcher.
func (n *Node) startBlobs(ctx context.Context, eg *netGroup, np *netParts) {
	cfg := bsync.BlobConfig{Logger: n.log.With("component", "blob"), Registerer: n.registerer}
	store := blobStore{syncStore{n}}
	srv := bsync.NewBlobServer(np.host, store, cfg)
	f := &blobFetcher{
		n: n, host: np.host, client: bsync.NewBlobClient(np.host, store, cfg),
		retry: n.cfg.P2P.BlobRetry, log: cfg.Logger, wake: make(chan struct{}, 1),
	}
	if f.retry <= 0 {
		f.retry = defaultBlobRetry
	}
	f.mu.wants = map[blobKey]*wantState{}
	np.blobs = f
	eg.Go(ctx, "blob_server", srv.Run)
	eg.Go(ctx, "blobs", f.Run)
}

// want asks for blob dg of db, referenced by a change from peer from. It
// never blocks; a want already known is retried at once (a new sender may
// hold the blob).
func (f *blobFetcher) want(db string, dg digest, length int64, from peer.ID) {
	f.mu.Lock()
	k := blobKey{db, dg}
	switch w := f.mu.wants[k]; {
	case w != nil && !w.running:
		w.from, w.next = from, time.Time{}
	case w != nil:
	case len(f.mu.wants) < maxWantedBlobs:
		f.mu.wants[k] = &wantState{length: length, from: from}
	default:
		f.mu.overflow = true
	}
	f.mu.Unlock()
	f.signal()
}

func (f *blobFetcher) signal() {
	f.n.replicationChanged() // the wants moved: tell replication watchers
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run loads the durable wants and fetches until ctx is done; it returns
// after every transfer it started ended.
func (f *blobFetcher) Run(ctx context.Context) error {
	f.load(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := f.startDue(ctx, &wg)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		case <-timer.C:
		}
	}
}

// load reads the want records of every database (after a restart, or
// after wants overflowed memory).
func (f *blobFetcher) load(ctx context.Context) {
	names, err := f.n.ListDBs(ctx)
	if err != nil {
		f.log.Warn("list databases for wanted blobs", "err", err)
		return
	}
	for _, name := range names {
		d, err := f.n.DB(name)
		if err != nil {
			continue
		}
		wants, err := d.blobWants(maxWantedBlobs)
		if err != nil {
			f.log.Warn("read wanted blobs", "db", name, "err", err)
			continue
		}
		for dg, length := range wants {
			f.want(name, dg, length, "")
		}
	}
}

// startDue starts the transfers that are due, within maxBlobFetches, and
// returns how long until the next one is.
func (f *blobFetcher) startDue(ctx context.Context, wg *sync.WaitGroup) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.overflow && len(f.mu.wants) == 0 {
		f.mu.overflow = false
		wg.Go(func() { f.load(ctx) })
	}
	now := time.Now()
	wait := time.Hour
	for k, w := range f.mu.wants {
		if w.running {
			continue
		}
		if d := w.next.Sub(now); d > 0 {
			wait = min(wait, d)
			continue
		}
		if f.mu.running >= maxBlobFetches {
			break // a finishing transfer wakes the loop
		}
		w.running = true
		f.mu.running++
		ws := *w
		wg.Go(func() { f.finish(k, f.fetch(ctx, k, ws)) })
	}
	return wait
}

// fetchResult is how a fetch round ended.
type fetchResult int

const (
	fetchDone    fetchResult = iota // the blob is here (or no longer wanted)
	fetchFailed                     // every peer asked failed: back off
	fetchNoPeers                    // nobody to ask: retry at the base delay
	fetchNotYet                     // every peer lacks it (yet): back off to notYetRetryMax
)

// finish records a round's result and wakes the loop.
func (f *blobFetcher) finish(k blobKey, r fetchResult) {
	f.mu.Lock()
	w := f.mu.wants[k]
	f.mu.running--
	switch {
	case w == nil:
	case r == fetchDone:
		delete(f.mu.wants, k)
	case r == fetchNoPeers:
		w.running, w.next = false, time.Now().Add(f.retry)
	default:
		w.running = false
		w.fails++
		limit := blobRetryMax
		if r == fetchNotYet {
			limit = notYetRetryMax
		}
		w.next = time.Now().Add(min(f.retry<<min(w.fails-1, 16), limit))
	}
	f.mu.Unlock()
	f.signal()
}

// fetch runs one round for blob k: the peer that sent its change, then
// every other connected peer, until one transfer completes.
func (f *blobFetcher) fetch(ctx context.Context, k blobKey, w wantState) fetchResult {
	d, err := f.n.DB(k.db)
	if err != nil {
		return fetchDone // dropped: nothing to fetch for
	}
	if ok, err := d.hasBlob(k.dg); err == nil && ok {
		d.dropBlobWant(k.dg)
		return fetchDone
	}
	peers := f.candidates(w.from)
	if len(peers) == 0 {
		return fetchNoPeers
	}
	log := f.log.With("db", k.db, "digest", k.dg.String())
	notYet := true // every peer answered that it lacks the blob
	for _, p := range peers {
		start := time.Now()
		n, err := f.client.Fetch(ctx, p, k.db, bsync.Digest(k.dg), w.length)
		switch {
		case err == nil:
			log.Info("blob received", "peer", p, "bytes", n, "dur", time.Since(start))
			return fetchDone
		case ctx.Err() != nil:
			return fetchFailed
		case errors.Is(err, bsync.ErrBlobNotFound), errors.Is(err, bsync.ErrNoDB):
			log.Debug("peer lacks the blob", "peer", p, "err", err)
			continue
		case errors.Is(err, bsync.ErrForbidden):
			log.Debug("peer refused the blob", "peer", p, "err", err)
		case errors.Is(err, bsync.ErrDigestMismatch):
			log.Warn("peer sent a blob whose content does not match its digest; dropped", "peer", p, "err", err)
		default:
			log.Warn("blob transfer failed; will resume", "peer", p, "bytes", n, "err", err)
		}
		notYet = false
	}
	if notYet {
		return fetchNotYet
	}
	return fetchFailed
}

// candidates lists the connected peers to ask: from first.
func (f *blobFetcher) candidates(from peer.ID) []peer.ID {
	var out []peer.ID
	if from != "" && f.host.Network().Connectedness(from) == network.Connected {
		out = append(out, from)
	}
	for _, p := range f.host.Network().Peers() {
		if len(out) >= maxBlobPeers {
			break
		}
		if p != from {
			out = append(out, p)
		}
	}
	return out
}

// dropBlobWant deletes the want record of a blob that is here.
func (d *DB) dropBlobWant(dg digest) {
	b := d.store.NewWriteBatch()
	defer b.Close()
	b.Delete(d.keys.BlobWant(dg))
	if err := b.Commit(); err != nil {
		d.log.Warn("drop blob want record", "err", err)
	}
}
