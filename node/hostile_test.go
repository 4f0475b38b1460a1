package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/barrel-db/barrel/crdt"
	bsync "github.com/barrel-db/barrel/sync"
)

// The hostile-peer harness: a real libp2p host on 127.0.0.1 that speaks
// the sync protocol through the sync package (its Server, its Client) over
// a Store the test scripts, so it serves and sends what an attacker would:
// forged or flooding changes, held-open sessions. startHostile connects it
// to a victim node; the victim pulls from it like from any peer.

// hostileStore is a bsync.Store whose answers a test scripts. By default
// it serves, per database, the bodies added with serve, in that order
// (whatever they are: forged, oversized, never-completing transactions),
// holds nothing (Has says false) and discards what it pulls. A hook set
// before the host starts replaces a default; hooks must be safe for
// concurrent use. A test that needs the snapshot protocol embeds it in a
// type that adds bsync.SnapshotStore's methods.
type hostileStore struct {
	// OnFeed, OnHas, OnChanges, OnApply replace the defaults when set.
	OnFeed    func(ctx context.Context, db string, since uint64, limit int) ([]bsync.Entry, uint64, error)
	OnHas     func(ctx context.Context, db string, ids []crdt.ID) ([]bool, error)
	OnChanges func(ctx context.Context, db string, ids []crdt.ID) ([][]byte, error)
	OnApply   func(ctx context.Context, db string, from peer.ID, changes []*crdt.Change) (int, error)

	mu struct { // guards served
		sync.Mutex
		served map[string][]servedChange
	}
}

// servedChange is one feed entry the hostile peer lists and the body it
// sends for it (which need not hash to the id).
type servedChange struct {
	id   crdt.ID
	doc  string
	body []byte
}

var _ bsync.Store = (*hostileStore)(nil)

// serve appends a change to what the store lists for db, with the given
// listed id and body.
func (s *hostileStore) serve(db string, id crdt.ID, doc string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.served == nil {
		s.mu.served = map[string][]servedChange{}
	}
	s.mu.served[db] = append(s.mu.served[db], servedChange{id: id, doc: doc, body: body})
}

// serveChanges serves sealed changes with their true ids and encodings.
func (s *hostileStore) serveChanges(t *testing.T, changes ...*crdt.Change) {
	t.Helper()
	for _, c := range changes {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		s.serve(c.DB, c.ID(), c.Doc, b)
	}
}

func (s *hostileStore) Feed(ctx context.Context, db string, since uint64, limit int, _ *bsync.Filter) ([]bsync.Entry, uint64, error) {
	if s.OnFeed != nil {
		return s.OnFeed(ctx, db, since, limit)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all, ok := s.mu.served[db]
	if !ok {
		return nil, 0, bsync.ErrNoDB
	}
	var out []bsync.Entry
	last := since
	for i := since; i < uint64(len(all)) && len(out) < limit; i++ {
		out = append(out, bsync.Entry{Seq: i + 1, ID: all[i].id, Doc: all[i].doc})
		last = i + 1
	}
	return out, last, nil
}

func (s *hostileStore) Has(ctx context.Context, db string, ids []crdt.ID) ([]bool, error) {
	if s.OnHas != nil {
		return s.OnHas(ctx, db, ids)
	}
	return make([]bool, len(ids)), nil
}

func (s *hostileStore) Changes(ctx context.Context, db string, ids []crdt.ID) ([][]byte, error) {
	if s.OnChanges != nil {
		return s.OnChanges(ctx, db, ids)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, len(ids))
	for i, id := range ids {
		j := slices.IndexFunc(s.mu.served[db], func(c servedChange) bool { return c.id == id })
		if j < 0 {
			return nil, fmt.Errorf("change %s: %w", id, bsync.ErrNotFound)
		}
		out[i] = s.mu.served[db][j].body
	}
	return out, nil
}

func (s *hostileStore) Apply(ctx context.Context, db string, from peer.ID, changes []*crdt.Change) (int, error) {
	if s.OnApply != nil {
		return s.OnApply(ctx, db, from, changes)
	}
	return len(changes), nil
}

func (s *hostileStore) Checkpoint(context.Context, string, peer.ID) (uint64, error) { return 0, nil }
func (s *hostileStore) SetCheckpoint(context.Context, string, peer.ID, uint64) error {
	return nil
}

// AuthorizeRead lets every peer read: the attacker serves whoever asks.
func (s *hostileStore) AuthorizeRead(context.Context, string, peer.ID) error { return nil }

func (s *hostileStore) Databases(context.Context) ([]bsync.Replicated, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bsync.Replicated
	for db := range s.mu.served {
		out = append(out, bsync.Replicated{DB: db})
	}
	return out, nil
}

// hostile is a running hostile peer.
type hostile struct {
	t      *testing.T
	h      host.Host
	key    crypto.PrivKey
	store  bsync.Store
	victim *Node
	cfg    bsync.Config
}

// startHostile starts a hostile peer serving store (a *hostileStore, or a
// type embedding one) with a sync server built from cfg, and connects it
// to victim. Everything stops when the test ends.
func startHostile(t *testing.T, victim *Node, store bsync.Store, cfg bsync.Config) *hostile {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	cfg.Logger = discardLogger()
	cfg.Registerer = prometheus.NewRegistry()
	if cfg.MaxFrameBytes == 0 {
		cfg.MaxFrameBytes = crdt.MaxChangeBytes + 64<<10
	}
	srv := bsync.NewServer(h, store, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "hostile handler", 5*time.Second, func() bool { return slices.Contains(h.Mux().Protocols(), bsync.ProtocolID) })
	x := &hostile{t: t, h: h, key: key, store: store, victim: victim, cfg: cfg}
	np := victim.net.Load()
	if np == nil {
		t.Fatal("victim has no network")
	}
	if err := h.Connect(t.Context(), peer.AddrInfo{ID: victim.PeerID(), Addrs: np.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return x
}

// id is the hostile peer's id.
func (x *hostile) id() peer.ID { return x.h.ID() }

// change builds a change signed by the hostile peer.
func (x *hostile) change(db, doc string, tx *crdt.Tx, ops ...crdt.Op) *crdt.Change {
	x.t.Helper()
	c := &crdt.Change{DB: db, Doc: doc, Author: []byte(x.id()), Ops: ops, Tx: tx,
		Clock: crdt.HLC{Wall: time.Now().UnixNano()}}
	if err := c.Seal(x.key); err != nil {
		x.t.Fatal(err)
	}
	return c
}

// pull runs one pull of db from the victim with the hostile peer's own
// store (so its hooks script the client side).
func (x *hostile) pull(ctx context.Context, db string) (bsync.Stats, error) {
	return bsync.NewClient(x.h, x.store, x.cfg).Pull(ctx, x.victim.PeerID(), db, nil)
}

// openStream opens a sync stream to the victim and sends nothing more than
// the protocol negotiation: a session held open before its Hello.
func (x *hostile) openStream(ctx context.Context) (network.Stream, error) {
	st, err := x.h.NewStream(ctx, x.victim.PeerID(), bsync.ProtocolID)
	if err != nil {
		return nil, err
	}
	if _, err := st.Write(nil); err != nil { // opening is lazy: force the negotiation
		_ = st.Reset()
		return nil, err
	}
	return st, nil
}

// bsyncConfig is the hostile peer's sync configuration: the defaults.
func bsyncConfig() bsync.Config { return bsync.Config{} }
