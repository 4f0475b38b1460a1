package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBenchUsage checks the command's wiring: a flag internal/bench
// refuses is a usage error (exit code 2) naming it, with nothing on stdout.
func TestBenchUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown workload", []string{"--workloads", "W1a,W9"}, `unknown workload "W9"`},
		{"no workload", []string{"--workloads", ","}, "no workload"},
		{"bad sizes", []string{"--n", "0", "--writers", "-1"}, "--writers -1"},
		{"bad durability", []string{"--durability", "maybe"}, "--durability"},
		{"bad country", []string{"--query-country", "Atlantis"}, "--query-country"},
		{"bad limit", []string{"--query-limit", "-1"}, "--query-limit"},
		{"bad compaction sizes", []string{"--n-compact", "0", "--snap-revs", "0"}, "--snap-revs 0"},
		{"bad blob size", []string{"--blob-bytes", "0"}, "--blob-bytes 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runMain(t.Context(), append([]string{"bench", "--data", t.TempDir()}, tt.args...), nil, &stdout, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("got exit %d, stderr %q; want exit %d mentioning %q", code, stderr.String(), exitUsage, tt.want)
			}
			if stdout.Len() != 0 {
				t.Fatalf("got stdout %q, want none", stdout.String())
			}
		})
	}
}
