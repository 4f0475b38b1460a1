package httpapi

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSSE checks that an idle stream carries heartbeats and that a write
// arrives as an event with its sequence as id.
func TestSSE(t *testing.T) {
	srv := newTestServer(t, Config{SSEHeartbeat: 20 * time.Millisecond})
	runSteps(t, srv, []step{{"create db", "PUT", "/dbs/feed", "", 201, nil}})

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/dbs/feed/changes?feed=sse", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("got %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	readUntil := func(what string, match func(string) bool) string {
		t.Helper()
		for sc.Scan() {
			if match(sc.Text()) {
				return sc.Text()
			}
		}
		t.Fatalf("stream ended before %s: %v", what, sc.Err())
		return ""
	}
	readUntil("a heartbeat", func(l string) bool { return strings.HasPrefix(l, ":") })
	runSteps(t, srv, []step{{"put", "PUT", "/dbs/feed/docs/d1", `{"a":1}`, 201, nil}})
	if id := readUntil("an event", func(l string) bool { return strings.HasPrefix(l, "id: ") }); id != "id: 1" {
		t.Fatalf("got %q, want id: 1", id)
	}
	if data := readUntil("its data", func(l string) bool { return strings.HasPrefix(l, "data: ") }); !strings.Contains(data, `"id":"d1"`) || !strings.Contains(data, `"seq":1`) {
		t.Fatalf("got %q, want the change of d1", data)
	}
}

// TestLongpollWakes checks that a longpoll returns as soon as a change
// arrives, and that its timeout is capped by LongpollTimeout.
func TestLongpollWakes(t *testing.T) {
	srv := newTestServer(t, Config{LongpollTimeout: 30 * time.Second})
	runSteps(t, srv, []step{{"create db", "PUT", "/dbs/lp", "", 201, nil}})
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := srv.Client().Get(srv.URL + "/dbs/lp/changes?feed=longpoll&since=0&timeout=600000")
		if err != nil {
			close(done)
			return
		}
		done <- resp
	}()
	runSteps(t, srv, []step{{"put", "PUT", "/dbs/lp/docs/x", `{"a":1}`, 201, nil}})
	select {
	case resp, ok := <-done:
		if !ok {
			t.Fatal("longpoll request failed")
		}
		defer resp.Body.Close()
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text())
		}
		if resp.StatusCode != 200 || !strings.Contains(b.String(), `"id":"x"`) {
			t.Fatalf("got %d %s, want the change of x", resp.StatusCode, b.String())
		}
	case <-time.After(25 * time.Second):
		t.Fatal("longpoll did not wake up on a write")
	}
}
