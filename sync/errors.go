package sync

import "errors"

var (
	// ErrNoDB: the remote does not have (or will not serve) the database.
	ErrNoDB = errors.New("no such database")
)
