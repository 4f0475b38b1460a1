package datastore

import "fmt"

// Durability says when Batch.Commit returns relative to the data reaching
// stable storage.
type Durability int

const (
	// DurabilitySync fsyncs the WAL before Commit returns: a committed batch
	// survives kill -9 and power loss. It is the zero value and the default.
	DurabilitySync Durability = iota
	// DurabilityBatch writes the WAL without fsync: a committed batch
	// survives a process crash, but power loss or an OS crash can lose the
	// most recent commits (whole batches, never part of one).
	DurabilityBatch
)

// String returns the name ParseDurability accepts.
func (d Durability) String() string {
	switch d {
	case DurabilitySync:
		return "sync"
	case DurabilityBatch:
		return "batch"
	default:
		return fmt.Sprintf("Durability(%d)", int(d))
	}
}

// ParseDurability parses "sync" or "batch". Any other input returns an error
// wrapping ErrBadDurability.
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "sync":
		return DurabilitySync, nil
	case "batch":
		return DurabilityBatch, nil
	default:
		return 0, fmt.Errorf("parse durability %q (want \"sync\" or \"batch\"): %w", s, ErrBadDurability)
	}
}
