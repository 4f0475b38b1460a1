package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/barrel-db/barrel/crdt"
)

// maxFeedCalls bounds the Feed calls that fill one IDs batch: a Feed that
// returns few entries (a filter skipping most) is called again until the
// batch is full or the feed's end is reached.
const maxFeedCalls = 64

// changesChunk is how many bodies the server reads from the Store at once.
const changesChunk = 16

// Server answers pulls: one session per stream of ProtocolID.
type Server struct {
	h      host.Host
	store  Store
	cfg    Config
	log    *slog.Logger
	m      *metrics
	slots  chan struct{}  // one per authorized session, cap MaxStreams
	fails  *failLog       // failing sessions per peer, logged at a bounded rate
	budget *peerBudgets   // bodies and bytes per second per peer
	slowed rate.Sometimes // bounds the log lines of sessions slowed by their budget

	// mu guards closed, the Add of wg against Run's Wait, and perPeer.
	mu      sync.Mutex
	closed  bool
	wg      sync.WaitGroup
	perPeer map[peer.ID]int // open streams per peer, at most MaxPeerStreams each
}

// NewServer returns a server of store's databases on h. It panics if cfg
// does not Validate (a programming error: node validates its config). It
// serves nothing until Run.
func NewServer(h host.Host, store Store, cfg Config) *Server {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("sync: invalid config: %v", err))
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		cfg.Logger.Warn("sync metrics not registered", "err", err)
	}
	return newServer(h, store, cfg, m)
}

func newServer(h host.Host, store Store, cfg Config, m *metrics) *Server {
	return &Server{
		h: h, store: store, cfg: cfg, m: m,
		log:     cfg.Logger.With("role", "server"),
		slots:   make(chan struct{}, cfg.MaxStreams),
		fails:   newFailLog(cfg.FailLogEvery, cfg.MaxQueued),
		budget:  newPeerBudgets(cfg.PeerBodiesPerSec, cfg.PeerBytesPerSec),
		slowed:  rate.Sometimes{Interval: cfg.FailLogEvery},
		perPeer: map[peer.ID]int{},
	}
}

