package httpapi

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestCompactPurgeRoutes: GET /dbs/{db} shows the counts, _compact folds
// history as its body says (or as the node is configured), _purge removes
// documents, _history shows what is kept; refused requests change nothing.
func TestCompactPurgeRoutes(t *testing.T) {
	srv := newTestServer(t, Config{})
	status := func(t *testing.T, method, path, body string) (int, map[string]any) {
		t.Helper()
		code, raw, _ := do(t, srv, method, path, body, nil)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: body %s: %v", method, path, raw, err)
		}
		return code, m
	}
	mustOK := func(t *testing.T, method, path, body string) map[string]any {
		t.Helper()
		code, m := status(t, method, path, body)
		if code/100 != 2 {
			t.Fatalf("%s %s: got %d %v", method, path, code, m)
		}
		return m
	}
	mustOK(t, "PUT", "/dbs/db", "")
	for i := range 5 {
		mustOK(t, "PUT", "/dbs/db/docs/x", fmt.Sprintf(`{"v":%d,"kind":"k"}`, i))
	}
	mustOK(t, "PUT", "/dbs/db/docs/y", `{"kind":"k"}`)
	mustOK(t, "PUT", "/dbs/db/docs/z", `{"kind":"k"}`)
	mustOK(t, "DELETE", "/dbs/db/docs/z", "")
	info := mustOK(t, "GET", "/dbs/db", "")
	for k, want := range map[string]any{"doc_count": 2.0, "revisions": 8.0, "tombstones": 1.0, "last_compaction": nil} {
		if info[k] != want {
			t.Fatalf("info %s: got %v, want %v (%v)", k, info[k], want, info)
		}
	}
	if _, ok := info["disk_bytes"].(float64); !ok {
		t.Fatalf("info without disk_bytes: %v", info)
	}

	// Refused requests: 400 (404 for a missing database) and nothing changed.
	snapshot := func() string {
		m := mustOK(t, "GET", "/dbs/db", "")
		delete(m, "disk_bytes")
		x := mustOK(t, "GET", "/dbs/db/docs/x?revs=true", "")
		b, _ := json.Marshal([]any{m, x})
		return string(b)
	}
	before := snapshot()
	for _, tc := range []struct {
		path, body string
		code       int
	}{
		{"/dbs/db/_compact", `{"keep_revisions": -1}`, 400},
		{"/dbs/db/_compact", `{"keep_revisions": 1.5}`, 400},
		{"/dbs/db/_compact", `{"keep_revisions": "1"}`, 400},
		{"/dbs/db/_compact", `{"keep_for": "soon"}`, 400},
		{"/dbs/db/_compact", `{"keep_for": "-1h"}`, 400},
		{"/dbs/db/_compact", `{"tombstones_for": 3600}`, 400},
		{"/dbs/db/_compact", `{"keep_revisions": 0, "bogus": 1}`, 400},
		{"/dbs/db/_compact", `[0]`, 400},
		{"/dbs/db/_compact", `{`, 400},
		{"/dbs/nodb/_compact", ``, 404},
		{"/dbs/db/_purge", ``, 400},
		{"/dbs/db/_purge", `{}`, 400},
		{"/dbs/db/_purge", `{"ids": []}`, 400},
		{"/dbs/db/_purge", `{"ids": "x"}`, 400},
		{"/dbs/db/_purge", `{"ids": ["x", 1]}`, 400},
		{"/dbs/db/_purge", `{"ids": ["x", ""]}`, 400},
		{"/dbs/db/_purge", `{"ids": ["x", "_acl"]}`, 400},
		{"/dbs/db/_purge", `{"ids": ["x"], "all": true}`, 400},
		{"/dbs/db/_purge", `{"ids": [` + strings.Repeat(`"x",`, 10_000) + `"x"]}`, 400},
		{"/dbs/nodb/_purge", `{"ids": ["x"]}`, 404},
	} {
		if code, m := status(t, "POST", tc.path, tc.body); code != tc.code {
			t.Errorf("POST %s %.40s: got %d %v, want %d", tc.path, tc.body, code, m, tc.code)
		}
	}
	if after := snapshot(); after != before {
		t.Fatalf("refused requests changed the store:\nbefore %s\nafter  %s", before, after)
	}

	// No body: the node's retention (thirty days) folds nothing yet.
	if st := mustOK(t, "POST", "/dbs/db/_compact", ""); st["revisions_folded"] != 0.0 {
		t.Fatalf("compact with the default retention: %v, want nothing folded", st)
	}
	st := mustOK(t, "POST", "/dbs/db/_compact", `{"keep_revisions": 1, "keep_for": "0s", "tombstones_for": "0s"}`)
	if st["revisions_folded"] != 6.0 || st["tombstones_purged"] != 1.0 {
		t.Fatalf("compact: %v, want 6 revisions folded (4 of x, the 2 of z) and 1 tombstone", st)
	}
	info = mustOK(t, "GET", "/dbs/db", "")
	last, _ := info["last_compaction"].(map[string]any)
	if info["revisions"] != 2.0 || info["tombstones"] != 0.0 || info["doc_count"] != 2.0 || last["revisions_folded"] != 6.0 {
		t.Fatalf("info after compaction: %v", info)
	}
	h := mustOK(t, "GET", "/dbs/db/docs/x/_history", "")
	hist, _ := h["history"].([]any)
	base, _ := hist[len(hist)-1].(map[string]any)
	if len(hist) != 2 || base["compacted"] != true || base["folded"] != 4.0 {
		t.Fatalf("history of x: %v, want the kept revision then the base of 4 folded", h)
	}
	if doc := mustOK(t, "GET", "/dbs/db/docs/x?revs=true", ""); len(doc["_revs"].([]any)) != 2 || doc["v"] != 4.0 {
		t.Fatalf("x with _revs: %v", doc)
	}

	res := mustOK(t, "POST", "/dbs/db/_purge", `{"ids": ["x", "nope"]}`)
	if mustJSON(t, res["purged"]) != `["x"]` || mustJSON(t, res["not_found"]) != `["nope"]` {
		t.Fatalf("purge: %v", res)
	}
	for _, path := range []string{"/dbs/db/docs/x", "/dbs/db/docs/x/_history"} {
		if code, m := status(t, "GET", path, ""); code != 404 {
			t.Fatalf("GET %s after purge: %d %v", path, code, m)
		}
	}
	if info := mustOK(t, "GET", "/dbs/db", ""); info["doc_count"] != 1.0 || info["revisions"] != 1.0 {
		t.Fatalf("info after purge: %v", info)
	}

	// The metrics endpoint exposes the compaction runs, the bytes
	// reclaimed and the purged changes.
	_, raw, _ := do(t, srv, "GET", "/metrics", "", nil)
	for _, want := range []struct {
		metric string
		min    float64
	}{
		{`barrel_compactions_total{db="db"}`, 2},
		{`barrel_compaction_folded_revisions_total{db="db"}`, 6},
		{`barrel_compaction_tombstones_purged_total{db="db"}`, 1},
		{`barrel_compaction_reclaimed_bytes_total{db="db"}`, 0},
		{`barrel_node_rejected_changes_total{db="db",reason="purged"}`, 1},
	} {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want.metric) + ` (\S+)$`).FindSubmatch(raw)
		if m == nil {
			t.Fatalf("metrics lack %s", want.metric)
		}
		if v, err := strconv.ParseFloat(string(m[1]), 64); err != nil || v < want.min {
			t.Fatalf("%s = %s, want at least %v", want.metric, m[1], want.min)
		}
	}
}
