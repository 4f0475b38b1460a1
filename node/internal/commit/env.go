package commit

import (
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// Env is what the commit pipeline needs of its database: the committed
// reads, the signer and the clock, the authorizer and the hooks it calls
// after a group commits. node's DB implements it; the pipeline's tests
// implement it over a bare store.
//
// Every method is called on the writer goroutine (or the goroutine
// committing its group, for Committed and Answered), never concurrently
// with another call that moves the same state.
type Env interface {
	// Name is the database's name, written into every local change.
	Name() string
	// Author is this node's peer id, the author of its local changes.
	Author() peer.ID
	// Signer signs local changes.
	Signer() crdt.Signer
	// Clock is the database's hybrid logical clock, owned by the writer.
	Clock() *crdt.Clock
	// Now is the wall clock.
	Now() time.Time
	// Store is the database's store; Keys its key layout.
	Store() *datastore.Store
	Keys() layout.Keys
	Logger() *slog.Logger

	// The committed state, as the store holds it.
	State(doc string) (*crdt.State, error)          // crdt.NewState() when absent
	DocSeq(doc string) (uint64, error)              // the seq of the document record (0 when absent)
	Fold(doc string) (*crdt.State, crdt.HLC, error) // nil when the history is whole
	Change(id crdt.ID) (*crdt.Change, error)        // ErrNotFound when absent
	History(doc string) ([]crdt.ID, error)          // the kept changes, in local order
	Rejected(id crdt.ID) (bool, error)              // a received change was rejected
	Counters() Counters                             // as last committed
	Purged() crdt.HLC                               // latest clock of a purged tombstone
	Owner() peer.ID                                 // the database's owner ("" for none yet)
	CheckpointEpoch() uint64                        // checkpoint resets so far (a pull's checkpoint from before one is dropped)

	// Hooks.
	Committed(c Committed)                       // a group with changes committed: publish it
	Answered(ok, failed int)                     // the writes of one request were answered
	Refused(from peer.ID, counts map[string]int) // received changes rejected: count and log them once
	FoldWritten()                                // a fold record is in a batch about to commit
	// Views reports whether live queries follow the database: the groups
	// prepared while it is true carry their documents' views (Committed.Views).
	Views() bool
	// MaxClockDrift bounds how far ahead of Now a received clock may be
	// and still move the database's clock.
	MaxClockDrift() time.Duration
}

// Counters are the database's counts and digest as of a commit.
type Counters struct {
	Seq     uint64  // last local sequence number
	Count   int64   // live documents
	Revs    int64   // history entries held
	Tombs   int64   // tombstones held
	Digest  crdt.ID // XOR of every change id held
	NChange uint64  // changes held
}

// Committed is what a committed group publishes.
type Committed struct {
	Counters
	ACLChanged bool // the group wrote a change of the _acl document
	Written    int  // changes (and snapshot records) written
	Took       time.Duration
	// Views are the documents as each merged change left them, in feed
	// order, when Env.Views was true as the group was prepared (else nil).
	// A feed entry written otherwise (a snapshot's) has none: Views are a
	// shortcut for a reader that would read the documents back, not the
	// feed.
	Views []View
}

// View is a document as one committed change left it: its own copy
// (crdt.State.View), safe to read once the writer has moved on.
type View struct {
	Seq   uint64      // the change's feed seq, the document record's seq
	Doc   string      // the document id
	State *crdt.State // as DecodeView reads the document record
	Size  int         // bytes of the encoded state, to bound what a reader holds
}
