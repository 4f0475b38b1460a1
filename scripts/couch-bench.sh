#!/usr/bin/env bash
# couch-bench.sh: P1 and P2 of issue 12, barrel's /couch/ against
# express-pouchdb (LevelDB) in the same run, both driven by PouchDB 9 on
# LevelDB in Node (couch/js/replicate.mjs):
#   P1  a PouchDB holding N documents pushes them (one-shot replication)
#   P2  a fresh PouchDB pulls the N documents
# Prints one bench line per workload and target, and the ratio barrel /
# express-pouchdb (docs/s; higher is better for barrel), and the daemon's
# peak RSS. Everything runs on 127.0.0.1 and stops by itself.
#
#   BIN=bin/barrel-peer N=100000 bash scripts/couch-bench.sh
set -euo pipefail
BIN=${BIN:-bin/barrel-peer}
N=${N:-100000}
BATCH=${BATCH:-500}
work=$(mktemp -d)
js=$(cd "$(dirname "$0")/../couch/js" && pwd)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

"$BIN" run --data "$work/barrel" --http 127.0.0.1:0 --http-addr-file "$work/addr" \
	--no-mdns --no-dht --listen /ip4/127.0.0.1/tcp/0 >"$work/barrel.log" 2>&1 &
bpid=$!
pids+=("$bpid")
mkdir -p "$work/express"
coproc EXPRESS { cd "$js" && exec node server.mjs 0 "$work/express"; }
pids+=("$EXPRESS_PID")
read -r _ eport <&"${EXPRESS[0]}"
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
barrel="http://$(cat "$work/addr")/couch"
express="http://127.0.0.1:$eport"

step_ms() { # the ms of step $2 in result line $1
	node -e 'const r=JSON.parse(process.argv[1]); if(!r.ok){console.error(r.errors); process.exit(1)} console.log(r.steps.find(s=>s.op===process.argv[2]).ms)' "$1" "$2"
}
rep() { (cd "$js" && node replicate.mjs "$@"); }

rep --remote "$barrel" --db seed --local "$work/src" --op write --n "$N" >/dev/null
declare -A p1 p2
for target in barrel express; do
	url=${!target}
	r=$(rep --remote "$url" --db "p$N" --local "$work/src" --op push --batch-size "$BATCH")
	p1[$target]=$(step_ms "$r" push)
	r=$(rep --remote "$url" --db "p$N" --local "$work/dst-$target" --op pull --batch-size "$BATCH")
	p2[$target]=$(step_ms "$r" pull)
done
rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$bpid/status")
for w in p1 p2; do
	declare -n m=$w
	b=$(awk -v n="$N" -v ms="${m[barrel]}" 'BEGIN{printf "%d", n/(ms/1000)}')
	e=$(awk -v n="$N" -v ms="${m[express]}" 'BEGIN{printf "%d", n/(ms/1000)}')
	W=${w^^}
	echo "workload=$W target=barrel n=$N seconds=$(awk -v ms="${m[barrel]}" 'BEGIN{printf "%.2f", ms/1000}') docs_per_s=$b"
	echo "workload=$W target=express-pouchdb n=$N seconds=$(awk -v ms="${m[express]}" 'BEGIN{printf "%.2f", ms/1000}') docs_per_s=$e"
	echo "workload=$W ratio=$(awk -v b="$b" -v e="$e" 'BEGIN{printf "%.2f", b/e}') barrel_peak_rss_mb=$rss"
done

# P3: live, 200 writes 20 ms apart in PouchDB client 1 (synced with
# barrel A), seen in client 2 (synced with barrel B); A and B replicate
# over libp2p on loopback.
"$BIN" run --data "$work/b2" --http 127.0.0.1:0 --http-addr-file "$work/addr2" \
	--no-mdns --no-dht --listen /ip4/127.0.0.1/tcp/0 >"$work/b2.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do [ -s "$work/addr2" ] && break; sleep 0.1; done
a="http://$(cat "$work/addr")" b2="http://$(cat "$work/addr2")"
curl -sf -XPUT "$a/dbs/live" >/dev/null
curl -sf -XPUT "$b2/dbs/live" >/dev/null
maddr=$(curl -sf "$a/" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log((j.addrs||j.addresses)[0])})')
curl -sf -XPOST "$b2/peers" -d "{\"addr\":\"$maddr\"}" >/dev/null
rep --remote "$b2/couch" --db live --op latency --role reader --n 200 --prefix w --timeout-ms 60000 >"$work/reader" &
reader=$!
rep --remote "$a/couch" --db live --op latency --role writer --n 200 --prefix w --interval-ms 20 >/dev/null
wait "$reader"
node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); const s=r.steps[0]; if(!r.ok){console.error(r.errors);process.exit(1)} console.log(`workload=P3 writes=200 interval_ms=20 seen=${s.docs_read} median_ms=${s.median_ms} p99_ms=${s.p99_ms} max_ms=${s.max_ms}`)' "$work/reader"
