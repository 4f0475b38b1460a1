#!/usr/bin/env bash
# LAN test: three peers in their own network namespaces on one bridge find
# each other by mDNS (no bootstrap addresses, no DHT) and converge; then one
# peer's link is cut, both sides write, the link returns and they converge
# again. Needs root and iproute2. Everything it creates (namespaces, links,
# processes, temp dirs) is removed at the end, whatever happens.
#
# Addresses: 10.231.7.1-3/24, assigned inside namespaces this script
# creates; nothing here talks to any other address.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
	echo "lan-test: needs root and iproute2" >&2
	exit 1
fi
BIN=${BIN:-bin/barrel-peer}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/barrel-peer
BIN=$(realpath "$BIN")
TAG="blan$$"
BR="${TAG}br"
WORK=$(mktemp -d -t barrel-lan.XXXXXX)
PIDS=()

cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	# Anything else still running in the namespaces goes too.
	for i in 1 2 3; do
		ip netns pids "${TAG}$i" 2>/dev/null | xargs -r kill 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [ $rc -ne 0 ]; then
		for f in "$WORK"/*.log; do echo "--- $f"; tail -n 30 "$f"; done
	fi
	for i in 1 2 3; do ip netns del "${TAG}$i" 2>/dev/null || true; done
	ip netns del "$BR" 2>/dev/null || true
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT INT TERM

ip netns add "$BR"
ip -n "$BR" link add br0 type bridge
ip -n "$BR" link set br0 up
for i in 1 2 3; do
	ns="${TAG}$i"
	ip netns add "$ns"
	ip link add "veth$i" netns "$ns" type veth peer name "port$i" netns "$BR"
	ip -n "$BR" link set "port$i" master br0 up
	ip -n "$ns" addr add "10.231.7.$i/24" dev "veth$i"
	ip -n "$ns" link set "veth$i" up
	ip -n "$ns" link set lo up
	ip -n "$ns" route add 224.0.0.0/4 dev "veth$i"
done

inns() { local i=$1; shift; ip netns exec "${TAG}$i" "$@"; }
cli() { local i=$1; shift; inns "$i" "$BIN" --api http://127.0.0.1:7080 "$@"; }

for i in 1 2 3; do
	# Not through inns: $! must be the peer itself (ip netns exec execs
	# it), not a subshell whose kill would leave the peer running.
	ip netns exec "${TAG}$i" "$BIN" run --data "$WORK/peer$i" --http 127.0.0.1:7080 \
		--listen "/ip4/10.231.7.$i/tcp/4001" --no-dht --allow-private-addrs \
		--heartbeat 500ms --anti-entropy 1s 2>"$WORK/peer$i.log" &
	PIDS+=($!)
done
for i in 1 2 3; do
	for _ in $(seq 100); do cli "$i" dbs >/dev/null 2>&1 && break; sleep 0.1; done
	cli "$i" create-db lan >/dev/null
done

# converge: poll (30 s at most) until all three show the same document text.
converge() {
	local doc=$1 want=$2
	for _ in $(seq 300); do
		local a b c
		a=$(cli 1 get lan "$doc" --conflicts 2>/dev/null || true)
		b=$(cli 2 get lan "$doc" --conflicts 2>/dev/null || true)
		c=$(cli 3 get lan "$doc" --conflicts 2>/dev/null || true)
		if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$b" = "$c" ] && grep -q "$want" <<<"$a"; then
			echo "$a"
			return 0
		fi
		sleep 0.1
	done
	echo "lan-test: peers did not converge on $doc ($want)" >&2
	echo "1: $a"; echo "2: $b"; echo "3: $c"
	return 1
}

cli 1 put lan doc '{"name":"found by mdns","n":1}' >/dev/null
converge doc "found by mdns" >/dev/null
echo "lan-test: peers found each other by mDNS and converged"

ip -n "${TAG}3" link set veth3 down
cli 1 patch lan doc '{"left":"written on 1","n":2}' >/dev/null
cli 3 patch lan doc '{"right":"written on 3","n":3}' >/dev/null
ip -n "${TAG}3" link set veth3 up
ip -n "${TAG}3" route replace 224.0.0.0/4 dev veth3
final=$(converge doc "written on 3")
grep -q "written on 1" <<<"$final"
grep -q '"_conflicts"' <<<"$final"
echo "lan-test: after the link came back all three converged:"
echo "$final"
echo "lan-test: 1 passed, 0 failed"
