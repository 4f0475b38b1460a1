package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// arrayDoc is {"a": [0, 1, ..., n-1]} as JSON.
func arrayDoc(n int) string {
	a := make([]int, n)
	for i := range a {
		a[i] = i
	}
	b, _ := json.Marshal(map[string]any{"a": a})
	return string(b)
}

// TestE2ELimits (issue 17, items 1, 2, 10): a document past a limit is
// refused before it is acknowledged, 413 too_large with a reason that
// names the limit, and the database stays usable; one at the limit is
// accepted and can be read, listed, exported, compacted and purged. Before,
// a PUT of 100,001 array elements answered 201 and then every read of the
// document, the listing, export, _compact and _purge answered 500.
func TestE2ELimits(t *testing.T) {
	p := startPeer(t, t.TempDir())
	api := p.url
	db := api + "/dbs/arr"
	mustStatus(t, 201, "PUT", db, "")

	// The reproduction through the CLI.
	r := cli(t, api, arrayDoc(100_001), "put", "arr", "x", "-")
	if r.code == 0 || !strings.Contains(r.stderr, "max_array_elements") {
		t.Fatalf("put of 100,001 elements: exit %d, stderr %q; want a failure naming max_array_elements", r.code, r.stderr)
	}
	resp := call(t, "PUT", db+"/docs/x", arrayDoc(100_001))
	body := resp.obj(t)
	if resp.status != 413 || body["error"] != "too_large" || !strings.Contains(body["reason"].(string), "max_array_elements") ||
		!strings.Contains(body["reason"].(string), "100001") {
		t.Fatalf("PUT of 100,001 elements: %d %s; want 413 too_large naming max_array_elements and 100001", resp.status, resp.raw)
	}
	mustStatus(t, 404, "GET", db+"/docs/x", "")

	// At the limit: accepted and fully usable.
	mustStatus(t, 201, "PUT", db+"/docs/x", arrayDoc(100_000))
	got := mustStatus(t, 200, "GET", db+"/docs/x", "").obj(t)
	if a, _ := got["a"].([]any); len(a) != 100_000 {
		t.Fatalf("GET: %d elements, want 100000", len(a))
	}
	if list := mustStatus(t, 200, "GET", db+"/docs?limit=100", "").raw; !strings.Contains(string(list), `"x"`) {
		t.Fatalf("list: %s", list)
	}
	if out := cli(t, api, "", "export", "arr"); out.code != 0 || !strings.Contains(out.stdout, `"_id":"x"`) {
		t.Fatalf("export: exit %d, stderr %q", out.code, out.stderr)
	}
	mustStatus(t, 200, "POST", db+"/_compact", `{"keep_revisions": 0}`)
	mustStatus(t, 200, "GET", db+"/docs/x", "")

	// Depth: one number, 64, whichever layer refuses.
	for _, levels := range []int{65, 70} {
		doc := strings.Repeat(`{"k":`, levels) + "1" + strings.Repeat("}", levels)
		resp := call(t, "PUT", db+"/docs/deep", doc)
		reason, _ := resp.obj(t)["reason"].(string)
		if resp.status/100 != 4 || !strings.Contains(reason, "64") || !strings.Contains(reason, "max_depth") || strings.Contains(reason, "256") {
			t.Fatalf("PUT nested %d levels: %d %s; want a 4xx naming max_depth 64", levels, resp.status, resp.raw)
		}
	}
	mustStatus(t, 201, "PUT", db+"/docs/deep", strings.Repeat(`{"k":`, 64)+"1"+strings.Repeat("}", 64))

	// _incr of a string: refused, and the string stays.
	mustStatus(t, 201, "PUT", db+"/docs/city", `{"name":"Berlin"}`)
	resp = call(t, "PATCH", db+"/docs/city", `{"_incr": {"/name": 1}}`)
	if reason, _ := resp.obj(t)["reason"].(string); resp.status != 400 || !strings.Contains(reason, "cannot increment /name") {
		t.Fatalf("_incr of a string: %d %s; want 400 saying it cannot increment /name", resp.status, resp.raw)
	}
	if got := mustStatus(t, 200, "GET", db+"/docs/city", "").obj(t); got["name"] != "Berlin" {
		t.Fatalf("name = %v after a refused increment, want Berlin", got["name"])
	}

	res := mustStatus(t, 200, "POST", db+"/_purge", `{"ids": ["x"]}`).obj(t)
	if fmt.Sprint(res["purged"]) != "[x]" {
		t.Fatalf("purge: %s", mustStatus(t, 200, "GET", db, "").raw)
	}
	mustStatus(t, 404, "GET", db+"/docs/x", "")
}
