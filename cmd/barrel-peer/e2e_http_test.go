package main

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// snapshot is what a rejected request must leave unchanged.
type snapshot struct {
	info, doc, list string
}

func takeSnapshot(t *testing.T, base, db, id string) snapshot {
	t.Helper()
	info := call(t, "GET", base+"/dbs/"+db, "")
	doc := call(t, "GET", base+"/dbs/"+db+"/docs/"+id, "")
	list := call(t, "GET", base+"/dbs/"+db+"/docs?limit=10000", "")
	return snapshot{info: string(info.raw), doc: string(doc.raw), list: string(list.raw)}
}

// flipRev returns a revision of the same shape as rev that no change has.
func flipRev(rev string) string {
	if rev == "" {
		return "00"
	}
	last := rev[len(rev)-1]
	repl := byte('0')
	if last == '0' {
		repl = '1'
	}
	return rev[:len(rev)-1] + string(repl)
}

func TestE2EHTTPErrors(t *testing.T) {
	p := startPeer(t, t.TempDir(), "--max-body-bytes", "4096")
	db := p.url + "/dbs/places"
	mustStatus(t, 201, "PUT", db, "")
	put := mustStatus(t, 201, "PUT", db+"/docs/p1", `{"name":"Cafe","locations":{"country":"Germany"}}`).obj(t)
	rev, _ := put["rev"].(string)
	if rev == "" || put["id"] != "p1" {
		t.Fatalf("got put answer %v, want id p1 and a rev", put)
	}
	unknownRev := flipRev(rev)

	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"bad json", "PUT", "/dbs/places/docs/p1", `{"name":`, 400, "bad_json"},
		{"trailing json", "PUT", "/dbs/places/docs/p1", `{"name":"x"} {}`, 400, "bad_json"},
		{"not an object", "PUT", "/dbs/places/docs/p1", `[1]`, 400, "bad_json"},
		{"reserved field", "PUT", "/dbs/places/docs/p1", `{"_secret":1}`, 400, "bad_request"},
		{"id mismatch", "PUT", "/dbs/places/docs/p1", `{"_id":"p2"}`, 400, "bad_request"},
		{"unknown rev", "PUT", "/dbs/places/docs/p1", `{"_rev":"` + unknownRev + `","name":"x"}`, 409, "conflict"},
		{"unknown rev in query", "PUT", "/dbs/places/docs/p1?rev=" + unknownRev, `{"name":"x"}`, 409, "conflict"},
		{"too large", "PUT", "/dbs/places/docs/p1", `{"name":"` + strings.Repeat("x", 5000) + `"}`, 413, "too_large"},
		{"missing db put", "PUT", "/dbs/nodb/docs/p1", `{"a":1}`, 404, "not_found"},
		{"missing doc", "GET", "/dbs/places/docs/nope", "", 404, "not_found"},
		{"missing path", "GET", "/dbs/places/docs/p1/locations/planet", "", 404, "not_found"},
		{"missing db", "GET", "/dbs/nodb", "", 404, "not_found"},
		{"drop missing db", "DELETE", "/dbs/nodb", "", 404, "not_found"},
		{"db exists", "PUT", "/dbs/places", "", 412, "db_exists"},
		{"patch bad incr", "PATCH", "/dbs/places/docs/p1", `{"_incr":{"/n":"one"}}`, 400, "bad_request"},
		{"patch unknown rev", "PATCH", "/dbs/places/docs/p1", `{"_rev":"` + unknownRev + `","name":"x"}`, 409, "conflict"},
		{"delete unknown rev", "DELETE", "/dbs/places/docs/p1?rev=" + unknownRev, "", 409, "conflict"},
		{"bulk not object", "POST", "/dbs/places/bulk", `{"docs":[1]}`, 400, "bad_request"},
		{"bulk missing id", "POST", "/dbs/places/bulk", `{"docs":[{"a":1}],"atomic":true}`, 400, "bad_request"},
		{"atomic bulk aborted", "POST", "/dbs/places/bulk", `{"atomic":true,"docs":[{"_id":"p9","a":1},{"_id":"p1","_rev":"` + unknownRev + `","name":"x"}]}`, 409, "tx_aborted"},
		{"query bad shape", "POST", "/dbs/places/query", `{"where":{}}`, 400, "bad_request"},
		{"query bad op", "POST", "/dbs/places/query", `{"where":[{"path":"/name","op":"~~","value":1}]}`, 400, "bad_request"},
		{"list bad limit", "GET", "/dbs/places/docs?limit=abc", "", 400, "bad_request"},
		{"list limit too big", "GET", "/dbs/places/docs?limit=10001", "", 400, "bad_request"},
		{"changes bad since", "GET", "/dbs/places/changes?since=-1", "", 400, "bad_request"},
		{"changes bad feed", "GET", "/dbs/places/changes?feed=carrier-pigeon", "", 400, "bad_request"},
		{"get bad bool", "GET", "/dbs/places/docs/p1?conflicts=maybe", "", 400, "bad_request"},
		{"paths without value", "GET", "/dbs/places/paths/country", "", 400, "bad_request"},
		{"unknown route", "GET", "/nope", "", 404, "not_found"},
		{"wrong method", "POST", "/dbs", "", 405, "method_not_allowed"},
		{"wrong method on doc", "POST", "/dbs/places/docs/p1", `{}`, 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := takeSnapshot(t, p.url, "places", "p1")
			r := call(t, tt.method, p.url+tt.path, tt.body)
			if r.status != tt.status {
				t.Fatalf("got %d %s, want %d", r.status, r.raw, tt.status)
			}
			body := r.obj(t)
			if body["error"] != tt.code || body["reason"] == "" {
				t.Fatalf("got body %s, want error %q with a reason", r.raw, tt.code)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("got Content-Type %q, want application/json", ct)
			}
			if tt.code == "tx_aborted" {
				if _, ok := body["results"].([]any); !ok {
					t.Fatalf("got body %s, want per-document results", r.raw)
				}
			}
			if after := takeSnapshot(t, p.url, "places", "p1"); after != before {
				t.Fatalf("store changed by a rejected request:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
	t.Run("deleted doc", func(t *testing.T) {
		mustStatus(t, 201, "PUT", db+"/docs/gone", `{"a":1}`)
		mustStatus(t, 200, "DELETE", db+"/docs/gone", "")
		r := mustStatus(t, 404, "GET", db+"/docs/gone", "")
		if b := r.obj(t); b["error"] != "not_found" || b["reason"] != "deleted" {
			t.Fatalf("got %s, want not_found/deleted", r.raw)
		}
	})
}

func TestE2EAuth(t *testing.T) {
	p := startPeer(t, t.TempDir(), "--http-token", "s3cret")
	tests := []struct {
		name, path, auth string
		status           int
	}{
		{"healthz open", "/healthz", "", 200},
		{"no token", "/dbs", "", 401},
		{"wrong token", "/dbs", "Bearer nope", 401},
		{"not bearer", "/dbs", "Basic czNjcmV0", 401},
		{"metrics need token", "/metrics", "", 401},
		{"right token", "/dbs", "Bearer s3cret", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r response
			if tt.auth == "" {
				r = call(t, "GET", p.url+tt.path, "")
			} else {
				r = call(t, "GET", p.url+tt.path, "", "Authorization", tt.auth)
			}
			if r.status != tt.status {
				t.Fatalf("got %d %s, want %d", r.status, r.raw, tt.status)
			}
			if tt.status == 401 && r.obj(t)["error"] != "unauthorized" {
				t.Fatalf("got %s, want error unauthorized", r.raw)
			}
		})
	}
}

func TestE2EOverloaded(t *testing.T) {
	p := startPeer(t, t.TempDir(), "--write-queue", "1")
	mustStatus(t, 201, "PUT", p.url+"/dbs/load", "")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	got := make(chan http.Header, 1)
	for w := range 64 {
		go func() {
			for i := 0; ctx.Err() == nil; i++ {
				req, _ := http.NewRequestWithContext(ctx, "PUT", p.url+"/dbs/load/docs/w"+itoa(w)+"-"+itoa(i), strings.NewReader(`{"n":1}`))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusServiceUnavailable {
					select {
					case got <- resp.Header:
					default:
					}
					cancel()
					return
				}
			}
		}()
	}
	select {
	case h := <-got:
		if h.Get("Retry-After") != "1" {
			t.Fatalf("got Retry-After %q, want 1", h.Get("Retry-After"))
		}
	case <-ctx.Done():
		select {
		case <-got:
		default:
			t.Skip("the write queue of 1 never overflowed under 64 concurrent writers within 20s")
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestE2EHTTPFlow(t *testing.T) {
	p := startPeer(t, t.TempDir())
	u := p.url
	db := u + "/dbs/places"

	if info := mustStatus(t, 200, "GET", u+"/", "").obj(t); info["peer_id"] == "" || info["peer_id"] == nil {
		t.Fatalf("got node info %v, want a peer_id", info)
	}
	if m := mustStatus(t, 200, "GET", u+"/metrics", ""); len(m.raw) == 0 {
		t.Fatal("got empty /metrics")
	}
	mustStatus(t, 201, "PUT", db, "")
	if dbs := mustStatus(t, 200, "GET", u+"/dbs", "").json(t).([]any); len(dbs) != 1 || dbs[0] != "places" {
		t.Fatalf("got dbs %v, want [places]", dbs)
	}
	r1 := mustStatus(t, 201, "PUT", db+"/docs/p1", `{"name":"Cafe","locations":{"country":"Germany","city":"Berlin"},"stars":4}`).obj(t)
	rev1 := r1["rev"].(string)
	mustStatus(t, 201, "PUT", db+"/docs/p2", `{"name":"Bar","locations":{"country":"France"},"stars":5}`)
	mustStatus(t, 201, "PUT", db+"/docs/p3", `{"name":"Inn","locations":{"country":"Germany"},"stars":3}`)

	doc := mustStatus(t, 200, "GET", db+"/docs/p1", "").obj(t)
	if doc["_id"] != "p1" || doc["_rev"] != rev1 || doc["name"] != "Cafe" || doc["stars"] != 4.0 {
		t.Fatalf("got doc %v", doc)
	}
	if v := mustStatus(t, 200, "GET", db+"/docs/p1/locations/country", "").json(t); v != "Germany" {
		t.Fatalf("got path value %v, want Germany", v)
	}
	ids := mustStatus(t, 200, "GET", db+"/paths/locations/country/Germany", "").obj(t)["ids"].([]any)
	if len(ids) != 2 || ids[0] != "p1" || ids[1] != "p3" {
		t.Fatalf("got ids %v, want [p1 p3]", ids)
	}
	if ids := mustStatus(t, 200, "GET", db+"/paths/stars/5", "").obj(t)["ids"].([]any); len(ids) != 1 || ids[0] != "p2" {
		t.Fatalf("got ids %v for stars == 5 (a number literal), want [p2]", ids)
	}
	q := mustStatus(t, 200, "POST", db+"/query", `{"where":[{"path":"/stars","op":">=","value":4}],"order_by":"/stars","desc":true}`).obj(t)
	docs := q["docs"].([]any)
	if len(docs) != 2 || docs[0].(map[string]any)["_id"] != "p2" || docs[1].(map[string]any)["_rev"] != rev1 {
		t.Fatalf("got query docs %v, want p2 then p1 with _rev", docs)
	}

	// PATCH from rev1, then read history and conflicts.
	pr := mustStatus(t, 200, "PATCH", db+"/docs/p1", `{"_rev":"`+rev1+`","name":"Café","locations":{"city":null},"_incr":{"/visits":2},"_add":{"/tags":["wifi"]}}`).obj(t)
	rev2 := pr["rev"].(string)
	if rev2 == rev1 || pr["id"] != "p1" {
		t.Fatalf("got patch answer %v", pr)
	}
	doc = mustStatus(t, 200, "GET", db+"/docs/p1?revs=true&conflicts=true", "").obj(t)
	if doc["name"] != "Café" || doc["_rev"] != rev2 {
		t.Fatalf("got patched doc %v", doc)
	}
	if loc := doc["locations"].(map[string]any); loc["city"] != nil || loc["country"] != "Germany" {
		t.Fatalf("got locations %v after merge patch, want city removed", loc)
	}
	if doc["visits"] != 2.0 {
		t.Fatalf("got visits %v, want 2", doc["visits"])
	}
	if revs := doc["_revs"].([]any); len(revs) != 2 || revs[0] != rev2 || revs[1] != rev1 {
		t.Fatalf("got _revs %v, want [%s %s]", revs, rev2, rev1)
	}
	if _, ok := doc["_conflicts"].([]any); !ok {
		t.Fatalf("got _conflicts %v, want an array", doc["_conflicts"])
	}

	// Listing pages.
	page := mustStatus(t, 200, "GET", db+"/docs?limit=2", "").obj(t)
	if rows := page["docs"].([]any); len(rows) != 2 || page["next"] != "p2" {
		t.Fatalf("got page %v, want 2 rows and next p2", page)
	}
	page = mustStatus(t, 200, "GET", db+"/docs?limit=2&start_after=p2", "").obj(t)
	if rows := page["docs"].([]any); len(rows) != 1 || rows[0].(map[string]any)["id"] != "p3" || page["next"] != nil {
		t.Fatalf("got page %v, want [p3] and no next", page)
	}
	if rows := mustStatus(t, 200, "GET", db+"/docs?prefix=p1", "").obj(t)["docs"].([]any); len(rows) != 1 {
		t.Fatalf("got prefix rows %v, want 1", rows)
	}

	// Bulk, non-atomic with one failure.
	bulk := mustStatus(t, 200, "POST", db+"/bulk", `{"docs":[{"_id":"b1","v":1},{"_id":"b2","v":2},{"_id":"p1","_rev":"`+flipRev(rev2)+`","v":3}]}`).obj(t)
	res := bulk["results"].([]any)
	if len(res) != 3 || res[0].(map[string]any)["rev"] == nil || res[2].(map[string]any)["error"] != "conflict" {
		t.Fatalf("got bulk results %v", res)
	}
	atomic := mustStatus(t, 200, "POST", db+"/bulk", `{"atomic":true,"docs":[{"_id":"b3","v":1},{"_id":"b1","_deleted":true}]}`).obj(t)
	if res := atomic["results"].([]any); len(res) != 2 || res[1].(map[string]any)["rev"] == nil {
		t.Fatalf("got atomic results %v", res)
	}

	// Changes: normal, longpoll (timeout and wake-up), SSE.
	ch := mustStatus(t, 200, "GET", db+"/changes?since=0", "").obj(t)
	results := ch["results"].([]any)
	last := ch["last_seq"].(float64)
	for i, c := range results {
		if seq := c.(map[string]any)["seq"].(float64); seq != float64(i+1) {
			t.Fatalf("got seq %v at %d, want %d (changes %v)", seq, i, i+1, results)
		}
	}
	if last != float64(len(results)) {
		t.Fatalf("got last_seq %v, want %d", last, len(results))
	}
	if lim := mustStatus(t, 200, "GET", db+"/changes?since=0&limit=2", "").obj(t); len(lim["results"].([]any)) != 2 || lim["last_seq"] != 2.0 {
		t.Fatalf("got limited changes %v", lim)
	}
	lastStr := itoa(int(last))
	start := time.Now()
	empty := mustStatus(t, 200, "GET", db+"/changes?feed=longpoll&timeout=50&since="+lastStr, "").obj(t)
	if len(empty["results"].([]any)) != 0 || empty["last_seq"] != last {
		t.Fatalf("got timed-out longpoll %v, want no results and last_seq %v", empty, last)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("longpoll with timeout=50ms took %v", d)
	}
	woke := make(chan response, 1)
	go func() { woke <- call(t, "GET", db+"/changes?feed=longpoll&timeout=30000&since="+lastStr, "") }()
	mustStatus(t, 201, "PUT", db+"/docs/lp", `{"x":1}`)
	select {
	case r := <-woke:
		rs := r.obj(t)["results"].([]any)
		if r.status != 200 || len(rs) != 1 || rs[0].(map[string]any)["id"] != "lp" {
			t.Fatalf("got longpoll %d %s, want the change of lp", r.status, r.raw)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("longpoll did not return after a write")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", db+"/changes?feed=sse&since="+itoa(int(last)+1), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("got SSE %d %q", resp.StatusCode, ct)
	}
	mustStatus(t, 201, "PUT", db+"/docs/sse1", `{"x":1}`)
	sc := bufio.NewScanner(resp.Body)
	var idLine string
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "id: ") {
			idLine = line
		}
		if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"sse1"`) {
			break
		}
	}
	if err := sc.Err(); err != nil || idLine != "id: "+itoa(int(last)+2) {
		t.Fatalf("SSE: got id line %q (err %v), want id: %d", idLine, err, int(last)+2)
	}

	// Delete with rev, then the database.
	del := mustStatus(t, 200, "DELETE", db+"/docs/p2?rev="+mustStatus(t, 200, "GET", db+"/docs/p2", "").obj(t)["_rev"].(string), "").obj(t)
	if del["id"] != "p2" || del["rev"] == "" {
		t.Fatalf("got delete answer %v", del)
	}
	info := mustStatus(t, 200, "GET", db, "").obj(t)
	if info["name"] != "places" || info["doc_count"] != 6.0 {
		t.Fatalf("got db info %v, want doc_count 6 (p1 p3 b2 b3 lp sse1)", info)
	}
	mustStatus(t, 200, "DELETE", db, "")
	mustStatus(t, 404, "GET", db, "")
	p.stop(t)
}
