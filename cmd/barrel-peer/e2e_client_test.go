package main

import (
	"bytes"
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

	"github.com/cockroachdb/pebble/v2"

	"github.com/barrel-db/barrel/datastore"
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

// TestE2EExport checks that export streams every live document from one
// snapshot, that importing its output into a new database reproduces the
// documents byte for byte, and that an unreadable document is named on
// stderr, skipped, and turns the exit code to 1 while the rest is exported.
func TestE2EExport(t *testing.T) {
	dataDir := t.TempDir()
	p := startPeer(t, dataDir)
	api := p.url
	mustCLI := func(t *testing.T, args ...string) string {
		t.Helper()
		r := cli(t, api, "", args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		return r.stdout
	}
	mustCLI(t, "create-db", "src")
	const n = 3000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"_id":"d%05d","i":%d,"f":%d.5,"s":"é<&>\"%d","tags":["a","b%d"],"nested":{"deep":{"n":%d,"null":null,"t":true}}}`+"\n", i, i, i, i, i%7, -i)
	}
	in := filepath.Join(t.TempDir(), "in.ndjson")
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "import", "src", in)
	for _, id := range []string{"d00000", "d01234", "d02999"} {
		mustCLI(t, "delete", "src", id)
	}
	const live = n - 3

	out1 := mustCLI(t, "export", "src")
	lines := strings.Split(strings.TrimSuffix(out1, "\n"), "\n")
	if len(lines) != live {
		t.Fatalf("export: got %d lines, want %d", len(lines), live)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `{"_id":"d`) || strings.Contains(l, `"_rev"`) {
			t.Fatalf("export line %q: want a document with its _id and no _rev", l)
		}
	}

	exported := filepath.Join(t.TempDir(), "export.ndjson")
	if err := os.WriteFile(exported, []byte(out1), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "create-db", "dst")
	if out := mustCLI(t, "import", "dst", exported); !strings.Contains(out, fmt.Sprintf("imported %d of %d", live, live)) {
		t.Fatalf("import of the export: got %q", out)
	}
	if out2 := mustCLI(t, "export", "dst"); out2 != out1 {
		t.Fatalf("export of the imported copy differs from the original export")
	}
	// Every document reads the same in both databases, but for _rev.
	for _, l := range lines {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatal(err)
		}
		id := line["_id"].(string)
		a := mustStatus(t, 200, "GET", api+"/dbs/src/docs/"+id, "").obj(t)
		c := mustStatus(t, 200, "GET", api+"/dbs/dst/docs/"+id, "").obj(t)
		delete(a, "_rev")
		delete(c, "_rev")
		ja, _ := json.Marshal(a)
		jc, _ := json.Marshal(c)
		jl, _ := json.Marshal(line)
		if !bytes.Equal(ja, jc) || !bytes.Equal(ja, jl) {
			t.Fatalf("%s: source %s, copy %s, export line %s: want the same", id, ja, jc, jl)
		}
	}

	t.Run("unreadable document", func(t *testing.T) {
		p.stop(t)
		corruptDoc(t, dataDir, "d00777")
		p = startPeer(t, dataDir)
		r := cli(t, p.url, "", "export", "src")
		if r.code != 1 || !strings.Contains(r.stderr, `"d00777" cannot be read`) || !strings.Contains(r.stderr, "1 could not be read") {
			t.Fatalf("got exit %d stderr %q, want 1 naming d00777", r.code, r.stderr)
		}
		got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(got) != live-1 || strings.Contains(r.stdout, "d00777") || strings.Contains(r.stdout, "_export") {
			t.Fatalf("got %d lines, want the %d readable documents and nothing else", len(got), live-1)
		}
	})
}

