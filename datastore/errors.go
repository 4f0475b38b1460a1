package datastore

import (
	"errors"
	"fmt"

	"github.com/barrel-db/barrel/datastore/tuple"
)

// ErrNotFound is returned by Get when the key does not exist.
var ErrNotFound = errors.New("not found")

// ErrClosed is returned by Store methods called after Close.
var ErrClosed = errors.New("datastore closed")

// ErrBatchDone is returned by Commit on a batch that was already committed
// or closed.
var ErrBatchDone = errors.New("batch already committed or closed")

// ErrCorruptKey is returned by the Read functions (ReadString, ReadUint64,
// ReadValue) when their input is not a valid encoding.
var ErrCorruptKey = tuple.ErrCorrupt

// ErrBadValue is returned by AppendValue for values that are not JSON
// scalars (or are NaN).
var ErrBadValue = tuple.ErrBadValue

// ErrBadDurability is returned by ParseDurability for an unknown name.
var ErrBadDurability = errors.New("unknown durability")

// ErrNoIndex: Get on a batch made by NewWriteBatch.
var ErrNoIndex = errors.New("batch has no index")

// ErrCorrupt: the store is damaged (a bad checksum in a MANIFEST, WAL or
// sstable). Open returns it for a store it cannot open as it was, having
// changed and deleted nothing; reads return it for a damaged block, and the
// rest of the store keeps serving. Recovery: restore the data dir, or
// re-sync the affected databases from a peer.
var ErrCorrupt = errors.New("store damaged")

// ErrNoSpace: the disk holding the store is full, or has less free space
// than the store keeps in reserve. The write was refused and changed
// nothing; writes resume once space is freed.
var ErrNoSpace = errors.New("not enough free disk space")

// ErrLocked: Open of a store that another process holds open. Wrapped by
// *LockedError.
var ErrLocked = errors.New("store in use by another process")

// LockedError says which store is held and, when it wrote its pid, by
// which process. It matches ErrLocked.
type LockedError struct {
	Dir string
	PID int // 0 when unknown
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("%s is in use by another process (pid %d)", e.Dir, e.PID)
	}
	return fmt.Sprintf("%s is in use by another process", e.Dir)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// ErrNoStore: Open with Config.MustExist found no store to open.
var ErrNoStore = errors.New("no store")
