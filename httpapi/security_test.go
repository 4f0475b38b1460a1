package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/barrel-db/barrel/node"
)

// newBoundedServer serves a real node through NewServer, so the
// http.Server's own bounds (header size and timeouts) apply as in run.
func newBoundedServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	n, err := node.Open(t.Context(), node.Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = NewServer(n, cfg)
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		if err := n.Close(); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	return srv
}

// do sends one request and returns the status and body.
func do(t *testing.T, srv *httptest.Server, method, path, body string, hdr map[string]string) (int, []byte, http.Header) {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	resp, raw := doReq(t, srv, method, path, rb, hdr)
	return resp.StatusCode, raw, resp.Header
}

// errorCode returns the error field of a JSON error body.
func errorCode(t *testing.T, raw []byte) string {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("body %q is not a JSON error: %v", raw, err)
	}
	return e.Error
}

// TestTokenGuardsEverything: with a token set, every endpoint but /healthz
// answers 401 to a request without it (or with a wrong one), and nothing
// changes.
func TestTokenGuardsEverything(t *testing.T) {
	const token = "s3cret"
	srv := newBoundedServer(t, Config{Token: token})
	good := map[string]string{"Authorization": "Bearer " + token}
	for _, st := range []struct{ method, path, body string }{
		{"PUT", "/dbs/db", ""},
		{"PUT", "/dbs/db/docs/d", `{"v":1}`},
	} {
		if status, raw, _ := do(t, srv, st.method, st.path, st.body, good); status != 201 {
			t.Fatalf("setup %s %s: got %d %s", st.method, st.path, status, raw)
		}
	}
	before := map[string][]byte{}
	for _, path := range []string{"/dbs/db/docs/d", "/dbs/db/replication", "/dbs/db/_acl"} {
		status, raw, _ := do(t, srv, "GET", path, "", good)
		if status != 200 {
			t.Fatalf("setup GET %s: got %d %s", path, status, raw)
		}
		before[path] = raw
	}

	requests := []struct{ method, path, body string }{
		{"GET", "/", ""},
		{"GET", "/metrics", ""},
		{"GET", "/dbs", ""},
		{"PUT", "/dbs/other", ""},
		{"GET", "/dbs/db", ""},
		{"DELETE", "/dbs/db", ""},
		{"GET", "/dbs/db/docs", ""},
		{"PUT", "/dbs/db/docs/d", `{"v":2}`},
		{"PUT", "/dbs/db/docs/new", `{"v":2}`},
		{"GET", "/dbs/db/docs/d", ""},
		{"GET", "/dbs/db/docs/d/v", ""},
		{"PATCH", "/dbs/db/docs/d", `{"v":3}`},
		{"DELETE", "/dbs/db/docs/d", ""},
		{"POST", "/dbs/db/bulk", `{"docs":[{"_id":"b","v":1}]}`},
		{"POST", "/dbs/db/query", `{"where":[]}`},
		{"GET", "/dbs/db/paths/v", ""},
		{"GET", "/dbs/db/changes", ""},
		{"GET", "/dbs/db/changes?feed=longpoll", ""},
		{"GET", "/dbs/db/changes?feed=sse", ""},
		{"GET", "/dbs/db/replication", ""},
		{"PUT", "/dbs/db/replication", `{"id_prefix":"x"}`},
		{"GET", "/dbs/db/_acl", ""},
		{"PUT", "/dbs/db/_acl", `{"readers":[],"writers":[]}`},
		{"POST", "/dbs/db/_compact", `{"keep_revisions":0,"keep_for":"0s"}`},
		{"POST", "/dbs/db/_purge", `{"ids":["d"]}`},
		{"GET", "/dbs/db/docs/d/_history", ""},
		{"GET", "/peers", ""},
		{"POST", "/peers", `{"addr":"/ip4/127.0.0.1/tcp/1"}`},
		{"GET", "/no/such/route", ""},
		{"GET", "/healthz/", ""},
		{"GET", "/dbs/../healthz", ""},
	}
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Basic " + token, "Bearer" + token, token} {
		for _, rq := range requests {
			hdr := map[string]string{}
			if auth != "" {
				hdr["Authorization"] = auth
			}
			status, raw, h := do(t, srv, rq.method, rq.path, rq.body, hdr)
			if status != 401 || errorCode(t, raw) != "unauthorized" {
				t.Errorf("%s %s with %q: got %d %s, want 401 unauthorized", rq.method, rq.path, auth, status, raw)
			}
			if h.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", rq.method, rq.path)
			}
		}
	}
	if status, _, _ := do(t, srv, "GET", "/healthz", "", nil); status != 200 {
		t.Errorf("/healthz without a token: got %d, want 200", status)
	}

	// Nothing changed.
	if _, raw, _ := do(t, srv, "GET", "/dbs", "", good); !strings.Contains(string(raw), `"db"`) || strings.Contains(string(raw), "other") {
		t.Errorf("databases after refused requests: %s", raw)
	}
	for path, want := range before {
		if _, raw, _ := do(t, srv, "GET", path, "", good); string(raw) != string(want) {
			t.Errorf("%s after refused requests: got %s, want %s", path, raw, want)
		}
	}
	for _, id := range []string{"new", "b"} {
		if status, _, _ := do(t, srv, "GET", "/dbs/db/docs/"+id, "", good); status != 404 {
			t.Errorf("document %s: got %d, want 404", id, status)
		}
	}
}

