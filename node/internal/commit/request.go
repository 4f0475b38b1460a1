package commit

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
)

// Request is one caller's work for the writer: local writes, changes
// received from a peer, or a sync checkpoint.
type Request struct {
	Docs   []DocWrite
	Atomic bool           // all of Docs (or of Remote) or none
	Remote []*crdt.Change // changes received from a peer, parents first
	From   peer.ID        // that peer
	Unpend [][]byte       // pending-transaction keys the remote changes settle
	// Checkpoint, when set, is the whole request: a sync checkpoint,
	// written by the writer so that it lands after every change it covers
	// (DESIGN.md invariant 3) and never after a reset of the checkpoints.
	Checkpoint *Checkpoint
	// Then, when set on a request of local writes, is called on the writer
	// goroutine once its writes are merged, before the group commits, with
	// their results and the state of any document of the group; the local
	// records it returns (key -> value) are written in the same batch, so
	// they are durable exactly when the writes are. It must be quick and
	// must not call into the database.
	Then func(results []Result, state func(doc string) *crdt.State) map[string][]byte

	reply chan Response // buffered 1
}

// Checkpoint is a puller's position in a peer's feed.
type Checkpoint struct {
	Peer  peer.ID
	Seq   uint64
	Epoch uint64 // Env.CheckpointEpoch when the pull read its checkpoint
}

// DocWrite is one local write of a document.
type DocWrite struct {
	ID   string
	Body map[string]any // Put: the whole body, normalized
	Rev  string         // base revision; "" means the current heads
	// Base, when set, are the heads the caller read (Rev is then unused):
	// the change's parents, and the state it is diffed against.
	Base []crdt.ID
	// Detached: the caller saw none of the document's changes: the change
	// has no parents and is diffed against an empty document.
	Detached bool
	// Attachments, when not nil, are what the document's _attachments
	// become with a Put (name -> normalized entry), in the same change;
	// the blobs are the caller's to have stored and pinned.
	Attachments map[string]any
	Patch       *Patch // normalized
	Delete      bool
	ACL         bool // written by SetACL: the only local write allowed to ACLDocID
	// Ops, when set, builds the write's operations against the document's
	// state and base body (attachments: one entry of _attachments).
	Ops func(st *crdt.State, base map[string]any) ([]crdt.Op, error)
}

// Patch is a partial update: a JSON merge patch (RFC 7396) plus counter
// increments and set additions/removals keyed by JSON pointer.
type Patch struct {
	Merge  map[string]any   // RFC 7396: null deletes, objects recurse, other values replace
	Incr   map[string]any   // path -> int64 or float64 delta
	Add    map[string][]any // path -> elements added to the set at path
	Remove map[string][]any // path -> elements removed from the set at path
	Rev    string           // optional base revision
}

// Result is the outcome of one document write.
type Result struct {
	ID    string
	Rev   string
	Error error
}

// Response answers a Request.
type Response struct {
	Results []Result // one per DocWrite
	Applied int      // remote changes that were new
	Err     error
}

// Rejection reasons of received changes (barrel_node_rejected_changes_total).
// acl.Policy.MayWrite and acl.CheckChange return their own.
const (
	RejectParent = "rejected_parent" // descends from a rejected change
	RejectStale  = "stale"           // did not see history folded by compaction
	RejectTx     = "rejected_tx"     // in a transaction another change of which was rejected
	RejectLimit  = "limit"           // past a writer limit (crdt.Change.CheckLimits)
)
