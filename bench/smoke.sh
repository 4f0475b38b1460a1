#!/usr/bin/env bash
# smoke.sh: barrel's side of the side-by-side comparison at 1,000 documents
# (make bench-smoke, part of make test), so that the harness cannot rot. It
# needs neither npm nor bench/node_modules; with node on the PATH it also
# renders the report (bench/report.mjs, no npm package) into bench/out/smoke.
# Fails unless every workload prints its figures for both durabilities.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/barrel-peer}
N=1000 N_BULK=1000 N_QUERY=1000 N_REPL=1000 N_LATENCY=${N_LATENCY:-50} RUNS=1
. bench/workloads.sh
out=bench/out/smoke
mkdir -p "$out"
for durability in sync batch; do
  run_barrel "$BIN" "$durability" "$WORKLOADS" "$N" "$N_BULK" "$N_QUERY" "$N_REPL" "$N_LATENCY"
done | sed -u 's/^/run=1 /' | tee "$out/results.txt"
want=$(( 2 * $(tr ',' '\n' <<<"$WORKLOADS" | grep -c .) ))
got=$(grep -c 'peak_rss_mb=' "$out/results.txt" || true)
if [ "$got" -ne "$want" ]; then
  echo "bench-smoke: got $got result lines, want $want" >&2
  exit 1
fi
# Q1 matches what the generator puts in QUERY_COUNTRY (France: 102 of 1,000 with seed 1).
if [ "$QUERY_COUNTRY/$SEED" = France/1 ] && ! grep -q 'workload=Q1 n=1000 matches=102 ' "$out/results.txt"; then
  echo "bench-smoke: Q1 did not return the 102 documents in France" >&2
  exit 1
fi
if command -v node >/dev/null; then
  node bench/report.mjs --results "$out/results.txt" --svg "$out/chart.svg" > "$out/table.md"
  grep -q '| W3 | 50 | ms, median |' "$out/table.md" || { echo "bench-smoke: report has no W3 row" >&2; exit 1; }
fi
echo "bench-smoke: ok ($got lines)"