// corruptDoc overwrites the record of document id (in any database of the
// stopped daemon's store) with bytes the decoder refuses, as a damaged disk
// would. The key layout is node's: 'd', the database id, 's', the id.
func corruptDoc(t *testing.T, dataDir, id string) {
	t.Helper()
	s, err := datastore.Open(filepath.Join(dataDir, "store"), datastore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	found := 0
	for dbID := range uint64(16) {
		k := datastore.AppendString(append(datastore.AppendUint64([]byte{'d'}, dbID), 's'), id)
		if ok, err := s.Has(k); err != nil || !ok {
			continue
		}
		if err := s.DB().Set(k, []byte("\x00\x00\x00\x00\x00\x00\x00\x01garbage"), pebble.Sync); err != nil {
			t.Fatal(err)
		}
		found++
	}
	if found == 0 {
		t.Fatalf("no record of %s found", id)
	}
}

// TestE2EClientErrors checks what a client command says when things go
// wrong: no daemon at the address, an empty id or name, and messages that
// name what failed once, not once per layer.
func TestE2EClientErrors(t *testing.T) {
	t.Run("no daemon", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		api := "http://" + l.Addr().String()
		l.Close() // nothing listens there now
		r := cli(t, api, "", "dbs")
		if r.code != 1 || !strings.Contains(r.stderr, "no barrel-peer answers at "+api) ||
			!strings.Contains(r.stderr, "barrel-peer run") || strings.Contains(r.stderr, "dial tcp") {
			t.Fatalf("got exit %d stderr %q, want 1 saying no barrel-peer answers and how to start one", r.code, r.stderr)
		}
	})

	p := startPeer(t, t.TempDir())
	api := p.url
	mustStatus(t, 201, "PUT", api+"/dbs/web", "")
	mustStatus(t, 201, "PUT", api+"/dbs/web/docs/a", `{"x":1}`)
	before := takeSnapshot(t, api, "web", "a")
	tests := []struct {
		args []string
		code int
		want string // in stderr
		once string // appears once in stderr
	}{
		{[]string{"put", "web", "", `{}`}, 2, "the document id is empty", ""},
		{[]string{"get", "", "a"}, 2, "the database name is empty", ""},
		{[]string{"delete", "web", ""}, 2, "the document id is empty", ""},
		{[]string{"purge", "web", "a", ""}, 2, "the document id is empty", ""},
		{[]string{"fetch", "web", "a", ""}, 2, "the attachment name is empty", ""},
		{[]string{"create-db", ""}, 2, "the database name is empty", ""},
		{[]string{"create-db", "web"}, 1, "database exists", "web"},
		{[]string{"drop-db", "nodb"}, 3, "database not found", "nodb"},
		{[]string{"get", "nodb", "a"}, 3, "database not found", "nodb"},
		{[]string{"put", "nodb", "a", `{}`}, 3, "database not found", "nodb"},
		{[]string{"get", "web", "nope"}, 3, "not found", "nope"},
		{[]string{"get", "web", "a", "/nope"}, 3, "not found", "/nope"},
		{[]string{"delete", "web", "nope"}, 3, "not found", "nope"},
		{[]string{"patch", "web", "nope", `{"x":2}`}, 3, "not found", "nope"},
		{[]string{"history", "web", "nope"}, 3, "not found", "nope"},
		{[]string{"fetch", "web", "a", "nope"}, 3, "not found", "nope"},
		{[]string{"compact-blobs", "nodb"}, 3, "database not found", "nodb"},
		{[]string{"acl", "nodb"}, 3, "database not found", "nodb"},
		{[]string{"replicate", "nodb"}, 3, "database not found", "nodb"},
		{[]string{"export", "nodb"}, 3, "database not found", "nodb"},
		{[]string{"query", "web", "/x", "==", "{}"}, 1, "invalid query", "query"},
		{[]string{"attach", "web", "a", "/nonexistent/file"}, 1, "no such file", "/nonexistent/file"},
		{[]string{"import", "web", "/nonexistent/file.ndjson"}, 1, "no such file", "/nonexistent/file.ndjson"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := cli(t, api, "", tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("got exit %d stderr %q, want %d containing %q", r.code, r.stderr, tt.code, tt.want)
			}
			if tt.once != "" && strings.Count(r.stderr, tt.once) != 1 {
				t.Fatalf("stderr %q names %q %d times, want once", r.stderr, tt.once, strings.Count(r.stderr, tt.once))
			}
		})
	}
	if after := takeSnapshot(t, api, "web", "a"); after != before {
		t.Fatalf("rejected commands changed the store:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestE2EDocs checks the document listing (docs, like CouchDB's _all_docs)
// and the --json output of the commands that print tables.
func TestE2EDocs(t *testing.T) {
	p := startPeer(t, t.TempDir())
	api := p.url
	mustCLI := func(t *testing.T, args ...string) string {
		t.Helper()
		r := cli(t, api, "", args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		return r.stdout
	}
	mustCLI(t, "create-db", "web")
	const n = 2100 // more than one page of 1000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"_id":"d%05d","i":%d}`+"\n", i, i)
	}
	fmt.Fprintf(&b, `{"_id":"x1","s":"one"}`+"\n"+`{"_id":"x2","s":"two"}`+"\n"+`{"_id":"x3","s":"three"}`+"\n")
	in := filepath.Join(t.TempDir(), "in.ndjson")
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "import", "web", in)
	mustCLI(t, "delete", "web", "x2")
	rev := func(id string) string {
		return mustStatus(t, 200, "GET", api+"/dbs/web/docs/"+id, "").obj(t)["_rev"].(string)
	}

	all := strings.Split(strings.TrimSuffix(mustCLI(t, "docs", "web"), "\n"), "\n")
	if len(all) != n+2 || all[0] != "d00000\t"+rev("d00000") || all[n+1] != "x3\t"+rev("x3") {
		t.Fatalf("docs: got %d lines, first %q last %q; want %d, id TAB rev", len(all), all[0], all[len(all)-1], n+2)
	}
	if got, want := mustCLI(t, "docs", "web", "--prefix", "x"), "x1\t"+rev("x1")+"\nx3\t"+rev("x3")+"\n"; got != want {
		t.Fatalf("docs --prefix x: got %q, want %q", got, want)
	}
	if got := mustCLI(t, "docs", "web", "--limit", "1500"); strings.Count(got, "\n") != 1500 {
		t.Fatalf("docs --limit 1500: got %d lines", strings.Count(got, "\n"))
	}
	if got, want := mustCLI(t, "docs", "web", "--prefix", "x", "--json"), `{"id":"x1","rev":"`+rev("x1")+`"}`+"\n"+`{"id":"x3","rev":"`+rev("x3")+`"}`+"\n"; got != want {
		t.Fatalf("docs --json: got %q, want %q", got, want)
	}
	bodies := strings.Split(strings.TrimSuffix(mustCLI(t, "docs", "web", "--prefix", "x", "--bodies"), "\n"), "\n")
	if len(bodies) != 2 {
		t.Fatalf("docs --bodies: got %q, want 2 documents", bodies)
	}
	for _, l := range bodies {
		var got map[string]any
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatalf("docs --bodies line %q: %v", l, err)
		}
		want := mustStatus(t, 200, "GET", api+"/dbs/web/docs/"+got["_id"].(string), "").obj(t)
		jg, _ := json.Marshal(got)
		jw, _ := json.Marshal(want)
		if !bytes.Equal(jg, jw) {
			t.Fatalf("docs --bodies: got %s, GET says %s", jg, jw)
		}
	}
	if got := mustCLI(t, "docs", "web", "--bodies", "--limit", "3"); strings.Count(got, "\n") != 3 || !strings.HasPrefix(got, `{"_id":"d00000","_rev":"`) {
		t.Fatalf("docs --bodies --limit 3: got %q", got)
	}
	if r := cli(t, api, "", "docs", "nodb"); r.code != 3 {
		t.Fatalf("docs nodb: got exit %d stderr %q, want 3", r.code, r.stderr)
	}

	var names []string
	if err := json.Unmarshal([]byte(mustCLI(t, "dbs", "--json")), &names); err != nil || len(names) != 1 || names[0] != "web" {
		t.Fatalf("dbs --json: got %v (%v), want [web]", names, err)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(mustCLI(t, "id", "--json")), &info); err != nil || info["peer_id"] == "" || info["version"] == nil {
		t.Fatalf("id --json: got %v (%v)", info, err)
	}
}

