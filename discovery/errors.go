package discovery

import "errors"

var (
	// ErrNoPeerID: an address lacks its /p2p/<id> part.
	ErrNoPeerID = errors.New("address has no /p2p peer id")
	// ErrSelf: the address is this host's own.
	ErrSelf = errors.New("address is our own")
	// ErrRunning: Run was called while another Run of the same Discovery is
	// still running.
	ErrRunning = errors.New("discovery already running")
)
