package sync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	msmux "github.com/multiformats/go-multistream"
)

// PeerDBStatus is the replication state of one database with one peer.
type PeerDBStatus struct {
	Peer       peer.ID
	DB         string
	Running    bool      // a pull is running now
	LastSync   time.Time // end of the last pull (zero: none yet)
	LastError  string    // the last pull's error ("" if it succeeded)
	LastOK     time.Time // end of the last pull that succeeded, caught up with the peer (zero: none since start)
	Checkpoint uint64    // the remote feed sequence pulled up to
	Last       Stats     // the last pull's counts
	// Progress is the running pull's position (nil when none runs). The
	// caller owns it.
	Progress *Progress
}

// key names a pull: a database from a peer. An empty db means every
// replicated database (TriggerAll).
type key struct {
	peer peer.ID
	db   string
}

// job is the trigger state of one key.
type job struct {
	queued  bool // waiting in the queue
	running bool // a pull runs now
	again   bool // triggered while running: run once more after
	recon   bool // the next run reconciles (version 2) instead of listing the feed from the checkpoint
}

// Replicator runs pulls: on new connections, on Trigger (for instance an
// announcement ahead of the checkpoint) and on a periodic anti-entropy tick.
// It also runs the Server, so a Replicator both pulls and serves.
type Replicator struct {
	h      host.Host
	store  Store
	cfg    Config
	log    *slog.Logger
	client *Client
	server *Server
	fails  *failLog      // failing pulls per (peer, db), logged at a bounded rate
	wake   chan struct{} // cap 1: the queue changed or a slot freed

	// mu guards the trigger state and the status table. Never held
	// across I/O.
	mu struct {
		sync.Mutex
		queue  []key
		jobs   map[key]*job
		status map[key]*PeerDBStatus
		live   map[key]*progress // the running pulls' progress
	}
}

// New returns a replicator of store's databases over h. It panics if cfg
// does not Validate (a programming error: node validates its config).
// Nothing runs until Run.
func New(h host.Host, store Store, cfg Config) *Replicator {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("sync: invalid config: %v", err))
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		cfg.Logger.Warn("sync metrics not registered", "err", err)
	}
	r := &Replicator{
		h: h, store: store, cfg: cfg,
		log:    cfg.Logger,
		client: newClient(h, store, cfg, m),
		server: newServer(h, store, cfg, m),
		fails:  newFailLog(cfg.FailLogEvery, cfg.MaxQueued),
		wake:   make(chan struct{}, 1),
	}
	r.mu.jobs = map[key]*job{}
	r.mu.status = map[key]*PeerDBStatus{}
	r.mu.live = map[key]*progress{}
	return r
}

// Client returns the replicator's client, for pulls outside its triggers.
func (r *Replicator) Client() *Client { return r.client }

// Trigger asks for a pull of db from p. It never blocks. Triggers
// coalesce: at most one pull per (p, db) runs at a time, and a trigger
// during a running pull makes it run once more after. When
// Config.MaxQueued pulls wait already, the trigger is dropped (the
// anti-entropy tick catches up).
func (r *Replicator) Trigger(p peer.ID, db string) {
	if p == r.h.ID() || db == "" {
		return
	}
	r.trigger(key{peer: p, db: db}, false)
}

// TriggerAll asks for a reconciliation of every replicated database with
// p, like Trigger: the replicator calls it on a new connection and on the
// anti-entropy tick. A reconciliation (protocol version 2, when p speaks
// it and the database is not a partial view) finds what differs whatever
// the checkpoint, so a new pairing, a lost checkpoint and a returning
// peer cost what differs rather than a listing of p's feed.
func (r *Replicator) TriggerAll(p peer.ID) {
	if p == r.h.ID() {
		return
	}
	r.trigger(key{peer: p}, true)
}

