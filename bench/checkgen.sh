#!/usr/bin/env bash
# checkgen.sh DOCS SEED [COUNT]: checks that the first COUNT (default 2000)
# documents of DOCS (written by gen.mjs) are byte for byte the documents
# barrel-peer bench generates, by compiling docGen out of
# internal/bench/bench.go in a temporary module. It fails if docGen
# changes shape without gen.mjs following.
set -euo pipefail
docs=$1 seed=$2 count=${3:-2000}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
  echo 'package main'
  echo 'import ("encoding/json"; "fmt"; "math"; "math/rand/v2"; "os"; "strconv")'
  grep -E '^\s*bench(MatchEvery|Country)\s*=' "$root/internal/bench/bench.go" | sed 's/^\s*/const /; s/\/\/.*//'
  sed -n '/^func docID/p; /^type docGen/,/^\/\/ rssMB/p' "$root/internal/bench/bench.go" | grep -v '^// rssMB'
  cat <<'GO'
func main() {
	seed, _ := strconv.ParseUint(os.Args[1], 10, 64)
	n, _ := strconv.Atoi(os.Args[2])
	g := docGen{seed: seed}
	enc := json.NewEncoder(os.Stdout)
	for i := range n {
		d := g.doc(i)
		d["_id"] = docID(i)
		if err := enc.Encode(d); err != nil {
			panic(err)
		}
	}
}
GO
} > "$tmp/main.go"
printf 'module checkgen\ngo 1.24\n' > "$tmp/go.mod"
(cd "$tmp" && ${GO:-go} run . "$seed" "$count") > "$tmp/go.ndjson"
if ! head -n "$count" "$docs" | cmp -s - "$tmp/go.ndjson"; then
  echo "checkgen: $docs differs from barrel-peer bench's documents (seed $seed); first difference:" >&2
  head -n "$count" "$docs" | diff - "$tmp/go.ndjson" | head -4 >&2
  exit 1
fi
echo "checkgen: first $count documents identical to barrel-peer bench's (seed $seed)" >&2
