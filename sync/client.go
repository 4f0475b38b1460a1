package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/barrel-db/barrel/crdt"
)

// Stats counts what one pull did.
type Stats struct {
	Batches    int    // IDs batches received
	IDs        int    // feed entries listed
	Fetched    int    // bodies received and decoded
	Applied    int    // changes that were new here
	Bytes      int64  // frame bytes received
	BodyBytes  int64  // of Bytes, the change bodies' own
	Checkpoint uint64 // the checkpoint the pull reached

	// Version 2 (Client.Reconcile; zero for a version 1 pull).
	Reconciled bool  // a reconciliation ran to its end (then no feed was listed)
	InSync     bool  // the first answer said both sets are equal
	Rounds     int   // reconciliation round trips, the hello's included
	ReconBytes int64 // bytes of the reconciliation's answers (Diff frames), of Bytes
	SentBytes  int64 // bytes of the reconciliation's requests sent
	Docs       int   // documents the server listed as differing
}

// Client pulls changes from peers into a Store.
type Client struct {
	h     host.Host
	store Store
	cfg   Config
	log   *slog.Logger
	m     *metrics
}

// NewClient returns a client that pulls into store over h. It panics if
// cfg does not Validate (a programming error: node validates its config).
func NewClient(h host.Host, store Store, cfg Config) *Client {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("sync: invalid config: %v", err))
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		cfg.Logger.Warn("sync metrics not registered", "err", err)
	}
	return newClient(h, store, cfg, m)
}

func newClient(h host.Host, store Store, cfg Config, m *metrics) *Client {
	return &Client{h: h, store: store, cfg: cfg, m: m, log: cfg.Logger.With("role", "client")}
}

// statusChanged tells Config.StatusChanged, if set, that the state of
// pulling db from p moved.
func (c *Client) statusChanged(p peer.ID, db string) {
	if c.cfg.StatusChanged != nil {
		c.cfg.StatusChanged(p, db)
	}
}

// Pull fetches db's changes that p has and this store lacks, from the
// store's checkpoint for p on, and applies them parents first. After each
// batch is applied the checkpoint moves to the batch's end, so an
// interrupted pull resumes there and a repeated one only lists ids.
//
// f selects a partial view (nil: everything); the server applies it.
// Errors: ErrNoDB when p does not have or serve db (callers usually ignore
// it), a *RemoteError for other refusals (errors.Is matches ErrForbidden,
// ErrBusy, ...), ErrWrongContentID, ErrBadRequest or ErrFrameTooLarge when
// p breaks the protocol, ErrTooManyMissing, or the Store's errors. Stats
// count what was done, also on error.
func (c *Client) Pull(ctx context.Context, p peer.ID, db string, f *Filter) (Stats, error) {
	return c.pull(ctx, p, db, f, nil)
}

// pull is Pull reporting its progress to prog (nil: not reported).
func (c *Client) pull(ctx context.Context, p peer.ID, db string, f *Filter, prog *progress) (st Stats, err error) {
	start := time.Now()
	defer func() {
		c.m.session("client", result(ctx, err), time.Since(start).Seconds())
		c.m.changes.Add(float64(st.Applied))
		c.m.bytes.Add(float64(st.Bytes))
		c.m.bodyB.Add(float64(st.BodyBytes))
	}()
	since, err := c.store.Checkpoint(ctx, db, p)
	if err != nil {
		return st, fmt.Errorf("checkpoint of %s for %s: %w", db, p, err)
	}
	st.Checkpoint = since
	prog.begin(since, time.Now())
	st.Bytes, err = c.stream(ctx, p, ProtocolID, func(cn *conn) error {
		ps := &pull{c: c, cn: cn, peer: p, db: db, st: &st, prog: prog}
		return ps.run(ctx, since, f)
	})
	if err != nil {
		return st, fmt.Errorf("pull %s from %s: %w", db, p, err)
	}
	return st, nil
}