// trigger queues k's pull; recon asks for a reconciliation rather than a
// listing from the checkpoint (a pending request for one is kept).
func (r *Replicator) trigger(k key, recon bool) {
	r.mu.Lock()
	j := r.mu.jobs[k]
	if j != nil && recon {
		j.recon = true
	}
	switch {
	case j != nil && j.running:
		j.again = true
	case j != nil && j.queued:
	case len(r.mu.queue) >= r.cfg.MaxQueued:
		r.mu.Unlock()
		r.log.Debug("sync trigger dropped: queue full", "peer", k.peer, "db", k.db)
		return
	default:
		if j == nil {
			j = &job{recon: recon}
			r.mu.jobs[k] = j
		}
		j.queued = true
		r.mu.queue = append(r.mu.queue, k)
	}
	r.mu.Unlock()
	r.signal()
}

func (r *Replicator) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Status returns the state of every (peer, database) pair pulled so far,
// sorted by peer and database. The caller owns the slice.
func (r *Replicator) Status() []PeerDBStatus {
	now := time.Now()
	r.mu.Lock()
	out := make([]PeerDBStatus, 0, len(r.mu.status))
	for k, s := range r.mu.status {
		c := *s
		if p := r.mu.live[k]; p != nil && s.Running {
			snap := p.snapshot(now)
			c.Progress = &snap
			c.Checkpoint = max(c.Checkpoint, snap.Checkpoint) // stored after each batch
		}
		out = append(out, c)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerDBStatus) int {
		return cmp.Or(cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.DB, b.DB))
	})
	return out
}

// Run serves pulls from peers and runs pulls from them until ctx is done.
// It returns after every goroutine it started has stopped: nil when ctx
// ended it, or the error that kept it from starting. A Replicator runs
// once.
func (r *Replicator) Run(ctx context.Context) error {
	sub, err := r.h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged), eventbus.BufSize(256))
	if err != nil {
		return fmt.Errorf("subscribe to connection events: %w", err)
	}
	defer sub.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = r.server.Run(ctx) })
	wg.Go(func() { r.events(ctx, sub.Out()) })
	if r.cfg.AntiEntropy > 0 {
		wg.Go(func() { r.antiEntropy(ctx) })
	}
	slots := make(chan struct{}, r.cfg.MaxPulls)
	for {
		r.startQueued(ctx, &wg, slots)
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		}
	}
}

// events triggers a pull of everything from each newly connected peer.
func (r *Replicator) events(ctx context.Context, evs <-chan any) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-evs:
			if !ok {
				return
			}
			ev, ok := e.(event.EvtPeerConnectednessChanged)
			if !ok {
				continue
			}
			if ev.Connectedness == network.Connected {
				r.TriggerAll(ev.Peer)
			}
			r.client.statusChanged(ev.Peer, "")
		}
	}
}

// antiEntropy triggers every connected peer that speaks the protocol each
// Config.AntiEntropy.
func (r *Replicator) antiEntropy(ctx context.Context) {
	t := time.NewTicker(r.cfg.AntiEntropy)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range r.h.Network().Peers() {
			if ps, err := r.h.Peerstore().SupportsProtocols(p, ProtocolID); err == nil && len(ps) > 0 {
				r.TriggerAll(p)
			}
		}
	}
}

// startQueued starts queued pulls while slots are free.
func (r *Replicator) startQueued(ctx context.Context, wg *sync.WaitGroup, slots chan struct{}) {
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		default:
			return
		}
		r.mu.Lock()
		if len(r.mu.queue) == 0 {
			r.mu.Unlock()
			<-slots
			return
		}
		k := r.mu.queue[0]
		r.mu.queue = r.mu.queue[1:]
		j := r.mu.jobs[k]
		j.queued, j.running = false, true
		recon := j.recon
		j.recon = false
		r.mu.Unlock()
		wg.Go(func() {
			r.run(ctx, k, recon)
			<-slots
			r.finish(k)
		})
	}
}

// finish ends a pull's run and queues it again if it was triggered meanwhile.
func (r *Replicator) finish(k key) {
	r.mu.Lock()
	j := r.mu.jobs[k]
	j.running = false
	if j.again {
		j.again, j.queued = false, true
		r.mu.queue = append(r.mu.queue, k)
	} else {
		delete(r.mu.jobs, k)
	}
	r.mu.Unlock()
	r.signal()
}

