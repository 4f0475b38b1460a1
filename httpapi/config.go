package httpapi

import (
	"log/slog"
	"time"
)

// Default values used when the corresponding Config field is zero.
const (
	DefaultMaxBodyBytes       = 8 << 20
	DefaultMaxAttachmentBytes = 4 << 30
	DefaultLongpollTimeout    = 60 * time.Second
	DefaultSSEHeartbeat       = 15 * time.Second

	DefaultMaxURLBytes       = 8 << 10
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
)

// Config configures the HTTP handler and the server NewServer returns.
// The zero value of every field means its default.
type Config struct {
	// MaxBodyBytes bounds every request body, in bytes; larger bodies get
	// 413. Default DefaultMaxBodyBytes (8 MiB).
	MaxBodyBytes int64
	// MaxAttachmentBytes bounds the body of an attachment upload (PUT
	// .../_attachments/NAME), in bytes, instead of MaxBodyBytes: it is
	// streamed to the store, never held in memory. Default
	// DefaultMaxAttachmentBytes (4 GiB).
	MaxAttachmentBytes int64
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

	// MaxURLBytes bounds the request target (path and query), in bytes;
	// longer ones get 414. Default DefaultMaxURLBytes (8 KiB).
	MaxURLBytes int

	// The fields below bound the http.Server that NewServer returns; the
	// handler alone cannot enforce them.

	// MaxHeaderBytes bounds the request line and headers, in bytes; larger
	// ones get 431 from net/http. Default DefaultMaxHeaderBytes (64 KiB).
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds the time to receive the request line and
	// headers; the connection is closed after it. Default
	// DefaultReadHeaderTimeout (10s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the time to receive a whole request, body
	// included; a body still arriving then gets 408. It does not limit how
	// long a handler runs or streams (see NewServer). A handler that
	// accepts bodies too large for it (a blob upload) extends its own read
	// deadline with http.ResponseController. Default DefaultReadTimeout
	// (60s).
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long. Default
	// DefaultIdleTimeout (2m).
	IdleTimeout time.Duration
}

// withDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxAttachmentBytes <= 0 {
		c.MaxAttachmentBytes = DefaultMaxAttachmentBytes
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
	if c.MaxURLBytes <= 0 {
		c.MaxURLBytes = DefaultMaxURLBytes
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	return c
}