// TestURIBound: a path or query longer than MaxURLBytes gets 414 with the
// JSON error shape, before authentication; one just under it is served.
func TestURIBound(t *testing.T) {
	srv := newBoundedServer(t, Config{Token: "t"})
	good := map[string]string{"Authorization": "Bearer t"}
	long := strings.Repeat("a", DefaultMaxURLBytes)
	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
		status     int
		code       string
	}{
		{"long query", "/healthz?q=" + long, nil, 414, "uri_too_long"},
		{"long path", "/dbs/" + long, good, 414, "uri_too_long"},
		{"long path without the token", "/dbs/" + long, nil, 414, "uri_too_long"},
		{"query just under", "/healthz?q=" + long[:DefaultMaxURLBytes-len("/healthz?q=")], nil, 200, ""},
	} {
		status, raw, _ := do(t, srv, "GET", tc.path, "", tc.hdr)
		if status != tc.status {
			t.Errorf("%s: got %d %.100s, want %d", tc.name, status, raw, tc.status)
			continue
		}
		if tc.code != "" && errorCode(t, raw) != tc.code {
			t.Errorf("%s: got %s, want error %s", tc.name, raw, tc.code)
		}
	}
}

// TestHeaderBound: headers beyond MaxHeaderBytes get 431 from net/http;
// headers under it are served.
func TestHeaderBound(t *testing.T) {
	srv := newBoundedServer(t, Config{})
	for _, tc := range []struct {
		size   int
		status int
	}{
		{DefaultMaxHeaderBytes / 2, 200},
		{DefaultMaxHeaderBytes + 8<<10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		status, _, _ := do(t, srv, "GET", "/healthz", "", map[string]string{"X-Big": strings.Repeat("h", tc.size)})
		if status != tc.status {
			t.Errorf("a %d-byte header: got %d, want %d", tc.size, status, tc.status)
		}
	}
}

// rawConn dials srv and returns the connection with a deadline that fails
// the test rather than hanging it.
func rawConn(t *testing.T, srv *httptest.Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// TestReadHeaderTimeout: a client that never finishes its headers has its
// connection closed once ReadHeaderTimeout has passed.
func TestReadHeaderTimeout(t *testing.T) {
	srv := newBoundedServer(t, Config{ReadHeaderTimeout: 100 * time.Millisecond})
	c := rawConn(t, srv)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	_, err := io.ReadAll(c)
	if os.IsTimeout(err) {
		t.Fatal("the server kept a connection with unfinished headers open")
	}
}

// TestReadTimeout: a body that stops arriving gets 408 with the JSON error
// shape once ReadTimeout has passed, and the request changes nothing.
func TestReadTimeout(t *testing.T) {
	srv := newBoundedServer(t, Config{ReadTimeout: 100 * time.Millisecond})
	if status, raw, _ := do(t, srv, "PUT", "/dbs/db", "", nil); status != 201 {
		t.Fatalf("create db: got %d %s", status, raw)
	}
	c := rawConn(t, srv)
	if _, err := io.WriteString(c, "PUT /dbs/db/docs/d HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"v\":"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || errorCode(t, raw) != "timeout" {
		t.Fatalf("got %d %s, want 408 timeout", resp.StatusCode, raw)
	}
	if status, _, _ := do(t, srv, "GET", "/dbs/db/docs/d", "", nil); status != 404 {
		t.Errorf("the document of a timed-out request exists: got %d, want 404", status)
	}
}

// TestReadDeadlineLifted checks the net/http behaviour NewServer relies
// on: once a body is read the ReadTimeout deadline no longer applies, so a
// handler may keep working past it without its context being cancelled,
// and the next request on the connection is served.
func TestReadDeadlineLifted(t *testing.T) {
	const timeout = 50 * time.Millisecond
	s := &server{cfg: Config{}.withDefaults(), mux: http.NewServeMux(), lim: newLimits(Config{}.withDefaults())}
	s.log = slog.New(slog.DiscardHandler)
	s.mux.HandleFunc("POST /slow", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			t.Errorf("read body: %v", err)
		}
		// Absence of a cancellation can only be observed over time: six
		// read timeouts is ample for a deadline left in place to fire.
		select {
		case <-r.Context().Done():
			writeJSON(w, 500, map[string]string{"error": "cancelled"})
		case <-time.After(6 * timeout):
			writeJSON(w, 200, okBody)
		}
	})
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ReadTimeout = timeout
	srv.Start()
	defer srv.Close()
	for i := range 2 { // the second request reuses the connection
		status, raw, _ := do(t, srv, "POST", "/slow", `{"a":1}`, nil)
		if status != 200 {
			t.Fatalf("request %d: got %d %s, want 200", i, status, raw)
		}
	}
}

// TestStreamOutlivesTimeouts: a feed=sse stream keeps going well past the
// server's read, header and idle timeouts, and still carries a later
// change.
func TestStreamOutlivesTimeouts(t *testing.T) {
	const timeout = 50 * time.Millisecond
	srv := newBoundedServer(t, Config{
		ReadHeaderTimeout: timeout,
		ReadTimeout:       timeout,
		IdleTimeout:       timeout,
		SSEHeartbeat:      10 * time.Millisecond,
	})
	if status, raw, _ := do(t, srv, "PUT", "/dbs/feed", "", nil); status != 201 {
		t.Fatalf("create db: got %d %s", status, raw)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/dbs/feed/changes?feed=sse", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	// Heartbeats mark time passing on the stream itself.
	start := time.Now()
	for time.Since(start) < 6*timeout {
		if !sc.Scan() {
			t.Fatalf("stream ended after %v: %v", time.Since(start), sc.Err())
		}
	}
	if status, raw, _ := do(t, srv, "PUT", "/dbs/feed/docs/d1", `{"a":1}`, nil); status != 201 {
		t.Fatalf("put: got %d %s", status, raw)
	}
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), `"id":"d1"`) {
			return
		}
	}
	t.Fatalf("stream ended before the change: %v", sc.Err())
}

