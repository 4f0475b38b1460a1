package crdt

import "errors"

var (
	// ErrInvalidChange: a change fails validation (bad path, op, value, size).
	ErrInvalidChange = errors.New("invalid change")
	// ErrInvalidValue: a value that is not JSON (NaN, unsupported type, too deep).
	ErrInvalidValue = errors.New("invalid value")
	// ErrInvalidPath: a malformed JSON pointer.
	ErrInvalidPath = errors.New("invalid path")
	// ErrMissingParent: a change whose parent is not among the changes given.
	ErrMissingParent = errors.New("missing parent")
	// ErrBadSignature: the signature does not verify for the change's author.
	ErrBadSignature = errors.New("bad signature")
)
