package node

import (
	"time"

	"github.com/barrel-db/barrel/node/internal/commit"
)

// Document is a document as read: its id, the revision the reader sees, and
// its body (without reserved fields). Body values are JSON values normalized
// by crdt.Normalize: nil, bool, int64, float64, string, []any, map[string]any.
// The caller owns the returned maps.
type Document struct {
	ID        string
	Rev       string         // hex change id of the winning (last applied) change
	Deleted   bool           // the document is a tombstone
	Body      map[string]any // nil when Deleted
	Conflicts []Conflict     // losing concurrent values, sorted by path then rev
	Revs      []string       // heads of the document's change DAG, sorted
	Seq       uint64         // local sequence number of the last change applied
}

// Conflict is a value that lost to a concurrent write and is kept until a
// later change that saw both resolves it.
type Conflict struct {
	Path    string // JSON pointer; "" is the whole document
	Value   any    // the losing value (absent when Deleted)
	Deleted bool   // the losing write deleted the path/document
	Rev     string // the change that wrote the losing value
}

// DocOp is one document of a Bulk call.
type DocOp struct {
	ID     string
	Body   map[string]any // whole document (Put); ignored when Delete
	Rev    string         // optional base revision
	Delete bool
	// Heads, when set, are the heads of the document the caller read
	// (Document.Revs), in place of Rev: the change's parents, and the
	// state its body is diffed against. A protocol bridge that tracks
	// what its client saw (couch/) writes with them.
	Heads []string
	// Detached: the caller saw none of the document's changes (an edit
	// made elsewhere, on a history this node never had). The change has
	// no parents, so it is concurrent with every change held and merged
	// by the usual rules: a value it displaces is kept in Conflicts.
	Detached bool
	// Attachments, when not nil, are what the document's _attachments
	// become in the same change as Body: each names a blob this database
	// holds (PutBlob; ErrNotFound if it was reclaimed since), and the
	// attachments not listed are removed. Nil leaves them as they are.
	Attachments map[string]AttachmentInfo
}

// Result is the outcome of one write: the document id and its new revision.
type Result struct {
	ID  string
	Rev string
}

// BulkResult is the outcome of one document of a Bulk call.
type BulkResult = commit.Result

// Patch is a partial update: a JSON merge patch (RFC 7396) plus counter
// increments and set additions/removals keyed by JSON pointer.
type Patch = commit.Patch

// Revision is one entry of a document's history: a kept change, or, last,
// the base state compaction folded older changes into (Compacted).
type Revision struct {
	Rev     string
	Parents []string
	Author  string    // empty for the folded base
	Time    time.Time // the change's clock; the base: the latest clock folded
	Seq     uint64    // local sequence; 0 for the folded base
	Ops     int
	Tx      string

	// Set on the folded base only: Rev is the base state's revision, Heads
	// its frontier (the heads it was folded up to), Folded the number of
	// changes folded into it.
	Compacted bool
	Heads     []string
	Folded    uint64
}

// Change is one entry of a database's changes feed.
type Change struct {
	Seq     uint64
	ID      string
	Rev     string
	Deleted bool
}

// DocSummary is one row of a document listing.
type DocSummary struct {
	ID      string
	Rev     string
	Deleted bool
}

// ListOptions selects a range of document ids in id order.
type ListOptions struct {
	Prefix     string
	StartAfter string
	Limit      int // 0 means DefaultListLimit
	Deleted    bool
}

// Cond is one condition of a query.
type Cond struct {
	Path  string // JSON pointer of a scalar leaf
	Op    string // ==, !=, <, <=, >, >=, prefix, exists
	Value any    // scalar; a string for prefix; none (nil) for exists
}

// Query selects documents by conditions on indexed paths (AND of all).
type Query struct {
	Where   []Cond
	OrderBy string
	Desc    bool
	Limit   int
	Cursor  string
}

// QueryResult is a page of query results; Cursor is empty on the last page.
type QueryResult struct {
	Docs   []Document
	Cursor string
}

// DBInfo describes a database. The counts are kept by the writer and
// compaction, so reading them costs nothing; DiskBytes is Pebble's
// estimate for the database's key range.
type DBInfo struct {
	Name           string
	DocCount       int64  // live documents
	UpdateSeq      uint64 // last local sequence number
	Revisions      int64  // history entries kept: changes not folded by compaction
	Tombstones     int64  // deleted documents whose tombstone is kept
	DiskBytes      uint64
	LastCompaction *CompactionStats // nil: never compacted
}

// Info describes the node.
type Info struct {
	PeerID  string
	Version string
	Addrs   []string
	// Components is the state of each network part (absent without
	// networking): which run and which failed, and why.
	Components []Component
	// Store reports the store's troubles; nil when it has had none.
	Store *StoreHealth
}

// StoreHealth is what went wrong in the node's store since it opened.
type StoreHealth struct {
	Corruptions    uint64 // damaged blocks read
	LastCorruption string // which file, what damage
	NoSpace        bool   // the last write was refused for disk space
	Advice         string // what to do
}
