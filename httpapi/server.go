package httpapi

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/barrel-db/barrel/node"
)

// server holds what every handler needs. Its only mutable state is lim.
type server struct {
	n     *node.Node
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	lim   *limits    // shared by all requests; safe for concurrent use
	ws    wsConns    // open WebSocket connections, closed on shutdown
	reg   *regulator // per-client request budgets; nil: off
	met   *metrics
	rlLog rate.Sometimes // bounds the log lines of refused requests
}

// New returns the HTTP handler serving n. The handler is safe for
// concurrent use; it does not own n, which the caller closes after the
// HTTP server has stopped.
func New(n *node.Node, cfg Config) http.Handler { return newServer(n, cfg) }

func newServer(n *node.Node, cfg Config) *server {
	cfg = cfg.withDefaults()
	s := &server{n: n, cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), lim: newLimits(cfg),
		reg: newRegulator(cfg.ClientRate, cfg.ClientBurst), met: newMetrics(n.Registerer()),
		rlLog: rate.Sometimes{Interval: rateLimitLogEvery}}
	s.ws.conns = map[*websocket.Conn]struct{}{}
	s.routes()
	return s
}

// NewServer returns an HTTP server for n: the handler New returns, inside
// an http.Server bounded by cfg (header size, read and idle timeouts). The
// caller may set the fields cfg does not cover (BaseContext, ErrorLog)
// before serving.
//
// ReadTimeout does not end feed=sse and feed=longpoll answers: net/http
// lifts the read deadline once the request's body has been read (when it
// starts watching the connection for the client going away), so it bounds
// receiving the request only. WriteTimeout stays 0 on purpose: it counts
// from the start of the request and a passed write deadline fails every
// later write, which would cut those streams. A client that stops reading
// an answer is left to TCP; a handler that wants a write bound sets its
// own with http.ResponseController.
func NewServer(n *node.Node, cfg Config) *http.Server {
	cfg = cfg.withDefaults()
	s := newServer(n, cfg)
	srv := &http.Server{
		Handler:           s,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
	}
	// HTTP/2 in cleartext (h2c, with prior knowledge) beside HTTP/1.1;
	// over TLS, HTTP/2 by ALPN. WebSocket upgrades ride HTTP/1.1.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	srv.RegisterOnShutdown(s.ws.closeAll)
	return srv
}

func (s *server) routes() {
	s.route("GET /{$}", s.handleRoot)
	s.route("GET /healthz", s.handleHealth)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.n.Gatherer(), promhttp.HandlerOpts{}))

	s.route("GET /dbs", s.handleListDBs)
	s.route("PUT /dbs/{db}", s.handleCreateDB)
	s.route("GET /dbs/{db}", s.handleDBInfo)
	s.route("DELETE /dbs/{db}", s.handleDropDB)

	s.route("GET /dbs/{db}/docs", s.handleListDocs)
	s.route("PUT /dbs/{db}/docs/{id}", s.handlePut)
	s.route("GET /dbs/{db}/docs/{id}", s.handleGet)
	s.route("GET /dbs/{db}/docs/{id}/{path...}", s.handleGetPath)
	s.route("PATCH /dbs/{db}/docs/{id}", s.handlePatch)
	s.route("DELETE /dbs/{db}/docs/{id}", s.handleDelete)

	s.route("POST /dbs/{db}/bulk", s.handleBulk)
	s.route(queryPattern, s.handleQuery)
	s.route("GET /dbs/{db}/paths/{path...}", s.handlePaths)
	s.route("GET /dbs/{db}/changes", s.handleChanges)
	s.route("GET /dbs/{db}/_ws", s.handleWS)
	s.route("GET /dbs/{db}/_export", s.handleExport)
	s.route("GET /dbs/{db}/replication", s.handleReplicationState)
	s.route("PUT /dbs/{db}/replication", s.handleSetReplication)
	s.aclRoutes()
	s.attachmentRoutes()
	s.compactRoutes()

	s.route("GET /peers", s.handlePeers)
	s.route("POST /peers", s.handleConnect)
}

