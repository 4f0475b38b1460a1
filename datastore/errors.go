package datastore

import (
	"errors"

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
