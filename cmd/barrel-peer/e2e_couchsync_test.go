package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
