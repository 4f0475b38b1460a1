package couch_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/barrel-db/barrel/couch"
	"github.com/barrel-db/barrel/node"
)

func call(t *testing.T, method, url, body string, hdr ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// TestBadInputWritesNothing: malformed bodies, revisions that do not
// parse, _revisions past the bound, bad base64 and oversized bodies get
// CouchDB's JSON error, and the database is as it was.
func TestBadInputWritesNothing(t *testing.T) {
	b := newBarrel(t, false, couch.Config{MaxBodyBytes: 1 << 20})
	db := b.url + "/couch/bad"
	if st, _ := call(t, "PUT", db, ""); st != 201 {
		t.Fatalf("create: %d", st)
	}
	if st, out := call(t, "PUT", db, ""); st != 412 || out["error"] != "file_exists" {
		t.Fatalf("create twice: %d %v", st, out)
	}
	longRevs := make([]string, couch.MaxRevisions+1)
	for i := range longRevs {
		longRevs[i] = "ab"
	}
	long, _ := json.Marshal(map[string]any{"new_edits": false, "docs": []any{map[string]any{
		"_id": "x", "_rev": fmt.Sprintf("%d-ab", len(longRevs)), "_revisions": map[string]any{"start": len(longRevs), "ids": longRevs}}}})
	huge := `{"docs":[{"_id":"h","v":"` + strings.Repeat("x", 2<<20) + `"}]}`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"revs_diff not an object", "POST", "/_revs_diff", `[1,2]`, 400, "bad_request"},
		{"revs_diff bad rev", "POST", "/_revs_diff", `{"x":["nope"]}`, 400, "bad_request"},
		{"revs_diff truncated", "POST", "/_revs_diff", `{"x":["1-a"`, 400, "bad_request"},
		{"bulk_docs not json", "POST", "/_bulk_docs", `{docs:`, 400, "bad_request"},
		{"bulk_docs bad rev", "POST", "/_bulk_docs", `{"new_edits":false,"docs":[{"_id":"x","_rev":"x-1"}]}`, 400, "bad_request"},
		{"bulk_docs revisions past the bound", "POST", "/_bulk_docs", string(long), 400, "bad_request"},
		{"bulk_docs bad base64", "POST", "/_bulk_docs", `{"docs":[{"_id":"x","_attachments":{"a":{"content_type":"text/plain","data":"!!!"}}}]}`, 400, "bad_request"},
		{"bulk_docs special member", "POST", "/_bulk_docs", `{"docs":[{"_id":"x","_foo":1}]}`, 400, "doc_validation"},
		{"bulk_docs oversized", "POST", "/_bulk_docs", huge, 413, "too_large"},
		{"bulk_get no docs", "POST", "/_bulk_get", `{"docs":[{}]}`, 400, "bad_request"},
		{"changes bad since", "GET", "/_changes?since=abc", ``, 400, "bad_request"},
		{"changes bad feed", "GET", "/_changes?feed=x", ``, 400, "bad_request"},
		{"put bad rev", "PUT", "/doc?new_edits=false", `{"_rev":"1-zz"}`, 400, "bad_request"},
		{"unknown database", "GET", "_nope/_changes", ``, 404, "not_found"},
	} {
		url := db + tc.path
		if strings.HasPrefix(tc.path, "_nope") {
			url = b.url + "/couch/nope/_changes"
		}
		st, out := call(t, tc.method, url, tc.body)
		if st != tc.status || out["error"] != tc.code || out["reason"] == "" {
			t.Errorf("%s: %d %v, want %d %s with a reason", tc.name, st, out, tc.status, tc.code)
		}
	}
	if i := info(t, b.db(t, "bad")); i.UpdateSeq != 0 || i.DocCount != 0 {
		t.Fatalf("bad input wrote: %+v", i)
	}
}

