package couch

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/barrel-db/barrel/node"
	"golang.org/x/sync/semaphore"
)

// Config configures the CouchDB-protocol endpoint.
type Config struct {
	// Token, when set, is required of every request but the CORS
	// preflight: as "Authorization: Bearer TOKEN" or as the password of
	// HTTP Basic (any user name: PouchDB's auth option).
	Token string
	// MaxBodyBytes bounds a request body (a _bulk_docs batch with inline
	// attachments). 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MemoryBudgetBytes bounds what the request bodies being handled at
	// once may make the server hold: each is charged 8 times its length
	// (decoded JSON is larger than its text), and one that finds no room
	// is answered 503 at once. 0 means DefaultMemoryBudgetBytes.
	MemoryBudgetBytes int64
	// CORSOrigins are the origins a browser's PouchDB may call from
	// ("*" for any); none by default.
	CORSOrigins []string
	Logger      *slog.Logger
}

// Defaults of Config.
const (
	DefaultMaxBodyBytes      = 64 << 20
	DefaultMemoryBudgetBytes = 1 << 30
)

// bodyCharge is what a request body is charged against the memory budget
// per byte.
const bodyCharge = 8

// Version is the CouchDB version the endpoint answers as: the protocol
// PouchDB 9 and CouchDB's replicator speak to it.
const Version = "3.3.3"

// Server serves the CouchDB replication protocol for a node's databases
// under /couch/. Create it with New.
type Server struct {
	n    *node.Node
	cfg  Config
	log  *slog.Logger
	mux  *http.ServeMux
	uuid string

	budget *semaphore.Weighted // request bodies in memory (Config.MemoryBudgetBytes)
	m      *metrics
	conns  connectors

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per database: record reads and writes
}

// New returns the endpoint for n. Its uuid is derived from the node's
// peer id, so it is stable across restarts (replicators name their
// checkpoints with it).
func New(n *node.Node, cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MemoryBudgetBytes <= 0 {
		cfg.MemoryBudgetBytes = DefaultMemoryBudgetBytes
	}
	sum := sha256.Sum256([]byte("barrel couch " + n.PeerID().String()))
	s := &Server{n: n, cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(),
		uuid: hex.EncodeToString(sum[:16]), locks: map[string]*sync.Mutex{},
		budget: semaphore.NewWeighted(cfg.MemoryBudgetBytes), m: newMetrics(n.Registerer())}
	s.routes()
	return s
}

