package httpapi

import (
	"log/slog"
	"time"
)

// Default values used when the corresponding Config field is zero.
const (
	DefaultMaxBodyBytes    = 8 << 20
	DefaultLongpollTimeout = 60 * time.Second
	DefaultSSEHeartbeat    = 15 * time.Second
)

// Config configures the HTTP handler. The zero value of every field means
// its default.
type Config struct {
	// MaxBodyBytes bounds every request body, in bytes; larger bodies get
	// 413. Default DefaultMaxBodyBytes (8 MiB).
	MaxBodyBytes int64
	// Logger receives server errors (Error) and per-request lines (Debug).
	// nil means slog.Default().
	Logger *slog.Logger
	// Token, when set, is the bearer token every request except /healthz
	// must carry (Authorization: Bearer TOKEN); others get 401.
	Token string
	// LongpollTimeout caps how long a feed=longpoll changes request waits.
	// Default DefaultLongpollTimeout (60s).
	LongpollTimeout time.Duration
	// SSEHeartbeat is the interval of comment lines on an idle feed=sse
	// stream. Default DefaultSSEHeartbeat (15s).
	SSEHeartbeat time.Duration
}

// withDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LongpollTimeout <= 0 {
		c.LongpollTimeout = DefaultLongpollTimeout
	}
	if c.SSEHeartbeat <= 0 {
		c.SSEHeartbeat = DefaultSSEHeartbeat
	}
	return c
}