// TestAuthAndCORS: with a token, /couch/ takes it as Bearer or as the
// password of Basic, else 401 and nothing changes; the CORS preflight of
// a listed origin is answered, others get no CORS headers.
func TestAuthAndCORS(t *testing.T) {
	b := newBarrel(t, false, couch.Config{Token: "s3cret", CORSOrigins: []string{"http://app.test"}})
	db := b.url + "/couch/auth"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:s3cret"))
	if st, out := call(t, "PUT", db, ""); st != 401 || out["error"] != "unauthorized" {
		t.Fatalf("no token: %d %v", st, out)
	}
	if st, _ := call(t, "PUT", db, "", "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("u:wrong"))); st != 401 {
		t.Fatalf("wrong password: %d", st)
	}
	if _, err := b.n.DB("auth"); err == nil {
		t.Fatal("an unauthorized request created the database")
	}
	if st, _ := call(t, "PUT", db, "", "Authorization", basic); st != 201 {
		t.Fatalf("basic: %d", st)
	}
	if st, _ := call(t, "GET", db, "", "Authorization", "Bearer s3cret"); st != 200 {
		t.Fatalf("bearer: %d", st)
	}
	req, _ := http.NewRequestWithContext(context.Background(), "OPTIONS", db+"/_bulk_docs", nil)
	req.Header.Set("Origin", "http://app.test")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "http://app.test" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req.Header.Set("Origin", "http://evil.test")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("an unlisted origin got CORS headers: %v", resp.Header)
	}
	// PouchDB's auth option (Basic, the token as password) replicates.
	p := newPouch(t, b)
	r := p.run(context.Background(), t, "auth", "--op", "write,push", "--n", "10", "--password", "s3cret")
	if r.WriteFailures != 0 || info(t, b.db(t, "auth")).DocCount != 10 {
		t.Fatalf("push with Basic auth: %+v", r.result)
	}
}

