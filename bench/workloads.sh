# The workload definition of the side-by-side comparison, sourced by
# compare.sh and smoke.sh so that barrel and every peer run the same one.
# Each variable can be set in the environment; the defaults are issue 5's:
#   W1a N sequential writes; W1b N writes from WRITERS concurrent writers;
#   W1c N_BULK documents in bulk calls of 1,000; Q1 N_QUERY documents, then
#   /locations/country == QUERY_COUNTRY (France: 10,858 of 100,000, about
#   1/10), every match returned (QUERY_LIMIT=0), QUERY_RUNS times; W2
#   N_REPL documents to a fresh empty peer over loopback; W3 N_LATENCY
#   writes GAP_MS apart, each timed until visible on the receiver.
RUNS=${RUNS:-3}
N=${N:-5000}
N_BULK=${N_BULK:-50000}
N_QUERY=${N_QUERY:-100000}
N_REPL=${N_REPL:-100000}
N_LATENCY=${N_LATENCY:-200}
GAP_MS=${GAP_MS:-20}
WRITERS=${WRITERS:-64}
QUERY_COUNTRY=${QUERY_COUNTRY:-France}
QUERY_LIMIT=${QUERY_LIMIT:-0}
QUERY_RUNS=${QUERY_RUNS:-10}
SEED=${SEED:-1}
WORKLOADS=${WORKLOADS:-W1a,W1b,W1c,Q1,W2,W3}

# sizes N N_BULK N_QUERY N_REPL N_LATENCY: the size flags every system takes.
sizes() {
  echo --n "$1" --n-bulk "$2" --n-query "$3" --n-repl "$4" --n-latency "$5" \
    --writers "$WRITERS" --query-country "$QUERY_COUNTRY" --query-limit "$QUERY_LIMIT" --query-runs "$QUERY_RUNS"
}

# run_barrel BIN DURABILITY WORKLOADS N N_BULK N_QUERY N_REPL N_LATENCY:
# barrel's side (barrel-peer bench, two in-process peers on 127.0.0.1 with
# no mDNS and no DHT for W2 and W3), lines prefixed with system=barrel-DURABILITY.
run_barrel() {
  local bin=$1 durability=$2 workloads=$3
  shift 3
  # shellcheck disable=SC2046
  "$bin" bench --workloads "$workloads" --seed "$SEED" --durability "$durability" \
    --latency-gap "${GAP_MS}ms" $(sizes "$@") |
    sed -u "s/^/system=barrel-$durability /"
}
