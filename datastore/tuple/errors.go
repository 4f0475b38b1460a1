package tuple

import "errors"

// ErrCorrupt is returned by ReadString, ReadUint64 and ReadValue when their
// input is not a valid encoding.
var ErrCorrupt = errors.New("corrupt tuple encoding")

// ErrBadValue is returned by AppendValue for values that are not JSON
// scalars (or are NaN).
var ErrBadValue = errors.New("not an encodable scalar")
