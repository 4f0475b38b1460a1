package discovery

import (
	"log/slog"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config's fields, used where a field is zero.
const (
	DefaultMDNSService = "barrel"
	DefaultRendezvous  = time.Minute
	DefaultBackoffMin  = time.Second
	DefaultBackoffMax  = 5 * time.Minute
	DefaultDialTimeout = 10 * time.Second
)

// Config configures a Discovery. The zero value of every field means its
// default.
type Config struct {
	// MDNS enables mDNS discovery on the LAN. Default off.
	MDNS bool
	// MDNSService is the mDNS service name; peers only find peers using the
	// same name. Default "barrel".
	MDNSService string
	// DHT enables a Kademlia DHT (protocol /barrel/kad/1.0.0, separate from
	// the public IPFS DHT) and rendezvous on it. It has no default
	// bootstrap peers: only Bootstrap. Default off.
	DHT bool
	// DHTServer runs the DHT in server mode whatever the host's
	// reachability. Default false: auto-server (a server unless libp2p
	// finds the host unreachable). Tests and LANs behind NAT set it, since
	// their peers are all "private".
	DHTServer bool
	// AllowPrivateAddrs lets the DHT route through, store and hand out
	// private and loopback addresses. Default false: the DHT keeps only
	// peers with public addresses, the rule for the internet, where a
	// private address handed out by a stranger is useless or an attack on
	// the local network. Set it for a DHT on a LAN or in tests on one
	// machine.
	AllowPrivateAddrs bool
	// Bootstrap peers (each with /p2p/<id>), dialed at start, redialed
	// with backoff and used to seed the DHT. Default none.
	Bootstrap []multiaddr.Multiaddr
	// Rendezvous is how often every namespace given to Advertise is
	// advertised and looked up on the DHT. Default 1m.
	Rendezvous time.Duration
	// Backoff bounds the redial delay of a known peer that is not
	// connected: it starts at Min, doubles after each failed dial up to
	// Max, and returns to Min after a successful one. Default 1s..5m.
	Backoff struct{ Min, Max time.Duration }
	// DialTimeout bounds one dial. Default 10s.
	DialTimeout time.Duration
	// Datastore is where known peers persist. Discovery owns every key in
	// it, so give it a namespace of its own. Default: in memory only.
	Datastore ds.Batching
	// Logger receives the component's logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer is where the metrics are registered; nil means a fresh
	// private registry (metrics then go nowhere).
	Registerer prometheus.Registerer
}

// withDefaults returns cfg with zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.MDNSService == "" {
		cfg.MDNSService = DefaultMDNSService
	}
	if cfg.Rendezvous <= 0 {
		cfg.Rendezvous = DefaultRendezvous
	}
	if cfg.Backoff.Min <= 0 {
		cfg.Backoff.Min = DefaultBackoffMin
	}
	if cfg.Backoff.Max <= 0 {
		cfg.Backoff.Max = DefaultBackoffMax
	}
	if cfg.Backoff.Max < cfg.Backoff.Min {
		cfg.Backoff.Max = cfg.Backoff.Min
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Datastore == nil {
		cfg.Datastore = dssync.MutexWrap(ds.NewMapDatastore())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	return cfg
}
