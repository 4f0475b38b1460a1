package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/multiformats/go-multiaddr"
)

// protectTag marks known peers in the host's connection manager.
const protectTag = "barrel-known"

// maxAddrs bounds the addresses kept per known peer.
const maxAddrs = 16

// Discovery finds peers and keeps known peers connected. Its methods are
// safe for concurrent use.
type Discovery struct {
	h    host.Host
	cfg  Config
	log  *slog.Logger
	m    *metrics
	boot []peer.AddrInfo

	wake   chan struct{} // capacity 1: the redial loop should look again
	rdWake chan struct{} // capacity 1: a namespace was added

	// mu guards the known peers, the namespaces and the running DHT. It is
	// never held across a dial or a datastore call.
	mu struct {
		sync.Mutex
		known    map[peer.ID]*known
		ns       map[string]struct{}
		dht      *dht.IpfsDHT // non-nil while Run runs with Config.DHT
		running  bool
		inflight int                  // redials running
		mechs    map[string]Mechanism // by name: mdns, dht
	}
}

// known is the redial state of one known peer, guarded by Discovery.mu.
type known struct {
	addrs     []multiaddr.Multiaddr
	bootstrap bool          // from Config.Bootstrap; not persisted
	backoff   time.Duration // delay before the next redial after a failure or disconnect
	next      time.Time     // zero: dial as soon as not connected
	dialing   bool
}

// New returns a Discovery for h. Nothing runs until Run. It fails with
// ErrNoPeerID if a bootstrap address lacks its /p2p part, or if the metrics
// cannot be registered.
func New(h host.Host, cfg Config) (*Discovery, error) {
	cfg = cfg.withDefaults()
	for _, a := range cfg.Bootstrap {
		if _, err := a.ValueForProtocol(multiaddr.P_P2P); err != nil {
			return nil, fmt.Errorf("bootstrap %s: %w", a, ErrNoPeerID)
		}
	}
	boot, err := peer.AddrInfosFromP2pAddrs(cfg.Bootstrap...)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register discovery metrics: %w", err)
	}
	d := &Discovery{
		h:      h,
		cfg:    cfg,
		log:    cfg.Logger,
		m:      m,
		wake:   make(chan struct{}, 1),
		rdWake: make(chan struct{}, 1),
	}
	d.mu.known = make(map[peer.ID]*known)
	d.mu.ns = make(map[string]struct{})
	for _, ai := range boot {
		if ai.ID == h.ID() {
			continue
		}
		d.boot = append(d.boot, ai)
		d.mu.known[ai.ID] = &known{addrs: capAddrs(ai.Addrs), bootstrap: true, backoff: cfg.Backoff.Min}
	}
	return d, nil
}

// Connect dials addr, which must end in /p2p/<id>, within ctx and
// Config.DialTimeout. On success the peer becomes known: it is persisted
// and redialed after disconnects and restarts. Errors: ErrNoPeerID,
// ErrSelf, the dial's error, or the datastore's when persisting fails (the
// connection then stays up). A user asked for this dial now, so an earlier
// failed dial's backoff does not refuse it.
func (d *Discovery) Connect(ctx context.Context, addr multiaddr.Multiaddr) (peer.AddrInfo, error) {
	ai, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("connect %s: %w", addr, ErrNoPeerID)
	}
	if ai.ID == d.h.ID() {
		return peer.AddrInfo{}, fmt.Errorf("connect %s: %w", addr, ErrSelf)
	}
	d.m.found.WithLabelValues(sourceManual).Inc()
	if sw, ok := d.h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(ai.ID)
	}
	if err := d.dial(ctx, *ai); err != nil {
		return peer.AddrInfo{}, fmt.Errorf("connect %s: %w", addr, err)
	}
	if err := d.remember(ctx, *ai); err != nil {
		return *ai, fmt.Errorf("connect %s: %w", addr, err)
	}
	return *ai, nil
}

// Advertise adds a rendezvous namespace: while Run runs with the DHT, this
// peer is advertised under it and the peers found under it are connected.
// The node passes "barrel/db/"+name for each replicated database.
func (d *Discovery) Advertise(ns string) {
	d.mu.Lock()
	_, had := d.mu.ns[ns]
	d.mu.ns[ns] = struct{}{}
	d.mu.Unlock()
	if !had {
		signal(d.rdWake)
	}
}

