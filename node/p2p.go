package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/discovery"
	"github.com/barrel-db/barrel/gossip"
	bsync "github.com/barrel-db/barrel/sync"
)

// netParts is the node's libp2p side, present when Config.P2P is set. The
// node owns it: startNetwork starts its goroutines, stopNetwork stops them
// and waits.
type netParts struct {
	host   host.Host
	gossip *gossip.Gossip
	repl   *bsync.Replicator
	disc   *discovery.Discovery
	blobs  *blobFetcher // pulls the blobs received documents reference
	// changed wakes replication watchers (WatchReplication): a pull
	// started, moved or ended, a peer connected or left, an announcement.
	changed *notifier
	cancel  context.CancelFunc
	group   *netGroup

	announced struct { // the latest feed seq each peer announced, per database
		sync.Mutex
		seq map[peerDB]uint64
	}
}

type peerDB struct {
	peer peer.ID
	db   string
}

// lag is how many feed entries a peer announced beyond our checkpoint of
// it (0 when unknown or caught up).
func (np *netParts) lag(p peer.ID, db string, checkpoint uint64) uint64 {
	np.announced.Lock()
	defer np.announced.Unlock()
	if seq := np.announced.seq[peerDB{p, db}]; seq > checkpoint {
		return seq - checkpoint
	}
	return 0
}

// Rendezvous is the DHT namespace under which peers holding a database
// find each other.
func Rendezvous(db string) string { return "barrel/db/" + db }

