package couch

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// POST /couch/_replicate: CouchDB's replication request, {"source",
// "target", "doc_ids", "selector", "continuous", "cancel",
// "worker_batch_size"},
// where one of source and target is a local database name and the other
// a remote database: a URL, or {"url", "headers": {"Authorization"},
// "auth": {"basic": {"username", "password"}}} as CouchDB takes it. It
// runs Sync (a pull when the source is remote, a push when the target
// is) and answers its ReplicationStats with "ok": true.
//
// Security: it makes this node send requests to a URL the caller names,
// so it is served only to callers of the endpoint (the token when one
// is set), and only with Content-Type application/json, which a page of
// another origin cannot send without a CORS preflight.

type replicateRequest struct {
	Source          json.RawMessage `json:"source"`
	Target          json.RawMessage `json:"target"`
	DocIDs          []string        `json:"doc_ids"`
	Selector        json.RawMessage `json:"selector"`
	Continuous      bool            `json:"continuous"`
	Cancel          bool            `json:"cancel"`
	WorkerBatchSize int             `json:"worker_batch_size"`
}

// endpoint is a decoded source or target: a local database name, or a
// remote URL and its credentials.
type endpoint struct {
	local string
	url   string
	auth  Auth
}

func decodeEndpoint(raw json.RawMessage, name string) (endpoint, error) {
	var s string
	if err := decodeJSON(raw, &s); err == nil {
		if strings.Contains(s, "://") {
			return endpoint{url: s}, nil
		}
		if s == "" {
			return endpoint{}, BadRequest(name + " is empty")
		}
		return endpoint{local: s}, nil
	}
	var o struct {
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
		Auth    struct {
			Basic struct {
				Username string `json:"username"`
				Password string `json:"password"`
			} `json:"basic"`
		} `json:"auth"`
	}
	if err := decodeJSON(raw, &o); err != nil || o.URL == "" {
		return endpoint{}, BadRequest(name + ` must be a database name, a URL or {"url": URL, "headers": {...}, "auth": {"basic": {...}}}`)
	}
	e := endpoint{url: o.URL, auth: Auth{User: o.Auth.Basic.Username, Password: o.Auth.Basic.Password}}
	for k, v := range o.Headers {
		if !strings.EqualFold(k, "Authorization") {
			return endpoint{}, BadRequest(fmt.Sprintf("%s: header %s is not supported: only Authorization", name, quoteShort(k)))
		}
		switch scheme, cred, _ := strings.Cut(v, " "); strings.ToLower(scheme) {
		case "bearer":
			e.auth = Auth{Token: cred}
		case "basic":
			raw, err := base64.StdEncoding.DecodeString(cred)
			user, pass, ok := strings.Cut(string(raw), ":")
			if err != nil || !ok {
				return endpoint{}, BadRequest(name + ": the Basic Authorization header does not decode")
			}
			e.auth = Auth{User: user, Password: pass}
		default:
			return endpoint{}, BadRequest(name + ": the Authorization header must be Bearer or Basic")
		}
	}
	return e, nil
}

func (s *Server) replicateHTTP(w http.ResponseWriter, r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return BadContentType()
	}
	b, err := readBody(r.Body, 16<<20)
	if err != nil {
		return err
	}
	var req replicateRequest
	if err := decodeJSON(b, &req); err != nil {
		return jsonError(err, `body must be {"source": ..., "target": ..., "doc_ids": [...]}`)
	}
	if req.Source == nil || req.Target == nil {
		return BadRequest("source and target are required")
	}
	src, err := decodeEndpoint(req.Source, "source")
	if err != nil {
		return err
	}
	dst, err := decodeEndpoint(req.Target, "target")
	if err != nil {
		return err
	}
	o := SyncOptions{DocIDs: req.DocIDs, Selector: req.Selector, BatchSize: req.WorkerBatchSize}
	var db string
	var rem endpoint
	switch {
	case src.url != "" && dst.local != "":
		o.Pull, db, rem = true, dst.local, src
	case src.local != "" && dst.url != "":
		o.Push, db, rem = true, src.local, dst
	default:
		return BadRequest("one of source and target must be a local database name, the other a remote database URL")
	}
	o.Auth = rem.auth
	if req.Continuous || req.Cancel {
		return s.continuous(w, req, db, rem, o)
	}
	st, err := s.Sync(r.Context(), db, rem.url, o)
	if _, ok := errors.AsType[*RemoteError](err); ok {
		// The remote's words and URL (without credentials): the caller's
		// to read, nothing of this node's internals.
		return &Error{Status: http.StatusBadGateway, Code: "replication_failed", Reason: err.Error()}
	}
	if err != nil {
		return err
	}
	res := st.Pull
	if res == nil {
		res = st.Push
	}
	return writeJSON(w, http.StatusOK, struct {
		OK bool `json:"ok"`
		*ReplicationStats
	}{true, res})
}

// continuous starts (or, with cancel, stops) a live replication as
// CouchDB's _replicate does: it runs as a connector of this server until
// cancelled or the daemon stops (it is not kept across a restart: that is
// what the connectors of the configuration are for), and is answered
// {"ok": true, "_local_id": ID}, ID naming it in _active_tasks.
func (s *Server) continuous(w http.ResponseWriter, req replicateRequest, db string, rem endpoint, o SyncOptions) error {
	if len(o.Selector) > 0 {
		if _, err := parseSelector(o.Selector); err != nil {
			return err
		}
	}
	rm, err := newRemote(rem.url, rem.auth, 0)
	if err != nil {
		return err
	}
	name := "_replicate-" + s.session(db, rm, direction(Connector{Pull: o.Pull, Push: o.Push}), o).id
	if req.Cancel {
		if !s.stopConnector(name) {
			return NotFound("no such continuous replication")
		}
		return writeJSON(w, http.StatusOK, map[string]any{"ok": true, "_local_id": name})
	}
	s.conns.mu.Lock()
	base := s.conns.base
	s.conns.mu.Unlock()
	if base == nil {
		return ServiceUnavailable("continuous replications run only in the daemon")
	}
	c := Connector{Name: name, DB: db, URL: rem.url, Pull: o.Pull, Push: o.Push, Live: true,
		Auth: o.Auth, DocIDs: o.DocIDs, Selector: o.Selector}
	if err := s.startConnector(base, c); errors.Is(err, errRunning) {
		return writeJSON(w, http.StatusOK, map[string]any{"ok": true, "_local_id": name}) // as CouchDB: the same one
	} else if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, map[string]any{"ok": true, "_local_id": name})
}
