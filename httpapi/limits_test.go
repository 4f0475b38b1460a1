package httpapi

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// openBody sends a request's line and headers with Content-Length n and
// the first bytes of its body, leaving the rest unsent.
func openBody(t *testing.T, c net.Conn, method, path string, n int, first string) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", method, path, n, first); err != nil {
		t.Fatal(err)
	}
}

// answer reads the response on c and returns its status, error code and
// Retry-After header.
func answer(t *testing.T, c net.Conn) (int, string, string) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, errorCode(t, raw), resp.Header.Get("Retry-After")
}

// TestMemoryBudget: a JSON body whose cost passes the whole budget gets 413
// from its Content-Length alone, before a byte of it is sent; one that
// finds the budget held by a request in flight gets 503 with Retry-After;
// once that request ends, the budget is whole again.
func TestMemoryBudget(t *testing.T) {
	const budget = 1 << 20
	srv := newBoundedServer(t, Config{MemoryBudgetBytes: budget})
	do(t, srv, "PUT", "/dbs/db", "", nil)

	c := rawConn(t, srv)
	openBody(t, c, "PUT", "/dbs/db/docs/a", budget/costPerBodyByte+1, "")
	if st, code, _ := answer(t, c); st != 413 || code != "too_large" {
		t.Fatalf("body costing more than the budget: got %d %s, want 413 too_large", st, code)
	}

	// A body of 3/4 of the budget holds it while it arrives. It asks for
	// 100 Continue, which net/http sends when the handler first reads the
	// body: after the request was charged.
	held := rawConn(t, srv)
	n := budget * 3 / 4 / costPerBodyByte
	if _, err := fmt.Fprintf(held, "PUT /dbs/db/docs/held HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", n); err != nil {
		t.Fatal(err)
	}
	heldR := bufio.NewReader(held)
	if line, err := heldR.ReadString('\n'); err != nil || !strings.Contains(line, " 100 ") {
		t.Fatalf("waiting for 100 Continue: got %q, %v", line, err)
	}
	if _, err := heldR.ReadString('\n'); err != nil { // the blank line ending the 100 answer
		t.Fatal(err)
	}
	c = rawConn(t, srv)
	openBody(t, c, "PUT", "/dbs/db/docs/b", n, "")
	if st, code, retry := answer(t, c); st != 503 || code != "overloaded" || retry == "" {
		t.Fatalf("while the budget is held: got %d %s (Retry-After %q), want 503 overloaded with Retry-After", st, code, retry)
	}
	if _, err := io.WriteString(held, `{"s":"`+strings.Repeat("x", n-len(`{"s":"`)-2)+`"}`); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(heldR, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("the body holding the budget: got %d, want 201", resp.StatusCode)
	}
	st, raw, _ := do(t, srv, "PUT", "/dbs/db/docs/b", `{"s":"`+strings.Repeat("x", n-8)+`"}`, nil)
	if st != 201 {
		t.Fatalf("after the budget was given back: got %d %s, want 201", st, raw)
	}

	// Values cost beyond their bytes: an array of small integers whose
	// bytes fit passes the budget once decoded.
	arr := "[" + strings.Repeat("1,", budget/costPerValue) + "1]"
	st, raw, _ = do(t, srv, "PUT", "/dbs/db/docs/arr", `{"a":`+arr+`}`, nil)
	if st != 413 || errorCode(t, raw) != "too_large" {
		t.Fatalf("array of %d values: got %d %s, want 413 too_large", budget/costPerValue, st, raw)
	}
	if st, _, _ := do(t, srv, "GET", "/dbs/db/docs/arr", "", nil); st != 404 {
		t.Fatalf("the refused array was stored: GET got %d", st)
	}
}

