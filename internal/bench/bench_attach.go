package bench

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/barrel-db/barrel/node"
)

// Workloads of attachments (issue 6), one blob of --blob-bytes each:
//
//   - A1: PUT over HTTP to an in-process server on a loopback port, then
//     GET back and checked against its SHA-256 (MB/s each way).
//   - A2: attached on peer A through the node API, then replicated to a
//     fresh peer B on loopback: timed from B's dial until B can open the
//     attachment (a replicated blob is visible only once complete and
//     verified), then read back on B and checked.
//
// The blob comes from a ChaCha8 stream keyed by --seed and is never held
// whole: its digest is computed from the generator beforehand, untimed.
// MB/s counts 10^6 bytes, as go test does; the *_mb memory figures are MiB.

// benchAttachConfig sizes the attachment workloads.
type benchAttachConfig struct {
	blobBytes int64 // A1, A2: bytes of the blob
}

func (c *benchAttachConfig) flags(f *pflag.FlagSet) {
	f.Int64Var(&c.blobBytes, "blob-bytes", 1<<30, "bytes of the blob A1 and A2 write, read and replicate")
}

func (c *benchAttachConfig) validate() error {
	if c.blobBytes < 1 {
		return fmt.Errorf("--blob-bytes %d: must be positive", c.blobBytes)
	}
	return nil
}

// The attachment both workloads write.
const (
	benchAttachDoc  = "blob"
	benchAttachName = "blob.bin"
	benchAttachType = "application/octet-stream"
	// benchAttachPoll is how often A2 checks whether B can open the
	// attachment: a bound on the error of its time, small next to seconds.
	benchAttachPoll = 5 * time.Millisecond
	// benchHTTPBuffer is the client's socket buffer size each way.
	benchHTTPBuffer = 256 << 10
)

// blob returns the workload's blob as a stream: the same seed and size
// give the same bytes.
func (b *bench) blob() io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], b.c.seed)
	copy(key[8:], "barrel-bench-blob")
	return io.LimitReader(rand.NewChaCha8(key), b.c.att.blobBytes)
}

// blobDigest is the digest of b.blob() as the node writes it ("sha256-<hex>").
func (b *bench) blobDigest() (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, b.blob()); err != nil {
		return "", fmt.Errorf("digest of the blob: %w", err)
	}
	return node.DigestPrefix + hex.EncodeToString(h.Sum(nil)), nil
}

// readDigest reads r to its end and returns its digest and length.
func readDigest(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return node.DigestPrefix + hex.EncodeToString(h.Sum(nil)), n, err
}

// checkBlob compares what was read back with the blob.
func (b *bench) checkBlob(got string, n int64, want string) error {
	if n != b.c.att.blobBytes || got != want {
		return fmt.Errorf("read back %d bytes with digest %s, want %d bytes with %s", n, got, b.c.att.blobBytes, want)
	}
	return nil
}

// memPeaks follows the workload's memory beyond peak_rss_mb: the kernel's
// own high-water mark of the resident set (VmHWM, reset at the start when
// the kernel allows, -1 otherwise) and the Go heap sampled every
// benchPeakEvery.
type memPeaks struct {
	hwmReset bool
	heap     *peakRSS
}

func startMemPeaks() *memPeaks {
	return &memPeaks{hwmReset: resetHWM(), heap: startPeak(benchPeakEvery, heapMB)}
}

// stop ends the heap sampler and returns the line's fields. Later calls
// return the heap figure of the first.
func (m *memPeaks) stop() []string {
	hwm := -1
	if m.hwmReset {
		hwm = statusMB("VmHWM")
	}
	return []string{"vmhwm_mb=" + strconv.Itoa(hwm), "heap_peak_mb=" + strconv.Itoa(m.heap.stop())}
}

// resetHWM sets the process's VmHWM to its current resident set (Linux 4.0
// and later); false where the kernel refuses.
func resetHWM() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// heapMB is the Go heap's live and not yet swept objects in MiB.
func heapMB() int {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return -1
	}
	return int(s[0].Value.Uint64() >> 20)
}

// mbPerS formats a throughput in MB (10^6 bytes) per second.
func mbPerS(bytes int64, d time.Duration) string {
	return strconv.FormatFloat(float64(bytes)/1e6/d.Seconds(), 'f', 0, 64)
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) }

