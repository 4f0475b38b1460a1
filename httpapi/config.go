package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/barrel-db/barrel/crdt"
)

// MaxBodyBytesLimit is the largest MaxBodyBytes: a document's change must
// stay under crdt.MaxChangeBytes (10 MiB), the most a peer decodes, or the
// node would acknowledge a write no peer can receive (DESIGN.md invariant
// 8); 2 MiB is left for what the change adds to the body (paths,
// operation kinds, parents, signature). Larger values are lowered to it.
const MaxBodyBytesLimit = crdt.MaxChangeBytes - 2<<20

// Default values used when the corresponding Config field is zero.
const (
	DefaultMaxBodyBytes       = MaxBodyBytesLimit
	DefaultMaxAttachmentBytes = 4 << 30
	DefaultLongpollTimeout    = 60 * time.Second
	DefaultSSEHeartbeat       = 15 * time.Second

	DefaultMaxURLBytes       = 8 << 10
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute

	DefaultMaxConnections    = 1024
	DefaultMemoryBudgetBytes = 256 << 20
	DefaultMaxInFlightWrites = 1024
	DefaultMaxUploads        = 16
	DefaultMinBodyRate       = 1024
	DefaultBodyRateGrace     = 10 * time.Second
)

// Config configures the HTTP handler and the server NewServer returns.
// The zero value of every field means its default.
type Config struct {
	// MaxBodyBytes bounds every request body, in bytes; larger bodies get
	// 413. Default DefaultMaxBodyBytes (8 MiB), which is also the most it
	// may be (MaxBodyBytesLimit).
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
	// and the files of UI must carry (Authorization: Bearer TOKEN); others
	// get 401.
	Token string
	// LongpollTimeout caps how long a feed=longpoll changes request waits.
	// Default DefaultLongpollTimeout (60s).
	LongpollTimeout time.Duration
	// SSEHeartbeat is the interval of comment lines on an idle feed=sse
	// stream. Default DefaultSSEHeartbeat (15s).
	SSEHeartbeat time.Duration

	// Couch, when set, serves every request under /couch/ (the CouchDB
	// replication protocol, couch.Server), with its own authentication
	// (the same token, as Bearer or Basic), bounds and CouchDB's errors.
	Couch http.Handler
	// UI, when set, serves /ui and everything under /ui/ (the dashboard,
	// package ui) without the token: the files hold no data, and every
	// API call the page makes carries the token itself.
	UI http.Handler
	// Connectors, when set, gives the state of a database's CouchDB
	// connectors, shown in GET /dbs/{db}/replication (nil: none).
	Connectors func(db string) any

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
	// long a handler runs or streams (see NewServer). An attachment upload,
	// which may be too large for it, has its read deadline moved
	// ReadTimeout ahead of every read instead (MinBodyRate still applies).
	// Default DefaultReadTimeout (60s).
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long. Default
	// DefaultIdleTimeout (2m).
	IdleTimeout time.Duration

	// MaxConnections bounds the connections LimitListener serves at once;
	// more wait to be accepted. Default DefaultMaxConnections (1024).
	MaxConnections int
	// MemoryBudgetBytes bounds the memory all requests together may hold
	// for what they send, in bytes, as estimated from their bodies (see
	// limits.go for the cost of a body byte, a JSON value, a bulk document
	// and an upload). A request that would need more than the whole
	// budget gets 413 too_large; one that finds the budget held by others
	// gets 503 overloaded with Retry-After. JSON bodies with a
	// Content-Length are charged before they are read. Default
	// DefaultMemoryBudgetBytes (256 MiB).
	MemoryBudgetBytes int64
	// MaxInFlightWrites bounds the requests other than GET and HEAD being
	// served at once; more get 503 overloaded. Default
	// DefaultMaxInFlightWrites (1024).
	MaxInFlightWrites int
	// MaxUploads bounds the attachment uploads streaming at once; more get
	// 503 overloaded. Default DefaultMaxUploads (16).
	MaxUploads int
	// MinBodyRate is the slowest a request body may arrive, in bytes per
	// second averaged since it began, once BodyRateGrace has passed; a
	// slower one gets 408 timeout. Negative turns the check off. Default
	// DefaultMinBodyRate (1 KiB/s).
	MinBodyRate int64
	// BodyRateGrace is how long a body may arrive at any rate before
	// MinBodyRate applies. Default DefaultBodyRateGrace (10s).
	BodyRateGrace time.Duration
	// ClientRate, when positive, is each client's (remote address's)
	// request budget, in requests per second; a request over it gets 429
	// rate_limited with Retry-After. Zero (the default) or negative: off,
	// since a local-first node's clients are mostly its own applications;
	// a node that serves several sets it.
	ClientRate float64
	// ClientBurst is how many requests a client may send at once above
	// ClientRate. Default: twice ClientRate (at least 1).
	ClientBurst int
}

// withDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	c.MaxBodyBytes = min(c.MaxBodyBytes, MaxBodyBytesLimit)
	if c.MaxAttachmentBytes <= 0 {
		c.MaxAttachmentBytes = DefaultMaxAttachmentBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LongpollTimeout <= 0 {
		c.LongpollTimeout = DefaultLongpollTimeout
	}
	if c.ClientBurst <= 0 {
		c.ClientBurst = max(1, int(2*c.ClientRate))
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
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.MemoryBudgetBytes <= 0 {
		c.MemoryBudgetBytes = DefaultMemoryBudgetBytes
	}
	if c.MaxInFlightWrites <= 0 {
		c.MaxInFlightWrites = DefaultMaxInFlightWrites
	}
	if c.MaxUploads <= 0 {
		c.MaxUploads = DefaultMaxUploads
	}
	if c.MinBodyRate == 0 {
		c.MinBodyRate = DefaultMinBodyRate
	}
	if c.BodyRateGrace <= 0 {
		c.BodyRateGrace = DefaultBodyRateGrace
	}
	return c
}
