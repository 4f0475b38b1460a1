package gossip

import (
	"log/slog"
	"time"

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
