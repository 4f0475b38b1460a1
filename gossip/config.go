package gossip

import (
	"log/slog"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config's fields, used where a field is zero.
const (
	DefaultDebounce        = 20 * time.Millisecond
	DefaultHeartbeat       = 10 * time.Second
	DefaultMaxMessageBytes = 64 << 10
	DefaultReceiveQueue    = 256
)

// envelopeBytes is the room gossipsub's RPC framing needs around a message's
// data (author, sequence number, signature and key, topic, control
// messages). The router's maximum RPC size is MaxMessageBytes plus this, so
// a message just over MaxMessageBytes still reaches our validator (and is
// counted as rejected) instead of resetting the sender's stream.
const envelopeBytes = 8 << 10

// Config configures a Gossip. The zero value of every field means its
// default.
type Config struct {
	// Debounce is the shortest time between two publishes of notified
	// announcements: a Notify after a quiet Debounce is published at once,
	// the Notifies of a burst that follows go out together at the end of
	// the window, carrying the latest values. So a lone commit is announced
	// without delay and a steady stream of commits once per Debounce.
	// Default 20ms; negative publishes every Notify at once.
	Debounce time.Duration
	// Heartbeat is how often every joined database that has been notified
	// at least once is announced again, repairing lost messages and telling
	// peers that joined later. Default 10s; negative disables it.
	Heartbeat time.Duration
	// MaxMessageBytes bounds a message's data; the topic validator rejects
	// bigger messages. Default 64 KiB.
	MaxMessageBytes int
	// ReceiveQueue is the capacity of the Announcements channel. Default 256.
	ReceiveQueue int
	// Mesh tunes the gossipsub router; the zero value announces to
	// connected peers only (see Mesh).
	Mesh Mesh
	// Logger receives the component's logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer is where the metrics are registered; nil means a fresh
	// private registry (metrics then go nowhere).
	Registerer prometheus.Registerer
}

// withDefaults returns cfg with zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Debounce == 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Debounce < 0 {
		cfg.Debounce = 0
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.ReceiveQueue <= 0 {
		cfg.ReceiveQueue = DefaultReceiveQueue
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	return cfg
}

// Mesh tunes the gossipsub router. Its zero value sends each peer's
// announcements to the peers it is connected to and no further; Relay
// turns on gossipsub's mesh forwarding.
//
// One hop is enough: a peer that pulls changes commits them and announces
// its own new heads, so news travels as far as the changes themselves, hop
// by hop. Forwarding every peer's announcements through the whole mesh
// cost each peer one signature check per announcement of every other peer
// (100 peers: 100 per write) and told distant peers of changes their
// neighbours did not hold yet, so their pulls found nothing; measured in
// docs/benchmarks.md (W6).
type Mesh struct {
	// Relay forwards announcements through gossipsub's mesh (and its lazy
	// IHAVE gossip), so a peer hears the announcements of peers it is not
	// connected to, each relayed by a connected peer (Received.Via).
	Relay bool
	// D, Dlo and Dhi are the mesh degree per topic with Relay: its target,
	// the low water mark below which the router grafts, and the high one
	// above which it prunes. Set all three or none (gossipsub's 6, 5, 12);
	// Dlo <= D <= Dhi, D at least 2.
	D, Dlo, Dhi int
	// Heartbeat is the router's heartbeat with Relay (mesh maintenance and
	// lazy gossip; gossipsub's default 1s), not Config.Heartbeat.
	Heartbeat time.Duration
	// NoFloodPublish sends our own announcements to our mesh peers only
	// instead of every subscribed peer; only with Relay (without a mesh
	// nobody would receive them).
	NoFloodPublish bool
}

// floodPublish reports whether our own messages go to every subscribed
// peer.
func (m Mesh) floodPublish() bool { return !m.Relay || !m.NoFloodPublish }

// params returns the gossipsub parameters m describes.
func (m Mesh) params() pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	if !m.Relay {
		// No mesh (gossipsub's bootstrapper setting: D = Dlo = Dhi =
		// Dout = 0) and no lazy gossip: received messages are delivered,
		// never forwarded; flood publishing reaches the neighbours.
		p.D, p.Dlo, p.Dhi, p.Dout, p.Dscore, p.Dlazy = 0, 0, 0, 0, 0, 0
		p.GossipFactor = 0
		return p
	}
	if m.D > 0 || m.Dlo > 0 || m.Dhi > 0 {
		p.D, p.Dlo, p.Dhi = m.D, m.Dlo, m.Dhi
		// gossipsub wants Dout < Dlo and Dout < D/2, Dscore <= Dhi.
		p.Dout = max(0, min(p.Dout, m.Dlo-1, m.D/2-1))
		p.Dscore = min(p.Dscore, m.Dhi)
	}
	if m.Heartbeat > 0 {
		p.HeartbeatInterval = m.Heartbeat
	}
	return p
}
