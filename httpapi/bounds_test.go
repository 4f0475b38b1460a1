package httpapi

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestParamBounds checks every numeric parameter of every endpoint at its
// edges: the largest value accepted must answer 200 (the layer under the
// HTTP API must not refuse what the HTTP API documents), one more, 0,
// negative and non-numeric values must answer 400 bad_request unless the
// bound says they are accepted.
func TestParamBounds(t *testing.T) {
	srv := newTestServer(t, Config{})
	do(t, srv, "PUT", "/dbs/db", "", nil)
	// 10,000 documents under prefix "a" and one more, "b": a full page of
	// the maximum size, once with a next page and once without.
	var docs []string
	for i := range maxListLimit {
		docs = append(docs, fmt.Sprintf(`{"_id":"a%05d","k":1}`, i))
	}
	docs = append(docs, `{"_id":"b","k":1}`)
	if st, raw, _ := do(t, srv, "POST", "/dbs/db/bulk", `{"docs":[`+strings.Join(docs, ",")+`]}`, nil); st != 200 {
		t.Fatalf("bulk: got %d %.300s", st, raw)
	}

	maxInt := fmt.Sprint(int64(math.MaxInt64))
	maxMS := fmt.Sprint(int64(math.MaxInt64) / 1e6)
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/dbs/db/docs?limit=10000", 200},
		{"/dbs/db/docs?prefix=a&limit=10000", 200},
		{"/dbs/db/docs?limit=10001", 400},
		{"/dbs/db/docs?limit=1", 200},
		{"/dbs/db/docs?limit=0", 400},
		{"/dbs/db/docs?limit=-1", 400},
		{"/dbs/db/docs?limit=ten", 400},
		{"/dbs/db/docs?limit=1e3", 400},

		{"/dbs/db/changes?limit=10000", 200},
		{"/dbs/db/changes?limit=10001", 400},
		{"/dbs/db/changes?limit=1", 200},
		{"/dbs/db/changes?limit=0", 400},
		{"/dbs/db/changes?limit=-1", 400},
		{"/dbs/db/changes?limit=x", 400},
		{"/dbs/db/changes?since=" + maxInt, 200},
		{"/dbs/db/changes?since=9223372036854775808", 400},
		{"/dbs/db/changes?since=0", 200},
		{"/dbs/db/changes?since=-1", 400},
		{"/dbs/db/changes?since=x", 400},
		{"/dbs/db/changes?feed=longpoll&timeout=0", 200},
		{"/dbs/db/changes?timeout=" + maxMS, 200},
		{"/dbs/db/changes?timeout=" + maxMS + "0", 400},
		{"/dbs/db/changes?timeout=-1", 400},
		{"/dbs/db/changes?timeout=x", 400},

		{"/dbs/db/paths/k/1?limit=10000", 200},
		{"/dbs/db/paths/k/1?limit=10001", 400},
		{"/dbs/db/paths/k/1?limit=0", 200}, // 0: the default page
		{"/dbs/db/paths/k/1?limit=-1", 400},
		{"/dbs/db/paths/k/1?limit=x", 400},
	} {
		st, raw, _ := do(t, srv, "GET", c.path, "", nil)
		if st != c.status {
			t.Errorf("GET %s: got %d %.200s, want %d", c.path, st, raw, c.status)
			continue
		}
		if st == 400 {
			if code := errorCode(t, raw); code != "bad_request" {
				t.Errorf("GET %s: got error %q, want bad_request", c.path, code)
			}
		}
	}

	for _, c := range []struct {
		body   string
		status int
	}{
		{`{"where":[{"path":"/k","op":"==","value":1}],"limit":10000}`, 200},
		{`{"where":[{"path":"/k","op":"==","value":1}],"limit":10001}`, 400},
		{`{"where":[{"path":"/k","op":"==","value":1}],"limit":0}`, 200},
		{`{"where":[{"path":"/k","op":"==","value":1}],"limit":-1}`, 400},
		{`{"where":[{"path":"/k","op":"==","value":1}],"limit":1.5}`, 400},
		{`{"where":[{"path":"/k","op":"==","value":1}],"limit":"10"}`, 400},
	} {
		st, raw, _ := do(t, srv, "POST", "/dbs/db/query", c.body, nil)
		if st != c.status {
			t.Errorf("query %s: got %d %.200s, want %d", c.body, st, raw, c.status)
		}
	}
	for _, c := range []struct {
		body   string
		status int
	}{
		{`{"keep_revisions":2147483647}`, 200},
		{`{"keep_revisions":2147483648}`, 400},
		{`{"keep_revisions":0}`, 200},
		{`{"keep_revisions":-1}`, 400},
		{`{"keep_revisions":"x"}`, 400},
	} {
		st, raw, _ := do(t, srv, "POST", "/dbs/db/_compact", c.body, nil)
		if st != c.status {
			t.Errorf("compact %s: got %d %.200s, want %d", c.body, st, raw, c.status)
		}
	}

	// The page at the maximum: 10,000 rows, and next exactly when a row
	// follows.
	for _, c := range []struct {
		path     string
		wantNext string
	}{
		{"/dbs/db/docs?limit=10000", "a09999"},
		{"/dbs/db/docs?prefix=a&limit=10000", ""},
		{"/dbs/db/docs?start_after=a00000&limit=10000", ""},
	} {
		_, raw, _ := do(t, srv, "GET", c.path, "", nil)
		var page listPage
		if err := json.Unmarshal(raw, &page); err != nil {
			t.Fatalf("GET %s: %v", c.path, err)
		}
		if len(page.Docs) != maxListLimit || page.Next != c.wantNext {
			t.Errorf("GET %s: got %d docs, next %q, want %d, next %q", c.path, len(page.Docs), page.Next, maxListLimit, c.wantNext)
		}
	}
}
