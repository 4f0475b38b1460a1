package datastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dspebble "github.com/ipfs/go-ds-pebble"
)

// DefaultCacheBytes is the block cache size used when Config.CacheBytes is 0.
const DefaultCacheBytes = 128 << 20

// Config configures Open. The zero value is a valid, durable configuration.
type Config struct {
	// Durability says whether Commit fsyncs. Zero value: DurabilitySync.
	Durability Durability
	// CacheBytes is the size of Pebble's block cache in bytes.
	// 0 means DefaultCacheBytes (128 MiB). Ignored when PebbleOptions.Cache is set.
	CacheBytes int64
	// MemTableBytes is the size of one Pebble memtable; up to four may be
	// held while flushes catch up. 0 means 32 MiB. Ignored when
	// PebbleOptions sets MemTableSize.
	MemTableBytes int64
	// PebbleOptions are passed to Pebble (copied first; the caller's value is
	// not modified). nil means Pebble's defaults. Tests set FS to
	// vfs.NewMem() or vfs.NewCrashableMem().
	PebbleOptions *pebble.Options
}

// Store is an open Pebble store. It is safe for concurrent use, except that
// no method may race with Close.
type Store struct {
	ds        *dspebble.Datastore
	db        *pebble.DB
	fs        vfs.FS // Pebble's file system: Ingest writes its tables there
	dir       string
	writeOpts *pebble.WriteOptions
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store in dir. With a memory FS in
// cfg.PebbleOptions, dir names the directory inside that FS.
func Open(dir string, cfg Config) (*Store, error) {
	var wo *pebble.WriteOptions
	switch cfg.Durability {
	case DurabilitySync:
		wo = pebble.Sync
	case DurabilityBatch:
		wo = pebble.NoSync
	default:
		return nil, fmt.Errorf("open datastore %s: durability %d: %w", dir, int(cfg.Durability), ErrBadDurability)
	}
	if cfg.MemTableBytes < 0 {
		return nil, fmt.Errorf("open datastore %s: negative memtable size %d", dir, cfg.MemTableBytes)
	}
	if cfg.CacheBytes < 0 {
		return nil, fmt.Errorf("open datastore %s: negative cache size %d", dir, cfg.CacheBytes)
	}
	cacheBytes := cfg.CacheBytes
	if cacheBytes == 0 {
		cacheBytes = DefaultCacheBytes
	}
	var po *pebble.Options
	if cfg.PebbleOptions != nil {
		// go-ds-pebble fills defaults into the options it is given; clone so
		// the caller can reuse theirs (tests reopen with the same options).
		po = cfg.PebbleOptions.Clone()
	} else {
		po = &pebble.Options{}
	}
	if po.MemTableSize == 0 && cfg.MemTableBytes > 0 {
		po.MemTableSize = uint64(cfg.MemTableBytes)
	}
	tune(po)
	d, err := dspebble.NewDatastore(dir,
		dspebble.WithPebbleOpts(po),
		dspebble.WithPebbleWriteOptions(wo),
		dspebble.WithCacheSize(cacheBytes),
	)
	if err != nil {
		return nil, fmt.Errorf("open datastore %s: %w", dir, err)
	}
	// NewDatastore filled po's defaults: FS is set.
	s := &Store{ds: d, db: d.DB, fs: po.FS, dir: dir, writeOpts: wo}
	tmp := po.FS.PathJoin(dir, ingestDir)
	if err := errors.Join(po.FS.RemoveAll(tmp), po.FS.MkdirAll(tmp, 0o755)); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("open datastore %s: empty %s: %w", dir, tmp, err)
	}
	return s, nil
}

// DB returns the underlying Pebble database, for callers that need an
// operation Store does not offer. It must not be closed by the caller.
func (s *Store) DB() *pebble.DB { return s.db }