// TestE2EExportProgress checks that export shows a progress bar, counted
// against the database's document count, when stderr is a terminal: the
// command runs under script(1), which gives it a pseudo-terminal.
func TestE2EExportProgress(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) not installed")
	}
	p := startPeer(t, t.TempDir())
	mustStatus(t, 201, "PUT", p.url+"/dbs/web", "")
	var b strings.Builder
	b.WriteString(`{"docs":[`)
	for i := range 50 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"_id":"d%02d"}`, i)
	}
	b.WriteString(`]}`)
	mustStatus(t, 200, "POST", p.url+"/dbs/web/bulk", b.String())
	out := filepath.Join(t.TempDir(), "out.ndjson")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "-qfec", fmt.Sprintf("%s --api %s export web > %s", binPath, p.url, out), "/dev/null")
	tty, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("export under script: %v\n%s", err, tty)
	}
	if !strings.Contains(string(tty), "exporting") || !strings.Contains(string(tty), "/50") {
		t.Fatalf("terminal output %q: want a progress bar counting to 50", tty)
	}
	if raw, err := os.ReadFile(out); err != nil || strings.Count(string(raw), "\n") != 50 || strings.Contains(string(raw), "exporting") {
		t.Fatalf("export output: %d lines (%v), want the 50 documents and no bar", strings.Count(string(raw), "\n"), err)
	}
}
