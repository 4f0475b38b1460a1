package sync

import (
	"errors"
	"fmt"
)

var (
	// ErrNoDB: the remote does not have (or will not serve) the database.
	ErrNoDB = errors.New("no such database")
	// ErrForbidden: the peer may not read (server side) or write (client
	// side, returned by Store.Apply) the database. A Store may return it from
	// Feed or Apply; the server answers it with the wire code "forbidden".
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: a change asked for by id is not held. Store.Changes
	// should wrap it for an id it does not hold.
	ErrNotFound = errors.New("change not found")
	// ErrBusy: the server already runs Config.MaxStreams sessions.
	ErrBusy = errors.New("server busy")
	// ErrFrameTooLarge: a frame (or one change that must fit in a frame)
	// exceeds the size limit.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrBadRequest: a malformed frame or message, or one that breaks the
	// protocol's rules (wrong order, out-of-range index, unknown version).
	ErrBadRequest = errors.New("bad request")
	// ErrWrongContentID: a body whose recomputed content id differs from
	// the id that was listed or asked for.
	ErrWrongContentID = errors.New("wrong content id")
	// ErrTooManyMissing: resolving missing parents exceeded
	// Config.MaxMissingRounds or Config.MaxPendingBytes.
	ErrTooManyMissing = errors.New("too many missing parents")
	// ErrInternal: the remote failed for a reason of its own.
	ErrInternal = errors.New("internal error")
	// ErrSnapshotNeeded: the server compacted history the client has not
	// pulled yet (its checkpoint is before the server's horizon): the
	// client must install a snapshot (SnapshotStore) and pull on from it.
	ErrSnapshotNeeded = errors.New("snapshot needed")
	// ErrNotReconciled: Client.Reconcile did not, or not to its end: an
	// empty local database, a checkpoint of the server (listing its feed
	// after it is cheaper), a difference past the session's bounds. The
	// session ended cleanly; pull with version 1. Never sent on the wire.
	ErrNotReconciled = errors.New("reconciliation not used")
	// ErrReconNotReady: the server's reconciliation set is still being
	// built (it opened the database moments ago). A client with a
	// checkpoint of the server lists its feed after it instead of
	// waiting; one without retries later.
	ErrReconNotReady = errors.New("reconciliation set not ready")
	// ErrBlobNotFound: the server does not hold the blob asked for (yet).
	ErrBlobNotFound = errors.New("blob not found")
	// ErrDigestMismatch: a received blob's content does not hash to the
	// digest asked for. BlobStore sinks return it from Commit; nothing is
	// then visible and the partial content is dropped.
	ErrDigestMismatch = errors.New("blob digest mismatch")
)

// Wire error codes. They are part of the protocol: never rename.
const (
	CodeNoDB       = "no_db"
	CodeBadRequest = "bad_request"
	CodeTooLarge   = "too_large"
	CodeInternal   = "internal"
	CodeForbidden  = "forbidden"
	CodeBusy       = "busy"
	CodeNotFound   = "not_found"
	CodeSnapshot   = "snapshot_needed"
	CodeNoBlob     = "no_blob"
	CodeNotReady   = "recon_not_ready"
)

// codes is the one mapping between sentinels and wire codes, used in both
// directions by codeOf and remoteError.
var codes = []struct {
	code string
	err  error
}{
	{CodeNoDB, ErrNoDB},
	{CodeForbidden, ErrForbidden},
	{CodeNotFound, ErrNotFound},
	{CodeSnapshot, ErrSnapshotNeeded},
	{CodeNoBlob, ErrBlobNotFound},
	{CodeBusy, ErrBusy},
	{CodeNotReady, ErrReconNotReady},
	{CodeTooLarge, ErrFrameTooLarge},
	{CodeBadRequest, ErrBadRequest},
	{CodeBadRequest, ErrWrongContentID},
	{CodeInternal, ErrInternal},
}

// codeOf maps an error to the wire code sent for it. Errors without a
// sentinel of this package are "internal".
func codeOf(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return CodeInternal
}

// RemoteError is an error the remote sent in an Error frame. It matches the
// sentinel its code maps to with errors.Is (ErrNoDB for "no_db", ...).
type RemoteError struct {
	Code string
	Text string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("remote: %s: %s", e.Code, e.Text)
}

// Unwrap returns the sentinel of e's code (ErrInternal for unknown codes).
func (e *RemoteError) Unwrap() error {
	for _, c := range codes {
		if c.code == e.Code {
			return c.err
		}
	}
	return ErrInternal
}
