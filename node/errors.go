package node

import (
	"errors"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/blobstore"
	"github.com/barrel-db/barrel/node/internal/commit"
)

var (
	// ErrNotFound: the document or path does not exist.
	ErrNotFound = commit.ErrNotFound
	// ErrDBNotFound: the database does not exist.
	ErrDBNotFound = errors.New("database not found")
	// ErrDBExists: CreateDB of a database that exists.
	ErrDBExists = errors.New("database exists")
	// ErrRevMismatch: a base revision the document never had.
	ErrRevMismatch = commit.ErrRevMismatch
	// ErrOverloaded: the database's write queue is full; retry later.
	ErrOverloaded = commit.ErrOverloaded
	// ErrInvalid: bad input (document id, path, body, query). Wrapped by *InvalidError.
	ErrInvalid = commit.ErrInvalid
	// ErrTooLarge: a write past one of the size or shape limits of
	// crdt/limits.go (docs/design.md, "Limits"): nothing was written. The
	// error is a *crdt.LimitError (errors.As) that names the limit, the
	// path and the sizes. It is crdt.ErrLimit itself, so that a limit
	// reported by any layer matches it.
	ErrTooLarge = crdt.ErrLimit
	// ErrClosed: the node or database is closed.
	ErrClosed = commit.ErrClosed
	// ErrTxAborted: an atomic bulk was not applied because one document failed.
	ErrTxAborted = commit.ErrTxAborted
	// ErrStoreFormat: Open of a data dir written in a store format this
	// binary does not read (a newer barrel's); nothing was changed.
	ErrStoreFormat = errors.New("unsupported store format")
	// ErrCorrupt: the store is damaged. Open returns it for a data dir it
	// cannot open as it was (a damaged MANIFEST or WAL, store files without
	// a MANIFEST, an identity without its store), having changed and
	// deleted nothing; a read returns it for a damaged block, and the rest
	// keeps serving. Recovery: re-sync the database from a peer, or restore
	// the data dir. It is datastore.ErrCorrupt.
	ErrCorrupt = datastore.ErrCorrupt
	// ErrNoSpace: a write refused because the disk is full (or has less
	// free space than the store keeps in reserve); nothing was changed, and
	// writes resume once space is freed. It is datastore.ErrNoSpace.
	ErrNoSpace = datastore.ErrNoSpace
	// ErrInUse: Open of a data dir another process holds open. The error
	// is a *datastore.LockedError, which carries the holder's pid. It is
	// datastore.ErrLocked.
	ErrInUse = datastore.ErrLocked
)

// InvalidError says which input was bad and why. It matches ErrInvalid.
type InvalidError = commit.InvalidError

func invalid(what, format string, args ...any) error { return commit.Invalid(what, format, args...) }

// ErrInvalidConfig: Config.Validate found contradictions.
var ErrInvalidConfig = errors.New("invalid config")

var (
	// ErrNoNetwork: a network call on a node opened without Config.P2P.
	ErrNoNetwork = errors.New("networking is off")
	// ErrDialFailed: Connect could not reach the peer.
	ErrDialFailed = errors.New("dial failed")
)

// ErrNotAllowed: this node may not make the change (SetACL by a node that
// is not the database's owner or an admin).
var ErrNotAllowed = errors.New("not allowed")

// ErrDigestMismatch: attachment content whose SHA-256 differs from the
// digest the caller announced. Nothing is stored.
var ErrDigestMismatch = blobstore.ErrMismatch
