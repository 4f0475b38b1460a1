package datastore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ingestDir is the directory, inside the store's, where Ingest writes its
// table files before they join the store. Open empties it: what is there
// belongs to an ingest that a crash cut short.
const ingestDir = "ingest"

// ingestFileBytes is the size at which an Ingest starts a new table file.
const ingestFileBytes = 64 << 20

// Ingest writes keys straight into table files and, on Commit, adds them to
// the store in one atomic step. Their bytes are written once, where a
// batch writes them to the log and again when the memtable is flushed: the
// way to store large sequential content such as blob chunks. Keys must be
// set in strictly ascending order, and no batch may write keys inside
// their range meanwhile (the store would have to flush its memtable first,
// which is correct but slow). An Ingest is not safe for concurrent use;
// the caller must Commit or Close it.
type Ingest struct {
	s     *Store
	w     *sstable.Writer
	paths []string // table files written, the last one open while w != nil
	err   error    // first error: Set and Commit return it
	done  bool
}

// NewIngest returns an empty Ingest.
func (s *Store) NewIngest() *Ingest {
	in := &Ingest{s: s}
	if s.closed.Load() {
		in.err = ErrClosed
	}
	return in
}

// Set adds key = value. Keys must come in strictly ascending order. The
// key and value are copied.
func (in *Ingest) Set(key, value []byte) error {
	if in.err != nil {
		return in.err
	}
	if in.done {
		return ErrBatchDone
	}
	if in.w == nil {
		if err := in.open(); err != nil {
			in.err = err
			return err
		}
	}
	if err := in.w.Set(key, value); err != nil {
		in.err = fmt.Errorf("ingest set %x: %w", key, err)
		return in.err
	}
	if in.w.Raw().EstimatedSize() >= ingestFileBytes {
		in.err = in.finishFile()
	}
	return in.err
}

// open starts the next table file.
func (in *Ingest) open() error {
	fs := in.s.fs
	var id [8]byte
	_, _ = rand.Read(id[:])
	path := fs.PathJoin(in.s.dir, ingestDir, hex.EncodeToString(id[:])+".sst")
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("ingest: create %s: %w", path, err)
	}
	in.paths = append(in.paths, path)
	in.w = sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{
		TableFormat: in.s.db.FormatMajorVersion().MaxTableFormat(),
		// The content is the caller's (blobs: mostly compressed already);
		// compressing it costs CPU for nothing.
		Compression: sstable.NoCompression,
		BlockSize:   256 << 10,
	})
	return nil
}

// finishFile completes the open table file (synced by its writer).
func (in *Ingest) finishFile() error {
	w := in.w
	in.w = nil
	if err := w.Close(); err != nil {
		return fmt.Errorf("ingest: finish table: %w", err)
	}
	return nil
}

// Commit adds every key set to the store, atomically and durably (the
// tables and the store's manifest are synced, whatever the store's
// durability). An Ingest with no keys commits nothing. The table files are
// removed either way.
func (in *Ingest) Commit(ctx context.Context) error {
	if in.done {
		return ErrBatchDone
	}
	defer in.Close()
	if in.err != nil {
		return in.err
	}
	if in.w != nil {
		if err := in.finishFile(); err != nil {
			return err
		}
	}
	if len(in.paths) == 0 {
		return nil
	}
	if in.s.closed.Load() {
		return ErrClosed
	}
	if err := in.s.db.Ingest(ctx, in.paths); err != nil {
		return fmt.Errorf("ingest %d tables: %w", len(in.paths), err)
	}
	return nil
}

// Close abandons what was not committed and removes the table files. It is
// idempotent.
func (in *Ingest) Close() {
	if in.done {
		return
	}
	in.done = true
	if in.w != nil {
		_ = in.w.Close() // abandoned: its error does not matter
		in.w = nil
	}
	for _, p := range in.paths {
		// A file left behind is removed by the next Open.
		_ = in.s.fs.Remove(p)
	}
	in.paths = nil
}
