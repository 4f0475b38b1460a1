// Package commit is a database's writer: the single goroutine that mutates
// it (DESIGN.md invariant 2). Local writes, changes received from peers,
// sync checkpoints and rejections are requests (Submit); compaction, purge,
// snapshot install and ACL reconsideration are exclusive jobs (Exclusive)
// run between two group commits. Each group of requests is merged
// (crdt rules), recorded (change, feed, history, state, index delta) and
// committed in one synced batch before any caller is answered, and
// published through Env.Committed after.
//
// It owns the commit pipeline, nothing else: what it needs of its
// database (the committed reads, the signer, the clock, the owner, the
// hooks that publish a commit and count rejections) comes through Env,
// which node implements (node/commit_env.go) and the package's tests
// implement over a bare store. It does not open stores, talk to peers,
// serve reads or keep the database's counters: Env.Counters gives them
// and Env.Committed receives them.
//
// Limits: one Writer per database, Run on one goroutine; Submit and
// Exclusive are safe for concurrent use. Group methods are for the
// writer goroutine only (an exclusive job's NewGroup, CommitNow).
package commit
