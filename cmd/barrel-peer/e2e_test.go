package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binPath is the barrel-peer binary built once by TestMain.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "barrel-peer-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "barrel-peer")
	build := exec.Command("go", "build", "-race", "-o", binPath, ".")
	if !raceEnabled {
		build = exec.Command("go", "build", "-o", binPath, ".")
	}
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build barrel-peer: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lockedBuffer collects a process's stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// peer is one running barrel-peer daemon.
type peer struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string // http://127.0.0.1:PORT
	stderr *lockedBuffer
	exited chan struct{}
	err    error // Wait's result, valid after exited is closed
}

// poll calls cond until it returns true or timeout passes.
func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// startPeer runs `barrel-peer run --no-network` on dataDir with extra
// flags and waits until /healthz answers. The process is killed at
// cleanup; its stderr is printed when the test failed.
func startPeer(t *testing.T, dataDir string, extra ...string) *peer {
	t.Helper()
	return launch(t, dataDir, append([]string{"--no-network"}, extra...))
}

// launch runs `barrel-peer run` on dataDir with extra flags, as startPeer,
// leaving networking to the flags.
func launch(t *testing.T, dataDir string, extra []string) *peer {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	args := append([]string{"run", "--data", dataDir, "--http", "127.0.0.1:0", "--http-addr-file", addrFile}, extra...)
	p := &peer{t: t, cmd: exec.Command(binPath, args...), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	p.cmd.Env = append(os.Environ(), "BARREL_API=", "BARREL_TOKEN=")
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start barrel-peer: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("barrel-peer %v stderr:\n%s", args, p.stderr.String())
		}
	})
	poll(t, 60*time.Second, "the address file", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("barrel-peer exited early: %v\n%s", p.err, p.stderr.String())
		default:
		}
		b, err := os.ReadFile(addrFile)
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			return false
		}
		p.url = "http://" + strings.TrimSpace(string(b))
		return true
	})
	poll(t, 30*time.Second, "/healthz", func() bool {
		resp, err := http.Get(p.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// kill sends SIGKILL and waits for the process to end.
func (p *peer) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// stop sends SIGTERM and waits; it fails unless the process exits 0.
func (p *peer) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("barrel-peer did not exit within 30s of SIGTERM")
	}
	if p.err != nil {
		t.Fatalf("barrel-peer exited with %v, want 0", p.err)
	}
}

// response is an HTTP answer decoded for assertions.
type response struct {
	status int
	header http.Header
	raw    []byte
}

// json decodes the body into a generic value (numbers as float64).
func (r response) json(t *testing.T) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.raw, &v); err != nil {
		t.Fatalf("decode %q: %v", r.raw, err)
	}
	return v
}

func (r response) obj(t *testing.T) map[string]any {
	t.Helper()
	m, ok := r.json(t).(map[string]any)
	if !ok {
		t.Fatalf("body %s is not an object", r.raw)
	}
	return m
}

// call makes one request; headers come in name, value pairs.
func call(t *testing.T, method, url, body string, headers ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, raw: raw}
}

// mustStatus calls and fails unless the status is want.
func mustStatus(t *testing.T, want int, method, url, body string) response {
	t.Helper()
	r := call(t, method, url, body)
	if r.status != want {
		t.Fatalf("%s %s: got %d %s, want %d", method, url, r.status, r.raw, want)
	}
	return r
}
