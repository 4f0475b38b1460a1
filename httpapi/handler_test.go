package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/barrel-db/barrel/node"
)

// newTestServer opens a real node in a temporary directory and serves it.
func newTestServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	n, err := node.Open(t.Context(), node.Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv := httptest.NewServer(New(n, cfg))
	t.Cleanup(func() {
		srv.Close()
		if err := n.Close(); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	return srv
}

type step struct {
	name, method, path, body string
	status                   int
	want                     map[string]any // top-level fields the JSON answer must have
}

func runSteps(t *testing.T, srv *httptest.Server, steps []step) {
	t.Helper()
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var body io.Reader
			if st.body != "" {
				body = strings.NewReader(st.body)
			}
			req, err := http.NewRequestWithContext(t.Context(), st.method, srv.URL+st.path, body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != st.status {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, raw, st.status)
			}
			if len(st.want) == 0 {
				return
			}
			var got map[string]any
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("got body %s: %v", raw, err)
			}
			for k, v := range st.want {
				if gb, _ := json.Marshal(got[k]); string(gb) != mustJSON(t, v) {
					t.Fatalf("field %s: got %s, want %s (body %s)", k, gb, mustJSON(t, v), raw)
				}
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandlers(t *testing.T) {
	srv := newTestServer(t, Config{MaxBodyBytes: 1024})
	big := `{"a":"` + strings.Repeat("x", 2000) + `"}`
	runSteps(t, srv, []step{
		{"healthz", "GET", "/healthz", "", 200, map[string]any{"ok": true}},
		{"create db", "PUT", "/dbs/places", "", 201, map[string]any{"ok": true}},
		{"create db again", "PUT", "/dbs/places", "", 412, map[string]any{"error": "db_exists"}},
		{"db info", "GET", "/dbs/places", "", 200, map[string]any{"name": "places", "doc_count": 0}},
		{"put", "PUT", "/dbs/places/docs/p1", `{"name":"Cafe","locations":{"country":"Germany"}}`, 201, map[string]any{"id": "p1"}},
		{"get", "GET", "/dbs/places/docs/p1", "", 200, map[string]any{"_id": "p1", "name": "Cafe"}},
		{"get path", "GET", "/dbs/places/docs/p1/locations", "", 200, map[string]any{"country": "Germany"}},
		{"paths", "GET", "/dbs/places/paths/locations/country/Germany", "", 200, map[string]any{"ids": []string{"p1"}}},
		{"paths none", "GET", "/dbs/places/paths/locations/country/Spain", "", 200, map[string]any{"ids": []string{}}},
		{"bad json", "PUT", "/dbs/places/docs/p1", `{`, 400, map[string]any{"error": "bad_json"}},
		{"too large", "PUT", "/dbs/places/docs/p1", big, 413, map[string]any{"error": "too_large"}},
		{"reserved", "PUT", "/dbs/places/docs/p1", `{"_x":1}`, 400, map[string]any{"error": "bad_request"}},
		{"no db", "GET", "/dbs/nope/docs/p1", "", 404, map[string]any{"error": "not_found"}},
		{"no doc", "GET", "/dbs/places/docs/nope", "", 404, map[string]any{"error": "not_found"}},
		{"patch", "PATCH", "/dbs/places/docs/p1", `{"stars":3,"_incr":{"/visits":1}}`, 200, map[string]any{"id": "p1"}},
		{"patched", "GET", "/dbs/places/docs/p1", "", 200, map[string]any{"stars": 3, "visits": 1, "name": "Cafe"}},
		{"bulk", "POST", "/dbs/places/bulk", `{"docs":[{"_id":"b1","x":1},{"_id":"b2","x":2}]}`, 200, nil},
		{"list", "GET", "/dbs/places/docs?limit=2", "", 200, map[string]any{"next": "b2"}},
		{"query", "POST", "/dbs/places/query", `{"where":[{"path":"/x","op":">","value":1}]}`, 200, nil},
		{"changes", "GET", "/dbs/places/changes", "", 200, map[string]any{"last_seq": 4}},
		{"longpoll timeout", "GET", "/dbs/places/changes?feed=longpoll&since=4&timeout=1", "", 200, map[string]any{"results": []any{}, "last_seq": 4}},
		{"delete", "DELETE", "/dbs/places/docs/b1", "", 200, map[string]any{"id": "b1"}},
		{"get deleted", "GET", "/dbs/places/docs/b1", "", 404, map[string]any{"error": "not_found", "reason": "deleted"}},
		{"unknown route", "GET", "/nope", "", 404, map[string]any{"error": "not_found"}},
		{"wrong method", "PATCH", "/dbs", "", 405, map[string]any{"error": "method_not_allowed"}},
		{"drop db", "DELETE", "/dbs/places", "", 200, map[string]any{"ok": true}},
		{"dropped", "GET", "/dbs/places", "", 404, map[string]any{"error": "not_found"}},
	})
}

func TestAuth(t *testing.T) {
	srv := newTestServer(t, Config{Token: "t0k"})
	for _, tt := range []struct {
		path, auth string
		status     int
	}{
		{"/healthz", "", 200},
		{"/", "", 401},
		{"/", "Bearer bad", 401},
		{"/", "Bearer t0k", 200},
		{"/", "bearer t0k", 200}, // the scheme is case-insensitive
		{"/", "BEARER t0k", 200},
		{"/", "Bearer  t0k", 200},
		{"/", "Bearer T0K", 401}, // the token is not
		{"/", "Basic t0k", 401},
		{"/", "Bearert0k", 401},
		{"/", "t0k", 401},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s with %q: got %d, want %d", tt.path, tt.auth, resp.StatusCode, tt.status)
		}
	}
}

// TestRecoverPanic checks that a panicking handler answers 500 JSON.
func TestRecoverPanic(t *testing.T) {
	s := &server{cfg: Config{}.withDefaults(), mux: http.NewServeMux(), lim: newLimits(Config{}.withDefaults())}
	s.log = slog.New(slog.DiscardHandler)
	s.mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"error":"internal"`) {
		t.Fatalf("got %d %s, want 500 internal", rec.Code, rec.Body.String())
	}
	if strings.Contains(rec.Body.String(), "boom") {
		t.Fatalf("panic value leaked to the client: %s", rec.Body.String())
	}
}

// TestNoRoute checks JSON 404/405 answers with Allow, without a node.
func TestNoRoute(t *testing.T) {
	s := &server{cfg: Config{}.withDefaults(), mux: http.NewServeMux(), lim: newLimits(Config{}.withDefaults())}
	s.log = slog.New(slog.DiscardHandler)
	s.mux.HandleFunc("GET /x", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, okBody) })
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/x", 200, ""},
		{"POST", "/x", 405, "GET, HEAD"},
		{"GET", "/y", 404, ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code != tt.status || rec.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s: got %d Allow %q, want %d %q", tt.method, tt.path, rec.Code, rec.Header().Get("Allow"), tt.status, tt.allow)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: got Content-Type %q", tt.method, tt.path, ct)
		}
	}
}
