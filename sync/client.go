package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
)

// Stats counts what one pull did.
type Stats struct {
	Batches    int    // IDs batches received
	IDs        int    // feed entries listed
	Fetched    int    // bodies received and decoded
	Applied    int    // changes that were new here
	Bytes      int64  // frame bytes received
	Checkpoint uint64 // the checkpoint the pull reached
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
func (c *Client) Pull(ctx context.Context, p peer.ID, db string, f *Filter) (st Stats, err error) {
	start := time.Now()
	defer func() {
		c.m.session("client", result(ctx, err), time.Since(start).Seconds())
		c.m.changes.Add(float64(st.Applied))
		c.m.bytes.Add(float64(st.Bytes))
	}()
	since, err := c.store.Checkpoint(ctx, db, p)
	if err != nil {
		return st, fmt.Errorf("checkpoint of %s for %s: %w", db, p, err)
	}
	st.Checkpoint = since
	s, err := c.h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return st, fmt.Errorf("open sync stream to %s: %w", p, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	cn := newConn(s, c.cfg.StreamTimeout, c.cfg.MaxFrameBytes)
	ps := &pull{c: c, cn: cn, peer: p, db: db, st: &st}
	err = ps.run(ctx, since, f)
	st.Bytes = cn.bytesIn
	if err != nil {
		var re *RemoteError
		if !errors.As(err, &re) && ctx.Err() == nil {
			cn.writeError(err)
		}
		_ = s.Reset()
		if ctx.Err() != nil {
			return st, fmt.Errorf("pull %s from %s: %w", db, p, ctx.Err())
		}
		return st, fmt.Errorf("pull %s from %s: %w", db, p, err)
	}
	return st, s.Close()
}

// pull is one client session.
type pull struct {
	c       *Client
	cn      *conn
	peer    peer.ID
	db      string
	st      *Stats
	rounds  int // Want rounds for missing parents so far
	pending int // bytes of fetched parents held
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
	cursor := since
	for {
		m, err := ps.read()
		if err != nil {
			return err
		}
		ids, ok := m.(*idsMsg)
		if !ok {
			return fmt.Errorf("%w: want ids, got %T", ErrBadRequest, m)
		}
		if len(ids.Entries) > limit || ids.Last < cursor || (len(ids.Entries) > 0 && ids.Entries[0].Seq <= cursor) {
			return fmt.Errorf("%w: ids batch of %d after %d, last %d", ErrBadRequest, len(ids.Entries), cursor, ids.Last)
		}
		ps.st.Batches++
		ps.st.IDs += len(ids.Entries)
		if err := ps.batch(ctx, ids.Entries); err != nil {
			return err
		}
		if ids.Last > cursor {
			if err := ps.c.store.SetCheckpoint(ctx, ps.db, ps.peer, ids.Last); err != nil {
				return fmt.Errorf("set checkpoint %d: %w", ids.Last, err)
			}
			cursor = ids.Last
			ps.st.Checkpoint = cursor
		}
		if ids.Done {
			return nil
		}
		if err := ps.cn.write(msgNext, &nextMsg{Since: cursor}); err != nil {
			return err
		}
	}
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

// batch fetches and applies the entries this store lacks.
func (ps *pull) batch(ctx context.Context, entries []wireEntry) error {
	if len(entries) == 0 {
		return nil
	}
	ids := make([]crdt.ID, len(entries))
	for i, e := range entries {
		ids[i] = crdt.ID(e.ID)
	}
	has, err := ps.c.store.Has(ctx, ps.db, ids)
	if err != nil {
		return fmt.Errorf("has: %w", err)
	}
	if len(has) != len(ids) {
		return fmt.Errorf("has: %d answers for %d ids", len(has), len(ids))
	}
	var lacking []uint32
	for i, h := range has {
		if !h {
			lacking = append(lacking, uint32(i))
		}
	}
	for len(lacking) > 0 {
		if err := ps.cn.write(msgWant, &wantMsg{Indices: lacking}); err != nil {
			return err
		}
		// Bodies are applied frame by frame, so a batch never sits in
		// memory whole. When Apply reports missing parents the rest of the
		// answer is read and dropped (the stream is ordered: the parents
		// can only be asked for after it), the parents are fetched, and
		// the batch is asked for again from the change that failed. That
		// resends bodies, but only on this rare path: the server lists in
		// causal order, so parents normally come first or are held.
		failedAt := -1
		var missing []crdt.ID
		for got := 0; got < len(lacking); {
			m, err := ps.read()
			if err != nil {
				return err
			}
			b, ok := m.(*bodiesMsg)
			if !ok || got+len(b.Changes) > len(lacking) {
				return fmt.Errorf("%w: want %d bodies, got %T", ErrBadRequest, len(lacking)-got, m)
			}
			if failedAt >= 0 {
				got += len(b.Changes)
				continue
			}
			want := make([]crdt.ID, len(b.Changes))
			for i := range want {
				want[i] = ids[lacking[got+i]]
			}
			changes, err := decodeBodies(b.Changes, want)
			if err != nil {
				return err
			}
			ps.st.Fetched += len(changes)
			n, err := ps.c.store.Apply(ctx, ps.db, ps.peer, changes)
			ps.st.Applied += n
			var me *MissingError
			switch {
			case errors.As(err, &me):
				if len(me.IDs) == 0 {
					return fmt.Errorf("apply: %w", err)
				}
				failedAt, missing = got+firstMissing(changes, me.IDs), me.IDs
			case err != nil:
				return fmt.Errorf("apply: %w", err)
			}
			got += len(b.Changes)
		}
		if failedAt < 0 {
			return nil
		}
		if err := ps.resolve(ctx, missing); err != nil {
			return err
		}
		lacking = lacking[failedAt:]
	}
	return nil
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

// firstMissing returns the index of the first change with a parent in
// missing (0 if none: then everything is retried).
func firstMissing(changes []*crdt.Change, missing []crdt.ID) int {
	set := make(map[crdt.ID]bool, len(missing))
	for _, id := range missing {
		set[id] = true
	}
	for i, c := range changes {
		for _, p := range c.Parents {
			if set[p] {
				return i
			}
		}
	}
	return 0
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
