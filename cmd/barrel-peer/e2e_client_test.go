package main

import (
	"strings"
	"testing"
)

// TestE2EQueryExists checks that exists takes no value, on the command line
// and in the HTTP query API: "exists false" used to match every document
// that has the path, the opposite of what it reads as.
func TestE2EQueryExists(t *testing.T) {
	p := startPeer(t, t.TempDir())
	api := p.url
	mustStatus(t, 201, "PUT", api+"/dbs/web", "")
	mustStatus(t, 201, "PUT", api+"/dbs/web/docs/a", `{"a":{"b":1}}`)
	mustStatus(t, 201, "PUT", api+"/dbs/web/docs/b", `{"c":1}`)

	if r := cli(t, api, "", "query", "--ids", "web", "/a/b", "exists"); r.code != 0 || r.stdout != "a\n" {
		t.Fatalf("query exists: got exit %d stdout %q stderr %q, want a", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{
		{"query", "web", "/a/b", "exists", "false"},
		{"query", "web", "/a/b", "exists", "banana"},
		{"query", "web", "/a/b", "missing"},
		{"query", "web", "/a/b", "=="},
	} {
		r := cli(t, api, "", args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "want ") {
			t.Errorf("%v: got exit %d stdout %q stderr %q, want 2 naming the form", args, r.code, r.stdout, r.stderr)
		}
	}
	for _, body := range []string{
		`{"where":[{"path":"/a/b","op":"exists","value":false}]}`,
		`{"where":[{"path":"/a/b","op":"exists","value":"banana"}]}`,
	} {
		r := call(t, "POST", api+"/dbs/web/query", body)
		if r.status != 400 || !strings.Contains(string(r.raw), "takes no value") {
			t.Errorf("POST query %s: got %d %s, want 400 saying exists takes no value", body, r.status, r.raw)
		}
	}
	if r := mustStatus(t, 200, "POST", api+"/dbs/web/query", `{"where":[{"path":"/a/b","op":"exists","value":null}]}`); !strings.Contains(string(r.raw), `"_id":"a"`) {
		t.Fatalf("exists with a null value: got %s, want document a", r.raw)
	}
}

// TestE2EVersion checks that the binary reports one version: the version
// command, --version and GET / agree, and none says "dev".
func TestE2EVersion(t *testing.T) {
	p := startPeer(t, t.TempDir())
	v := cli(t, p.url, "", "version")
	flag := cli(t, p.url, "", "--version")
	if v.code != 0 || flag.code != 0 || v.stdout != flag.stdout {
		t.Fatalf("version: exit %d %q; --version: exit %d %q; want the same line", v.code, v.stdout, flag.code, flag.stdout)
	}
	info := mustStatus(t, 200, "GET", p.url+"/", "").obj(t)
	want, _ := info["version"].(string)
	fields := strings.Fields(v.stdout)
	if want == "" || len(fields) < 2 || fields[1] != want || strings.Contains(v.stdout, "dev") {
		t.Fatalf("version prints %q, GET / says %q: want the same version", v.stdout, want)
	}
}
