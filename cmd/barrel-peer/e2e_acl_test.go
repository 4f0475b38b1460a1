package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/barrel-db/barrel/httpapi"
)

// TestE2EACL: `acl DB` prints the default open ACL owned by the daemon;
// flags replace the lists they name and keep the others; a bad id fails.
func TestE2EACL(t *testing.T) {
	p := startPeer(t, t.TempDir())
	run := func(args ...string) cliResult { return cli(t, p.url, "", args...) }
	if r := run("create-db", "notes"); r.code != 0 {
		t.Fatalf("create-db: %+v", r)
	}
	self := strings.SplitN(run("id").stdout, "\n", 2)[0]
	const other = "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"
	parse := func(r cliResult) httpapi.ACL {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("acl: exit %d, stderr %q", r.code, r.stderr)
		}
		var a httpapi.ACL
		if err := json.Unmarshal([]byte(r.stdout), &a); err != nil {
			t.Fatalf("acl output %q: %v", r.stdout, err)
		}
		return a
	}
	a := parse(run("acl", "notes"))
	if a.Owner != self || !slices.Equal(a.Readers, []string{"*"}) || !slices.Equal(a.Writers, []string{"*"}) {
		t.Fatalf("default acl: %+v (self %s)", a, self)
	}
	a = parse(run("acl", "notes", "--writers", self+","+other))
	if !slices.Equal(a.Readers, []string{"*"}) || len(a.Writers) != 2 {
		t.Fatalf("after --writers: %+v", a)
	}
	a = parse(run("acl", "notes", "--writers", self))
	if _, ok := a.Revoked[other]; !ok {
		t.Fatalf("the writer taken off is not listed as revoked: %+v", a)
	}
	if r := run("acl", "notes", "--admins", "*"); r.code == 0 {
		t.Fatalf("--admins '*' succeeded: %+v", r)
	}
	if r := run("acl", "nope"); r.code != exitNotFound {
		t.Fatalf("acl of a missing db: exit %d, want %d", r.code, exitNotFound)
	}
}