// handlerFunc is the shape of every route handler: it writes its answer on
// success and returns its error unwritten, for route to write.
//
// Invariant: a handler returns a non-nil error only while it has written
// nothing to w. A handler that has begun its response (the SSE stream of
// changes) deals with later errors itself and returns nil, since a status
// can no longer be sent.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route registers h for pattern. The error h returns is written once, here,
// through writeError and so through errorStatus.
func (s *server) route(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// ServeHTTP applies panic recovery, the URL bound, authentication, the
// request's share of the memory budget, the body bounds (size, rate) and
// the caps on writes and uploads in flight, then routes; what the request
// took is given back when it ends. Requests no route serves get JSON 404 or
// 405 instead of the ServeMux's plain-text answers.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			s.log.Error("handler panicked", slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.Any("panic", rec),
				slog.String("stack", string(debug.Stack())))
			s.writeError(w, r, fmt.Errorf("panic: %v", rec))
		}
	}()
	if requestURILen(r) > s.cfg.MaxURLBytes {
		s.writeError(w, r, errURITooLong)
		return
	}
	if s.reg != nil && r.URL.Path != "/healthz" {
		if err := s.reg.allow(clientOf(r)); err != nil {
			s.reg.delayRefusal(r)
			s.writeError(w, r, err)
			return
		}
	}
	if s.cfg.Couch != nil && (r.URL.Path == "/couch" || strings.HasPrefix(r.URL.Path, "/couch/")) {
		if r.URL.Path == "/couch" {
			r.URL.Path = "/couch/"
		}
		s.cfg.Couch.ServeHTTP(w, r)
		return
	}
	if s.cfg.UI != nil && (r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, "/ui/")) {
		s.cfg.UI.ServeHTTP(w, r)
		return
	}
	if s.cfg.Token != "" && r.URL.Path != "/healthz" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="barrel"`)
		s.writeError(w, r, errUnauthorized)
		return
	}
	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.noRoute(w, r, h)
		return
	}
	c := &charge{l: s.lim}
	defer c.release()
	if err := s.bound(w, r, pattern, c); err != nil {
		s.writeError(w, r, err)
		return
	}
	if isWrite(r, pattern) {
		release, err := s.lim.tryWrite()
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		defer release()
	}
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path))
	s.mux.ServeHTTP(w, r)
}

// bound charges r its fixed costs and wraps its body: the size limit
// (MaxAttachmentBytes for an upload, else MaxBodyBytes), the minimum rate,
// and, for a JSON body, costPerBodyByte per byte, charged up front from
// Content-Length when it is known so that a body the budget cannot hold
// is refused before it is read. It answers errBusy or errTooCostly at
// once; a write slot is taken by the caller.
func (s *server) bound(w http.ResponseWriter, r *http.Request, pattern string, c *charge) error {
	if isWrite(r, pattern) {
		if err := c.add(costPerWrite); err != nil {
			return err
		}
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	upload := pattern == "PUT "+attachmentPattern
	limit, perByte := s.cfg.MaxBodyBytes, int64(costPerBodyByte)
	if upload {
		limit, perByte = s.cfg.MaxAttachmentBytes, 0
	}
	if r.ContentLength > limit {
		return &http.MaxBytesError{Limit: limit}
	}
	if r.ContentLength > 0 {
		if err := c.add(r.ContentLength * perByte); err != nil {
			return err
		}
		perByte = 0
	}
	if upload {
		release, err := s.lim.tryUpload()
		if err != nil {
			return err
		}
		c.onRelease(release)
		if err := c.add(costPerUpload); err != nil {
			return err
		}
	}
	minRate := s.cfg.MinBodyRate
	if minRate < 0 {
		minRate = 0
	}
	r.Body = &body{
		r:       http.MaxBytesReader(w, r.Body, limit),
		rc:      http.NewResponseController(w),
		c:       c,
		perByte: perByte,
		start:   time.Now(),
		minRate: minRate,
		grace:   s.cfg.BodyRateGrace,
		timeout: s.cfg.ReadTimeout,
		sliding: upload,
	}
	return nil
}

// isWrite reports whether r counts against the writes in flight: every
// method but GET and HEAD, except a query (POST for its body only), which
// reads, and live may stream for as long as its client stays.
func isWrite(r *http.Request, pattern string) bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead && pattern != queryPattern
}

// requestURILen is the length of the request target as the client sent it
// (path and query).
func requestURILen(r *http.Request) int {
	if r.RequestURI != "" {
		return len(r.RequestURI)
	}
	return len(r.URL.RequestURI())
}

// authorized reports whether r carries the configured token. The scheme
// is case-insensitive (RFC 9110, 11.1): "bearer TOKEN" is as good as
// "Bearer TOKEN"; the token itself is compared exactly. A WebSocket
// upgrade may carry it as a subprotocol instead (wsTokenProtocol), since
// a browser cannot set headers on one.
func (s *server) authorized(r *http.Request) bool {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		got = strings.TrimLeft(got, " ")
		return subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
	}
	if tok, ok := wsToken(r); ok {
		return subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1
	}
	return false
}

// noRoute answers a request the mux has no pattern for. The mux's own
// handler is run against a recorder to learn what it would say (404, 405
// with Allow, or a redirect to the clean path); redirects pass through,
// errors are rewritten as JSON.
func (s *server) noRoute(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := &statusRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	switch {
	case rec.status == http.StatusMethodNotAllowed:
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		s.writeError(w, r, errMethod)
	case rec.status >= 300 && rec.status < 400:
		if loc := rec.header.Get("Location"); loc != "" {
			w.Header().Set("Location", loc)
		}
		w.WriteHeader(rec.status)
	default:
		s.writeError(w, r, errNoRoute)
	}
}

// statusRecorder captures the status and headers of a handler, dropping
// the body.
type statusRecorder struct {
	header http.Header
	status int
}

func (rr *statusRecorder) Header() http.Header { return rr.header }
func (rr *statusRecorder) Write(b []byte) (int, error) {
	if rr.status == 0 {
		rr.status = http.StatusOK
	}
	return len(b), nil
}
func (rr *statusRecorder) WriteHeader(code int) {
	if rr.status == 0 {
		rr.status = code
	}
}

// writeJSON writes v as the JSON response body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away: nothing left to tell it
}

// okBody is the {"ok":true} answer.
var okBody = map[string]bool{"ok": true}

// db returns the database named by the {db} wildcard.
func (s *server) db(r *http.Request) (*node.DB, error) {
	name := r.PathValue("db")
	d, err := s.n.DB(name)
	if err != nil {
		return nil, fmt.Errorf("open database %q: %w", name, err)
	}
	return d, nil
}

// intParam parses the query parameter name as an integer in [lo, hi],
// returning def when it is absent.
func intParam(r *http.Request, name string, def, lo, hi int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	i, err := strconv.ParseInt(v, 10, 64)
	if err != nil || i < lo || i > hi {
		return 0, badRequest(fmt.Sprintf("parameter %s must be an integer in [%d, %d]", name, lo, hi))
	}
	return i, nil
}

// boolParam parses the query parameter name as a boolean (false when absent).
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest(fmt.Sprintf("parameter %s must be true or false", name))
	}
	return b, nil
}