// stream opens a stream of proto to p, runs fn on it and ends it: closed
// after success; after an error, reset, with an Error frame first when the
// failure is ours. It returns the frame bytes received.
func (c *Client) stream(ctx context.Context, p peer.ID, proto protocol.ID, fn func(*conn) error) (int64, error) {
	s, err := c.h.NewStream(ctx, p, proto)
	if err != nil {
		return 0, fmt.Errorf("open %s stream to %s: %w", proto, p, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	cn := newConn(s, c.cfg.StreamTimeout, c.cfg.MaxFrameBytes)
	err = fn(cn)
	if err == nil {
		return cn.bytesIn.Load(), s.Close()
	}
	var re *RemoteError
	if !errors.As(err, &re) && ctx.Err() == nil {
		cn.writeError(err)
	}
	_ = s.Reset()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return cn.bytesIn.Load(), err
}

// pull is one client session.
type pull struct {
	c       *Client
	cn      *conn
	peer    peer.ID
	db      string
	st      *Stats
	prog    *progress // the replicator's view of this pull; nil for none
	rounds  int       // Want rounds for missing parents so far
	pending int       // bytes of fetched parents held
	// held counts fetched changes Apply found already held (written by
	// the applier, read by the fetcher to stop skipping Has).
	held atomic.Int64
}

func (ps *pull) run(ctx context.Context, since uint64, f *Filter) error {
	cfg := &ps.c.cfg
	limit := min(cfg.BatchSize, (cfg.MaxFrameBytes-frameSlack)/idEntryBytes)
	err := ps.cn.write(msgHello, &helloMsg{
		Version: Version, DB: ps.db, Since: since, Filter: f,
		Limit: uint32(limit), MaxFrame: uint32(cfg.MaxFrameBytes),
	})
	if err != nil {
		return err
	}
	for {
		missing, err := ps.pipeline(ctx, since, limit)
		if err != nil || missing == nil {
			return err
		}
		// Apply reported missing parents and the stream is drained: fetch
		// them, then list again from the checkpoint. The store's Has skips
		// what the failed batch did apply, so only its rest is resent.
		if err := ps.resolve(ctx, missing); err != nil {
			return err
		}
		since = ps.st.Checkpoint
		if err := ps.cn.write(msgNext, &nextMsg{Since: since}); err != nil {
			return err
		}
	}
}

// work is what the fetcher hands the applier: a frame's changes in feed
// order, or (end) the end of an IDs batch whose Last becomes the
// checkpoint once everything before it is applied.
type work struct {
	changes []*crdt.Change
	end     bool
	last    uint64
}

// pipeline runs the session from the IDs batch answering a request for
// entries after since (Hello or Next), until the server says Done, an
// error, or Apply reports missing parents: then it returns their ids with
// the stream drained of the answers still due, so the caller can ask for
// more.
//
// Two goroutines overlap the stages. This one (the fetcher) owns the
// stream: it reads an IDs batch, asks the store which ids it holds, sends
// Want for the rest and, at once, Next for the batch after (the server
// answers requests in order, so Bodies of this batch come before the next
// IDs), then reads and checks the bodies and hands them over frame by
// frame. The applier applies them in order and moves the checkpoint after
// each batch's last frame. So while batch k is applied, batch k+1 is
// listed, checked against the store and fetched. The hand-over channel
// holds one frame: at most three frames of bodies are held at once (one
// being applied, one handed over, one being decoded).
//
// Sending Next before the batch is applied was rejected at first because
// Want indices refer to the last listed batch and the missing-parent retry
// re-asked by index. The retry now lists the batch again from the
// checkpoint instead, which needs no index of an older batch.
func (ps *pull) pipeline(ctx context.Context, since uint64, limit int) ([]crdt.ID, error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan work, 1)
	applied := make(chan struct{})
	var applyErr error
	go func() {
		defer close(applied)
		applyErr = ps.applyAll(actx, queue)
	}()
	// finish stops the applier and waits for it; the fetcher's error, if
	// any, wins over the applier's.
	finish := func(err error) error {
		if err != nil {
			cancel()
		}
		close(queue)
		<-applied
		if err != nil {
			return err
		}
		return applyErr
	}
	hand := func(w work) bool {
		select {
		case queue <- w:
			return true
		case <-applied:
			return false
		}
	}

	// The store's Has costs a lookup per listed id, nearly all of them
	// misses while a fresh replica fills, and Apply skips held changes
	// anyway. So after a batch of which nothing was held, the next is
	// wanted whole without asking, until Apply reports held changes again:
	// that resends at most the bodies of the batches in flight.
	skipHas, heldSeen := false, int64(0)
	cursor := since
	for {
		ids, err := ps.readIDs(cursor, limit)
		if err != nil {
			return nil, finish(err)
		}
		var lacking []uint32
		if h := ps.held.Load(); skipHas && h == heldSeen {
			lacking = allIndices(len(ids.Entries))
		} else {
			lacking, err = ps.lacking(ctx, ids.Entries)
			if err != nil {
				return nil, finish(err)
			}
			skipHas, heldSeen = len(ids.Entries) > 0 && len(lacking) == len(ids.Entries), h
		}
		if len(lacking) > 0 {
			if err := ps.cn.write(msgWant, &wantMsg{Indices: lacking}); err != nil {
				return nil, finish(err)
			}
		}
		if !ids.Done {
			if err := ps.cn.write(msgNext, &nextMsg{Since: ids.Last}); err != nil {
				return nil, finish(err)
			}
		}
		stopped := false
		for got := 0; got < len(lacking); {
			b, err := ps.readBodies(len(lacking) - got)
			if err != nil {
				return nil, finish(err)
			}
			if !stopped {
				want := make([]crdt.ID, len(b.Changes))
				for i := range want {
					want[i] = crdt.ID(ids.Entries[lacking[got+i]].ID)
				}
				changes, err := decodeBodies(b.Changes, want)
				if err != nil {
					return nil, finish(err)
				}
				ps.st.Fetched += len(changes)
				for _, body := range b.Changes {
					ps.st.BodyBytes += int64(len(body))
				}
				stopped = !hand(work{changes: changes})
				if stopped && !isMissing(applyErr) {
					return nil, finish(nil) // the stream is reset: no need to drain it
				}
			}
			// Once the applier stopped, the rest of the answer is read
			// and dropped: the stream is ordered.
			got += len(b.Changes)
		}
		if !stopped {
			stopped = !hand(work{end: true, last: ids.Last})
			if stopped && !isMissing(applyErr) {
				return nil, finish(nil)
			}
		}
		if stopped || ids.Done {
			err := finish(nil)
			var me *MissingError
			if !errors.As(err, &me) {
				return nil, err
			}
			if len(me.IDs) == 0 {
				return nil, fmt.Errorf("apply: %w", err)
			}
			if !ids.Done {
				if _, err := ps.readIDs(ids.Last, limit); err != nil {
					return nil, err
				}
			}
			return me.IDs, nil
		}
		cursor = ids.Last
	}
}

// applyAll applies the fetcher's work in order until the queue closes or
// Apply fails. Invariant (DESIGN.md invariant 3): the checkpoint moves to
// a batch's Last only after every frame of that batch was applied.
func (ps *pull) applyAll(ctx context.Context, queue <-chan work) error {
	for w := range queue {
		if w.end {
			if w.last <= ps.st.Checkpoint {
				continue
			}
			if err := ps.c.store.SetCheckpoint(ctx, ps.db, ps.peer, w.last); err != nil {
				return fmt.Errorf("set checkpoint %d: %w", w.last, err)
			}
			ps.st.Checkpoint = w.last
			ps.prog.advance(0, w.last, time.Now())
			ps.c.statusChanged(ps.peer, ps.db)
			continue
		}
		n, err := ps.c.store.Apply(ctx, ps.db, ps.peer, w.changes)
		ps.st.Applied += n
		ps.prog.advance(n, 0, time.Time{})
		if err == nil && n < len(w.changes) {
			ps.held.Add(int64(len(w.changes) - n))
		}
		var me *MissingError
		switch {
		case errors.As(err, &me):
			return err
		case err != nil:
			return fmt.Errorf("apply: %w", err)
		}
	}
	return nil
}

// isMissing reports whether err is a *MissingError.
func isMissing(err error) bool {
	var me *MissingError
	return errors.As(err, &me)
}

// readIDs reads the IDs batch answering a request for entries after
// cursor and checks it against the request.
func (ps *pull) readIDs(cursor uint64, limit int) (*idsMsg, error) {
	m, err := ps.read()
	if err != nil {
		return nil, err
	}
	ids, ok := m.(*idsMsg)
	if !ok {
		return nil, fmt.Errorf("%w: want ids, got %T", ErrBadRequest, m)
	}
	if len(ids.Entries) > limit || ids.Last < cursor || (len(ids.Entries) > 0 && ids.Entries[0].Seq <= cursor) {
		return nil, fmt.Errorf("%w: ids batch of %d after %d, last %d", ErrBadRequest, len(ids.Entries), cursor, ids.Last)
	}
	ps.st.Batches++
	ps.st.IDs += len(ids.Entries)
	return ids, nil
}

// readBodies reads a Bodies frame of at most max bodies.
func (ps *pull) readBodies(max int) (*bodiesMsg, error) {
	m, err := ps.read()
	if err != nil {
		return nil, err
	}
	b, ok := m.(*bodiesMsg)
	if !ok || len(b.Changes) > max {
		return nil, fmt.Errorf("%w: want %d bodies, got %T", ErrBadRequest, max, m)
	}
	return b, nil
}

// allIndices returns 0, 1, ..., n-1.
func allIndices(n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(i)
	}
	return out
}

