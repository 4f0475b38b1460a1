// Package crdt holds barrel's merge rules: changes, operations, hybrid logical
// clocks, and the materialized state of a document. It is a pure core: no
// goroutines, no clock reads, no logging, no storage, no network. Callers hand
// it inputs (a change, a document's state, a wall-clock reading) and persist
// what it returns.
//
// # Model
//
// Every write is an immutable Change: database, document id, parents (the
// document heads the writer saw), a hybrid logical clock stamp, the author's
// peer id, a list of operations, an optional transaction tag and the author's
// signature. Its ID is the SHA-256 of its canonical (deterministic CBOR)
// encoding without the signature. A document's changes form a causal DAG.
//
// The state of a document is defined as the result of replaying all of its
// changes in one deterministic order: a topological order of the DAG in which
// ties are broken by (clock, author, id). Because every replica sorts the same
// set the same way, replicas holding the same changes hold byte-identical
// states, whatever the arrival order (DESIGN.md invariant 1). Replay needs the
// causal relation ("did this change see that one?") to detect conflicts and to
// run observed-remove sets; [Replay] computes it from the DAG.
//
// Applying a change is incremental in the common case: when the change's
// parents are exactly the document's heads it saw everything, sorts last, and
// [State.ApplyNext] applies it on top of the stored state. Otherwise the caller
// replays the document's changes ([Replay]); the result is the same by
// construction.
//
// # Merge rules
//
//   - set and delete of a path: the last writer in replay order wins. A value
//     displaced by a write that did not see it is kept in Conflicts until a
//     later change that saw it resolves it. Any change resolves every conflict
//     whose revision it saw (an empty change is enough).
//   - incr adds to a number; concurrent increments add up. A set that sorts
//     after increments replaces the counter. An increment that meets a
//     non-number (a string, an array, an object, or a non-object on the way
//     to its path) replaces it with the delta and keeps the replaced value in
//     Conflicts, even if it saw the write that made it: it is never silent.
//   - add/remove on a path make it an observed-remove set (add wins over a
//     concurrent remove); it reads as a sorted array.
//   - deleteDoc deletes the document unless a write it did not see exists; a
//     concurrent write keeps the document alive (update wins over delete) and
//     the delete is shown as a conflict at path "".
//
// # Size and shape limits
//
// limits.go defines every limit once (MaxDepth, MaxArrayElements,
// MaxObjectKeys, MaxStringBytes, MaxPathBytes, MaxDocBytes, MaxStateBytes,
// MaxChangeBytes, MaxOps, MaxParents, MaxIDBytes). Seal refuses a change past
// its limits and [CheckBody] a document past its own, both with a
// *[LimitError] matching [ErrLimit]; [Change.CheckLimits] is the check a
// receiver runs on a change a peer sends. The decoders are never tighter:
// [Decode] accepts a margin more than a writer may write, and [DecodeState]
// and [Unmarshal] read what this node stored bounded by its bytes only, so
// whatever was accepted stays readable (DESIGN.md invariant 8).
//
// Other limits: arrays are atomic values (set as a whole); replay of a
// document costs O(n log n + n²/64) in its number of changes, which history
// compaction bounds.
package crdt