func (n *Node) startNetwork() error {
	cfg := n.cfg.P2P
	h, err := newHost(n.key, cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	fail := func(err error) error {
		cancel()
		_ = h.Close()
		return err
	}
	reg := n.registerer
	g, err := gossip.New(ctx, h, gossip.Config{
		Debounce:   cfg.Debounce,
		Heartbeat:  cfg.Heartbeat,
		Mesh:       cfg.GossipMesh,
		Logger:     n.log.With("component", "gossip"),
		Registerer: reg,
	})
	if err != nil {
		return fail(fmt.Errorf("gossip: %w", err))
	}
	changed := &notifier{}
	scfg := bsync.Config{
		// A frame must carry the largest change a node accepts.
		MaxFrameBytes:  crdt.MaxChangeBytes + 64<<10,
		AntiEntropy:    cfg.AntiEntropy,
		IdleTimeout:    cfg.SyncIdle,
		MaxPeerStreams: cfg.SyncPeerStreams,
		// A peer's budget on the server: bodies and bytes per second.
		PeerBodiesPerSec: cfg.SyncPeerBodiesPerSec,
		PeerBytesPerSec:  cfg.SyncPeerBytesPerSec,
		Logger:           n.log.With("component", "sync"),
		Registerer:       reg,
		Now:              n.cfg.Now,
		BatchSize:        cfg.SyncBatch,
		StatusChanged:    func(peer.ID, string) { changed.notify() },
	}
	if err := scfg.Validate(); err != nil {
		return fail(fmt.Errorf("sync: %w", err))
	}
	repl := bsync.New(h, syncStore{n}, scfg)
	var boot []multiaddr.Multiaddr
	for _, a := range cfg.Bootstrap {
		m, _ := multiaddr.NewMultiaddr(a) // validated
		boot = append(boot, m)
	}
	disc, err := discovery.New(h, discovery.Config{
		MDNS:              !cfg.NoMDNS,
		DHT:               !cfg.NoDHT,
		Bootstrap:         boot,
		Rendezvous:        cfg.Rendezvous,
		Backoff:           struct{ Min, Max time.Duration }{cfg.RedialMin, cfg.RedialMax},
		AllowPrivateAddrs: cfg.AllowPrivateAddrs,
		// On a LAN libp2p may think the host unreachable and drop the DHT
		// to client mode, where nobody answers queries.
		DHTServer:  cfg.AllowPrivateAddrs,
		Datastore:  n.store.Datastore("/p2p/known"),
		Logger:     n.log.With("component", "discovery"),
		Registerer: reg,
	})
	if err != nil {
		return fail(fmt.Errorf("discovery: %w", err))
	}
	if err := reg.Register(newLagCollector(n)); err != nil {
		return fail(fmt.Errorf("metrics: %w", err))
	}
	if err := reg.Register(newSyncCollector(n)); err != nil {
		return fail(fmt.Errorf("metrics: %w", err))
	}
	np := &netParts{host: h, gossip: g, repl: repl, disc: disc, changed: changed, cancel: cancel}
	np.announced.seq = map[peerDB]uint64{}
	n.mu.Lock()
	for name, d := range n.mu.dbs {
		if d.Replication().Off {
			continue
		}
		if err := g.Join(name); err != nil {
			n.mu.Unlock()
			return fail(fmt.Errorf("gossip join %s: %w", name, err))
		}
		disc.Advertise(Rendezvous(name))
	}
	n.mu.Unlock()
	// One part failing must not stop another (a discovery error once took
	// the sync handler down with it): netGroup logs it and reports it.
	eg := newNetGroup(n)
	np.group = eg
	eg.Go(ctx, "gossip", g.Run)
	eg.Go(ctx, "sync", repl.Run)
	eg.Go(ctx, "discovery", disc.Run)
	eg.Go(ctx, "announcements", func(ctx context.Context) error { return n.followAnnouncements(ctx, np) })
	n.startBlobs(ctx, eg, np)
	n.net.Store(np)
	n.mu.Lock()
	dbs := make([]*DB, 0, len(n.mu.dbs))
	for _, d := range n.mu.dbs {
		dbs = append(dbs, d)
	}
	n.mu.Unlock()
	for _, d := range dbs {
		d.announce() // the heartbeat re-announces only what was announced once
	}
	for _, a := range n.Info().Addrs {
		n.log.Info("listening", "addr", a)
	}
	return nil
}

// stopNetwork stops every network goroutine and closes the host.
func (n *Node) stopNetwork() {
	np := n.net.Swap(nil)
	if np == nil {
		return
	}
	np.cancel()
	np.group.Wait() // a part's error was logged when it happened
	if err := np.host.Close(); err != nil {
		n.log.Warn("close libp2p host", "err", err)
	}
}

// followAnnouncements turns peers' head announcements into pulls: a peer
// whose feed went past our checkpoint of it, holding a different change set
// than ours, has something for us.
func (n *Node) followAnnouncements(ctx context.Context, np *netParts) error {
	store := syncStore{n}
	for {
		var r gossip.Received
		select {
		case <-ctx.Done():
			return nil
		case r = <-np.gossip.Announcements():
		}
		d, err := n.DB(r.Ann.DB)
		if err != nil || d.Replication().Off {
			continue
		}
		np.announced.Lock()
		k := peerDB{r.From, r.Ann.DB}
		was, known := np.announced.seq[k]
		if known || len(np.announced.seq) < maxAnnounced {
			np.announced.seq[k] = r.Ann.Seq
		}
		np.announced.Unlock()
		if was != r.Ann.Seq {
			np.changed.notify() // the lag moved
		}
		xor, count := d.changesDigest()
		same := count == r.Ann.Changes && bytes.Equal(xor[:], r.Ann.Digest)
		// The author may be out of reach (the announcement came through
		// the mesh): then pull from the connected peer that relayed it,
		// which holds the changes or soon will.
		if np.host.Network().Connectedness(r.From) != network.Connected {
			if !same && r.Via != "" && r.Via != n.peerID {
				np.repl.Trigger(r.Via, r.Ann.DB)
			}
			continue
		}
		// The same change set still gets one pull while the checkpoint is
		// behind the announced seq (the peer's feed holds changes that came
		// from here, say): it lists nothing new, moves the checkpoint and
		// shows the peer as synced with no lag, instead of "never synced,
		// lag N" for two peers that agree.
		cp, err := store.Checkpoint(ctx, r.Ann.DB, r.From)
		if err != nil || r.Ann.Seq > cp {
			np.repl.Trigger(r.From, r.Ann.DB)
		}
	}
}

// maxAnnounced bounds the (peer, database) pairs whose announced sequence
// is remembered for lag reporting.
const maxAnnounced = 100_000

// announce tells peers about a database's new heads (after a commit).
func (d *DB) announce() {
	np := d.node.net.Load()
	if np == nil || d.Replication().Off {
		return
	}
	xor, count := d.changesDigest()
	np.gossip.Notify(d.name, gossip.Announcement{DB: d.name, Seq: d.seq.Load(), Digest: xor[:], Changes: count})
}

// joinNetwork starts replicating a database (created, or replication on).
func (n *Node) joinNetwork(name string) {
	np := n.net.Load()
	if np == nil {
		return
	}
	if err := np.gossip.Join(name); err != nil {
		n.log.Warn("gossip join", "db", name, "err", err)
	}
	np.disc.Advertise(Rendezvous(name))
	if d, err := n.DB(name); err == nil {
		d.announce()
	}
	for _, p := range np.host.Network().Peers() {
		np.repl.Trigger(p, name)
	}
}

// resync pulls a database again from every connected peer.
func (n *Node) resync(name string) {
	np := n.net.Load()
	if np == nil {
		return
	}
	for _, p := range np.host.Network().Peers() {
		np.repl.Trigger(p, name)
	}
}

// leaveNetwork stops announcing a database (dropped, or replication off).
func (n *Node) leaveNetwork(name string) {
	if np := n.net.Load(); np != nil {
		if err := np.gossip.Leave(name); err != nil {
			n.log.Debug("gossip leave", "db", name, "err", err)
		}
	}
}

// Connect dials a peer by multiaddr (with /p2p/ID). It becomes a known peer,
// redialed after restarts and disconnects, and replication with it starts.
func (n *Node) Connect(ctx context.Context, addr string) (string, error) {
	np := n.net.Load()
	if np == nil {
		return "", ErrNoNetwork
	}
	m, err := multiaddr.NewMultiaddr(addr)
	if err != nil {
		return "", invalid("address", "%q: %v", addr, err)
	}
	if _, err := m.ValueForProtocol(multiaddr.P_P2P); err != nil {
		return "", invalid("address", "%q: needs a /p2p/PEERID part", addr)
	}
	ai, err := np.disc.Connect(ctx, m)
	if errors.Is(err, discovery.ErrSelf) {
		return "", invalid("address", "%q is this node's own", addr)
	}
	if err != nil {
		return "", fmt.Errorf("connect %s: %w: %w", addr, ErrDialFailed, err)
	}
	np.repl.TriggerAll(ai.ID)
	return ai.ID.String(), nil
}

// Addrs returns the node's listen addresses with its peer id, for others
// to dial; none without networking.
func (n *Node) Addrs() []string {
	np := n.net.Load()
	if np == nil {
		return []string{}
	}
	var out []string
	for _, a := range np.host.Addrs() {
		out = append(out, a.String()+"/p2p/"+n.peerID.String())
	}
	slices.Sort(out)
	return out
}
