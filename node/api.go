package node

import (
	"time"
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
	Path    string `json:"path"`              // JSON pointer; "" is the whole document
	Value   any    `json:"value,omitempty"`   // the losing value (absent when Deleted)
	Deleted bool   `json:"deleted,omitempty"` // the losing write deleted the path/document
	Rev     string `json:"rev"`               // the change that wrote the losing value
}

// DocOp is one document of a Bulk call.
type DocOp struct {
	ID     string
	Body   map[string]any // whole document (Put); ignored when Delete
	Rev    string         // optional base revision
	Delete bool
}

// Result is the outcome of one write: the document id and its new revision.
type Result struct {
	ID  string `json:"id"`
	Rev string `json:"rev"`
}

// BulkResult is the outcome of one document of a Bulk call.
type BulkResult struct {
	ID    string `json:"id"`
	Rev   string `json:"rev,omitempty"`
	Error error  `json:"-"`
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

// Revision is one entry of a document's history: a kept change, or, last,
// the base state compaction folded older changes into (Compacted).
type Revision struct {
	Rev     string    `json:"rev"`
	Parents []string  `json:"parents"`
	Author  string    `json:"author,omitempty"` // empty for the folded base
	Time    time.Time `json:"time"`             // the change's clock; the base: the latest clock folded
	Seq     uint64    `json:"seq"`              // local sequence; 0 for the folded base
	Ops     int       `json:"ops"`
	Tx      string    `json:"tx,omitempty"`

	// Set on the folded base only: Rev is the base state's revision, Heads
	// its frontier (the heads it was folded up to), Folded the number of
	// changes folded into it.
	Compacted bool     `json:"compacted,omitempty"`
	Heads     []string `json:"heads,omitempty"`
	Folded    uint64   `json:"folded,omitempty"`
}

// Change is one entry of a database's changes feed.
type Change struct {
	Seq     uint64 `json:"seq"`
	ID      string `json:"id"`
	Rev     string `json:"rev"`
	Deleted bool   `json:"deleted,omitempty"`
}

// DocSummary is one row of a document listing.
type DocSummary struct {
	ID      string `json:"id"`
	Rev     string `json:"rev"`
	Deleted bool   `json:"deleted,omitempty"`
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
	Path  string `json:"path"`            // JSON pointer of a scalar leaf
	Op    string `json:"op"`              // ==, !=, <, <=, >, >=, prefix, exists
	Value any    `json:"value,omitempty"` // scalar; a string for prefix; none (nil) for exists
}

// Query selects documents by conditions on indexed paths (AND of all).
type Query struct {
	Where   []Cond `json:"where"`
	OrderBy string `json:"order_by,omitempty"`
	Desc    bool   `json:"desc,omitempty"`
	Limit   int    `json:"limit,omitempty"`
	Cursor  string `json:"cursor,omitempty"`
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
	Name           string           `json:"name"`
	DocCount       int64            `json:"doc_count"`  // live documents
	UpdateSeq      uint64           `json:"update_seq"` // last local sequence number
	Revisions      int64            `json:"revisions"`  // history entries kept: changes not folded by compaction
	Tombstones     int64            `json:"tombstones"` // deleted documents whose tombstone is kept
	DiskBytes      uint64           `json:"disk_bytes"`
	LastCompaction *CompactionStats `json:"last_compaction"` // nil: never compacted
}

// Info describes the node.
type Info struct {
	PeerID  string   `json:"peer_id"`
	Version string   `json:"version"`
	Addrs   []string `json:"addresses"`
	// Components is the state of each network part (absent without
	// networking): which run and which failed, and why.
	Components []Component `json:"components,omitempty"`
	// Store reports the store's troubles; nil when it has had none.
	Store *StoreHealth `json:"store,omitempty"`
}

// StoreHealth is what went wrong in the node's store since it opened.
type StoreHealth struct {
	Corruptions    uint64 `json:"corruptions"`               // damaged blocks read
	LastCorruption string `json:"last_corruption,omitempty"` // which file, what damage
	NoSpace        bool   `json:"no_space"`                  // the last write was refused for disk space
	Advice         string `json:"advice"`                    // what to do
}
