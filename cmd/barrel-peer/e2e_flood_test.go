package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// floodBudget is the memory budget the flood tests configure.
const floodBudget = 64 << 20

// floodConfig is a daemon with small Pebble buffers and HTTP bounds scaled
// down so that each flood runs in seconds: a body slower than 1000 bytes/s
// after one second is cut, at most 8 uploads and 256 writes at once.
const floodConfig = `cache_bytes: 16777216
memtable_bytes: 8388608
http:
  memory_budget_bytes: 67108864
  max_inflight_writes: 256
  max_connections: 512
  max_uploads: 8
  min_body_rate: 1000
  body_rate_grace: 1s
`

// procKB reads a field (VmHWM, VmRSS) of /proc/PID/status, in KiB.
func procKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read process status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parse %s %q: %v", field, v, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// floodPeer starts a daemon with floodConfig, creates database db, warms
// it with a few writes and returns it with its idle RSS in bytes.
func floodPeer(t *testing.T) (*peer, int64) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "barrel.yaml")
	if err := os.WriteFile(cfg, []byte(floodConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPeer(t, t.TempDir(), "--config", cfg)
	if st := floodStatus(t, "PUT", p.url+"/dbs/db", ""); st != 201 && st != 200 {
		t.Fatalf("create db: %d", st)
	}
	for i := range 10 {
		if st := floodStatus(t, "PUT", fmt.Sprintf("%s/dbs/db/docs/warm%d", p.url, i), `{"v":1}`); st != 201 {
			t.Fatalf("warm-up write: %d", st)
		}
	}
	return p, procKB(t, p.cmd.Process.Pid, "VmRSS") << 10
}

func floodStatus(t *testing.T, method, url, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// checkRSS fails unless the daemon's peak RSS stayed under twice its idle
// RSS plus the budget, and it still serves.
func checkRSS(t *testing.T, p *peer, idle int64) {
	t.Helper()
	peak := procKB(t, p.cmd.Process.Pid, "VmHWM") << 10
	bound := 2*idle + floodBudget
	t.Logf("idle RSS %d MiB, peak %d MiB, bound %d MiB", idle>>20, peak>>20, bound>>20)
	if peak > bound {
		t.Errorf("peak RSS %d MiB, want under 2 x idle + budget = %d MiB", peak>>20, bound>>20)
	}
	if st := floodStatus(t, "PUT", p.url+"/dbs/db/docs/after", `{"v":2}`); st != 201 {
		t.Errorf("write after the flood: got %d, want 201", st)
	}
}

// counts is a concurrent tally of outcomes.
type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[k]++
}

// only fails unless every outcome is one of want.
func (c *counts) only(t *testing.T, want ...string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Logf("outcomes %v", c.m)
	for k := range c.m {
		ok := false
		for _, w := range want {
			ok = ok || k == w
		}
		if !ok {
			t.Errorf("outcome %q (%d times), want only %v", k, c.m[k], want)
		}
	}
}

// intArray is a JSON object holding an array of n integers, about 7n bytes.
func intArray(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"a":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(i))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// TestE2EFloodMemoryBounded sends each flood of issue 16 item 8 to a real
// daemon and checks from /proc that its peak RSS stays under twice its
// idle RSS plus the configured budget, that every refused request gets the
// documented answer before the memory is spent, and that the daemon serves
// afterwards.
func TestE2EFloodMemoryBounded(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory makes RSS meaningless")
	}
	big := intArray(1_000_000) // 6.9 MB, an array of 1M integers

	t.Run("one body of 1M integers", func(t *testing.T) {
		p, idle := floodPeer(t)
		req, _ := http.NewRequest("PUT", p.url+"/dbs/db/docs/big", bytes.NewReader(big))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || !bytes.Contains(raw, []byte(`"too_large"`)) {
			t.Errorf("got %d %s, want 413 too_large", resp.StatusCode, raw)
		}
		checkRSS(t, p, idle)
	})

	t.Run("six such bodies and six large strings in parallel", func(t *testing.T) {
		p, idle := floodPeer(t)
		str := []byte(`{"s":"` + strings.Repeat("x", 3<<20) + `"}`) // within the budget alone
		var c counts
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Go(func() {
				body, path := big, fmt.Sprintf("/dbs/db/docs/big%d", i)
				if i%2 == 1 {
					body = str
				}
				req, _ := http.NewRequest("PUT", p.url+path, bytes.NewReader(body))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					c.add("error")
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				c.add(strconv.Itoa(resp.StatusCode))
			})
		}
		wg.Wait()
		c.only(t, "201", "413", "503")
		checkRSS(t, p, idle)
	})

	t.Run("1000 trickling uploads", func(t *testing.T) {
		p, idle := floodPeer(t)
		addr := strings.TrimPrefix(p.url, "http://")
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		var c counts
		var wg sync.WaitGroup
		start := time.Now()
		for i := range 1000 {
			wg.Go(func() { c.add(trickle(ctx, addr, i)) })
		}
		wg.Wait()
		t.Logf("all answered in %v", time.Since(start).Round(time.Millisecond))
		c.only(t, "408", "503")
		if c.m["408"] == 0 {
			t.Errorf("no upload was cut for its rate")
		}
		checkRSS(t, p, idle)
	})

	t.Run("10000 concurrent writes", func(t *testing.T) {
		p, idle := floodPeer(t)
		tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: 10000, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
		var c counts
		var wg sync.WaitGroup
		start := time.Now()
		for i := range 10000 {
			wg.Go(func() {
				req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/dbs/db/docs/w%d", p.url, i),
					strings.NewReader(`{"v":1,"s":"some text to index"}`))
				resp, err := client.Do(req)
				if err != nil {
					c.add("error")
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				c.add(strconv.Itoa(resp.StatusCode))
			})
		}
		wg.Wait()
		t.Logf("all answered in %v", time.Since(start).Round(time.Millisecond))
		c.only(t, "201", "503")
		checkRSS(t, p, idle)
	})
}

// trickle uploads an attachment of 1 MiB, sending its first bytes at
// once and then one byte every 200 ms, and returns the status the daemon
// answers (or "eof" when it closed without answering, "timeout" when ctx
// ended first).
func trickle(ctx context.Context, addr string, i int) string {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "dial error"
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	fmt.Fprintf(conn, "PUT /dbs/db/docs/t%d/_attachments/a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nxx", i, 1<<20)
	answered := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- "eof"
			return
		}
		resp.Body.Close()
		answered <- strconv.Itoa(resp.StatusCode)
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case s := <-answered:
			return s
		case <-ctx.Done():
			return "timeout"
		case <-tick.C:
			_, _ = conn.Write([]byte("x")) // fails once the daemon closed: the answer follows
		}
	}
}
