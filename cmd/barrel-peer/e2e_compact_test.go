package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2ECompactPurge: against a real daemon whose config file sets the
// retention, `compact` folds history as configured or as its flags say,
// `history` shows the folded base, `purge` removes documents for good;
// refused commands exit non-zero and change nothing.
func TestE2ECompactPurge(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "barrel.yaml")
	if err := os.WriteFile(cfg, []byte("retention:\n  keep_revisions: 2\n  keep_for: 0s\n  interval: 0s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPeer(t, t.TempDir(), "--config", cfg)
	api := p.url
	mustCLI := func(t *testing.T, args ...string) string {
		t.Helper()
		r := cli(t, api, "", args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		return r.stdout
	}
	obj := func(t *testing.T, out string) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		return m
	}
	info := func(t *testing.T) map[string]any {
		t.Helper()
		m := mustStatus(t, 200, "GET", api+"/dbs/db", "").obj(t)
		delete(m, "disk_bytes") // Pebble's estimate moves with its own flushes
		return m
	}
	mustCLI(t, "create-db", "db")
	for i := range 6 {
		mustCLI(t, "put", "db", "x", fmt.Sprintf(`{"v":%d,"secret":"s3cr3t"}`, i))
	}
	mustCLI(t, "put", "db", "y", `{"v":1}`)
	if got := info(t); got["revisions"] != 7.0 || got["doc_count"] != 2.0 {
		t.Fatalf("info: %v", got)
	}

	// Refused commands change nothing.
	before := info(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"compact", "nodb"}, 3},
		{[]string{"compact", "db", "--keep-for", "soon"}, 2},
		{[]string{"compact", "db", "--keep-revisions", "-1"}, 2},
		{[]string{"compact"}, 2},
		{[]string{"purge", "db"}, 2},
		{[]string{"purge", "db", "x", "_acl"}, 1},
		{[]string{"purge", "nodb", "x"}, 3},
		{[]string{"history", "db", "nope"}, 3},
	} {
		if r := cli(t, api, "", tc.args...); r.code != tc.code || !strings.HasPrefix(r.stderr, "barrel-peer: ") {
			t.Errorf("%v: exit %d stderr %q, want exit %d", tc.args, r.code, r.stderr, tc.code)
		}
	}
	if after := info(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("refused commands changed the database: %v, was %v", after, before)
	}

	// The configured retention keeps 2 revisions of x.
	if st := obj(t, mustCLI(t, "compact", "db")); st["revisions_folded"] != 4.0 {
		t.Fatalf("compact with the configured retention: %v, want 4 folded", st)
	}
	var hist []map[string]any
	if err := json.Unmarshal([]byte(mustCLI(t, "history", "db", "x")), &hist); err != nil || len(hist) != 3 || hist[2]["compacted"] != true || hist[2]["folded"] != 4.0 {
		t.Fatalf("history: %v (%v), want 2 kept and the base of 4", hist, err)
	}
	// Flags replace it for one run.
	if st := obj(t, mustCLI(t, "compact", "db", "--keep-revisions", "0", "--keep-for", "0s")); st["revisions_folded"] != 3.0 {
		t.Fatalf("compact --keep-revisions 0: %v, want the 3 left folded", st)
	}
	if got := info(t); got["revisions"] != 0.0 || got["last_compaction"] == nil {
		t.Fatalf("info after compaction: %v", got)
	}

	res := obj(t, mustCLI(t, "purge", "db", "x", "nope"))
	if fmt.Sprint(res["purged"]) != "[x]" || fmt.Sprint(res["not_found"]) != "[nope]" {
		t.Fatalf("purge: %v", res)
	}
	if r := cli(t, api, "", "get", "db", "x"); r.code != 3 {
		t.Fatalf("get after purge: exit %d, want 3 (not found)", r.code)
	}
	if got := info(t); got["doc_count"] != 1.0 {
		t.Fatalf("info after purge: %v", got)
	}
	if out := mustCLI(t, "export", "db"); strings.Contains(out, "s3cr3t") || !strings.Contains(out, `"y"`) {
		t.Fatalf("export after purge: %q", out)
	}
}
