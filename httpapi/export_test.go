package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestExportStream(t *testing.T) {
	srv := newTestServer(t, Config{})
	get := func(t *testing.T, path string) (int, http.Header, string) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, string(raw)
	}
	runSteps(t, srv, []step{
		{"create", "PUT", "/dbs/web", "", 201, nil},
		{"a", "PUT", "/dbs/web/docs/a", `{"z":1,"m":{"k":"<&>"},"A":0}`, 201, nil},
		{"b1", "PUT", "/dbs/web/docs/b1", `{}`, 201, nil},
		{"b2", "PUT", "/dbs/web/docs/b2", `{"x":[1,2.5,null,true]}`, 201, nil},
		{"c", "PUT", "/dbs/web/docs/c", `{"gone":true}`, 201, nil},
		{"delete c", "DELETE", "/dbs/web/docs/c", "", 200, nil},
	})

	status, h, body := get(t, "/dbs/web/_export")
	want := `{"_id":"a","A":0,"m":{"k":"<&>"},"z":1}` + "\n" +
		`{"_id":"b1"}` + "\n" +
		`{"_id":"b2","x":[1,2.5,null,true]}` + "\n" +
		`{"_export_end":{"docs":3,"failed":0,"seq":5}}` + "\n"
	if status != 200 || body != want || h.Get("Content-Type") != "application/x-ndjson" ||
		h.Get("X-Barrel-Doc-Count") != "3" || h.Get("X-Barrel-Update-Seq") != "5" {
		t.Fatalf("got %d %v\n%s\nwant 200, 3 documents, seq 5\n%s", status, h, body, want)
	}

	_, _, body = get(t, "/dbs/web/_export?prefix=b&rev=true")
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], `{"_id":"b1","_rev":"`) || !strings.HasSuffix(lines[0], `"}`) ||
		!strings.HasPrefix(lines[1], `{"_id":"b2","_rev":"`) || !strings.HasSuffix(lines[1], `","x":[1,2.5,null,true]}`) ||
		lines[2] != `{"_export_end":{"docs":2,"failed":0,"seq":5}}` {
		t.Fatalf("prefix b with revs: got\n%s", body)
	}

	if status, _, body := get(t, "/dbs/web/_export?rev=maybe"); status != 400 {
		t.Fatalf("rev=maybe: got %d %s, want 400", status, body)
	}
	if status, _, body := get(t, "/dbs/nodb/_export"); status != 404 || !strings.Contains(body, `"reason":"nodb: database not found"`) {
		t.Fatalf("nodb: got %d %s, want 404 naming nodb once", status, body)
	}
}

// TestExportClientGone checks that a client that stops reading early ends
// the handler (and releases its snapshot): the server and node close after.
func TestExportClientGone(t *testing.T) {
	srv := newTestServer(t, Config{})
	runSteps(t, srv, []step{{"create", "PUT", "/dbs/web", "", 201, nil}})
	var b strings.Builder
	b.WriteString(`{"docs":[`)
	for i := range 3000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"_id":"d%05d","pad":"%s"}`, i, strings.Repeat("x", 100))
	}
	b.WriteString(`]}`)
	runSteps(t, srv, []step{{"bulk", "POST", "/dbs/web/bulk", b.String(), 200, nil}})
	resp, err := srv.Client().Get(srv.URL + "/dbs/web/_export")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || !strings.HasPrefix(string(buf), `{"_id":"d00000"`) {
		t.Fatalf("first bytes %q: %v", buf, err)
	}
	resp.Body.Close() // cleanup closes the server, which waits for the handler, then the node
}

// TestExportDeadlineCleared checks that the write deadline an export sets
// does not outlive it (net/http clears it when the response is finished): a long poll on the same kept-alive connection,
// answered after the export's deadline has passed, still gets its answer.
func TestExportDeadlineCleared(t *testing.T) {
	old := exportWriteTimeout
	exportWriteTimeout = 50 * time.Millisecond
	t.Cleanup(func() { exportWriteTimeout = old })
	srv := newTestServer(t, Config{})
	runSteps(t, srv, []step{
		{"create", "PUT", "/dbs/web", "", 201, nil},
		{"a", "PUT", "/dbs/web/docs/a", `{}`, 201, nil},
	})
	tr := &http.Transport{MaxConnsPerHost: 1}
	hc := &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := hc.Get(srv.URL + "/dbs/web/_export")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	done := make(chan error, 1)
	go func() {
		var reused atomic.Bool
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused.Store(ci.Reused) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", srv.URL+"/dbs/web/changes?feed=longpoll&since=1", nil)
		resp, err := hc.Do(req)
		if err == nil && !reused.Load() {
			resp.Body.Close()
			err = fmt.Errorf("the long poll did not reuse the export's connection")
		} else if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // past the export's deadline: the point of the test
	runSteps(t, srv, []step{{"b", "PUT", "/dbs/web/docs/b", `{}`, 201, nil}})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("long poll after an export on the same connection: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll got no answer")
	}
}
