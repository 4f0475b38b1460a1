package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/barrel-db/barrel/couch"
)

// TestE2ECouchSync: `barrel-peer couch-sync` makes daemon A replicate
// with another CouchDB-protocol server, here daemon B's /couch/ behind a
// token (given as the Basic password from a file): a push creates B's
// database and copies A's documents, a second sync both ways moves
// nothing, and a missing remote database or a wrong password fail with a
// non-zero exit and the remote's reason.
func TestE2ECouchSync(t *testing.T) {
	a := startPeer(t, t.TempDir())
	b := startPeer(t, t.TempDir(), "--http-token", "btok")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("btok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(args ...string) string {
		t.Helper()
		r := cli(t, a.url, "", args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		return r.stdout
	}
	must("create-db", "notes")
	for _, id := range []string{"a", "b", "c"} {
		must("put", "notes", id, `{"v":"`+id+`"}`)
	}
	remote := b.url + "/couch/notes"
	stats := func(out string) couch.SyncStats {
		t.Helper()
		var st couch.SyncStats
		if strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("couch-sync printed %q, want one JSON line", out)
		}
		return st
	}
	st := stats(must("couch-sync", "notes", remote, "--push", "--user", "me", "--password-file", pw))
	if st.Push == nil || st.Push.DocsWritten != 3 || st.Pull != nil {
		t.Fatalf("push: %+v, want 3 documents written", st.Push)
	}
	r := call(t, http.MethodGet, remote+"/b", "", "Authorization", "Bearer btok")
	if r.status != http.StatusOK || r.obj(t)["v"] != "b" {
		t.Fatalf("GET b on B: %d %s", r.status, r.raw)
	}
	st = stats(must("couch-sync", "notes", remote, "--both", "--user", "me", "--password-file", pw))
	if st.Pull == nil || st.Push == nil || st.Pull.DocsRead != 0 || st.Push.DocsRead != 0 {
		t.Fatalf("second sync both ways: pull %+v push %+v, want nothing moved", st.Pull, st.Push)
	}

	if r := cli(t, a.url, "", "couch-sync", "notes", b.url+"/couch/nope", "--user", "me", "--password-file", pw); r.code == 0 || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("pull from a missing database: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := cli(t, a.url, "", "couch-sync", "notes", remote, "--push"); r.code == 0 || !strings.Contains(r.stderr, "401") {
		t.Fatalf("push without the password: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestE2ECouchSyncLiveAndSelector: couch-sync --selector moves only the
// matching documents; couch-sync --live keeps pushing until interrupted,
// and the interrupt stops the replication in the daemon.
func TestE2ECouchSyncLiveAndSelector(t *testing.T) {
	a := startPeer(t, t.TempDir())
	b := startPeer(t, t.TempDir())
	mustStatus(t, 201, "PUT", a.url+"/dbs/mix", "")
	mustStatus(t, 201, "PUT", a.url+"/dbs/mix/docs/n1", `{"type":"note"}`)
	mustStatus(t, 201, "PUT", a.url+"/dbs/mix/docs/t1", `{"type":"task"}`)
	if r := cli(t, a.url, "", "couch-sync", "mix", b.url+"/couch/mix", "--push", "--selector", `{"type":"note"}`); r.code != 0 {
		t.Fatalf("couch-sync --selector: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if call(t, "GET", b.url+"/dbs/mix/docs/n1", "").status != 200 || call(t, "GET", b.url+"/dbs/mix/docs/t1", "").status != 404 {
		t.Fatal("the selector push did not move exactly the note")
	}
	cmd := exec.Command(binPath, "--api", a.url, "couch-sync", "mix", b.url+"/couch/mix", "--push", "--live")
	cmd.Env = append(os.Environ(), "BARREL_API=", "BARREL_TOKEN=")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	poll(t, 30*time.Second, "t1 pushed by the live sync", func() bool {
		return call(t, "GET", b.url+"/dbs/mix/docs/t1", "").status == 200
	})
	mustStatus(t, 201, "PUT", a.url+"/dbs/mix/docs/later", `{"v":1}`)
	poll(t, 30*time.Second, "a later write pushed live", func() bool {
		return call(t, "GET", b.url+"/dbs/mix/docs/later", "").status == 200
	})
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("couch-sync --live after an interrupt: %v (%s)", err, out.String())
	}
	if !strings.Contains(out.String(), `"live":"_replicate-`) {
		t.Fatalf("couch-sync --live printed %q", out.String())
	}
	poll(t, 10*time.Second, "the replication stopped in the daemon", func() bool {
		return strings.Contains(string(call(t, "GET", a.url+"/couch/_active_tasks", "").raw), `"state":"stopped"`)
	})
}
