package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// blobStream is a deterministic stream of n bytes, never held whole.
func blobStream(n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{200}), n)
}

// procMB reads a process's resident set (VmRSS) or its peak (VmHWM) in MB.
func procMB(pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1000
		}
	}
	return 0
}

// attachmentDigest GETs an attachment and hashes it as it streams; ok is
// false until the peer has the blob.
func attachmentDigest(t *testing.T, url string) (string, bool) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return "", false
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return "", false
	}
	return "sha256-" + hex.EncodeToString(h.Sum(nil)), true
}

// TestE2EBlobReplication: a 200 MiB attachment written on A reaches B and
// then C (connected only to B) byte-identical, while every process stays
// under 150 MB resident. Peers run with a 16 MiB Pebble block cache and
// 8 MiB memtables (p2p on loopback, mDNS and the DHT off).
func TestE2EBlobReplication(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MiB through three processes")
	}
	const (
		db     = "files"
		size   = 200 << 20
		rssMax = 150.0 // MB
	)
	loop := "/ip4/127.0.0.1/tcp/0"
	// Pebble's block cache (128 MiB) and memtables (up to 4 × 32 MiB)
	// dominate a daemon's memory by default; a small-memory peer sets both.
	cache := "--cache-bytes=" + strconv.Itoa(16<<20)
	mem := "--memtable-bytes=" + strconv.Itoa(8<<20)
	a := startNetPeer(t, "A", t.TempDir(), loop, cache, mem)
	b := startNetPeer(t, "B", t.TempDir(), loop, cache, mem, "--bootstrap", a.addr)
	c := startNetPeer(t, "C", t.TempDir(), loop, cache, mem, "--bootstrap", b.addr)
	peers := []*netPeer{a, b, c}
	for _, p := range peers {
		mustStatus(t, http.StatusCreated, http.MethodPut, p.url+"/dbs/"+db, "")
	}
	a.waitPeers(t, b)
	c.waitPeers(t, b)

	// Sample every process's RSS while the blob moves.
	var mu sync.Mutex
	peak := map[string]float64{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			mu.Lock()
			for _, p := range peers {
				peak[p.name] = max(peak[p.name], procMB(p.cmd.Process.Pid, "VmRSS"))
			}
			mu.Unlock()
		}
	})

	h := sha256.New()
	start := time.Now()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut,
		a.url+"/dbs/"+db+"/docs/big/_attachments/blob.bin", io.TeeReader(blobStream(size), h))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("attach on A: %d %s", resp.StatusCode, body)
	}
	want := "sha256-" + hex.EncodeToString(h.Sum(nil))
	t.Logf("attached %d MiB on A in %v", size>>20, time.Since(start))

	for _, p := range []*netPeer{b, c} {
		url := p.url + "/dbs/" + db + "/docs/big/_attachments/blob.bin"
		deadline := time.Now().Add(90 * time.Second)
		for {
			// A HEAD-sized probe: the blob is there when GET answers 200.
			r, err := http.Head(url)
			if err == nil {
				r.Body.Close()
				if r.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: blob not replicated within 90s", p.name)
			}
			time.Sleep(50 * time.Millisecond) // polling interval
		}
		t.Logf("blob on %s after %v", p.name, time.Since(start))
	}
	close(stop)
	wg.Wait()
	for _, p := range peers {
		hwm := procMB(p.cmd.Process.Pid, "VmHWM")
		t.Logf("%s: RSS peak sampled %.0f MB, VmHWM %.0f MB", p.name, peak[p.name], hwm)
		if !raceEnabled && hwm > rssMax {
			t.Errorf("%s: peak RSS %.0f MB while the blob moved, want under %.0f", p.name, hwm, rssMax)
		}
	}
	for _, p := range []*netPeer{b, c} {
		got, ok := attachmentDigest(t, p.url+"/dbs/"+db+"/docs/big/_attachments/blob.bin")
		if !ok || got != want {
			t.Errorf("%s: attachment digest %q, want %q", p.name, got, want)
		}
	}
	if !bytes.Contains(body, []byte(`"rev"`)) {
		t.Errorf("attach answer %s: want a rev", body)
	}
}