// Forget drops p from the known peers, deletes its record and stops
// redialing it; an open connection stays. A bootstrap peer comes back at
// the next start. Errors come from the datastore.
func (d *Discovery) Forget(p peer.ID) error {
	d.mu.Lock()
	delete(d.mu.known, p)
	d.mu.Unlock()
	d.h.ConnManager().Unprotect(p, protectTag)
	// Forget has no context in its contract; the datastore call is local.
	if err := d.cfg.Datastore.Delete(context.Background(), peerKey(p)); err != nil {
		return fmt.Errorf("forget %s: %w", p, err)
	}
	return nil
}

// Known returns the known peers sorted by id: the bootstrap peers, the
// peers loaded from the datastore when Run started and those connected
// since. The caller owns the result.
func (d *Discovery) Known() []peer.AddrInfo {
	d.mu.Lock()
	out := make([]peer.AddrInfo, 0, len(d.mu.known))
	for id, k := range d.mu.known {
		out = append(out, peer.AddrInfo{ID: id, Addrs: slices.Clone(k.addrs)})
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b peer.AddrInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Routing returns the DHT while Run runs with Config.DHT, or nil.
func (d *Discovery) Routing() routing.Routing {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mu.dht == nil {
		return nil
	}
	return d.mu.dht
}

// dial connects to ai within Config.DialTimeout and counts the result.
func (d *Discovery) dial(ctx context.Context, ai peer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.DialTimeout)
	defer cancel()
	err := d.h.Connect(ctx, ai)
	result := "ok"
	if err != nil {
		result = "error"
	}
	d.m.dials.WithLabelValues(result).Inc()
	return err
}

// remember makes a connected peer known: its addresses are merged into its
// record, its backoff reset, it is protected from connection trimming and
// persisted (unless it is a bootstrap peer).
func (d *Discovery) remember(ctx context.Context, ai peer.AddrInfo) error {
	d.mu.Lock()
	k, ok := d.mu.known[ai.ID]
	if !ok {
		k = &known{}
		d.mu.known[ai.ID] = k
	}
	k.addrs = capAddrs(append(slices.Clone(ai.Addrs), k.addrs...))
	k.backoff, k.next = d.cfg.Backoff.Min, time.Time{}
	addrs, persist := slices.Clone(k.addrs), !k.bootstrap
	d.mu.Unlock()
	d.h.ConnManager().Protect(ai.ID, protectTag)
	if !persist {
		return nil
	}
	if err := d.store(ctx, ai.ID, addrs); err != nil {
		return fmt.Errorf("remember %s: %w", ai.ID, err)
	}
	return nil
}

// found handles a peer found by mDNS or rendezvous: it is connected (unless
// it is already) and remembered.
func (d *Discovery) found(ctx context.Context, source string, ai peer.AddrInfo) {
	if ai.ID == d.h.ID() || ai.ID == "" {
		return
	}
	d.mu.Lock()
	_, isKnown := d.mu.known[ai.ID]
	d.mu.Unlock()
	if isKnown && d.connected(ai.ID) {
		return
	}
	if !isKnown {
		d.m.found.WithLabelValues(source).Inc()
	}
	log := d.log.With("peer", ai.ID, "source", source)
	if err := d.dial(ctx, ai); err != nil {
		log.Debug("found peer not reachable", "err", err)
		return
	}
	if err := d.remember(ctx, ai); err != nil {
		log.Warn("found peer not remembered", "err", err)
		return
	}
	if !isKnown {
		log.Info("peer found and connected")
	}
}

func (d *Discovery) connected(p peer.ID) bool {
	return d.h.Network().Connectedness(p) == network.Connected
}

// capAddrs removes duplicates, keeping the first occurrence, and keeps at
// most maxAddrs.
func capAddrs(addrs []multiaddr.Multiaddr) []multiaddr.Multiaddr {
	out := make([]multiaddr.Multiaddr, 0, min(len(addrs), maxAddrs))
	for _, a := range addrs {
		if len(out) == maxAddrs {
			break
		}
		if a == nil || slices.ContainsFunc(out, a.Equal) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// signal wakes the loop waiting on c without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
