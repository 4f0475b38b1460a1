package datastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	crerrors "github.com/cockroachdb/errors"

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
	// ReserveBytes is the free disk space, in bytes, below which Commit
	// refuses writes with ErrNoSpace, so that Pebble keeps room to flush
	// its memtables and to write its MANIFEST. 0 means two memtables plus
	// 4 MiB; negative turns the check off (then a full disk stalls commits
	// until a flush succeeds).
	ReserveBytes int64
	// MustExist makes Open refuse (ErrNoStore) to create a new store: the
	// caller knows one was there.
	MustExist bool
	// Logger receives Pebble's messages, at a bounded rate. nil means
	// slog.Default().
	Logger *slog.Logger
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
	cache     *pebble.Cache // ours to release, nil when the caller gave one
	lock      *pebble.Lock
	fs        vfs.FS // Pebble's file system: Ingest writes its tables there
	dir       string
	writeOpts *pebble.WriteOptions
	reserve   uint64 // free bytes Commit keeps; 0: no check
	health    health
	failed    atomic.Pointer[error] // set when a commit failed inside Pebble: no more writes
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// pidFile is the file, in the store's directory, where the process holding
// the store's lock writes its pid, so that a second Open can say who.
const pidFile = "barrel.pid"

// Open opens (creating if needed) the store in dir. With a memory FS in
// cfg.PebbleOptions, dir names the directory inside that FS.
//
// Open refuses, changing and deleting nothing, a store it cannot open as it
// was: a damaged MANIFEST, a newest WAL with damage followed by acknowledged
// records, or Pebble files without a MANIFEST (errors wrap ErrCorrupt,
// naming the file); a store another process holds (*LockedError); and,
// with cfg.MustExist, a missing store (ErrNoStore).
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
		// Pebble fills defaults into the options it is given; clone so
		// the caller can reuse theirs (tests reopen with the same options).
		po = cfg.PebbleOptions.Clone()
	} else {
		po = &pebble.Options{}
	}
	if po.MemTableSize == 0 && cfg.MemTableBytes > 0 {
		po.MemTableSize = uint64(cfg.MemTableBytes)
	}
	tune(po)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Store{dir: dir, writeOpts: wo}
	s.health.closing = make(chan struct{})
	pl := &pebbleLogger{log: log.With("dir", dir)}
	po.Logger = pl
	el := s.health.listener(pl)
	if po.EventListener != nil {
		tee := pebble.TeeEventListener(*po.EventListener, *el)
		el = &tee
	}
	po.EventListener = el
	if po.Cache == nil {
		s.cache = pebble.NewCache(cacheBytes)
		po.Cache = s.cache
	}
	po.EnsureDefaults()
	s.fs = po.FS
	switch {
	case cfg.ReserveBytes > 0:
		s.reserve = uint64(cfg.ReserveBytes)
	case cfg.ReserveBytes == 0:
		s.reserve = 2*po.MemTableSize + 4<<20
	}
	if err := s.open(po, cfg.MustExist, cfg.Durability == DurabilityBatch, pl); err != nil {
		s.release()
		return nil, fmt.Errorf("open datastore %s: %w", dir, err)
	}
	tmp := po.FS.PathJoin(dir, ingestDir)
	if err := errors.Join(po.FS.RemoveAll(tmp), po.FS.MkdirAll(tmp, 0o755)); err != nil {
		_ = s.db.Close()
		s.release()
		return nil, fmt.Errorf("open datastore %s: empty %s: %w", dir, tmp, err)
	}
	s.ds, _ = dspebble.NewDatastore(dir, dspebble.WithPebbleDB(s.db), dspebble.WithPebbleWriteOptions(wo)) // never fails given a DB
	return s, nil
}