// lacking returns the indices of the entries the store does not hold.
func (ps *pull) lacking(ctx context.Context, entries []wireEntry) ([]uint32, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	ids := make([]crdt.ID, len(entries))
	for i, e := range entries {
		ids[i] = crdt.ID(e.ID)
	}
	has, err := ps.c.store.Has(ctx, ps.db, ids)
	if err != nil {
		return nil, fmt.Errorf("has: %w", err)
	}
	if len(has) != len(ids) {
		return nil, fmt.Errorf("has: %d answers for %d ids", len(has), len(ids))
	}
	var out []uint32
	for i, h := range has {
		if !h {
			out = append(out, uint32(i))
		}
	}
	return out, nil
}

// read reads the next message; an Error message becomes a *RemoteError.
func (ps *pull) read() (any, error) {
	m, err := ps.cn.read()
	if err != nil {
		return nil, err
	}
	if e, ok := m.(*errorMsg); ok {
		return nil, &RemoteError{Code: e.Code, Text: e.Text}
	}
	return m, nil
}

// resolve fetches missing parents by id, their own missing parents in
// turn, and applies them, deepest first. It is bounded by
// Config.MaxMissingRounds and Config.MaxPendingBytes per pull.
func (ps *pull) resolve(ctx context.Context, missing []crdt.ID) error {
	var stack [][]*crdt.Change
	held := 0 // bytes of stack
	defer func() { ps.pending -= held }()
	for {
		ps.rounds++
		if ps.rounds > ps.c.cfg.MaxMissingRounds {
			return fmt.Errorf("%w: more than %d rounds", ErrTooManyMissing, ps.c.cfg.MaxMissingRounds)
		}
		if len(missing) > MaxWantIDs {
			return fmt.Errorf("%w: %d at once", ErrTooManyMissing, len(missing))
		}
		changes, size, err := ps.fetch(missing)
		if err != nil {
			return err
		}
		held += size
		ps.pending += size
		if ps.pending > ps.c.cfg.MaxPendingBytes {
			return fmt.Errorf("%w: more than %d bytes", ErrTooManyMissing, ps.c.cfg.MaxPendingBytes)
		}
		stack = append(stack, causalOrder(changes))
		missing = nil
		for len(stack) > 0 && missing == nil {
			top := stack[len(stack)-1]
			n, err := ps.c.store.Apply(ctx, ps.db, ps.peer, top)
			ps.st.Applied += n
			ps.prog.advance(n, 0, time.Time{})
			var me *MissingError
			switch {
			case errors.As(err, &me) && len(me.IDs) > 0:
				missing = me.IDs
			case err != nil:
				return fmt.Errorf("apply parents: %w", err)
			default:
				stack = stack[:len(stack)-1]
			}
		}
		if missing == nil {
			return nil
		}
	}
}

