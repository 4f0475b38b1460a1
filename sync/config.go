package sync

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config. A zero field means its default.
const (
	DefaultMaxFrameBytes    = 4 << 20
	DefaultBatchSize        = 1000
	DefaultMaxMissingRounds = 64
	DefaultMaxPendingBytes  = 64 << 20
	DefaultStreamTimeout    = 30 * time.Second
	DefaultMaxStreams       = 64
	DefaultMaxPeerStreams   = 8
	DefaultFailLogEvery     = 5 * time.Minute
	DefaultMaxPulls         = 8
	// DefaultPeerBodiesPerSec and DefaultPeerBytesPerSec are one peer's
	// budget on the server: about three times what a fresh peer pulls on
	// a small machine (W2), so a catch-up is not slowed, while one peer
	// pulling in a loop leaves the others most of the server.
	DefaultPeerBodiesPerSec = 100_000
	DefaultPeerBytesPerSec  = 64 << 20
	DefaultAntiEntropy      = 30 * time.Second
	DefaultMaxQueued        = 4096

	// MinFrameBytes is the smallest MaxFrameBytes a Config accepts.
	MinFrameBytes = 64 << 10
	// MaxBatchSize is the largest BatchSize a Config accepts (and the
	// largest IDs or Want list a decoder accepts).
	MaxBatchSize = 100_000
)

// Config configures the sync protocol: client, server and replicator share
// it. node derives it from its own configuration. The zero value is valid.
type Config struct {
	// MaxFrameBytes bounds one frame's payload, in bytes, sent or received.
	// Default 4 MiB; at least MinFrameBytes. A single change whose
	// encoding (plus a few bytes of framing) exceeds it cannot be served.
	MaxFrameBytes int
	// BatchSize is the number of feed entries listed per IDs message and
	// the most ids one Want may name. Default 1000, at most MaxBatchSize.
	BatchSize int
	// MaxMissingRounds bounds the Want rounds for missing parents in one
	// pull. Default 64.
	MaxMissingRounds int
	// MaxPendingBytes bounds the bytes of fetched parents a client holds
	// while resolving missing parents. Default 64 MiB.
	MaxPendingBytes int
	// StreamTimeout bounds every read and write on a stream. Default 30s.
	StreamTimeout time.Duration
	// MaxStreams bounds concurrent server sessions; more get Error{busy}.
	// A session takes one of these slots only after its Hello was read and
	// the peer was authorized to read the database. Default 64.
	MaxStreams int
	// MaxPeerStreams bounds the server streams (sync and snapshot) one
	// peer has open at once, authorized or still before its Hello; more
	// get Error{busy} at once, so one peer cannot hold the slots of
	// MaxStreams. Default 8.
	MaxPeerStreams int
	// IdleTimeout bounds how long a server session waits for the client's
	// next message (its Hello included) before it is closed. Default:
	// StreamTimeout.
	IdleTimeout time.Duration
	// FailLogEvery is how often a (peer, database) whose pulls (or a peer
	// whose served sessions) keep failing is logged again, with the count of
	// failures since the first: the first failure is logged at once, and
	// the recovery once. Default 5m.
	FailLogEvery time.Duration
	// MaxPulls bounds the replicator's concurrent pulls. Default 8.
	MaxPulls int
	// MaxQueued bounds the replicator's queued (peer, db) triggers; more
	// are dropped (the anti-entropy tick retries them). Default 4096.
	MaxQueued int
	// PeerBodiesPerSec and PeerBytesPerSec are the server's budget for one
	// peer: the change bodies and bytes its sessions together are sent per
	// second. A session past it is slowed, not refused, so one peer pulling
	// in a loop cannot starve the others. 0 means the defaults
	// (DefaultPeerBodiesPerSec, DefaultPeerBytesPerSec); negative:
	// unlimited.
	PeerBodiesPerSec int64
	PeerBytesPerSec  int64
	// AntiEntropy is the period of the replicator's pull of every connected
	// peer. 0 means the default, 30s; negative disables it.
	AntiEntropy time.Duration

	// Logger receives the component's logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil means they are not registered.
	Registerer prometheus.Registerer
	// Now reads the wall clock for status times; nil means time.Now.
	Now func() time.Time
	// StatusChanged, when set, is called after the replicator's status of
	// pulling db from peer moved: a pull started, applied a batch or
	// ended. db is "" when peer's connectedness changed. It is called on
	// the pull's own goroutines with no lock held and must return quickly
	// (node coalesces the calls into its replication watchers).
	StatusChanged func(p peer.ID, db string)
}

// Validate fills defaults and reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxFrameBytes, DefaultMaxFrameBytes)
	def(&c.BatchSize, DefaultBatchSize)
	def(&c.MaxMissingRounds, DefaultMaxMissingRounds)
	def(&c.MaxPendingBytes, DefaultMaxPendingBytes)
	def(&c.MaxStreams, DefaultMaxStreams)
	def(&c.MaxPeerStreams, DefaultMaxPeerStreams)
	def(&c.MaxPulls, DefaultMaxPulls)
	def(&c.MaxQueued, DefaultMaxQueued)
	if c.PeerBodiesPerSec == 0 {
		c.PeerBodiesPerSec = DefaultPeerBodiesPerSec
	}
	if c.PeerBytesPerSec == 0 {
		c.PeerBytesPerSec = DefaultPeerBytesPerSec
	}
	if c.StreamTimeout == 0 {
		c.StreamTimeout = DefaultStreamTimeout
	}
	if c.AntiEntropy == 0 {
		c.AntiEntropy = DefaultAntiEntropy
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = c.StreamTimeout
	}
	if c.FailLogEvery == 0 {
		c.FailLogEvery = DefaultFailLogEvery
	}
	if c.MaxFrameBytes < MinFrameBytes || c.MaxFrameBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("max frame bytes %d: want %d..%d", c.MaxFrameBytes, MinFrameBytes, 1<<30))
	}
	if c.BatchSize < 0 || c.BatchSize > MaxBatchSize {
		errs = append(errs, fmt.Errorf("batch size %d: want 1..%d", c.BatchSize, MaxBatchSize))
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max missing rounds", c.MaxMissingRounds},
		{"max pending bytes", c.MaxPendingBytes},
		{"max streams", c.MaxStreams},
		{"max peer streams", c.MaxPeerStreams},
		{"max pulls", c.MaxPulls},
		{"max queued", c.MaxQueued},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d: must not be negative", f.name, f.v))
		}
	}
	if c.StreamTimeout < 0 || c.IdleTimeout < 0 || c.FailLogEvery < 0 {
		errs = append(errs, fmt.Errorf("stream timeout %s, idle timeout %s, fail log every %s: must not be negative",
			c.StreamTimeout, c.IdleTimeout, c.FailLogEvery))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return errors.Join(errs...)
}
