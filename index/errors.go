package index

import "errors"

// ErrBadQuery is returned (wrapped with the detail) by Search for a query it
// refuses before scanning: an unknown op, a non-scalar or missing value, a
// bad JSON pointer, no conditions and no order, a limit out of range, or a
// malformed cursor.
var ErrBadQuery = errors.New("bad query")

// ErrBadPointer is returned (wrapped) by ParsePointer for a string that is
// not an RFC 6901 JSON pointer.
var ErrBadPointer = errors.New("bad JSON pointer")

// ErrCorruptIndex is returned (wrapped) when a key read from the index range
// does not decode as an index key.
var ErrCorruptIndex = errors.New("corrupt index key")
