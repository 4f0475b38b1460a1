package commit

import (
	"errors"
	"fmt"
)

// The errors a write is answered with. node re-exports them under the
// same names: they are its public errors.
var (
	// ErrNotFound: the document or change does not exist.
	ErrNotFound = errors.New("not found")
	// ErrRevMismatch: a base revision the document never had.
	ErrRevMismatch = errors.New("unknown revision")
	// ErrOverloaded: the write queue is full; retry later.
	ErrOverloaded = errors.New("write queue full")
	// ErrInvalid: bad input. Wrapped by *InvalidError.
	ErrInvalid = errors.New("invalid input")
	// ErrClosed: the database is closed.
	ErrClosed = errors.New("closed")
	// ErrTxAborted: an atomic request was not applied because one of its
	// writes failed.
	ErrTxAborted = errors.New("transaction aborted")
)

// InvalidError says which input was bad and why. It matches ErrInvalid.
type InvalidError struct {
	What   string // "doc id", "path", "body", "query", "db name"
	Reason string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("invalid %s: %s", e.What, e.Reason) }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Invalid returns an *InvalidError.
func Invalid(what, format string, args ...any) error {
	return &InvalidError{What: what, Reason: fmt.Sprintf(format, args...)}
}
