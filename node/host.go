package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	connmgrimpl "github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/multiformats/go-multiaddr"

	"github.com/barrel-db/barrel/gossip"
	bsync "github.com/barrel-db/barrel/sync"
)

// P2PConfig configures the node as a libp2p peer. Config.P2P nil means no
// networking at all (an embedded, single-node barrel). Defaults are safe:
// nothing dials a public address unless the user configured one: there is
// no built-in bootstrap list, and NAT port mapping, hole punching and the
// relay client are off unless enabled here.
type P2PConfig struct {
	// Listen addresses (multiaddrs). Default: TCP and QUIC on all
	// interfaces, port 4001; TCP only with a swarm key.
	Listen []string
	// Bootstrap peers (multiaddrs with /p2p/ID), dialed at start and
	// redialed with backoff. Default: none.
	Bootstrap []string
	NoMDNS    bool // disable mDNS discovery on the LAN (on by default)
	NoDHT     bool // disable the Kademlia DHT and its per-database rendezvous
	// AllowPrivateAddrs lets the DHT keep private and loopback addresses
	// (a LAN or a test on one machine). Default false: public internet rules.
	AllowPrivateAddrs bool

	NATPortMap   bool // UPnP/NAT-PMP port mapping; default off
	HolePunching bool // DCUtR hole punching; default off
	RelayClient  bool // dial through circuit relays; default off

	ConnLow        int   // connection manager low water mark; default 64
	ConnHigh       int   // high water mark; default 192
	MaxMemoryBytes int64 // resource manager memory limit for libp2p; default 256 MiB
	MaxFDs         int   // resource manager file descriptor limit; default 512

	Debounce    time.Duration // heads are announced at most once per Debounce (a commit after a quiet one at once); default 5ms
	Heartbeat   time.Duration // re-announce heads this often; default 10s
	AntiEntropy time.Duration // pull from every connected peer this often; default 30s
	Rendezvous  time.Duration // DHT advertise and lookup interval; default 1m
	RedialMin   time.Duration // first redial delay for a lost known peer; default 1s
	RedialMax   time.Duration // longest redial delay (exponential backoff); default 5m
	BlobRetry   time.Duration // first retry delay of a failed blob fetch (doubles up to 30s); default 500ms

	// SyncIdle closes a served sync session that waited this long for the
	// peer's next message (its Hello included); default 30s.
	SyncIdle time.Duration
	// SyncPeerStreams bounds the sync and snapshot streams one peer may
	// have open on this node at once (of the 64 sessions served in all);
	// more are answered busy. Default 8.
	SyncPeerStreams int
	// SyncPeerBodiesPerSec and SyncPeerBytesPerSec are one peer's budget
	// on this node's sync server: change bodies and bytes sent to it per
	// second, across its sessions; a pull past it is slowed. 0: the
	// defaults (100,000 and 64 MiB); negative: unlimited.
	SyncPeerBodiesPerSec int64
	SyncPeerBytesPerSec  int64
	// SyncBatch is the most feed entries per IDs batch of the sync
	// protocol, in this node's pulls and in the sessions it serves (a
	// pull's checkpoint, and its progress status, move once per batch);
	// default 1000, at most 100,000. Small values make pulls slow: tests
	// use them to watch a pull's progress.
	SyncBatch int

	// SwarmKey, when set, makes the node a member of a private network:
	// only peers holding the same 32-byte pre-shared key complete a
	// connection with it, others fail before the security handshake.
	// Private networks run over TCP only (see validateSwarmKey). Default:
	// none, the public libp2p network. Never logged or shown.
	SwarmKey []byte `json:"-"`
	// SwarmKeyFile names a file holding the swarm key in the IPFS format
	// (see ReadSwarmKey); validation reads it into SwarmKey. Set this or
	// SwarmKey, not both.
	SwarmKeyFile string

	// GossipMesh tunes the gossipsub router (mesh degree, its heartbeat,
	// flood publishing); the zero value is the gossip package's defaults.
	GossipMesh gossip.Mesh

	// Not data. ConnectionGater, when set, vets every connection (tests
	// use it to partition peers).
	ConnectionGater connmgr.ConnectionGater
}

// DefaultListen is where a peer listens unless configured.
var DefaultListen = []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}

// DefaultPrivateListen is where a peer of a private network (with a swarm
// key) listens unless configured: TCP only, as libp2p has no pre-shared key
// protection for QUIC.
var DefaultPrivateListen = []string{"/ip4/0.0.0.0/tcp/4001"}

