package sync

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
)

// Store is what the sync protocol needs from the node. node.Node satisfies
// it; sync never imports node. Every method is safe for concurrent use.
type Store interface {
	// ReadAuthorizer is asked before every session (pull or snapshot) is
	// served: a Store cannot serve a peer by leaving the check out.
	ReadAuthorizer
	// Feed lists up to limit entries of db's changes feed with a sequence
	// number above since, in feed order (a causal order: a change is always
	// after its parents). Entries of documents that fail f (nil: all pass)
	// are skipped but still advance last. last is the sequence number the
	// listing reached (the db's last seq when the listing is complete).
	// ErrNoDB when the db does not exist (or the peer may not read it).
	//
	// The server calls Feed again while it returns fewer than limit
	// entries, and reports the end of the feed when a call makes no
	// progress: no entries and last == since. So Feed may stop early (a
	// filter that skips most entries) as long as last moves forward.
	Feed(ctx context.Context, db string, since uint64, limit int, f *Filter) (entries []Entry, last uint64, err error)
	// Has reports, for each id, whether db holds that change.
	Has(ctx context.Context, db string, ids []crdt.ID) ([]bool, error)
	// Changes returns the stored encodings of the given changes of db, in
	// the order asked. A missing id is an error wrapping ErrNotFound. The
	// server asks for at most 16 ids at a time.
	Changes(ctx context.Context, db string, ids []crdt.ID) ([][]byte, error)
	// Apply verifies (content id, signature) and applies changes received
	// from a peer through the same write path as local writes. Changes are
	// given parents first; ones already held are skipped. A change whose
	// parents are neither held nor earlier in the slice makes Apply return a
	// *MissingError naming them, after applying the changes before it.
	// Changes of one transaction are applied all together or not at all:
	// an incomplete transaction is kept pending until its last change comes.
	// Returns how many changes were new.
	Apply(ctx context.Context, db string, from peer.ID, changes []*crdt.Change) (applied int, err error)
	// Checkpoint is the remote feed sequence up to which db has pulled
	// everything from remote (0 if never).
	Checkpoint(ctx context.Context, db string, remote peer.ID) (uint64, error)
	// SetCheckpoint durably records a checkpoint.
	SetCheckpoint(ctx context.Context, db string, remote peer.ID, seq uint64) error
	// Databases lists the databases this node replicates, with the filter
	// of a partial view (nil: everything).
	Databases(ctx context.Context) ([]Replicated, error)
}

// ReadAuthorizer decides which peers may read a database. It is part of
// Store and of BlobStore, so every store states its rule: one that serves
// everyone says so by returning nil.
type ReadAuthorizer interface {
	// AuthorizeRead returns nil when remote may read db. An error
	// (ErrForbidden, ErrNoDB) refuses the session or blob before anything
	// of db is sent, and reaches the client as its wire code.
	AuthorizeRead(ctx context.Context, db string, remote peer.ID) error
}

// Replicated is one database a node replicates.
type Replicated struct {
	DB     string
	Filter *Filter // nil: the whole database
}

// Entry is one feed entry as the sync protocol lists it.
type Entry struct {
	Seq uint64
	ID  crdt.ID
	Doc string
	// From is the peer the store received the change from ("" for a local
	// write). A server does not list a change back to the peer it came
	// from: that peer holds it, and listing it would only make the peer
	// check ids it has (an echo after every sync).
	From peer.ID
}

// Filter selects the documents of a partial view: all of IDPrefix (if set)
// and all of Where (if any) must hold on the document's current body.
type Filter struct {
	_        struct{} `cbor:",toarray"`
	IDPrefix string
	Where    []Cond
}

// Cond is one path condition of a filter (the query language's ==, !=, <,
// <=, >, >=, prefix, exists).
type Cond struct {
	_     struct{} `cbor:",toarray"`
	Path  string
	Op    string
	Value any
}

// MissingError says which parents a change needs before it can apply.
type MissingError struct {
	IDs []crdt.ID
}

func (e *MissingError) Error() string {
	if len(e.IDs) == 0 {
		return "missing parent changes"
	}
	return fmt.Sprintf("%d missing parent changes (first %s)", len(e.IDs), e.IDs[0])
}
