package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func doReq(t *testing.T, srv *httptest.Server, method, path string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, raw
}

func TestAttachmentHTTP(t *testing.T) {
	srv := newTestServer(t, Config{})
	data := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640000 bytes, three chunks
	sum := sha256.Sum256(data)
	dg := "sha256-" + hex.EncodeToString(sum[:])
	if resp, raw := doReq(t, srv, "PUT", "/dbs/db", nil, nil); resp.StatusCode != 201 {
		t.Fatalf("create db: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := doReq(t, srv, "PUT", "/dbs/db/docs/a", strings.NewReader(`{"title":"t"}`), nil); resp.StatusCode != 201 {
		t.Fatalf("put doc: %d %s", resp.StatusCode, raw)
	}

	t.Run("reserved field in a PUT body", func(t *testing.T) {
		resp, raw := doReq(t, srv, "PUT", "/dbs/db/docs/a", strings.NewReader(`{"_attachments":{}}`), nil)
		if resp.StatusCode != 400 {
			t.Fatalf("got %d %s, want 400", resp.StatusCode, raw)
		}
	})
	t.Run("wrong digest", func(t *testing.T) {
		other := sha256.Sum256([]byte("x"))
		resp, raw := doReq(t, srv, "PUT", "/dbs/db/docs/a/_attachments/f.txt?digest=sha256-"+hex.EncodeToString(other[:]),
			bytes.NewReader(data), map[string]string{"Content-Type": "text/plain"})
		if resp.StatusCode != 400 || !strings.Contains(string(raw), "digest_mismatch") {
			t.Fatalf("got %d %s, want 400 digest_mismatch", resp.StatusCode, raw)
		}
	})
	t.Run("put", func(t *testing.T) {
		resp, raw := doReq(t, srv, "PUT", "/dbs/db/docs/a/_attachments/f.txt?digest="+dg,
			bytes.NewReader(data), map[string]string{"Content-Type": "text/plain"})
		if resp.StatusCode != 201 {
			t.Fatalf("got %d %s, want 201", resp.StatusCode, raw)
		}
	})
	t.Run("listed in the document", func(t *testing.T) {
		resp, raw := doReq(t, srv, "GET", "/dbs/db/docs/a", nil, nil)
		var doc struct {
			Title string                    `json:"title"`
			Atts  map[string]map[string]any `json:"_attachments"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil || resp.StatusCode != 200 {
			t.Fatalf("got %d %s: %v", resp.StatusCode, raw, err)
		}
		e := doc.Atts["f.txt"]
		if doc.Title != "t" || e["digest"] != dg || e["length"] != float64(len(data)) || e["content_type"] != "text/plain" {
			t.Fatalf("got %s", raw)
		}
	})
	t.Run("get whole", func(t *testing.T) {
		resp, raw := doReq(t, srv, "GET", "/dbs/db/docs/a/_attachments/f.txt", nil, nil)
		if resp.StatusCode != 200 || !bytes.Equal(raw, data) {
			t.Fatalf("got %d, %d bytes, want 200 and %d bytes", resp.StatusCode, len(raw), len(data))
		}
		if got := resp.Header.Get("ETag"); got != `"`+dg+`"` {
			t.Fatalf("got ETag %s, want %q", got, dg)
		}
		if got := resp.Header.Get("Content-Type"); got != "text/plain" {
			t.Fatalf("got Content-Type %s", got)
		}
		if resp.ContentLength != int64(len(data)) {
			t.Fatalf("got Content-Length %d, want %d", resp.ContentLength, len(data))
		}
	})
	t.Run("range across a chunk boundary", func(t *testing.T) {
		const lo, hi = 262140, 262150
		resp, raw := doReq(t, srv, "GET", "/dbs/db/docs/a/_attachments/f.txt", nil, map[string]string{"Range": "bytes=262140-262150"})
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(raw, data[lo:hi+1]) {
			t.Fatalf("got %d %q, want 206 %q", resp.StatusCode, raw, data[lo:hi+1])
		}
		if got := resp.Header.Get("Content-Range"); got != "bytes 262140-262150/640000" {
			t.Fatalf("got Content-Range %s", got)
		}
	})
	t.Run("suffix range", func(t *testing.T) {
		resp, raw := doReq(t, srv, "GET", "/dbs/db/docs/a/_attachments/f.txt", nil, map[string]string{"Range": "bytes=-5"})
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(raw, data[len(data)-5:]) {
			t.Fatalf("got %d %q", resp.StatusCode, raw)
		}
	})
	t.Run("if-none-match", func(t *testing.T) {
		resp, _ := doReq(t, srv, "GET", "/dbs/db/docs/a/_attachments/f.txt", nil, map[string]string{"If-None-Match": `"` + dg + `"`})
		if resp.StatusCode != http.StatusNotModified {
			t.Fatalf("got %d, want 304", resp.StatusCode)
		}
	})
	t.Run("other paths still read the document", func(t *testing.T) {
		resp, raw := doReq(t, srv, "GET", "/dbs/db/docs/a/title", nil, nil)
		if resp.StatusCode != 200 || strings.TrimSpace(string(raw)) != `"t"` {
			t.Fatalf("got %d %s", resp.StatusCode, raw)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if resp, raw := doReq(t, srv, "DELETE", "/dbs/db/docs/a/_attachments/f.txt", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("got %d %s", resp.StatusCode, raw)
		}
		if resp, raw := doReq(t, srv, "GET", "/dbs/db/docs/a/_attachments/f.txt", nil, nil); resp.StatusCode != 404 {
			t.Fatalf("got %d %s, want 404", resp.StatusCode, raw)
		}
		if resp, raw := doReq(t, srv, "DELETE", "/dbs/db/docs/a/_attachments/f.txt", nil, nil); resp.StatusCode != 404 {
			t.Fatalf("second delete: got %d %s, want 404", resp.StatusCode, raw)
		}
		resp, raw := doReq(t, srv, "POST", "/dbs/db/blobs/compact", nil, nil)
		if resp.StatusCode != 200 || !strings.Contains(string(raw), `"blobs":1,"bytes":640000`) {
			t.Fatalf("compact: got %d %s, want 1 blob of 640000 bytes", resp.StatusCode, raw)
		}
	})
}

func TestAttachmentBodyLimit(t *testing.T) {
	srv := newTestServer(t, Config{MaxBodyBytes: 1 << 10, MaxAttachmentBytes: 64 << 10})
	doReq(t, srv, "PUT", "/dbs/db", nil, nil)
	// Larger than MaxBodyBytes but within MaxAttachmentBytes.
	if resp, raw := doReq(t, srv, "PUT", "/dbs/db/docs/a/_attachments/f", bytes.NewReader(make([]byte, 32<<10)), nil); resp.StatusCode != 201 {
		t.Fatalf("got %d %s, want 201", resp.StatusCode, raw)
	}
	if resp, raw := doReq(t, srv, "PUT", "/dbs/db/docs/a/_attachments/g", bytes.NewReader(make([]byte, 65<<10)), nil); resp.StatusCode != 413 {
		t.Fatalf("got %d %s, want 413", resp.StatusCode, raw)
	}
	if resp, raw := doReq(t, srv, "GET", "/dbs/db/docs/a/_attachments/g", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("rejected upload: got %d %s, want 404", resp.StatusCode, raw)
	}
	// Other routes keep MaxBodyBytes.
	big := `{"x":"` + strings.Repeat("a", 2<<10) + `"}`
	if resp, raw := doReq(t, srv, "PUT", "/dbs/db/docs/b", strings.NewReader(big), nil); resp.StatusCode != 413 {
		t.Fatalf("got %d %s, want 413", resp.StatusCode, raw)
	}
}

// TestAttachmentContentTypeChecked: a Content-Type that is not printable
// ASCII (bytes that are not UTF-8 made the document unreadable: 500 on
// every GET) or longer than maxContentTypeBytes gets 400 bad_request and
// stores nothing.
func TestAttachmentContentTypeChecked(t *testing.T) {
	srv := newTestServer(t, Config{})
	do(t, srv, "PUT", "/dbs/db", "", nil)
	for _, ct := range []string{"image/\xff\xfe", "text/\tplain", "a/" + strings.Repeat("b", maxContentTypeBytes)} {
		st, raw, _ := do(t, srv, "PUT", "/dbs/db/docs/x/_attachments/a", "hello", map[string]string{"Content-Type": ct})
		if st != 400 || errorCode(t, raw) != "bad_request" {
			t.Errorf("Content-Type %q: got %d %s, want 400 bad_request", ct, st, raw)
		}
	}
	if st, raw, _ := do(t, srv, "GET", "/dbs/db/docs/x", "", nil); st != 404 {
		t.Fatalf("GET after refused uploads: got %d %s, want 404", st, raw)
	}
	ct := "text/plain; charset=utf-8"
	if st, raw, _ := do(t, srv, "PUT", "/dbs/db/docs/x/_attachments/a", "hello", map[string]string{"Content-Type": ct}); st != 201 {
		t.Fatalf("Content-Type %q: got %d %s, want 201", ct, st, raw)
	}
	if st, raw, _ := do(t, srv, "GET", "/dbs/db/docs/x", "", nil); st != 200 || !strings.Contains(string(raw), ct) {
		t.Fatalf("GET: got %d %s", st, raw)
	}
}
