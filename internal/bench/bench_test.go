package bench

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestBench runs every workload in-process with tiny sizes and checks that
// each prints one well-formed line with its keys, and that the data dir is
// removed. It checks shape, never speed.
func TestBench(t *testing.T) {
	parent := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"--workloads", "all", "--data", parent,
		"--n", "200", "--n-bulk", "2000", "--n-query", "2000", "--n-mem", "2000",
		"--n-repl", "1500", "--n-latency", "20",
		"--n-compact", "300", "--compact-revs", "3", "--n-snap", "1000", "--snap-revs", "3",
		"--blob-bytes", strconv.Itoa(benchTestBlob),
		"--live-subs", "20", "--live-rate", "200", "--live-seconds", "1s",
		"--mesh-peers", "6", "--mesh-writes", "3", "--mesh-gap", "0s", "--mesh-writers", "2", "--mesh-seconds", "1s",
		"--reg-seconds", "1s", "--reg-rate", "20", "--reg-flooders", "4", "--reg-docs", "300", "--reg-pullers", "2"}
	if err := runArgs(t, args, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v; stderr:\n%s", err, stderr.String())
	}

	attachKeys := func(rate ...string) []string {
		return append(append([]string{"workload", "bytes", "seconds"}, rate...),
			"rss_mb", "vmhwm_mb", "heap_peak_mb", "durability", "peak_rss_mb")
	}
	writeKeys := []string{"workload", "n", "seconds", "docs_per_s", "rss_mb", "durability", "peak_rss_mb"}
	concurrentKeys := []string{"workload", "n", "seconds", "docs_per_s", "rss_mb", "durability", "writers", "retries", "peak_rss_mb"}
	want := []struct {
		workload string
		n        int
		keys     []string
	}{
		{"W1a", 200, writeKeys},
		{"W1b", 200, concurrentKeys},
		{"W1c", 2000, []string{"workload", "n", "seconds", "docs_per_s", "rss_mb", "durability", "bytes_per_doc", "baseline_values_per_s", "of_baseline", "peak_rss_mb"}},
		{"W1d", 200, concurrentKeys},
		{"Q1", 2000, []string{"workload", "n", "matches", "runs", "median_ms", "p99_ms", "ids_median_ms", "count_median_ms", "rss_mb", "durability", "peak_rss_mb"}},
		{"MEM", 2000, writeKeys},
		{"W2", 1500, writeKeys},
		{"W3", 20, []string{"workload", "n", "gap_ms", "median_ms", "p99_ms", "rss_mb", "durability", "peak_rss_mb"}},
		{"W4", 1500, []string{"workload", "n", "writes", "seconds", "bytes", "body_bytes", "recon_bytes", "all_ids_bytes", "rss_mb", "durability", "peak_rss_mb"}},
		{"W4R", 1500, []string{"workload", "n", "writes", "seconds", "bytes", "body_bytes", "recon_bytes", "all_ids_bytes", "rss_mb", "durability", "peak_rss_mb"}},
		{"W5", 1500, []string{"workload", "n", "first_ms", "check_ms", "check_bytes", "checks", "rss_mb", "durability", "peak_rss_mb"}},
		{"W7", 1500, []string{"workload", "n", "base", "seconds", "w2_seconds", "ratio", "bytes", "recon_bytes", "fallbacks", "rss_mb", "durability", "peak_rss_mb"}},
		{"C1", 300, []string{"workload", "n", "revs", "folded", "seconds", "folded_per_s", "bytes_per_doc_before",
			"bytes_per_doc_after", "final_only_bytes_per_doc", "load_seconds", "rss_mb", "durability", "peak_rss_mb"}},
		{"C2", 300, []string{"workload", "n", "revs", "folded", "compact_seconds", "writers", "writes", "median_ms", "p99_ms",
			"compacting_writes", "compacting_median_ms", "compacting_p99_ms", "median_ratio", "p99_ratio", "retries", "rss_mb",
			"durability", "peak_rss_mb"}},
		{"W2S", 1000, []string{"workload", "n", "revs", "seconds", "docs_per_s", "w2_seconds", "w2_docs_per_s", "ratio",
			"folded", "compact_seconds", "fresh_revisions", "rss_mb", "durability", "peak_rss_mb"}},
		{"A1", benchTestBlob, attachKeys("put_seconds", "put_mb_s", "get_seconds", "get_mb_s")},
		{"A2", benchTestBlob, attachKeys("replicate_mb_s", "attach_seconds", "attach_mb_s")},
		{"L1", 200, []string{"workload", "n", "subs", "rate", "events", "median_ms", "p99_ms", "write_median_ms", "sub_heap_kb",
			"sub_total_kb", "docs_per_s_without", "docs_per_s_with", "with_over_without", "writers", "rss_mb", "durability", "peak_rss_mb"}},
		{"L2", 200, []string{"workload", "n", "writers", "docs_per_s", "follower_docs_per_s", "follower_lag_ms", "follower_over_writers",
			"rss_mb", "durability", "peak_rss_mb"}},
		{"W6", 6, []string{"workload", "n", "topology", "edges", "diameter", "open_seconds", "setup_seconds", "writes",
			"median_ms", "p99_ms", "writers", "rate", "load_seconds", "load_writes", "load_missing", "load_median_ms",
			"load_p99_ms", "load_max_ms", "cpu_ms_per_write_peer", "pulls_per_write_peer", "anns_per_write_peer", "rss_mb", "rss_per_peer_mb", "goroutines_per_peer", "fds_per_peer", "durability", "peak_rss_mb"}},
		{"R1", 20, []string{"workload", "n", "seconds", "rounds", "rate", "client_rate", "flooders", "alone_median_ms", "alone_p99_ms",
			"flood_median_ms", "flood_p99_ms", "ratio", "flood_accepted", "flood_refused", "off_alone_median_ms", "off_alone_p99_ms",
			"off_flood_median_ms", "off_flood_p99_ms", "off_ratio", "off_flood_accepted", "off_flood_overloaded", "steady_refused",
			"rss_mb", "durability", "peak_rss_mb"}},
		{"R2", 300, []string{"workload", "n", "seconds", "rounds", "rate", "pullers", "peer_bodies_per_s", "alone_median_ms", "alone_p99_ms",
			"flood_median_ms", "flood_p99_ms", "ratio", "flood_pulls", "flood_bodies_per_s", "budget_wait_s", "off_alone_median_ms",
			"off_alone_p99_ms", "off_flood_median_ms", "off_flood_p99_ms", "off_ratio", "off_flood_pulls", "off_flood_bodies_per_s",
			"flood_busy", "missing", "rss_mb", "durability", "peak_rss_mb"}},
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), stdout.String())
	}
	for i, w := range want {
		t.Run(w.workload, func(t *testing.T) {
			kv, keys := parseBenchLine(t, lines[i])
			if !slices.Equal(keys, w.keys) {
				t.Fatalf("got keys %v, want %v in %q", keys, w.keys, lines[i])
			}
			size := "n"
			if strings.HasPrefix(w.workload, "A") { // one blob of this many bytes
				size = "bytes"
			}
			if kv["workload"] != w.workload || kv[size] != strconv.Itoa(w.n) || kv["durability"] != "sync" {
				t.Fatalf("got %q, want workload=%s %s=%d durability=sync", lines[i], w.workload, size, w.n)
			}
			for _, k := range keys[1:] {
				if k == "durability" || k == "topology" {
					continue
				}
				if _, err := strconv.ParseFloat(kv[k], 64); err != nil {
					t.Errorf("%s=%q: not a number", k, kv[k])
				}
			}
			if w.workload == "Q1" && kv["matches"] != "20" {
				t.Errorf("got matches=%s, want 20 (1%% of 2000)", kv["matches"])
			}
			if w.workload == "W4" {
				// The catch-up moves the 200 new documents, not every id again.
				if kv["writes"] != "200" || kv["all_ids_bytes"] != "60000" {
					t.Errorf("got writes=%s all_ids_bytes=%s, want 200 and 60000", kv["writes"], kv["all_ids_bytes"])
				}
				if b, _ := strconv.Atoi(kv["bytes"]); b <= 0 {
					t.Errorf("got bytes=%s, want the bytes the catch-up moved", kv["bytes"])
				}
			}
			switch w.workload {
			case "C1":
				// Every revision folded, and the space returned.
				before, _ := strconv.Atoi(kv["bytes_per_doc_before"])
				after, _ := strconv.Atoi(kv["bytes_per_doc_after"])
				if kv["folded"] != "900" || after <= 0 || after >= before {
					t.Errorf("got folded=%s bytes per document %d -> %d, want 900 folded and fewer bytes", kv["folded"], before, after)
				}
			case "C2":
				// The history, the 400 writes before, and some during it.
				if n, _ := strconv.Atoi(kv["compacting_writes"]); n < 1 || kv["writes"] != "400" {
					t.Errorf("got writes=%s compacting_writes=%s, want 400 and some", kv["writes"], kv["compacting_writes"])
				}
				if f, _ := strconv.Atoi(kv["folded"]); f < 900+200 {
					t.Errorf("got folded=%s, want at least the history and the writes before it (1100)", kv["folded"])
				}
			case "W2S":
				// The fresh peer installed bases (a snapshot), not history.
				if kv["folded"] != "3000" || kv["fresh_revisions"] != "0" {
					t.Errorf("got folded=%s fresh_revisions=%s, want 3000 and 0", kv["folded"], kv["fresh_revisions"])
				}
			case "W6":
				// Every write of the load reached every peer.
				if n, _ := strconv.Atoi(kv["load_writes"]); n < 1 || kv["load_missing"] != "0" {
					t.Errorf("got load_writes=%s load_missing=%s, want some and 0", kv["load_writes"], kv["load_missing"])
				}
			case "R1":
				// The steady client stayed under its budget; each of the 4
				// flooding connections sent at least one request to each server.
				acc, _ := strconv.Atoi(kv["flood_accepted"])
				ref, _ := strconv.Atoi(kv["flood_refused"])
				off, _ := strconv.Atoi(kv["off_flood_accepted"])
				over, _ := strconv.Atoi(kv["off_flood_overloaded"])
				if kv["steady_refused"] != "0" || acc+ref < 4 || off+over < 4 {
					t.Errorf("got steady_refused=%s flood answers %d, off %d; want 0 and at least 4 each", kv["steady_refused"], acc+ref, off+over)
				}
			case "R2":
				// Every steady write reached the steady peer; each of the 2
				// flooding streams pulled at least once in each flood phase.
				on, _ := strconv.Atoi(kv["flood_pulls"])
				off, _ := strconv.Atoi(kv["off_flood_pulls"])
				if kv["missing"] != "0" || on < 2 || off < 2 || kv["peer_bodies_per_s"] != "100000" {
					t.Errorf("got missing=%s flood_pulls=%d off_flood_pulls=%d peer_bodies_per_s=%s, want 0, at least 2, 2 and 100000",
						kv["missing"], on, off, kv["peer_bodies_per_s"])
				}
			case "L1":
				// Every paced write reached its subscriber.
				if kv["events"] != "200" {
					t.Errorf("got events=%s, want 200 (200/s for 1 s)", kv["events"])
				}
			case "A1", "A2":
				// The blob moved (the workload checked its digest), and a
				// peak is at least what was resident at the end.
				for _, k := range []string{"seconds", "put_mb_s", "get_mb_s", "replicate_mb_s", "attach_mb_s", "heap_peak_mb"} {
					if v, ok := kv[k]; ok {
						if f, _ := strconv.ParseFloat(v, 64); f <= 0 {
							t.Errorf("got %s=%s, want more than 0", k, v)
						}
					}
				}
				rss, _ := strconv.Atoi(kv["rss_mb"])
				peak, _ := strconv.Atoi(kv["peak_rss_mb"])
				if hwm, _ := strconv.Atoi(kv["vmhwm_mb"]); peak < rss || (hwm != -1 && hwm < rss) {
					t.Errorf("got rss_mb=%d vmhwm_mb=%d peak_rss_mb=%d, want both peaks at least rss_mb", rss, hwm, peak)
				}
			}
		})
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("data dir left behind: %v", left)
	}
}

