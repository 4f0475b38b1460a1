package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/barrel-db/barrel/datastore"
)

// Config configures a node. It is data a user writes down (see
// configs/barrel.yaml); the zero value of every field means its default.
type Config struct {
	DataDir    string     // required: holds the identity key and the store
	Durability string     // "sync" (default): fsync before a write is acknowledged; "batch": no fsync
	WriteQueue int        // capacity of each database's write queue, in requests; default 4096
	MaxBatch   int        // most requests merged into one group commit; default 1024
	CacheBytes int64      // Pebble block cache, in bytes; default 128 MiB (the bulk of a busy node's memory)
	MemTable   int64      // Pebble memtable, in bytes; default 32 MiB (up to 4 are held while flushes catch up)
	P2P        *P2PConfig // the node as a libp2p peer; nil: no networking
	Retention  *Retention // history kept per database; nil: DefaultRetention
	// PendingPeerChanges and PendingPeerBytes bound, per database and per
	// peer they came from, the received changes of incomplete transactions
	// kept (on disk) until the rest arrives: more are refused
	// (ErrOverloaded, retried by the next pull). A transaction larger than
	// these bounds cannot replicate. Defaults 10,000 changes and 64 MiB.
	PendingPeerChanges int
	PendingPeerBytes   int64

	// Not data: nil means the default.
	Logger        *slog.Logger          // default slog.Default()
	Registerer    prometheus.Registerer // default: a registry of the node's own (Gatherer)
	Now           func() time.Time      // default time.Now
	PebbleOptions *pebble.Options       // tests: an in-memory or crashable file system
}

// Defaults.
const (
	DefaultWriteQueue = 4096
	DefaultMaxBatch   = 1024
	DefaultListLimit  = 100

	DefaultPendingPeerChanges = 10_000
	DefaultPendingPeerBytes   = 64 << 20
	MaxListLimit              = 10000
)

// Validate fills defaults and reports every contradiction at once.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	if c.Durability == "" {
		c.Durability = "sync"
	}
	if _, err := datastore.ParseDurability(c.Durability); err != nil {
		errs = append(errs, err)
	}
	if c.WriteQueue == 0 {
		c.WriteQueue = DefaultWriteQueue
	}
	if c.WriteQueue < 1 {
		errs = append(errs, fmt.Errorf("write queue %d: must be positive", c.WriteQueue))
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.CacheBytes < 0 || c.MemTable < 0 {
		errs = append(errs, fmt.Errorf("cache bytes %d, memtable %d: must not be negative", c.CacheBytes, c.MemTable))
	}
	if c.PendingPeerChanges == 0 {
		c.PendingPeerChanges = DefaultPendingPeerChanges
	}
	if c.PendingPeerBytes == 0 {
		c.PendingPeerBytes = DefaultPendingPeerBytes
	}
	if c.PendingPeerChanges < 0 || c.PendingPeerBytes < 0 {
		errs = append(errs, fmt.Errorf("pending peer changes %d, bytes %d: must not be negative", c.PendingPeerChanges, c.PendingPeerBytes))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, fmt.Errorf("max batch %d: must be positive", c.MaxBatch))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Retention != nil {
		if err := c.Retention.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.P2P != nil {
		if err := c.P2P.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

func (c *Config) retention() Retention {
	if c.Retention == nil {
		return DefaultRetention
	}
	return *c.Retention
}
