package couch_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needNode fails the test when the Node harness is not installed: the
// protocol tests are part of `make test`, so a missing harness is a
// broken setup, not a reason to skip.
func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: install Node.js and run `make couch-deps`")
	}
	if _, err := os.Stat(filepath.Join("js", "node_modules", "pouchdb")); err != nil {
		t.Fatalf("couch/js/node_modules is missing (%v): run `make couch-deps`", err)
	}
	return node
}

// startServer runs js/server.mjs on a port the system picks on
// 127.0.0.1 and returns its base URL; the server is stopped (SIGTERM,
// then waited for) when the test ends.
func startServer(ctx context.Context, t *testing.T, node string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, node, "server.mjs", "0")
	cmd.Dir = "js"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("server.mjs stderr:\n%s", stderr.String())
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	port, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok || port == "" {
		t.Fatalf("server.mjs printed %q (%v), want \"listening PORT\"; stderr:\n%s", line, err, stderr.String())
	}
	return "http://127.0.0.1:" + port
}

// result is the JSON line js/replicate.mjs prints.
type result struct {
	OK            bool     `json:"ok"`
	DocsRead      int      `json:"docs_read"`
	DocsWritten   int      `json:"docs_written"`
	WriteFailures int      `json:"doc_write_failures"`
	Errors        []string `json:"errors"`
	LocalDocCount int      `json:"local_doc_count"`
}

func replicate(ctx context.Context, t *testing.T, node string, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(ctx, node, append([]string{"replicate.mjs"}, args...)...)
	cmd.Dir = "js"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var r result
	if jerr := json.Unmarshal(out, &r); jerr != nil || err != nil || !r.OK {
		t.Fatalf("replicate.mjs %s: %v, output %q, stderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return r
}

// TestJSHarness proves the Node harness works on its own: PouchDB writes
// 100 documents and pushes them to express-pouchdb, a fresh PouchDB pulls
// them back, and the server holds exactly those.
func TestJSHarness(t *testing.T) {
	node := needNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url := startServer(ctx, t, node)

	push := replicate(ctx, t, node, "--remote", url, "--db", "t1", "--op", "write,push", "--n", "100")
	if push.DocsWritten != 200 || push.WriteFailures != 0 || push.LocalDocCount != 100 {
		t.Fatalf("write,push: %+v, want 100 written locally and 100 pushed", push)
	}
	pull := replicate(ctx, t, node, "--remote", url, "--db", "t1", "--op", "pull")
	if pull.DocsRead != 100 || pull.DocsWritten != 100 || pull.LocalDocCount != 100 || len(pull.Errors) != 0 {
		t.Fatalf("pull into a fresh PouchDB: %+v, want 100 documents", pull)
	}
	read := replicate(ctx, t, node, "--remote", url, "--db", "t1", "--op", "read", "--on", "remote")
	if read.DocsRead != 100 {
		t.Fatalf("read the server's t1: %+v, want 100 documents", read)
	}
}