// open locks the directory, checks what is there and opens Pebble on it.
func (s *Store) open(po *pebble.Options, mustExist, lax bool, log *pebbleLogger) error {
	fs, dir := po.FS, s.dir
	if _, err := fs.Stat(dir); err != nil && mustExist {
		return ErrNoStore // and create nothing
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := pebble.LockDirectory(dir, fs)
	if err != nil {
		// Another process holds the lock (EAGAIN), or this one does
		// (Pebble refuses a second lock in the process; our pid file
		// says it is us).
		pid := readPID(fs, fs.PathJoin(dir, pidFile))
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EACCES) || pid == os.Getpid() {
			return &LockedError{Dir: dir, PID: pid}
		}
		return fmt.Errorf("lock: %w", err)
	}
	s.lock = lock
	po.Lock = lock
	exists, err := checkExisting(fs, dir)
	if err != nil {
		return err
	}
	if !exists && mustExist {
		return ErrNoStore
	}
	if exists && lax {
		if err := s.keepDamagedWAL(fs, log); err != nil {
			return err
		}
	}
	// A store that exists must never be recreated: if Pebble finds no
	// MANIFEST after all, it fails instead of starting empty.
	po.ErrorIfNotExists = exists
	before := pebble.FormatDefault
	if exists {
		if desc, err := pebble.Peek(dir, fs); err == nil {
			before = desc.FormatMajorVersion
		}
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return classifyOpen(err)
	}
	if before < pebble.FormatWALSyncChunks {
		// The WAL Pebble opened was created before the format was raised,
		// without the synced offsets that let replay tell damage from a
		// torn tail. Reopen so the WAL in use has them.
		if err := db.Close(); err != nil {
			return fmt.Errorf("close after the format upgrade: %w", err)
		}
		po.ErrorIfNotExists = true
		if db, err = pebble.Open(dir, po); err != nil {
			return classifyOpen(err)
		}
	}
	s.db = db
	// Written once open, so a refused open changes nothing; left in place
	// at Close: whoever holds the lock rewrote it.
	if f, err := fs.Create(fs.PathJoin(dir, pidFile), vfs.WriteCategoryUnspecified); err == nil {
		_, _ = fmt.Fprintf(f, "%d\n", os.Getpid()) // best effort: only used to name the holder
		_ = f.Close()
	}
	return nil
}

// damagedDir is where, under DurabilityBatch, Open keeps a copy of a WAL
// with damage followed by records, before Pebble replays it up to the
// damage and deletes it.
const damagedDir = "damaged"

// keepDamagedWAL checks the newest WAL for damage followed by records (see
// walDamage). Under DurabilityBatch such damage is what a power loss can
// leave, so the store opens, as Pebble would; but it says so (an Error
// line, Health), and keeps a copy of the log in damagedDir.
func (s *Store) keepDamagedWAL(fs vfs.FS, log *pebbleLogger) error {
	names, err := fs.List(s.dir)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	var newest string
	var num uint64
	for _, name := range names {
		base, ok := strings.CutSuffix(name, ".log")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(base, 10, 32); err == nil && n >= num {
			newest, num = name, n
		}
	}
	if newest == "" {
		return nil
	}
	path := fs.PathJoin(s.dir, newest)
	at, after, err := walDamage(fs, path, uint32(num))
	if err != nil || after == 0 {
		return nil // unreadable: Pebble's replay reports it
	}
	keep := fs.PathJoin(s.dir, damagedDir)
	if err := fs.MkdirAll(keep, 0o755); err != nil {
		return fmt.Errorf("keep the damaged WAL %s: %w", path, err)
	}
	dst := fs.PathJoin(keep, fmt.Sprintf("%s.%d", newest, time.Now().Unix()))
	if err := vfs.CopyAcrossFS(fs, path, fs, dst); err != nil {
		return fmt.Errorf("keep the damaged WAL %s: %w", path, err)
	}
	what := fmt.Sprintf("%s: damage at byte %d followed by %d records, which durability batch cannot prove were synced; they are dropped, a copy of the log is in %s", path, at, after, dst)
	s.health.noteCorruption(what)
	log.log.Error("store damaged: the newest WAL has damage followed by records; replaying up to the damage", "path", path, "offset", at, "records_after", after, "copy", dst)
	return nil
}

// classifyOpen turns Pebble's open error into ours: damage wraps ErrCorrupt
// with Pebble's details (which WAL, which offset).
func classifyOpen(err error) error {
	if pebble.IsCorruptionError(err) {
		if d := crerrors.FlattenDetails(err); d != "" {
			return fmt.Errorf("%w: %v (%s); nothing was changed or deleted", ErrCorrupt, err, strings.ReplaceAll(d, "\n", "; "))
		}
		return fmt.Errorf("%w: %v; nothing was changed or deleted", ErrCorrupt, err)
	}
	if isNoSpace(err) {
		return fmt.Errorf("%w: %v", ErrNoSpace, err)
	}
	return err
}

// readPID returns the pid written in path, 0 if none.
func readPID(fs vfs.FS, path string) int {
	f, err := fs.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	b := make([]byte, 32)
	n, _ := f.Read(b)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	if pid != os.Getpid() && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return 0 // a stale file: the holder has not written its pid yet
	}
	return pid
}

