package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EImportRetriesBusy: a daemon that answers 503 overloaded (here:
// its one write slot held by an upload in flight) makes import wait and
// send the batch again, saying so, instead of stopping at the first
// refusal; every document arrives once the daemon has room.
func TestE2EImportRetriesBusy(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "barrel.yaml")
	if err := os.WriteFile(cfg, []byte("http:\n  max_inflight_writes: 1\n  min_body_rate: -1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPeer(t, t.TempDir(), "--config", cfg)
	mustStatus(t, 201, "PUT", p.url+"/dbs/db", "")
	mustStatus(t, 201, "PUT", p.url+"/dbs/db/docs/holder", `{"v":1}`)

	// Hold the only write slot with an upload whose body has not ended.
	pw, upload, probes := holdWriteSlot(t, p.url+"/dbs/db/docs/holder/_attachments/slow", p.url+"/dbs/db/docs/probe")

	var lines strings.Builder
	const n = 2500
	for i := range n {
		fmt.Fprintf(&lines, "{\"_id\":\"d%05d\",\"i\":%d}\n", i, i)
	}
	file := filepath.Join(t.TempDir(), "in.ndjson")
	if err := os.WriteFile(file, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "--api", p.url, "import", "db", file)
	cmd.Env = append(os.Environ(), "BARREL_API=", "BARREL_TOKEN=")
	stderr := &lockedBuffer{}
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, "import to say the daemon is busy", func() bool {
		return strings.Contains(stderr.String(), "the daemon is busy")
	})
	if err := pw.Close(); err != nil { // the upload ends: the slot is free
		t.Fatal(err)
	}
	if err := <-upload; err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("import: %v\nstdout %s\nstderr %s", err, stdout.String(), stderr.String())
	}
	if want := fmt.Sprintf("imported %d of %d documents into db, 0 failed", n, n); !strings.Contains(stdout.String(), want) {
		t.Fatalf("import said %q, want %q", stdout.String(), want)
	}
	info := call(t, "GET", p.url+"/dbs/db", "").obj(t)
	if want := n + probes; info["doc_count"] != float64(want) { // holder, probes that won, the import
		t.Fatalf("doc_count %v, want %d", info["doc_count"], want)
	}
}

// holdWriteSlot starts an upload to uploadURL whose body does not end and
// returns once a daemon with one write slot answers 503 to a PUT because
// of it: the pipe that ends the body, the upload's result, and how many
// probe documents (probeURL plus a number) were written. A probe and the
// upload race for the slot (the transport reads the body's first byte
// before it sends the request), so a lost race is run again, bounded.
func holdWriteSlot(t *testing.T, uploadURL, probeURL string) (*io.PipeWriter, chan error, int) {
	t.Helper()
	probes := 0
	deadline := time.Now().Add(20 * time.Second)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		pr, pw := io.Pipe()
		req, err := http.NewRequestWithContext(t.Context(), "PUT", uploadURL, pr)
		if err != nil {
			t.Fatal(err)
		}
		upload := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 201 {
					err = fmt.Errorf("upload: status %d", resp.StatusCode)
				}
			}
			upload <- err
		}()
		if _, err := pw.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		for time.Now().Before(deadline) {
			select {
			case err := <-upload: // the probe won: try again
				t.Logf("attempt %d: %v", attempt, err)
				pw.Close()
			default:
				probes++
				if call(t, "PUT", fmt.Sprintf("%s%d", probeURL, probes), `{"v":1}`).status == http.StatusServiceUnavailable {
					return pw, upload, probes
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			break
		}
	}
	t.Fatal("timed out waiting for an upload to hold the write slot")
	return nil, nil, 0
}
