// Package history rewrites a database's history: compaction (Step folds
// the changes older than the retention horizons into a base state and
// removes old tombstones, MarkSeq keeps the clock-to-seq marks the
// horizons need) and purge (PurgeDoc removes a document and everything
// under its id). Snapshot install, the third history rewrite, is a group
// of the writer (node/internal/commit, install.go).
//
// It owns those rewrites, nothing else: each builds a batch the caller
// commits, as an exclusive job of the writer (commit.Writer.Exclusive), so
// no group is in flight while it reads and rewrites. The database's
// counters (seq, revisions, tombstones, horizon, purge clock) are the
// caller's: a step reports what it did (Result), and node writes the
// metadata into the step's batch before it commits. It reads through Env;
// it does not run goroutines, read the clock or log.
package history
