package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cliResult is the outcome of one CLI invocation.
type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs the binary against api with args and optional stdin.
func cli(t *testing.T, api, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, append([]string{"--api", api}, args...)...)
	cmd.Env = append(os.Environ(), "BARREL_API=", "BARREL_TOKEN=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

func TestE2ECLI(t *testing.T) {
	p := startPeer(t, t.TempDir())
	api := p.url
	mustCLI := func(t *testing.T, stdin string, args ...string) string {
		t.Helper()
		r := cli(t, api, stdin, args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		return r.stdout
	}

	mustCLI(t, "", "create-db", "places")
	if out := mustCLI(t, "", "dbs"); out != "places\n" {
		t.Fatalf("dbs: got %q, want places", out)
	}
	mustCLI(t, "", "put", "places", "p1", `{"name":"Cafe","locations":{"country":"Germany"}}`)
	mustCLI(t, `{"name":"Bar","locations":{"country":"France"}}`, "put", "places", "p2", "-")
	var doc map[string]any
	if err := json.Unmarshal([]byte(mustCLI(t, "", "get", "places", "p1")), &doc); err != nil || doc["name"] != "Cafe" || doc["_rev"] == nil {
		t.Fatalf("get: got %v (%v)", doc, err)
	}
	if out := mustCLI(t, "", "get", "places", "p1", "/locations/country"); strings.TrimSpace(out) != `"Germany"` {
		t.Fatalf("get path: got %q", out)
	}
	mustCLI(t, "", "patch", "places", "p1", `{"stars":5}`)
	if out := mustCLI(t, "", "query", "places", "/stars", "==", "5"); !strings.Contains(out, `"_id":"p1"`) || strings.Count(out, "\n") != 1 {
		t.Fatalf("query stars == 5: got %q", out)
	}
	if out := mustCLI(t, "", "query", "--ids", "places", "locations/country", "==", "France"); out != "p2\n" {
		t.Fatalf("query country == France: got %q", out)
	}
	if out := mustCLI(t, "", "query", "--count", "places", "/name", "exists"); out != "2\n" {
		t.Fatalf("query --count name exists: got %q, want 2", out)
	}
	if out := mustCLI(t, "", "query", "--count", "places", "locations/country", "==", "Peru"); out != "0\n" {
		t.Fatalf("query --count country == Peru: got %q, want 0", out)
	}
	if out := mustCLI(t, "", "changes", "places"); strings.Count(out, "\n") != 3 {
		t.Fatalf("changes: got %q, want 3 lines", out)
	}
	if out := mustCLI(t, "", "changes", "places", "--since", "2", "--limit", "5"); strings.Count(out, "\n") != 1 {
		t.Fatalf("changes --since 2: got %q, want 1 line", out)
	}

	t.Run("exit codes", func(t *testing.T) {
		before := takeSnapshot(t, api, "places", "p1")
		tests := []struct {
			name   string
			args   []string
			code   int
			stderr string
		}{
			{"missing doc", []string{"get", "places", "nope"}, 3, "barrel-peer: "},
			{"missing db", []string{"get", "nodb", "p1"}, 3, "barrel-peer: "},
			{"db exists", []string{"create-db", "places"}, 1, "barrel-peer: "},
			{"bad rev", []string{"delete", "places", "p1", "--rev", "00"}, 1, "barrel-peer: "},
			{"too few args", []string{"get", "places"}, 2, "barrel-peer: "},
			{"unknown command", []string{"frobnicate"}, 2, "barrel-peer: "},
			{"unknown flag", []string{"dbs", "--bogus"}, 2, "barrel-peer: "},
			{"not json", []string{"put", "places", "p1", "{nope"}, 2, "barrel-peer: "},
			{"reserved field", []string{"put", "places", "p1", `{"_x":1}`}, 1, "reserved"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := cli(t, api, "", tt.args...)
				if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
					t.Fatalf("got exit %d stderr %q, want %d containing %q", r.code, r.stderr, tt.code, tt.stderr)
				}
			})
		}
		if after := takeSnapshot(t, api, "places", "p1"); after != before {
			t.Fatalf("store changed by rejected commands:\nbefore %+v\nafter  %+v", before, after)
		}
	})

	t.Run("import export", func(t *testing.T) {
		mustCLI(t, "", "create-db", "bulk")
		dir := t.TempDir()
		var b strings.Builder
		const n = 2500
		for i := range n {
			fmt.Fprintf(&b, `{"_id":"d%05d","i":%d}`+"\n", i, i)
		}
		good := filepath.Join(dir, "good.ndjson")
		if err := os.WriteFile(good, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(dir, "bad.ndjson")
		if err := os.WriteFile(bad, []byte("{\"_id\":\"x1\"}\n\n{\"_id\":\"x2\"}\n{\"_id\": oops}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := takeSnapshot(t, api, "bulk", "x1")
		r := cli(t, api, "", "import", "bulk", bad)
		if r.code != 1 || !strings.Contains(r.stderr, "line 4") {
			t.Fatalf("import bad: got exit %d stderr %q, want 1 naming line 4", r.code, r.stderr)
		}
		if after := takeSnapshot(t, api, "bulk", "x1"); after != before {
			t.Fatalf("a rejected import changed the store:\nbefore %+v\nafter  %+v", before, after)
		}
		out := mustCLI(t, "", "import", "bulk", good)
		if !strings.Contains(out, "imported 2500 of 2500") {
			t.Fatalf("import: got %q", out)
		}
		info := mustStatus(t, 200, "GET", api+"/dbs/bulk", "").obj(t)
		if info["doc_count"] != float64(n) {
			t.Fatalf("got doc_count %v, want %d", info["doc_count"], n)
		}
		exp := mustCLI(t, "", "export", "bulk")
		lines := strings.Split(strings.TrimSpace(exp), "\n")
		if len(lines) != n {
			t.Fatalf("export: got %d lines, want %d", len(lines), n)
		}
		var first map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first["_id"] != "d00000" || first["i"] != 0.0 || first["_rev"] != nil {
			t.Fatalf("export first line %q: got %v (%v)", lines[0], first, err)
		}
	})

	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, binPath, "--api", api, "changes", "places", "--follow", "--since", "3")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		mustCLI(t, "", "put", "places", "f1", `{"x":1}`)
		lines := make(chan string)
		go func() {
			buf := make([]byte, 4096)
			var acc []byte
			for {
				n, err := stdout.Read(buf)
				acc = append(acc, buf[:n]...)
				if i := bytes.IndexByte(acc, '\n'); i >= 0 {
					lines <- string(acc[:i])
					return
				}
				if err != nil {
					close(lines)
					return
				}
			}
		}()
		select {
		case line, ok := <-lines:
			var c map[string]any
			if !ok || json.Unmarshal([]byte(line), &c) != nil || c["id"] != "f1" || c["seq"] != 4.0 {
				t.Fatalf("follow: got %q, want the change of f1 at seq 4 (stderr %q)", line, errb.String())
			}
		case <-ctx.Done():
			t.Fatalf("follow printed nothing (stderr %q)", errb.String())
		}
		_ = cmd.Process.Signal(os.Interrupt)
	})

	if out := mustCLI(t, "", "version"); !strings.HasPrefix(out, "barrel-peer ") {
		t.Fatalf("version: got %q", out)
	}
	mustCLI(t, "", "delete", "places", "p2")
	if r := cli(t, api, "", "get", "places", "p2"); r.code != 3 {
		t.Fatalf("get deleted: got exit %d, want 3", r.code)
	}
	mustCLI(t, "", "drop-db", "places")
	if r := cli(t, api, "", "dbs"); r.code != 0 || strings.Contains(r.stdout, "places") {
		t.Fatalf("dbs after drop: got %+v", r)
	}
}