// Run registers the stream handlers for ProtocolID (and ReconProtocolID
// when the store is a ReconStore, SnapshotProtocolID when it is a
// SnapshotStore) and serves until ctx is
// done. It then removes the handler, resets the running sessions and
// returns nil after all of them ended. A Server runs once.
func (s *Server) Run(ctx context.Context) error {
	s.h.SetStreamHandler(ProtocolID, func(st network.Stream) { s.handle(ctx, st, s.session) })
	if _, ok := s.store.(SnapshotStore); ok {
		s.h.SetStreamHandler(SnapshotProtocolID, func(st network.Stream) { s.handle(ctx, st, s.snapshotSession) })
		defer s.h.RemoveStreamHandler(SnapshotProtocolID)
	}
	if _, ok := s.store.(ReconStore); ok {
		s.h.SetStreamHandler(ReconProtocolID, func(st network.Stream) { s.handle(ctx, st, s.reconSession) })
		defer s.h.RemoveStreamHandler(ReconProtocolID)
	}
	<-ctx.Done()
	s.h.RemoveStreamHandler(ProtocolID)
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// handle runs one session (of the sync or the snapshot protocol) on a
// stream libp2p opened for a remote client. It owns the stream: it is
// closed or reset when handle returns.
func (s *Server) handle(ctx context.Context, st network.Stream, session func(context.Context, *conn, peer.ID) error) {
	start := time.Now()
	remote := st.Conn().RemotePeer()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = st.Reset()
		return
	}
	// One peer holds at most MaxPeerStreams streams, counted before its
	// Hello: streams that never send one cannot pile up either.
	if s.perPeer[remote] >= s.cfg.MaxPeerStreams {
		s.mu.Unlock()
		c := newConn(st, s.cfg.StreamTimeout, s.cfg.MaxFrameBytes)
		c.writeError(fmt.Errorf("%w: %d sessions of this peer", ErrBusy, s.cfg.MaxPeerStreams))
		_ = st.Close()
		s.m.session("server", "busy", time.Since(start).Seconds())
		return
	}
	s.perPeer[remote]++
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.perPeer[remote]--; s.perPeer[remote] <= 0 {
			delete(s.perPeer, remote)
		}
		s.mu.Unlock()
		s.wg.Done()
	}()

	log := s.log.With("peer", remote)
	c := newConn(st, s.cfg.StreamTimeout, s.cfg.MaxFrameBytes)
	c.readTimeout = s.cfg.IdleTimeout
	defer func() {
		if c.slot {
			<-s.slots
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()

	err := session(ctx, c, remote)
	res := result(ctx, err)
	s.m.session("server", res, time.Since(start).Seconds())
	switch {
	case res == "ok":
		_ = st.Close()
		if n := s.fails.ok(string(remote)); n > 0 {
			log.Info("sync sessions recovered", "failures", n)
		}
		return
	case res == "canceled":
		_ = st.Reset()
		return
	case res == "timeout" || errors.Is(err, errRemoteClosed):
		_ = st.Reset()
	case res == "bad_peer":
		// Garbage in: say why, best effort, and drop the stream.
		c.writeError(err)
		_ = st.Reset()
	default:
		// A refusal or our own failure: the client gets the Error message.
		c.writeError(err)
		_ = st.Close()
	}
	if res == "no_db" || res == "forbidden" || res == "snapshot_needed" || res == "busy" || res == "not_ready" {
		log.Debug("sync session refused", "err", err)
		return
	}
	// A peer whose sessions keep failing is logged once, then at most every
	// FailLogEvery with the count.
	if n, ok := s.fails.failed(string(remote)); ok {
		log.Warn("sync session failed", "err", err, "dur", time.Since(start), "failures", n)
	} else {
		log.Debug("sync session failed", "err", err, "dur", time.Since(start), "failures", n)
	}
}

// errRemoteClosed: the client ended the session with an Error message.
var errRemoteClosed = errors.New("client sent an error")

// session serves one client until it closes its side.
func (s *Server) session(ctx context.Context, c *conn, remote peer.ID) error {
	m, err := c.read()
	if err == io.EOF {
		return fmt.Errorf("%w: stream closed before hello", ErrBadRequest)
	}
	if err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	h, ok := m.(*helloMsg)
	if !ok {
		return fmt.Errorf("%w: want hello, got %T", ErrBadRequest, m)
	}
	if err := s.admit(ctx, c, remote, h.DB, h.Version, Version, h.MaxFrame); err != nil {
		return err
	}
	limit := min(s.cfg.BatchSize, (c.maxFrame-frameSlack)/idEntryBytes)
	if h.Limit > 0 {
		limit = min(limit, int(h.Limit))
	}
	ss := &serverSession{s: s, c: c, db: h.DB, filter: h.Filter, limit: limit, remote: remote, budget: s.budget.of(remote)}
	if err := ss.list(ctx, h.Since); err != nil {
		return err
	}
	for {
		m, err := c.read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read request: %w", err)
		}
		switch m := m.(type) {
		case *wantMsg:
			err = ss.serve(ctx, m)
		case *nextMsg:
			err = ss.list(ctx, m.Since)
		case *errorMsg:
			return fmt.Errorf("%w: %w", errRemoteClosed, &RemoteError{Code: m.Code, Text: m.Text})
		default:
			err = fmt.Errorf("%w: unexpected %T", ErrBadRequest, m)
		}
		if err != nil {
			return err
		}
	}
}

// admit checks a session's opening (its version, its frame limit) and the
// client's right to read db, caps the session's frames and takes a session
// slot (ErrBusy when all Config.MaxStreams are taken).
func (s *Server) admit(ctx context.Context, c *conn, remote peer.ID, db string, version, want, maxFrame uint32) error {
	if version != want {
		return fmt.Errorf("%w: unsupported version %d", ErrBadRequest, version)
	}
	if maxFrame < MinFrameBytes {
		return fmt.Errorf("%w: max frame %d below %d", ErrBadRequest, maxFrame, MinFrameBytes)
	}
	c.maxFrame = min(c.maxFrame, int(maxFrame))
	if err := s.store.AuthorizeRead(ctx, db, remote); err != nil {
		return fmt.Errorf("authorize %s: %w", db, err)
	}
	// Only an authorized session takes one of the MaxStreams slots (handle
	// gives it back), so a peer that may not read, or never says Hello,
	// cannot keep an honest one out.
	if c.slot {
		return nil
	}
	select {
	case s.slots <- struct{}{}:
		c.slot = true
	default:
		return fmt.Errorf("%w: %d sessions", ErrBusy, cap(s.slots))
	}
	return nil
}

// serverSession is the state of one session: the database and the last
// listed batch, which Want indices refer to.
type serverSession struct {
	s      *Server
	c      *conn
	db     string
	filter *Filter
	limit  int
	remote peer.ID
	batch  []crdt.ID
	budget *peerBudget // the peer's, shared by its sessions
}