// A1: PUT the blob over HTTP, then GET it back. seconds is both.
func (b *bench) attachHTTP(ctx context.Context, n *node.Node, db string) (string, error) {
	want, err := b.blobDigest()
	if err != nil {
		return "", err
	}
	addr, stop, err := b.serveHTTP(n)
	if err != nil {
		return "", err
	}
	defer stop()
	tr := &http.Transport{WriteBufferSize: benchHTTPBuffer, ReadBufferSize: benchHTTPBuffer}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: benchReplTimeout}
	url := "http://" + addr + "/dbs/" + db + "/docs/" + benchAttachDoc + "/_attachments/" + benchAttachName

	mem := startMemPeaks()
	defer mem.stop()
	start := time.Now()
	// With ?digest= the server refuses a blob that is not the one meant.
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url+"?digest="+want, b.blob())
	if err != nil {
		return "", err
	}
	req.ContentLength = b.c.att.blobBytes
	req.Header.Set("Content-Type", benchAttachType)
	resp, err := send(client, req, http.StatusCreated)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err != nil {
		return "", fmt.Errorf("put attachment: %w", err)
	}
	put := time.Since(start)

	start = time.Now()
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err = send(client, req, http.StatusOK)
	if err != nil {
		return "", fmt.Errorf("get attachment: %w", err)
	}
	got, read, err := readDigest(resp.Body)
	resp.Body.Close()
	get := time.Since(start)
	if err == nil {
		err = b.checkBlob(got, read, want)
	}
	if err != nil {
		return "", fmt.Errorf("get attachment: %w", err)
	}
	return strings.Join(append([]string{
		"workload=" + b.name,
		"bytes=" + strconv.FormatInt(b.c.att.blobBytes, 10),
		"seconds=" + secs(put+get),
		"put_seconds=" + secs(put),
		"put_mb_s=" + mbPerS(b.c.att.blobBytes, put),
		"get_seconds=" + secs(get),
		"get_mb_s=" + mbPerS(b.c.att.blobBytes, get),
		"rss_mb=" + strconv.Itoa(b.rss()),
	}, append(mem.stop(), "durability="+b.c.durability)...), " "), nil
}

// send sends req and returns the response when its status is want (the
// caller closes its body); any other status is an error carrying the start
// of the body.
func send(client *http.Client, req *http.Request, want int) (*http.Response, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

// A2: peer A attaches the blob (attach_seconds); a fresh peer B dials A,
// timed until B can open the attachment. Both peers share the process, so
// the memory figures are theirs together.
func (b *bench) replicateBlob(ctx context.Context) (line string, err error) {
	want, err := b.blobDigest()
	if err != nil {
		return "", err
	}
	mem := startMemPeaks()
	defer mem.stop()
	na, da, err := b.openPeer(ctx, b.dir+"/a", true)
	if err != nil {
		return "", err
	}
	defer closePeer(na, &err)
	start := time.Now()
	if _, err := da.PutAttachmentDigest(ctx, benchAttachDoc, benchAttachName, benchAttachType, b.blob(), "", want); err != nil {
		return "", fmt.Errorf("attach on A: %w", err)
	}
	attach := time.Since(start)
	nb, db, err := b.openPeer(ctx, b.dir+"/b", true)
	if err != nil {
		return "", err
	}
	defer closePeer(nb, &err)
	stop, err := b.profile()
	if err != nil {
		return "", err
	}
	defer stop(&err)
	start = time.Now()
	if err := connect(ctx, nb, na); err != nil {
		return "", err
	}
	r, err := waitAttachment(ctx, db)
	if err != nil {
		return "", fmt.Errorf("replicate: %w", err)
	}
	elapsed := time.Since(start)
	got, n, err := readDigest(r)
	r.Close()
	if err == nil {
		err = b.checkBlob(got, n, want)
	}
	if err != nil {
		return "", fmt.Errorf("read on B: %w", err)
	}
	return strings.Join(append([]string{
		"workload=" + b.name,
		"bytes=" + strconv.FormatInt(b.c.att.blobBytes, 10),
		"seconds=" + secs(elapsed),
		"replicate_mb_s=" + mbPerS(b.c.att.blobBytes, elapsed),
		"attach_seconds=" + secs(attach),
		"attach_mb_s=" + mbPerS(b.c.att.blobBytes, attach),
		"rss_mb=" + strconv.Itoa(b.rss()),
	}, append(mem.stop(), "durability="+b.c.durability)...), " "), nil
}

// waitAttachment polls d every benchAttachPoll until it can open the
// workload's attachment, and returns it open; the caller closes it.
// ErrNotFound means the document or its blob has not arrived yet.
func waitAttachment(ctx context.Context, d *node.DB) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(ctx, benchReplTimeout)
	defer cancel()
	for range benchReplTimeout / benchAttachPoll {
		_, r, err := d.Attachment(ctx, benchAttachDoc, benchAttachName)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, node.ErrNotFound) {
			return nil, err
		}
		if err := wait(ctx, benchAttachPoll); err != nil {
			return nil, fmt.Errorf("attachment %s of %s: %w", benchAttachName, benchAttachDoc, err)
		}
	}
	return nil, fmt.Errorf("attachment %s of %s: not there after %v", benchAttachName, benchAttachDoc, benchReplTimeout)
}