// TestMemoryBudget: a request body that finds the budget held by another
// one being read is answered 503 at once, and gets through once it ends.
func TestMemoryBudget(t *testing.T) {
	b := newBarrel(t, false, couch.Config{MemoryBudgetBytes: 1 << 20})
	db := b.url + "/couch/mem"
	if st, _ := call(t, "PUT", db, ""); st != 201 {
		t.Fatal(st)
	}
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", db+"/_bulk_docs", pr)
	req.ContentLength = 1 << 20 // charged whole: 8 MiB, more than the budget, so it takes all of it
	req.Header.Set("Content-Type", "application/json")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	// More than the client's buffers hold, so that the request leaves it
	// (JSON whitespace: the body stays valid so far).
	if _, err := pw.Write(append([]byte(`{"docs":[`), bytes.Repeat([]byte(" "), 256<<10)...)); err != nil {
		t.Fatal(err)
	}
	// The held request reaches the server's handler a moment after its
	// first bytes left the client: until then the budget is free.
	for i := 0; ; i++ {
		st, out := call(t, "POST", db+"/_revs_diff", `{"x":["1-a"]}`)
		if st == 503 && out["error"] == "service_unavailable" {
			break
		}
		if i == 200 {
			t.Fatalf("with the budget held: %d %v, want 503 service_unavailable", st, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pw.CloseWithError(io.ErrUnexpectedEOF)
	<-done
	// The server gives the charge back when its handler returns, just
	// after the client saw the request fail.
	for i := 0; ; i++ {
		st, _ := call(t, "POST", db+"/_revs_diff", `{"x":["1-a"]}`)
		if st == 200 {
			break
		}
		if i == 200 {
			t.Fatalf("after the held body ended: %d, want 200", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestACLRefusesWrites: a database whose access-control list does not let
// this node write refuses CouchDB writes with 403 and keeps them out;
// reads still work.
func TestACLRefusesWrites(t *testing.T) {
	ctx := context.Background()
	b := newBarrel(t, false, couch.Config{})
	if err := b.n.CreateDB(ctx, "ro"); err != nil {
		t.Fatal(err)
	}
	other := "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"
	me := b.n.PeerID().String()
	if err := b.n.SetACL(ctx, "ro", node.ACL{Owner: me, Writers: []string{other}, Readers: []string{node.AnyPeer}}); err != nil {
		t.Fatal(err)
	}
	if st, _ := call(t, "PUT", b.url+"/couch/ro/a", `{"v":1}`); st != 201 {
		t.Fatalf("the owner's write: %d, want 201", st)
	}
	if err := b.n.SetACL(ctx, "ro", node.ACL{Owner: other, Writers: []string{other}, Readers: []string{node.AnyPeer}}); err != nil {
		t.Fatal(err)
	}
	seq := info(t, b.db(t, "ro")).UpdateSeq
	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/b", `{"v":1}`},
		{"POST", "/_bulk_docs", `{"docs":[{"_id":"c"}]}`},
		{"POST", "/_bulk_docs", `{"new_edits":false,"docs":[{"_id":"c","_rev":"1-ab"}]}`},
		{"PUT", "/d/file", `data`},
	} {
		if st, out := call(t, tc.method, b.url+"/couch/ro"+tc.path, tc.body); st != 403 || out["error"] != "forbidden" {
			t.Errorf("%s %s: %d %v, want 403 forbidden", tc.method, tc.path, st, out)
		}
	}
	if got := info(t, b.db(t, "ro")).UpdateSeq; got != seq {
		t.Fatalf("refused writes moved the feed: %d -> %d", seq, got)
	}
	if st, _ := call(t, "GET", b.url+"/couch/ro/a", ""); st != 200 {
		t.Fatalf("read: %d", st)
	}
}

// TestMetrics: /metrics shows the endpoint's requests and the revisions
// clients wrote and were sent.
func TestMetrics(t *testing.T) {
	b := newBarrel(t, false, couch.Config{})
	call(t, "PUT", b.url+"/couch/m", "")
	call(t, "POST", b.url+"/couch/m/_bulk_docs", `{"docs":[{"_id":"a"},{"_id":"b"}]}`)
	call(t, "POST", b.url+"/couch/m/_bulk_get", `{"docs":[{"id":"a"}]}`)
	mfs, err := b.n.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	for k, want := range map[string]float64{
		"barrel_couch_docs_written_total,db=m":                                   2,
		"barrel_couch_docs_sent_total,db=m":                                      1,
		"barrel_couch_requests_total,code=201,route=POST /couch/{db}/_bulk_docs": 1,
		"barrel_couch_requests_total,code=201,route=PUT /couch/{db}":             1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
}

// TestPushOnFoldedBase: a client's edit whose base revision compaction
// folded meanwhile (an offline client) is merged as a concurrent edit, not
// refused for good: its field arrives, barrel's edits since are not lost.
func TestPushOnFoldedBase(t *testing.T) {
	ctx := context.Background()
	b := newBarrel(t, false, couch.Config{})
	db := b.url + "/couch/fold"
	call(t, "PUT", db, "")
	if st, out := call(t, "POST", db+"/_bulk_docs", `{"new_edits":false,"docs":[{"_id":"x","_rev":"1-aa","v":1}]}`); st != 201 {
		t.Fatalf("push 1-aa: %d %v", st, out)
	}
	d := b.db(t, "fold")
	for i := range 3 {
		if _, err := d.Patch(ctx, "x", node.Patch{Merge: map[string]any{"barrel": i}}); err != nil {
			t.Fatal(err)
		}
	}
	// The first run marks the seq (a change is folded only once it arrived
	// before the horizon); the second folds.
	for range 2 {
		if _, err := d.Compact(ctx, &node.Retention{KeepRevisions: 1, KeepFor: time.Nanosecond}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if h, _ := d.History(ctx, "x"); len(h) > 2 {
		t.Fatalf("history of x after compaction: %d entries, want the base folded", len(h))
	}
	push := `{"new_edits":false,"docs":[{"_id":"x","_rev":"2-bb","_revisions":{"start":2,"ids":["bb","aa"]},"v":1,"client":"edit"}]}`
	req, _ := http.NewRequest("POST", db+"/_bulk_docs", strings.NewReader(push))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("push on a folded base: %d %s, want 201 and no failure", resp.StatusCode, body)
	}
	doc, err := d.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if doc.Body["client"] != "edit" || doc.Body["barrel"] != int64(2) {
		t.Fatalf("x = %v: want the client's field and barrel's last edit", doc.Body)
	}
	if st, out := call(t, "POST", db+"/_revs_diff", `{"x":["2-bb"]}`); st != 200 || len(out) != 0 {
		t.Fatalf("revs_diff after the push: %d %v, want nothing missing", st, out)
	}
}