// release frees what open acquired, after the DB is closed (or was never
// opened).
func (s *Store) release() {
	if s.lock != nil {
		_ = s.lock.Close()
		s.lock = nil
	}
	if s.cache != nil {
		s.cache.Unref()
		s.cache = nil
	}
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
		return nil, fmt.Errorf("get %x: %w", key, readErr(err))
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
		return false, fmt.Errorf("has %x: %w", key, readErr(err))
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

// closeFlushWait bounds how long Close waits for the memtables to be
// flushed before closing anyway (the WAL holds their contents).
const closeFlushWait = 5 * time.Second

// closeFailedWait bounds Close after Pebble failed a commit.
const closeFailedWait = 5 * time.Second

// Close flushes and closes the store. It is idempotent: later calls return
// the first call's result. Batches and iterators must be closed first.
// When the disk is short of space it skips the flush (which could only
// fail, and retry until space is freed): the WAL holds every committed
// batch, and the next Open replays it.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.health.closing)
		// No flush after a failed commit: Pebble's log writer is broken
		// then, and rotating it for the flush panics past any recover.
		if s.failed.Load() == nil && s.hasSpace() {
			select {
			case <-s.asyncFlush():
			case <-time.After(closeFlushWait):
			}
		}
		if s.failed.Load() != nil {
			// Pebble failed a commit and its pipeline may be stuck: do not
			// let Close hang on it. The WAL holds every acknowledged write.
			done := make(chan error, 1)
			go func() { done <- s.db.Close() }()
			select {
			case err := <-done:
				if err != nil {
					s.closeErr = fmt.Errorf("close datastore: %w", err)
				}
				s.release()
			case <-time.After(closeFailedWait):
				s.closeErr = fmt.Errorf("close datastore: Pebble did not close within %v after a failed commit; the next open replays the WAL", closeFailedWait)
			}
			return
		}
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close datastore: %w", err)
		}
		s.release()
	})
	return s.closeErr
}

// asyncFlush starts a flush and returns a channel closed when it is done
// (or could not start).
func (s *Store) asyncFlush() <-chan struct{} {
	ch, err := s.db.AsyncFlush()
	if err != nil || ch == nil {
		done := make(chan struct{})
		close(done)
		return done
	}
	return ch
}

// hasSpace reports whether the disk has more than the reserve free (true
// when the check is off or the file system cannot say).
func (s *Store) hasSpace() bool {
	if s.reserve == 0 {
		return true
	}
	u, err := s.fs.GetDiskUsage(s.dir)
	if err != nil {
		return true
	}
	return u.AvailBytes > s.reserve
}

// tune sets what the caller left unset to values for a write-heavy
// document store: larger memtables (fewer, larger flushes) and a deeper L0
// before compaction, which cut write amplification for small keys.
func tune(po *pebble.Options) {
	// WAL-sync chunks record in each WAL chunk how far the log was synced,
	// which lets replay tell damage followed by acknowledged records (an
	// error: ErrCorrupt) from the torn tail a crash leaves (the end of the
	// log). Older formats read both as the end, dropping what follows.
	if po.FormatMajorVersion < pebble.FormatWALSyncChunks {
		po.FormatMajorVersion = pebble.FormatWALSyncChunks
	}
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

// writable returns nil when a commit may go ahead: the store has not failed
// a commit inside Pebble, and the disk has more than the reserve free. It
// checks the free space on every commit (one statfs), so a write is refused
// with ErrNoSpace, changing nothing, before Pebble runs out of room for its
// WAL, its flushes and its MANIFEST, which it cannot survive cleanly.
func (s *Store) writable() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	if s.reserve == 0 {
		return nil
	}
	u, err := s.fs.GetDiskUsage(s.dir)
	if err != nil {
		return nil // the file system cannot say (a memory FS): no check
	}
	// Hysteresis: once refused, writes resume only when half the reserve
	// again is free, so a disk that hovers at the line (Pebble deleting an
	// obsolete WAL or sstable frees a few megabytes) does not flip between
	// refused and resumed on every commit.
	need := s.reserve
	if s.health.noSpace.Load() {
		need += s.reserve / 2
	}
	if u.AvailBytes <= need {
		s.health.noSpace.Store(true)
		return fmt.Errorf("%w: %d bytes free on the disk of %s, %d kept in reserve", ErrNoSpace, u.AvailBytes, s.dir, need)
	}
	s.health.noSpace.Store(false)
	return nil
}

// failWrites records that Pebble failed a commit it cannot recover from
// (its commit pipeline is stuck): every later write fails at once with the
// same error, reads go on, and a restart replays the WAL.
func (s *Store) failWrites(fe *fatalError) error {
	var err error
	if isNoSpace(fe) {
		s.health.noSpace.Store(true)
		err = fmt.Errorf("%w: %v; the store takes no more writes until the node restarts", ErrNoSpace, fe)
	} else {
		err = fmt.Errorf("store failed a commit: %v; the store takes no more writes until the node restarts", fe)
	}
	s.failed.CompareAndSwap(nil, &err)
	return fmt.Errorf("commit batch: %w", err)
}

// readErr marks Pebble's corruption errors with ErrCorrupt.
func readErr(err error) error {
	if pebble.IsCorruptionError(err) {
		return fmt.Errorf("%w: %v; re-sync the database from a peer", ErrCorrupt, err)
	}
	return err
}
