package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pouchRun runs couch/js/replicate.mjs (PouchDB 9 on a LevelDB directory)
// and decodes its result line.
func pouchRun(ctx context.Context, t *testing.T, args ...string) (map[string]any, error) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: install Node.js and run `make couch-deps`")
	}
	js := filepath.Join("..", "..", "couch", "js")
	if _, err := os.Stat(filepath.Join(js, "node_modules", "pouchdb")); err != nil {
		t.Fatalf("couch/js/node_modules is missing (%v): run `make couch-deps`", err)
	}
	cmd := exec.CommandContext(ctx, node, append([]string{"replicate.mjs"}, args...)...)
	cmd.Dir = js
	out, runErr := cmd.Output()
	var r map[string]any
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("replicate.mjs %v: %v (%v), output %.500s", args, runErr, err, out)
	}
	if runErr != nil {
		return r, fmt.Errorf("replicate.mjs %v: %v, errors %v", args, runErr, r["errors"])
	}
	return r, nil
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestCouchPushSurvivesKill: PouchDB pushes 10,000 documents to the
// daemon's /couch/; the daemon is killed with SIGKILL in the middle and
// restarted on the same data dir and address. PouchDB's next push resumes
// from its checkpoint (it reads fewer documents than it holds), the
// daemon ends with every document once, and a further push moves nothing.
func TestCouchPushSurvivesKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, local := t.TempDir(), filepath.Join(t.TempDir(), "pouch")
	addr := freePort(t)
	p := launch(t, dir, []string{"--no-network", "--http", addr})
	remote := p.url + "/couch"
	if _, err := pouchRun(ctx, t, "--remote", remote, "--db", "crash", "--local", local, "--op", "write", "--n", "10000"); err != nil {
		t.Fatal(err)
	}
	count := func() float64 {
		r := call(t, "GET", remote+"/crash", "")
		if r.status != 200 {
			return -1
		}
		n, _ := r.obj(t)["doc_count"].(float64)
		return n
	}
	done := make(chan error, 1)
	go func() {
		_, err := pouchRun(ctx, t, "--remote", remote, "--db", "crash", "--local", local, "--op", "push", "--batch-size", "100")
		done <- err
	}()
	poll(t, 60*time.Second, "a part of the push", func() bool { return count() >= 2000 })
	p.kill()
	if err := <-done; err == nil {
		t.Log("the push ended before the kill reached it") // then the restart checks the same
	}

	launch(t, dir, []string{"--no-network", "--http", addr}) // same data dir and address: PouchDB's checkpoint names the URL
	if n := count(); n < 2000 || n > 10000 {
		t.Fatalf("after the restart the daemon holds %v documents, want at least the 2,000 acknowledged", n)
	}
	r, err := pouchRun(ctx, t, "--remote", remote, "--db", "crash", "--local", local, "--op", "push", "--batch-size", "100")
	if err != nil {
		t.Fatal(err)
	}
	if read := r["docs_read"].(float64); read >= 10000 {
		t.Fatalf("the resumed push read %v documents: it did not resume from its checkpoint", read)
	}
	if n := count(); n != 10000 {
		t.Fatalf("the daemon holds %v documents, want 10000", n)
	}
	r, err = pouchRun(ctx, t, "--remote", remote, "--db", "crash", "--local", local, "--op", "push,both")
	if err != nil {
		t.Fatal(err)
	}
	if w := r["docs_written"].(float64); w != 0 {
		t.Fatalf("a further sync wrote %v documents, want 0", w)
	}
	if !strings.Contains(string(call(t, "GET", remote+"/crash/doc0042", "").raw), `"n":42`) {
		t.Fatal("doc0042 does not read back")
	}
}

// TestConnectorFromConfig: a daemon started with a live connector in its
// configuration file keeps a database in sync with another daemon's
// /couch/, across its own restart, and shows the connector's state.
func TestConnectorFromConfig(t *testing.T) {
	a := startPeer(t, t.TempDir())
	mustStatus(t, 201, "PUT", a.url+"/dbs/notes", "")
	mustStatus(t, 201, "PUT", a.url+"/dbs/notes/docs/one", `{"v":1}`)
	cfg := filepath.Join(t.TempDir(), "barrel.yaml")
	conf := fmt.Sprintf("connectors:\n  - name: to-a\n    db: notes\n    url: %s/couch/notes\n    live: true\n", a.url)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := startPeer(t, dir, "--config", cfg)
	poll(t, 30*time.Second, "one pulled into b", func() bool {
		return call(t, "GET", b.url+"/dbs/notes/docs/one", "").status == 200
	})
	st := call(t, "GET", b.url+"/dbs/notes/replication", "").obj(t)
	conns, _ := st["connectors"].([]any)
	if len(conns) != 1 || conns[0].(map[string]any)["name"] != "to-a" {
		t.Fatalf("replication state: %v, want the connector to-a", st)
	}
	if out := cli(t, b.url, "", "status", "--json"); !strings.Contains(out.stdout, `"name": "to-a"`) {
		t.Fatalf("status does not show the connector: %s", out.stdout)
	}
	if out := cli(t, b.url, "", "status"); !strings.Contains(out.stdout, "\n  couch to-a  ") {
		t.Fatalf("status lines do not show the connector: %s", out.stdout)
	}
	b.stop(t)
	mustStatus(t, 201, "PUT", a.url+"/dbs/notes/docs/two", `{"v":2}`)
	b = startPeer(t, dir, "--config", cfg)
	mustStatus(t, 201, "PUT", b.url+"/dbs/notes/docs/three", `{"v":3}`)
	poll(t, 30*time.Second, "two pulled after the restart", func() bool {
		return call(t, "GET", b.url+"/dbs/notes/docs/two", "").status == 200
	})
	poll(t, 30*time.Second, "three pushed to a", func() bool {
		return call(t, "GET", a.url+"/dbs/notes/docs/three", "").status == 200
	})
}