func (c *P2PConfig) validate() error {
	var errs []error
	if len(c.Listen) == 0 {
		c.Listen = DefaultListen
		if c.SwarmKey != nil || c.SwarmKeyFile != "" {
			c.Listen = DefaultPrivateListen
		}
	}
	for _, a := range append(append([]string{}, c.Listen...), c.Bootstrap...) {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			errs = append(errs, fmt.Errorf("address %q: %w", a, err))
		}
	}
	for _, a := range c.Bootstrap {
		if m, err := multiaddr.NewMultiaddr(a); err == nil {
			if _, err := m.ValueForProtocol(multiaddr.P_P2P); err != nil {
				errs = append(errs, fmt.Errorf("bootstrap %q: needs a /p2p/PEERID part", a))
			}
		}
	}
	if c.ConnLow == 0 {
		c.ConnLow = 64
	}
	if c.ConnHigh == 0 {
		c.ConnHigh = 192
	}
	if c.ConnLow > c.ConnHigh {
		errs = append(errs, fmt.Errorf("conn low %d above high %d", c.ConnLow, c.ConnHigh))
	}
	if c.MaxMemoryBytes == 0 {
		c.MaxMemoryBytes = 256 << 20
	}
	if c.MaxFDs == 0 {
		c.MaxFDs = 512
	}
	if c.Debounce == 0 {
		c.Debounce = 5 * time.Millisecond
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.AntiEntropy == 0 {
		c.AntiEntropy = 30 * time.Second
	}
	if c.Rendezvous == 0 {
		c.Rendezvous = time.Minute
	}
	if c.RedialMin == 0 {
		c.RedialMin = time.Second
	}
	if c.RedialMax == 0 {
		c.RedialMax = 5 * time.Minute
	}
	if c.SyncBatch < 0 || c.SyncBatch > bsync.MaxBatchSize {
		errs = append(errs, fmt.Errorf("sync batch %d: want 1..%d", c.SyncBatch, bsync.MaxBatchSize))
	}
	if c.SyncIdle < 0 || c.SyncPeerStreams < 0 {
		errs = append(errs, fmt.Errorf("sync idle %v, sync peer streams %d: must not be negative", c.SyncIdle, c.SyncPeerStreams))
	}
	if c.RedialMin > c.RedialMax {
		errs = append(errs, fmt.Errorf("redial min %v above max %v", c.RedialMin, c.RedialMax))
	}
	errs = append(errs, c.validateSwarmKey()...)
	return errors.Join(errs...)
}

// newHost builds the libp2p host: the standard stack (TCP and QUIC, noise,
// yamux, identify, ping) so other libp2p implementations can connect, with
// the resource manager and connection manager bounded by the config. With
// a swarm key the host joins that private network, and libp2p drops the
// transports it cannot protect (QUIC, WebTransport, WebRTC).
func newHost(key crypto.PrivKey, c *P2PConfig) (host.Host, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	// One peer's inbound sync streams are cut at the resource manager
	// beyond 4 x its allowance: the sync server answers busy past the
	// allowance itself (a clear error for an honest peer that is too
	// eager), and the resource manager resets a flood before a handler
	// goroutine runs for it. The memory limit stays libp2p's default.
	peerStreams := c.SyncPeerStreams
	if peerStreams == 0 {
		peerStreams = bsync.DefaultMaxPeerStreams
	}
	for _, proto := range []protocol.ID{bsync.ProtocolID, bsync.SnapshotProtocolID} {
		base, inc := limits.ProtocolPeerBaseLimit, limits.ProtocolPeerLimitIncrease
		base.StreamsInbound, inc.StreamsInbound = 4*peerStreams, 0
		limits.AddProtocolPeerLimit(proto, base, inc)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.Scale(c.MaxMemoryBytes, c.MaxFDs)))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgrimpl.NewConnManager(c.ConnLow, c.ConnHigh)
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(c.Listen...),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent(agentVersion()),
	}
	if c.SwarmKey != nil {
		opts = append(opts, libp2p.PrivateNetwork(pnet.PSK(c.SwarmKey)))
	}
	if c.ConnectionGater != nil {
		opts = append(opts, libp2p.ConnectionGater(c.ConnectionGater))
	}
	if !c.RelayClient {
		opts = append(opts, libp2p.DisableRelay())
	}
	// Features that reach beyond the configured addresses: each only when
	// the user turned it on (none by default).
	for _, f := range []struct {
		on  bool
		opt func() libp2p.Option
	}{
		{c.NATPortMap, libp2p.NATPortMap},
		{c.HolePunching, func() libp2p.Option { return libp2p.EnableHolePunching() }},
	} {
		if f.on {
			opts = append(opts, f.opt())
		}
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	return h, nil
}
