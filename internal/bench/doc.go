// Package bench is the workloads of `barrel-peer bench`: write, query,
// memory, replication, compaction, attachment, live-query, mesh and
// regulation measurements, each on a fresh node in a temporary data dir,
// each printing one line of key=value pairs (docs/benchmarks.md describes
// the keys).
//
// It owns the workloads, their flags (Config.AddFlags), the checks on them
// (Config.Validate) and the output lines (Run); cmd/barrel-peer only wires
// the command and maps a refused flag to its usage exit code. It drives
// node and httpapi as an embedding program would (and sync's client
// directly for R2's flooding peer, which must not keep checkpoints) and is
// imported by nothing but the command. It lives apart from the daemon's command
// package so that the daemon's flags, signals and exit codes read without
// a thousand lines of measurement beside them.
//
// The top-level bench/ directory holds the side-by-side harness
// (PouchDB, OrbitDB) that runs this package's workloads through the
// binary; bench/checkgen.sh compiles docGen out of bench.go, so docGen
// stays self-contained there, between docID and rssMB.
package bench