type handler func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(pattern string, h handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) routes() {
	s.handle("GET /couch/{$}", s.welcome)
	s.handle("GET /couch/_all_dbs", s.allDBs)
	s.handle("GET /couch/_active_tasks", func(w http.ResponseWriter, _ *http.Request) error {
		cs := s.Connectors("")
		if cs == nil {
			cs = []ConnectorState{}
		}
		return writeJSON(w, http.StatusOK, cs)
	})
	s.handle("POST /couch/_replicate", s.replicateHTTP)
	s.handle("GET /couch/_up", func(w http.ResponseWriter, _ *http.Request) error {
		return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	for _, p := range []string{"/couch/{db}", "/couch/{db}/{$}"} {
		s.handle("GET "+p, s.dbInfo)
		s.handle("PUT "+p, s.createDB)
		s.handle("DELETE "+p, s.dropDB)
		s.handle("POST "+p, s.postDoc)
	}
	s.handle("GET /couch/{db}/_changes", s.changes)
	s.handle("POST /couch/{db}/_changes", s.changes)
	s.handle("POST /couch/{db}/_revs_diff", s.revsDiff)
	s.handle("POST /couch/{db}/_bulk_get", s.bulkGet)
	s.handle("POST /couch/{db}/_bulk_docs", s.bulkDocs)
	s.handle("POST /couch/{db}/_ensure_full_commit", s.ensureFullCommit)
	s.handle("GET /couch/{db}/_all_docs", s.allDocs)
	s.handle("GET /couch/{db}/_local/{id}", s.getLocal)
	s.handle("PUT /couch/{db}/_local/{id}", s.putLocal)
	s.handle("DELETE /couch/{db}/_local/{id}", s.deleteLocal)
	s.handle("GET /couch/{db}/{id}/{att...}", s.getAttachment)
	s.handle("PUT /couch/{db}/{id}/{att...}", s.putAttachment)
	s.handle("DELETE /couch/{db}/{id}/{att...}", s.deleteAttachment)
	s.handle("GET /couch/{db}/{id}", s.getDoc)
	s.handle("PUT /couch/{db}/{id}", s.putDoc)
	s.handle("DELETE /couch/{db}/{id}", s.deleteDoc)
}

// ServeHTTP applies panic recovery, CORS, authentication and the body
// bound, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			s.log.Error("couch handler panicked", "method", r.Method, "path", r.URL.Path,
				"panic", rec, "stack", string(debug.Stack()))
			WriteError(w, Internal("internal error"))
		}
	}()
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	w = sw
	route := "none"
	defer func() {
		s.m.request(route, sw.code)
		s.log.Debug("couch request", "method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery,
			"status", sw.code, "took", time.Since(start))
	}()
	if s.cors(w, r) {
		return
	}
	if s.cfg.Token != "" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="barrel"`)
		WriteError(w, Unauthorized("Name or password is incorrect."))
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		// Charged up front, from Content-Length (the bound when it is
		// unknown), and given back when the request ends.
		n := r.ContentLength
		if n < 0 || n > s.cfg.MaxBodyBytes {
			n = s.cfg.MaxBodyBytes
		}
		charge := min(n*bodyCharge, s.cfg.MemoryBudgetBytes)
		if !s.budget.TryAcquire(charge) {
			w.Header().Set("Retry-After", "1")
			WriteError(w, ServiceUnavailable("the server holds as many request bodies as it may: retry"))
			return
		}
		defer s.budget.Release(charge)
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	}
	h, pattern := s.mux.Handler(r)
	route = pattern
	if pattern == "" {
		route = "none"
		// No route: CouchDB's JSON, not the ServeMux's text.
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			WriteError(w, MethodNotAllowed(rec.header.Get("Allow")))
			return
		}
		WriteError(w, NotFound(ReasonMissing))
		return
	}
	s.mux.ServeHTTP(w, r) // (Handler found the route but sets no path values)
}

// statusWriter remembers the status of an answer, for the metrics and the
// log; Unwrap lets http.ResponseController reach the connection (Flush).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusRecorder catches the status of the ServeMux's not-found and
// not-allowed answers, to answer them as CouchDB does.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header         { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusRecorder) WriteHeader(code int)        { s.status = code }

// cors sets the CORS headers for an allowed origin and answers a
// preflight (true: the request is answered).
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	allowed := slices.Contains(s.cfg.CORSOrigins, origin) || slices.Contains(s.cfg.CORSOrigins, "*")
	if origin == "" || !allowed {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "Content-Type, ETag, Cache-Control")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, PUT, POST, HEAD, DELETE")
		h.Set("Access-Control-Allow-Headers", "Accept, Authorization, Content-Type, Origin, Referer, X-Requested-With")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

func (s *Server) authorized(r *http.Request) bool {
	a := r.Header.Get("Authorization")
	var got string
	switch {
	case strings.HasPrefix(a, "Bearer "):
		got = strings.TrimPrefix(a, "Bearer ")
	case strings.HasPrefix(a, "Basic "):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "Basic "))
		if err != nil {
			return false
		}
		_, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return false
		}
		got = pass
	default:
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}

// writeError answers err as CouchDB would: node's errors mapped to its
// codes; anything unexpected is logged and answered 500 without detail.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ce *Error
	var le *node.InvalidError
	switch {
	case errors.As(err, &ce):
	case errors.Is(err, node.ErrDBNotFound):
		ce = NotFound(ReasonNoDB)
	case errors.Is(err, node.ErrNotFound):
		ce = NotFound(ReasonMissing)
	case errors.Is(err, node.ErrTooLarge):
		ce = TooLarge(err.Error())
	case errors.As(err, &le):
		ce = BadRequest(le.Error())
	case errors.Is(err, node.ErrRevMismatch):
		ce = Conflict()
	case errors.Is(err, node.ErrOverloaded), errors.Is(err, node.ErrNoSpace):
		w.Header().Set("Retry-After", "1")
		ce = ServiceUnavailable(err.Error())
	case errors.Is(err, node.ErrNotAllowed):
		ce = Forbidden(err.Error())
	case errors.Is(err, context.Canceled):
		return // the client went away
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			ce = TooLarge(fmt.Sprintf("request body over %d bytes", mbe.Limit))
			break
		}
		s.log.Error("couch request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ce = Internal("internal error")
	}
	WriteError(w, ce)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// db returns the database the request names.
func (s *Server) db(r *http.Request) (*node.DB, error) {
	name := r.PathValue("db")
	d, err := s.n.DB(name)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// lock serializes the revision records of one database: a presentation
// and a push of the same document never interleave.
func (s *Server) lock(db string) func() {
	s.mu.Lock()
	l, ok := s.locks[db]
	if !ok {
		l = new(sync.Mutex)
		s.locks[db] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// mayWrite refuses (403) a write to a database whose access-control list
// does not let this node write: its changes would be refused by every
// peer that holds the list.
func (s *Server) mayWrite(d *node.DB) error {
	a, err := s.n.ACL(d.Name())
	if err != nil {
		return err
	}
	me := s.n.PeerID().String()
	if a.Owner == me || slices.Contains(a.Admins, me) || slices.Contains(a.Writers, me) || slices.Contains(a.Writers, node.AnyPeer) {
		return nil
	}
	return Forbidden(fmt.Sprintf("this node (%s) may not write %s: its access-control list does not name it a writer", me, d.Name()))
}

func (s *Server) welcome(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, Welcome{CouchDB: "Welcome", Version: Version, UUID: s.uuid,
		Vendor: Vendor{Name: "barrel", Version: node.BuildVersion()}})
}

func (s *Server) allDBs(w http.ResponseWriter, r *http.Request) error {
	names, err := s.n.ListDBs(r.Context())
	if err != nil {
		return err
	}
	if names == nil {
		names = []string{}
	}
	return writeJSON(w, http.StatusOK, names)
}

func (s *Server) dbInfo(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	info, err := d.Info(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, DBInfo{DBName: info.Name, DocCount: info.DocCount,
		DocDelCount: info.Tombstones, UpdateSeq: formatSeq(info.UpdateSeq), InstanceStartTime: "0"})
}

func (s *Server) createDB(w http.ResponseWriter, r *http.Request) error {
	err := s.n.CreateDB(r.Context(), r.PathValue("db"))
	if errors.Is(err, node.ErrDBExists) {
		return FileExists()
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, map[string]bool{"ok": true})
}

func (s *Server) dropDB(w http.ResponseWriter, r *http.Request) error {
	if err := s.n.DropDB(r.Context(), r.PathValue("db")); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Server) ensureFullCommit(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.db(r); err != nil {
		return err
	}
	// Every acknowledged write is already durable (DESIGN.md invariant 2).
	return writeJSON(w, http.StatusCreated, map[string]any{"ok": true, "instance_start_time": "0"})
}

// formatSeq and parseSeq: barrel's feed sequence is the CouchDB sequence,
// as a decimal string. It is durable, so it is stable across restarts.
func formatSeq(seq uint64) string { return fmt.Sprint(seq) }

func parseSeq(s string) (uint64, error) {
	if s == "" || s == "0" || s == "now" {
		return 0, nil
	}
	var n uint64
	if _, err := fmt.Sscan(s, &n); err != nil || fmt.Sprint(n) != s {
		return 0, BadRequest(fmt.Sprintf("since %s: want a sequence this server gave", quoteShort(s)))
	}
	return n, nil
}