// fetch asks for changes by id and returns them decoded and checked, with
// their encoded size.
func (ps *pull) fetch(ids []crdt.ID) ([]*crdt.Change, int, error) {
	w := &wantMsg{IDs: make([]wireID, len(ids))}
	for i, id := range ids {
		w.IDs[i] = wireID(id)
	}
	if err := ps.cn.write(msgWant, w); err != nil {
		return nil, 0, err
	}
	var out []*crdt.Change
	size := 0
	for len(out) < len(ids) {
		m, err := ps.read()
		if err != nil {
			return nil, 0, err
		}
		b, ok := m.(*bodiesMsg)
		if !ok || len(out)+len(b.Changes) > len(ids) {
			return nil, 0, fmt.Errorf("%w: want %d bodies, got %T", ErrBadRequest, len(ids)-len(out), m)
		}
		changes, err := decodeBodies(b.Changes, ids[len(out):len(out)+len(b.Changes)])
		if err != nil {
			return nil, 0, err
		}
		for _, body := range b.Changes {
			size += len(body)
			ps.st.BodyBytes += int64(len(body))
		}
		ps.st.Fetched += len(changes)
		out = append(out, changes...)
	}
	return out, size, nil
}

// decodeBodies decodes changes and checks each one's content id against
// the id it was asked for.
func decodeBodies(bodies [][]byte, want []crdt.ID) ([]*crdt.Change, error) {
	out := make([]*crdt.Change, len(bodies))
	for i, b := range bodies {
		ch, err := crdt.Decode(b)
		if err != nil {
			return nil, fmt.Errorf("%w: change %s: %w", ErrBadRequest, want[i], err)
		}
		if ch.ID() != want[i] {
			return nil, fmt.Errorf("%w: asked for %s, got %s", ErrWrongContentID, want[i], ch.ID())
		}
		out[i] = ch
	}
	return out, nil
}

// causalOrder sorts changes so that each comes after those of its parents
// that are in the slice (a stable topological sort; cycles, impossible for
// content ids, keep their given order).
func causalOrder(changes []*crdt.Change) []*crdt.Change {
	in := make(map[crdt.ID]int, len(changes))
	for i, c := range changes {
		in[c.ID()] = i
	}
	out := make([]*crdt.Change, 0, len(changes))
	state := make([]uint8, len(changes)) // 0 new, 1 visiting, 2 done
	var visit func(i int)
	visit = func(i int) {
		if state[i] != 0 {
			return
		}
		state[i] = 1
		for _, p := range changes[i].Parents {
			if j, ok := in[p]; ok {
				visit(j)
			}
		}
		state[i] = 2
		out = append(out, changes[i])
	}
	for i := range changes {
		visit(i)
	}
	return out
}