// TestMinBodyRate: a body trickling below MinBodyRate after the grace gets
// 408 timeout, an upload as well as a JSON body, long before ReadTimeout.
func TestMinBodyRate(t *testing.T) {
	srv := newBoundedServer(t, Config{MinBodyRate: 1000, BodyRateGrace: 200 * time.Millisecond, ReadTimeout: time.Minute})
	do(t, srv, "PUT", "/dbs/db", "", nil)
	for _, path := range []string{"/dbs/db/docs/slow", "/dbs/db/docs/slow/_attachments/a"} {
		c := rawConn(t, srv)
		start := time.Now()
		openBody(t, c, "PUT", path, 10000, `{"s":"`)
		stop := make(chan struct{})
		go func() { // one byte every 50 ms: 20 bytes/s
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := io.WriteString(c, "x"); err != nil {
						return
					}
				}
			}
		}()
		st, code, _ := answer(t, c)
		close(stop)
		if st != 408 || code != "timeout" {
			t.Fatalf("%s trickled: got %d %s, want 408 timeout", path, st, code)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%s trickled: cut after %v, want about the grace", path, d)
		}
	}
	if st, _, _ := do(t, srv, "GET", "/dbs/db/docs/slow", "", nil); st != 404 {
		t.Fatalf("a cut body was stored: GET got %d", st)
	}
}

// TestInFlightCaps: with one upload slot and two write slots, a second
// upload and a third write get 503 overloaded at once while the first ones
// are open; reads are not capped; a slot comes back when its request ends.
func TestInFlightCaps(t *testing.T) {
	srv := newBoundedServer(t, Config{MaxUploads: 1, MaxInFlightWrites: 2})
	do(t, srv, "PUT", "/dbs/db", "", nil)
	// Uploads whose bodies never end: the first to reach its handler holds
	// the one upload slot (and a write slot), the next ones are refused.
	var open []net.Conn
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		c := rawConn(t, srv)
		openBody(t, c, "PUT", fmt.Sprintf("/dbs/db/docs/d%d/_attachments/a", i), 100, "x")
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == 503 && errorCode(t, raw) == "overloaded" {
				break
			}
			t.Fatalf("upload %d: got %d %s, want 503 overloaded or no answer yet", i, resp.StatusCode, raw)
		}
		open = append(open, c)
		if time.Now().After(deadline) {
			t.Fatal("no upload was refused while another was open")
		}
	}
	// A write whose body never ends holds the second write slot, and the
	// next write is refused. It can itself be refused if it arrives while
	// one of those next writes holds the slot: then it is sent again.
	var wr net.Conn
	openWrite := func() {
		wr = rawConn(t, srv)
		openBody(t, wr, "PUT", "/dbs/db/docs/w", 10, "{")
	}
	openWrite()
	deadline = time.Now().Add(5 * time.Second)
	for {
		st, raw, hdr := do(t, srv, "PUT", "/dbs/db/docs/x", `{}`, nil)
		if st == 503 && errorCode(t, raw) == "overloaded" && hdr.Get("Retry-After") != "" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("third write: got %d %s, want 503 overloaded", st, raw)
		}
		wr.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if resp, err := http.ReadResponse(bufio.NewReader(wr), nil); err == nil {
			resp.Body.Close()
			if resp.StatusCode != 503 {
				t.Fatalf("the open write was answered %d, want 503 or no answer", resp.StatusCode)
			}
			wr.Close()
			openWrite()
		}
	}
	if st, raw, _ := do(t, srv, "GET", "/dbs/db", "", nil); st != 200 {
		t.Fatalf("read while writes are capped: got %d %s", st, raw)
	}
	// Closing the connections ends their requests and gives the slots back.
	wr.Close()
	for _, c := range open {
		c.Close()
	}
	for {
		st, raw, _ := do(t, srv, "PUT", "/dbs/db/docs/e/_attachments/a", "y", nil)
		if st == 201 {
			break
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("upload after the slots were given back: got %d %s, want 201", st, raw)
		}
	}
}

// TestMaxBodyBytesCapped: MaxBodyBytes cannot exceed MaxBodyBytesLimit, so
// no document is acknowledged whose change peers would refuse to decode
// (over crdt.MaxChangeBytes): a 9 MiB body gets 413 even when the
// configured limit is larger.
func TestMaxBodyBytesCapped(t *testing.T) {
	srv := newTestServer(t, Config{MaxBodyBytes: 64 << 20, MemoryBudgetBytes: 1 << 30})
	do(t, srv, "PUT", "/dbs/db", "", nil)
	st, raw, _ := do(t, srv, "PUT", "/dbs/db/docs/big", `{"s":"`+strings.Repeat("x", 9<<20)+`"}`, nil)
	if st != 413 || errorCode(t, raw) != "too_large" {
		t.Fatalf("9 MiB body: got %d %.200s, want 413 too_large", st, raw)
	}
}
