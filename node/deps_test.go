package node

import (
	"os/exec"
	"strings"
	"testing"
)

// internalDeps is what each package under node/internal may import of the
// project and of libp2p: the seams of docs/design.md ("Inside node"). A new
// package gets a row here, or this test fails: its place in the layering
// is decided when it is made, not found out later.
var internalDeps = map[string][]string{
	"layout":    {"crdt", "datastore", "datastore/tuple"},
	"acl":       {"crdt", "github.com/libp2p/go-libp2p/core/peer"},
	"blobstore": {"datastore", "layout"},
	"changes":   {"crdt", "datastore", "layout"},
	"history":   {"crdt", "datastore", "datastore/tuple", "index", "acl", "changes", "commit", "layout"},
	"commit":    {"crdt", "datastore", "datastore/tuple", "index", "sync", "acl", "changes", "layout", "github.com/libp2p/go-libp2p/core/peer"},
}

// TestInternalImports keeps node/internal's packages along their seams:
// none imports node (the wiring) or a sibling it is not allowed, and the
// pure ones do no I/O.
func TestInternalImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./internal/...").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	const mod = "github.com/barrel-db/barrel/"
	pure := map[string]bool{"layout": true, "acl": true} // no I/O, no clock
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], mod+"node/internal/")
		allowed, ok := internalDeps[pkg]
		if !ok {
			t.Errorf("node/internal/%s has no row in internalDeps: say what it may import", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.Contains(imp, ".") { // the standard library
				// acl parses and formats the RFC 3339 revocation times of
				// _acl bodies (time.Parse, Time.Format); it reads no clock.
				clockFree := imp == "time" && pkg == "acl"
				if pure[pkg] && !clockFree && (imp == "os" || imp == "net" || imp == "time" || imp == "log/slog") {
					t.Errorf("node/internal/%s imports %s: it must do no I/O and read no clock", pkg, imp)
				}
				continue
			}
			name := strings.TrimPrefix(imp, mod)
			if name == imp && !strings.HasPrefix(imp, "github.com/libp2p/") {
				continue // a third-party library other than libp2p
			}
			permitted := false
			for _, a := range allowed {
				if name == a || name == "node/internal/"+a || imp == a {
					permitted = true
				}
			}
			if !permitted {
				t.Errorf("node/internal/%s imports %s; it may import only %v of the project and libp2p", pkg, imp, allowed)
			}
		}
	}
}
