#!/usr/bin/env bash
# barrel demo: three peers on loopback replicate a database; one goes
# offline, both sides edit the same document, it comes back, and every peer
# shows the same merged document and the same conflict.
#
# Everything runs on 127.0.0.1 with --no-mdns --no-dht; every process this
# script starts is stopped when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/barrel-peer}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/barrel-peer
WORK=$(mktemp -d -t barrel-demo.XXXXXX)
declare -A PID

cleanup() {
	for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# wait_file FILE: until a peer has written its address file (10 s at most).
wait_file() {
	for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done
	echo "demo: $1 did not appear; logs in $WORK" >&2
	exit 1
}

# start NAME [run flags...]: a peer with its own data dir and log.
start() {
	local name=$1
	shift
	rm -f "$WORK/$name.http" "$WORK/$name.p2p"
	local net=(--p2p-addr-file "$WORK/$name.p2p" --no-mdns --no-dht
		--listen /ip4/127.0.0.1/tcp/0 --heartbeat 500ms --anti-entropy 1s)
	[[ " $* " == *" --no-network "* ]] && net=()
	"$BIN" run --data "$WORK/$name" --http 127.0.0.1:0 \
		--http-addr-file "$WORK/$name.http" "${net[@]}" "$@" 2>>"$WORK/$name.log" &
	PID[$name]=$!
	wait_file "$WORK/$name.http"
}

api() { echo "http://$(cat "$WORK/$1.http")"; }
p2p() { head -n1 "$WORK/$1.p2p"; }
cli() { local name=$1; shift; "$BIN" --api "$(api "$name")" "$@"; }

# until NAME DOC JQ-FREE-PATTERN: poll until the peer's document matches.
until_doc() {
	local name=$1 doc=$2 pattern=$3
	for _ in $(seq 150); do
		if cli "$name" get demo "$doc" --conflicts 2>/dev/null | grep -q "$pattern"; then return 0; fi
		sleep 0.1
	done
	echo "demo: $name never showed $pattern in $doc" >&2
	exit 1
}

say "starting peers A, B, C on 127.0.0.1 (B dials A, C dials B)"
start A
wait_file "$WORK/A.p2p"
start B --bootstrap "$(p2p A)"
wait_file "$WORK/B.p2p"
start C --bootstrap "$(p2p B)"
for n in A B C; do cli "$n" create-db demo >/dev/null; done
cli A id

say "A writes a document"
cli A put demo berlin '{"name":"Berlin","country":"Germany","color":"blue"}'
until_doc B berlin Berlin
until_doc C berlin Berlin
echo "B reads:"; cli B get demo berlin
echo "C reads (through B: A and C never met):"; cli C get demo berlin

say "C goes offline (restarted without networking); both sides edit"
kill "${PID[C]}"; wait "${PID[C]}" 2>/dev/null || true
start C --no-network
cli C patch demo berlin '{"color":"green","population":3645000}'
cli A patch demo berlin '{"color":"red","mayor":"Wegner"}'
echo "A now:"; cli A get demo berlin
echo "C now (offline):"; cli C get demo berlin

say "C comes back online"
kill "${PID[C]}"; wait "${PID[C]}" 2>/dev/null || true
start C --bootstrap "$(p2p B)"
for n in A B C; do
	until_doc "$n" berlin population
	until_doc "$n" berlin mayor
done
until_doc A berlin '"_conflicts": \[$'
for n in A B C; do
	echo "--- $n:"
	cli "$n" get demo berlin --conflicts
done
say "every peer shows the same merged document: both sides' new fields kept,"
say "one color wins by the same rule everywhere, the other is in _conflicts"
