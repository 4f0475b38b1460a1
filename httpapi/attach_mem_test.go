//go:build cgo && !race

// With cgo, Pebble keeps its memtables and block cache outside the Go heap,
// so the Go heap measures what the attachment path itself holds. Under
// -race Pebble turns its invariants on (internal/invariants), which change
// how it allocates (215 MiB of Go heap seen for this test), so the bound
// is checked in normal builds only.

package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"testing"
)

// heapSampler is an endless-until-n reader of seeded bytes that samples the
// Go heap every sampleBytes it hands out.
type heapSampler struct {
	rnd     *rand.ChaCha8
	left    int64
	since   int64
	maxHeap uint64
}

const sampleBytes = 8 << 20

func (h *heapSampler) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.maxHeap = max(h.maxHeap, ms.HeapInuse)
}

func (h *heapSampler) Read(p []byte) (int, error) {
	if h.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), h.left)]
	_, _ = h.rnd.Read(p)
	h.left -= int64(len(p))
	if h.since += int64(len(p)); h.since >= sampleBytes {
		h.since = 0
		h.sample()
	}
	return len(p), nil
}

// TestAttachmentMemoryBounded streams a 200 MiB attachment through the HTTP
// API into a node and back, in-process, and checks the Go heap in use stays
// far below the attachment's size on the way in and on the way out.
func TestAttachmentMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 400 MiB")
	}
	const size = 200 << 20
	const limit = 64 << 20
	seed := [32]byte{7}
	t.Logf("seed %x", seed)
	srv := newTestServer(t, Config{})
	doReq(t, srv, "PUT", "/dbs/db", nil, nil)

	runtime.GC()
	in := &heapSampler{rnd: rand.NewChaCha8(seed), left: size}
	want := sha256.New()
	req, err := http.NewRequestWithContext(t.Context(), "PUT", srv.URL+"/dbs/db/docs/big/_attachments/blob",
		io.TeeReader(in, want))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("put: got %d %s", resp.StatusCode, raw)
	}
	in.sample()
	t.Logf("upload: max heap in use %d MiB", in.maxHeap>>20)
	if in.maxHeap > limit {
		t.Fatalf("upload: heap in use reached %d MiB, want under %d MiB", in.maxHeap>>20, limit>>20)
	}

	runtime.GC()
	resp, err = srv.Client().Get(srv.URL + "/dbs/db/docs/big/_attachments/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := &heapSampler{}
	got := sha256.New()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		got.Write(buf[:k])
		n += int64(k)
		if out.since += int64(k); out.since >= sampleBytes {
			out.since = 0
			out.sample()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("download: max heap in use %d MiB", out.maxHeap>>20)
	if n != size || fmt.Sprintf("%x", got.Sum(nil)) != fmt.Sprintf("%x", want.Sum(nil)) {
		t.Fatalf("got %d bytes hashing %x, want %d bytes hashing %x", n, got.Sum(nil), size, want.Sum(nil))
	}
	if etag := resp.Header.Get("ETag"); etag != `"sha256-`+hex.EncodeToString(want.Sum(nil))+`"` {
		t.Fatalf("got ETag %s", etag)
	}
	if out.maxHeap > limit {
		t.Fatalf("download: heap in use reached %d MiB, want under %d MiB", out.maxHeap>>20, limit>>20)
	}
}
