package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), method, path, nil))
	return rec.Result()
}

// TestFiles: every file is served with its type, the strict policy and
// nosniff; the index is Prefix itself.
func TestFiles(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/ui/", "text/html; charset=utf-8", `<script type="module" src="app.js">`},
		{"/ui/index.html", "text/html; charset=utf-8", "<title>barrel</title>"},
		{"/ui/app.js", "text/javascript; charset=utf-8", "function route()"},
		{"/ui/api.js", "text/javascript; charset=utf-8", "sessionStorage"},
		{"/ui/dom.js", "text/javascript; charset=utf-8", "createTextNode"},
		{"/ui/style.css", "text/css; charset=utf-8", "--accent"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp := get(t, h, http.MethodGet, tc.path)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d, want 200", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type: got %q, want %q", got, tc.contentType)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy: got %q, want %q", got, ContentSecurityPolicy)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options: got %q, want nosniff", got)
			}
			if resp.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
		})
	}
}

// TestPolicy: the policy allows nothing from elsewhere and no inline
// script, and the page holds no inline script or style it would block.
func TestPolicy(t *testing.T) {
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(ContentSecurityPolicy, want) {
			t.Errorf("policy %q lacks %q", ContentSecurityPolicy, want)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe-") {
		t.Errorf("policy %q allows unsafe sources", ContentSecurityPolicy)
	}
	index, err := static.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script>", "<style", " style=", " onclick=", "http://", "https://"} {
		if strings.Contains(string(index), bad) {
			t.Errorf("index.html holds %q, which the policy forbids or which leaves the daemon", bad)
		}
	}
	for _, name := range []string{"static/app.js", "static/api.js", "static/dom.js"} {
		src, err := static.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(src), "innerHTML") || strings.Contains(string(src), "localStorage.set") {
			t.Errorf("%s uses innerHTML or localStorage", name)
		}
	}
}

func TestNotServed(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/ui/nope.js", http.StatusNotFound},
		{http.MethodGet, "/ui/static/app.js", http.StatusNotFound},
		{http.MethodGet, "/ui/../go.mod", http.StatusNotFound},
		{http.MethodGet, "/ui", http.StatusMovedPermanently},
		{http.MethodPost, "/ui/", http.StatusMethodNotAllowed},
		{http.MethodPut, "/ui/app.js", http.StatusMethodNotAllowed},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp := get(t, h, tc.method, tc.path)
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == http.StatusMovedPermanently && resp.Header.Get("Location") != Prefix {
				t.Errorf("Location: got %q, want %q", resp.Header.Get("Location"), Prefix)
			}
		})
	}
}

// TestHead: HEAD answers the headers of GET without a body.
func TestHead(t *testing.T) {
	resp := get(t, Handler(), http.MethodHead, "/ui/app.js")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("Content-Type") == "" {
		t.Fatalf("got %d, %d bytes, Content-Type %q; want 200, no body, a type", resp.StatusCode, len(body), resp.Header.Get("Content-Type"))
	}
}