// runArgs runs the bench command's flags args as the command does: parsed
// by AddFlags, checked by Validate, then Run.
func runArgs(t *testing.T, args []string, stdout, stderr io.Writer) error {
	t.Helper()
	c := NewConfig()
	f := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	c.AddFlags(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	return Run(t.Context(), c, stdout, stderr)
}

// benchTestBlob is the blob of the attachment workloads in TestBench.
const benchTestBlob = 8 << 20

// parseBenchLine splits a line of key=value fields, failing on anything
// else or on a repeated key.
func parseBenchLine(t *testing.T, line string) (map[string]string, []string) {
	t.Helper()
	kv := map[string]string{}
	var keys []string
	for f := range strings.FieldsSeq(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" || v == "" {
			t.Fatalf("field %q of %q: want key=value", f, line)
		}
		if _, dup := kv[k]; dup {
			t.Fatalf("key %q twice in %q", k, line)
		}
		kv[k] = v
		keys = append(keys, k)
	}
	return kv, keys
}

// TestBenchQueryEveryMatch runs Q1 the way the side-by-side comparison
// does (a country matching about 11%, every match returned) and checks the
// count against the generator.
func TestBenchQueryEveryMatch(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"--workloads", "Q1", "--data", t.TempDir(), "--n-query", "3000",
		"--query-country", "France", "--query-limit", "0", "--query-runs", "2"}
	if err := runArgs(t, args, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v; stderr:\n%s", err, stderr.String())
	}
	want := 0
	g := docGen{seed: 1}
	for i := range 3000 {
		if g.doc(i)["locations"].(map[string]any)["country"] == "France" {
			want++
		}
	}
	if want < 250 || want > 420 {
		t.Fatalf("generator: %d of 3000 in France, want about 11%%", want)
	}
	kv, _ := parseBenchLine(t, strings.TrimSpace(stdout.String()))
	if kv["matches"] != strconv.Itoa(want) || kv["runs"] != "2" {
		t.Fatalf("got %q, want matches=%d runs=2", stdout.String(), want)
	}
}

