package gossip

import "errors"

var (
	// ErrInvalidDB: the database name is empty, longer than 128 bytes or
	// contains a '/'.
	ErrInvalidDB = errors.New("invalid database name")
	// ErrNotJoined: the database's topic was not joined.
	ErrNotJoined = errors.New("database not joined")
	// ErrRunning: Run was called while another Run of the same Gossip is
	// still running.
	ErrRunning = errors.New("gossip already running")
	// ErrBadAnnouncement: a message does not decode as a valid Announcement.
	ErrBadAnnouncement = errors.New("bad announcement")
)