// run runs one pull (or, for TriggerAll, triggers every database); recon:
// a reconciliation when it can be.
func (r *Replicator) run(ctx context.Context, k key, recon bool) {
	dbs, err := r.store.Databases(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("sync: list databases", "err", err)
		}
		return
	}
	if k.db == "" {
		for _, d := range dbs {
			r.trigger(key{peer: k.peer, db: d.DB}, recon)
		}
		return
	}
	i := slices.IndexFunc(dbs, func(d Replicated) bool { return d.DB == k.db })
	if i < 0 {
		r.log.Debug("sync skipped: database not replicated", "peer", k.peer, "db", k.db)
		return
	}
	prog := newProgress(r.cfg.Now())
	r.setStatus(k, func(s *PeerDBStatus) { s.Running = true })
	r.mu.Lock()
	r.mu.live[k] = prog
	r.mu.Unlock()
	r.client.statusChanged(k.peer, k.db)
	start := time.Now()
	var st Stats
	if recon {
		st, err = r.client.pullReconciled(ctx, k.peer, k.db, dbs[i].Filter, prog)
	} else {
		st, err = r.client.pullOrSnapshot(ctx, k.peer, k.db, dbs[i].Filter, prog)
	}
	dur := time.Since(start)
	r.setStatus(k, func(s *PeerDBStatus) {
		s.Running = false
		s.LastSync = r.cfg.Now()
		s.LastError = ""
		if err != nil && !errors.Is(err, ErrNoDB) {
			s.LastError = err.Error()
		}
		if err == nil {
			s.LastOK = s.LastSync
		}
		s.Checkpoint = max(s.Checkpoint, st.Checkpoint)
		s.Last = st
	})
	r.mu.Lock()
	delete(r.mu.live, k)
	r.mu.Unlock()
	r.client.statusChanged(k.peer, k.db)
	log := r.log.With("peer", k.peer, "db", k.db)
	fk := string(k.peer) + "\x00" + k.db
	switch {
	case ctx.Err() != nil:
	case errors.Is(err, ErrNoDB):
		log.Debug("sync skipped: peer has no such database")
	case errors.Is(err, msmux.ErrNotSupported[protocol.ID]{}):
		log.Debug("sync skipped: peer does not speak the protocol")
	case err != nil:
		// A pull that keeps failing is logged once, then at most every
		// FailLogEvery with the count of failures so far.
		if n, ok := r.fails.failed(fk); ok {
			log.Warn("sync failed", "changes", st.Applied, "dur", dur, "failures", n, "err", err)
		} else {
			log.Debug("sync failed", "changes", st.Applied, "dur", dur, "failures", n, "err", err)
		}
	}
	if err == nil {
		if n := r.fails.ok(fk); n > 0 {
			log.Info("sync recovered", "failures", n)
		}
	}
	switch {
	case err != nil || ctx.Err() != nil:
	case st.Applied > 0:
		log.Info("sync done", "changes", st.Applied, "bytes", st.Bytes, "seq", st.Checkpoint, "dur", dur)
	default:
		log.Debug("sync done", "changes", 0, "seq", st.Checkpoint, "dur", dur)
	}
}

// setStatus updates k's status under the lock. The table keeps at most
// 4×MaxQueued entries: beyond that, entries of disconnected peers go.
func (r *Replicator) setStatus(k key, f func(*PeerDBStatus)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.mu.status[k]
	if s == nil {
		if len(r.mu.status) >= 4*r.cfg.MaxQueued {
			for sk, ss := range r.mu.status {
				if !ss.Running && r.h.Network().Connectedness(sk.peer) != network.Connected {
					delete(r.mu.status, sk)
				}
			}
		}
		s = &PeerDBStatus{Peer: k.peer, DB: k.db}
		r.mu.status[k] = s
	}
	f(s)
}