func TestBenchParseWorkloads(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"W1a,W1b,W1c,W1d,Q1", []string{"W1a", "W1b", "W1c", "W1d", "Q1"}},
		{"all", benchWorkloads},
		{"w2,W4", []string{"W2", "W4"}},
		{"q1, w1a,Q1", []string{"Q1", "W1a"}},
		{"MEM", []string{"MEM"}},
		{"a2,A1", []string{"A2", "A1"}},
	}
	for _, tt := range tests {
		got, err := parseWorkloads(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("parseWorkloads(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// TestBenchDocs checks the generator: deterministic per seed and index,
// about 200 bytes of JSON, and exactly 1% in the queried country.
func TestBenchDocs(t *testing.T) {
	g := docGen{seed: 7}
	total, iceland := 0, 0
	for i := range 1000 {
		a, _ := json.Marshal(g.doc(i))
		b, _ := json.Marshal(g.doc(i))
		if !bytes.Equal(a, b) {
			t.Fatalf("doc %d differs between calls: %s vs %s", i, a, b)
		}
		total += len(a)
		if g.doc(i)["locations"].(map[string]any)["country"] == benchCountry {
			iceland++
		}
	}
	if avg := total / 1000; avg < 150 || avg > 250 {
		t.Errorf("got average %d bytes, want about 200", avg)
	}
	if iceland != 10 {
		t.Errorf("got %d of 1000 in %s, want 10", iceland, benchCountry)
	}
}