// TestPanicThroughServer: a panic in a handler served over a real
// connection answers 500 internal without the panic value, and the server
// keeps serving.
func TestPanicThroughServer(t *testing.T) {
	s := &server{cfg: Config{}.withDefaults(), mux: http.NewServeMux(), lim: newLimits(Config{}.withDefaults())}
	s.log = slog.New(slog.DiscardHandler)
	s.mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("secret detail") })
	s.mux.HandleFunc("GET /ok", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, okBody) })
	srv := httptest.NewServer(s)
	defer srv.Close()
	status, raw, _ := do(t, srv, "GET", "/boom", "", nil)
	if status != 500 || errorCode(t, raw) != "internal" || strings.Contains(string(raw), "secret") {
		t.Fatalf("got %d %s, want 500 internal without the panic value", status, raw)
	}
	if status, _, _ := do(t, srv, "GET", "/ok", "", nil); status != 200 {
		t.Fatalf("after a panic: got %d, want 200", status)
	}
}

func TestErrorStatusBounds(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
	}{
		{errURITooLong, 414},
		{classify(&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}), 408},
		{errors.Join(errReadBody, io.ErrClosedPipe), 400},
	} {
		if got, _, _, _ := errorStatus(tc.err); got != tc.status {
			t.Errorf("%v: got %d, want %d", tc.err, got, tc.status)
		}
	}
}