// Get returns a copy of the value stored under key, or an error wrapping
// ErrNotFound. The caller owns the returned slice.
func (s *Store) Get(key []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("get %x: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %x: %w", key, err)
	}
	out := bytes.Clone(v)
	if out == nil {
		out = []byte{}
	}
	_ = closer.Close() // Pebble's closer only releases a reference; it returns nil.
	return out, nil
}

// Has reports whether key exists.
func (s *Store) Has(key []byte) (bool, error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	_, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("has %x: %w", key, err)
	}
	_ = closer.Close()
	return true, nil
}

// DiskUsage returns the bytes the store occupies on disk (sstables, WAL and
// other files Pebble owns).
func (s *Store) DiskUsage() (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	return s.db.Metrics().DiskSpaceUsage(), nil
}

// Flush writes the memtables to sstables, so that EstimateDiskUsage counts
// every key.
func (s *Store) Flush() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// EstimateDiskUsage returns an estimate of the bytes on disk of the keys in
// [lo, hi): the sstables overlapping it (memtables are not counted).
func (s *Store) EstimateDiskUsage(lo, hi []byte) (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	return s.db.EstimateDiskUsage(lo, hi)
}

// Compact compacts the key range [lo, hi) (nil hi: to the end of the
// keyspace), reclaiming the space of deleted and overwritten keys. It blocks
// until the compaction is done.
func (s *Store) Compact(lo, hi []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if hi == nil {
		// Pebble wants an end key; use the successor of the last key.
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo})
		if err != nil {
			return fmt.Errorf("compact: find last key: %w", err)
		}
		if it.Last() {
			hi = append(bytes.Clone(it.Key()), 0)
		}
		if err := it.Close(); err != nil {
			return fmt.Errorf("compact: find last key: %w", err)
		}
		if hi == nil {
			return nil // Nothing at or after lo.
		}
	}
	if lo == nil {
		lo = []byte{}
	}
	if bytes.Compare(lo, hi) >= 0 {
		return nil
	}
	if err := s.db.Compact(context.Background(), lo, hi, true); err != nil {
		return fmt.Errorf("compact [%x, %x): %w", lo, hi, err)
	}
	return nil
}

// Datastore returns a go-datastore view of the store whose keys all live
// under the go-datastore key namespace (for example "/p2p"), for libp2p
// components that expect a ds.Batching. Writes through it use the store's
// durability. Its keys are go-datastore keys ("/p2p/..."), so engine keys
// must not start with the namespace's bytes; engine key prefixes start with a
// byte other than '/'.
func (s *Store) Datastore(ns string) ds.Batching {
	return namespace.Wrap(s.ds, ds.NewKey(ns))
}

// Close flushes and closes the store. It is idempotent: later calls return
// the first call's result. Batches and iterators must be closed first.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if err := s.ds.Close(); err != nil {
			s.closeErr = fmt.Errorf("close datastore: %w", err)
		}
	})
	return s.closeErr
}

// tune sets what the caller left unset to values for a write-heavy
// document store: larger memtables (fewer, larger flushes) and a deeper L0
// before compaction, which cut write amplification for small keys.
func tune(po *pebble.Options) {
	if po.MemTableSize == 0 {
		po.MemTableSize = 32 << 20
	}
	if po.MemTableStopWritesThreshold == 0 {
		po.MemTableStopWritesThreshold = 4
	}
	if po.L0CompactionThreshold == 0 {
		po.L0CompactionThreshold = 8
	}
	if po.L0StopWritesThreshold == 0 {
		po.L0StopWritesThreshold = 32
	}
	if po.LBaseMaxBytes == 0 {
		po.LBaseMaxBytes = 256 << 20
	}
	// Bloom filters: replication asks "do I hold this change?" for every
	// id a peer lists, mostly about keys that are absent; without filters
	// each such Get reads sstable blocks.
	for i := range po.Levels {
		if po.Levels[i].FilterPolicy == nil {
			po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		}
	}
}
