package crdt

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps crdt a pure core: the standard library and CBOR only.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if strings.Contains(imp, ".") && imp != "github.com/fxamacker/cbor/v2" {
			t.Errorf("crdt imports %s; it may import only the standard library and CBOR", imp)
		}
	}
	for _, banned := range []string{"os", "net", "time", "log", "log/slog"} {
		for _, imp := range strings.Fields(string(out)) {
			if imp == banned {
				t.Errorf("crdt imports %s: it must do no I/O and read no clock", imp)
			}
		}
	}
}