// list sends the IDs batch after since.
func (ss *serverSession) list(ctx context.Context, since uint64) error {
	if hz, ok := ss.s.store.(Horizoner); ok {
		h, err := hz.Horizon(ctx, ss.db, ss.remote)
		if err != nil {
			return fmt.Errorf("horizon of %s: %w", ss.db, err)
		}
		if since < h {
			return fmt.Errorf("%w: history of %s up to %d was compacted, checkpoint %d", ErrSnapshotNeeded, ss.db, h, since)
		}
	}
	var entries []wireEntry
	last, done := since, false
	for range maxFeedCalls {
		es, l, err := ss.s.store.Feed(ctx, ss.db, last, ss.limit-len(entries), ss.filter)
		if err != nil {
			return fmt.Errorf("feed of %s after %d: %w", ss.db, last, err)
		}
		// Invariant: the Store lists ascending entries after last, at most
		// limit of them, up to l (DESIGN.md invariant 3 relies on it: the
		// client's checkpoint moves to Last).
		if len(es) > ss.limit-len(entries) || l < last {
			return fmt.Errorf("feed of %s after %d: broken listing (%d entries, last %d)", ss.db, last, len(es), l)
		}
		for _, e := range es {
			if e.Seq <= last || e.Seq > l || (len(entries) > 0 && e.Seq <= entries[len(entries)-1].Seq) {
				return fmt.Errorf("feed of %s after %d: entry %d out of order", ss.db, last, e.Seq)
			}
			if e.From != "" && e.From == ss.remote {
				continue // it came from this client
			}
			entries = append(entries, wireEntry{Seq: e.Seq, ID: wireID(e.ID)})
		}
		if len(es) == 0 && l == last {
			done = true
			break
		}
		last = l
		if len(entries) >= ss.limit {
			break
		}
	}
	ss.batch = ss.batch[:0]
	for _, e := range entries {
		ss.batch = append(ss.batch, crdt.ID(e.ID))
	}
	return ss.c.write(msgIDs, &idsMsg{Entries: entries, Last: last, Done: done})
}

// serve sends the bodies a Want asks for, packed into frames.
func (ss *serverSession) serve(ctx context.Context, w *wantMsg) error {
	ids := make([]crdt.ID, 0, len(w.Indices)+len(w.IDs))
	for _, i := range w.Indices {
		if int(i) >= len(ss.batch) {
			return fmt.Errorf("%w: want index %d of a batch of %d", ErrBadRequest, i, len(ss.batch))
		}
		ids = append(ids, ss.batch[i])
	}
	for _, id := range w.IDs {
		ids = append(ids, crdt.ID(id))
	}
	var (
		frame []([]byte)
		size  = frameSlack
	)
	flush := func() error {
		if len(frame) == 0 {
			return nil
		}
		waited, err := ss.budget.take(ctx, len(frame), size)
		if err != nil {
			return err
		}
		if waited > 0 {
			ss.s.m.throttled(waited.Seconds())
			ss.s.slowed.Do(func() {
				ss.s.log.Info("peer over its sync budget: slowing its pulls", "peer", ss.remote,
					"bodies_per_s", ss.s.cfg.PeerBodiesPerSec, "bytes_per_s", ss.s.cfg.PeerBytesPerSec, "dur", waited)
			})
		}
		err = ss.c.write(msgBodies, &bodiesMsg{Changes: frame})
		frame, size = nil, frameSlack
		return err
	}
	for len(ids) > 0 {
		chunk := ids[:min(changesChunk, len(ids))]
		ids = ids[len(chunk):]
		bodies, err := ss.s.store.Changes(ctx, ss.db, chunk)
		if err != nil {
			return fmt.Errorf("changes of %s: %w", ss.db, err)
		}
		if len(bodies) != len(chunk) {
			return fmt.Errorf("changes of %s: %d bodies for %d ids", ss.db, len(bodies), len(chunk))
		}
		for i, b := range bodies {
			if frameSlack+bodyOverhead+len(b) > ss.c.maxFrame {
				return fmt.Errorf("%w: change %s of %d bytes does not fit a frame of %d", ErrFrameTooLarge, chunk[i], len(b), ss.c.maxFrame)
			}
			if size+bodyOverhead+len(b) > ss.c.maxFrame {
				if err := flush(); err != nil {
					return err
				}
			}
			frame = append(frame, b)
			size += bodyOverhead + len(b)
		}
	}
	return flush()
}

// result names a session's outcome for metrics.
func result(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return "ok"
	case ctx.Err() != nil:
		return "canceled"
	case errors.Is(err, ErrNoDB):
		return "no_db"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrSnapshotNeeded):
		return "snapshot_needed"
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.Is(err, ErrReconNotReady):
		return "not_ready"
	case errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err):
		return "timeout"
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrWrongContentID):
		return "bad_peer"
	}
	return "error"
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
