package datastore

import (
	"bytes"
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

// ingestSmallBytes bounds what an Ingest keeps in memory before it writes
// table files: up to it, Commit writes the keys through the caller's batch
// instead, one log write with the rest, where files would cost a table, a
// link and a manifest update, each synced.
const ingestSmallBytes = 4 << 20

// Ingest writes keys straight into table files and, on Commit, adds them to
// the store in one atomic step. Their bytes are written once, where a
// batch writes them to the log and again when the memtable is flushed: the
// way to store large sequential content such as blob chunks. Keys must be
// set in strictly ascending order, and no batch may write keys inside
// their range meanwhile (the store would have to flush its memtable first,
// which is correct but slow). An Ingest is not safe for concurrent use;
// the caller must Commit or Close it.
type Ingest struct {
	s      *Store
	small  []kv // keys set while they total under ingestSmallBytes
	nsmall int  // their bytes
	w      *sstable.Writer
	paths  []string // table files written, the last one open while w != nil
	err    error    // first error: Set and Commit return it
	done   bool
}

type kv struct{ k, v []byte }

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
		if n := len(in.small); n > 0 && bytes.Compare(key, in.small[n-1].k) <= 0 {
			in.err = fmt.Errorf("ingest set %x: keys out of order (after %x)", key, in.small[n-1].k)
			return in.err
		}
		if in.nsmall+len(key)+len(value) <= ingestSmallBytes {
			in.small = append(in.small, kv{bytes.Clone(key), bytes.Clone(value)})
			in.nsmall += len(key) + len(value)
			return nil
		}
		if err := in.open(); err != nil {
			in.err = err
			return err
		}
		for _, e := range in.small {
			if err := in.w.Set(e.k, e.v); err != nil {
				in.err = fmt.Errorf("ingest set %x: %w", e.k, markNoSpace(err))
				return in.err
			}
		}
		in.small, in.nsmall = nil, 0
	}
	if err := in.w.Set(key, value); err != nil {
		in.err = fmt.Errorf("ingest set %x: %w", key, markNoSpace(err))
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
		return fmt.Errorf("ingest: create %s: %w", path, markNoSpace(err))
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
		return fmt.Errorf("ingest: finish table: %w", markNoSpace(err))
	}
	return nil
}

// Commit adds every key set to the store, then commits b (which may hold
// other writes, such as a record pointing at the keys; nil: none). Few
// keys go into b, so they and b's writes commit together, with b's
// durability. More were written to table files: these join the store
// first, atomically and synced whatever the store's durability, then b is
// committed. An Ingest with no keys only commits b. The table files are
// removed either way; the caller still owns b (Close it).
func (in *Ingest) Commit(ctx context.Context, b *Batch) error {
	if in.done {
		return ErrBatchDone
	}
	defer in.Close()
	if in.err != nil {
		return in.err
	}
	if b == nil {
		b = in.s.NewWriteBatch()
		defer b.Close()
	}
	if in.w == nil && len(in.paths) == 0 {
		for _, e := range in.small {
			b.Set(e.k, e.v)
		}
		return b.Commit()
	}
	if in.w != nil {
		if err := in.finishFile(); err != nil {
			return err
		}
	}
	if in.s.closed.Load() {
		return ErrClosed
	}
	if err := in.s.writable(); err != nil {
		return fmt.Errorf("ingest %d tables: %w", len(in.paths), err)
	}
	if err := in.s.db.Ingest(ctx, in.paths); err != nil {
		return fmt.Errorf("ingest %d tables: %w", len(in.paths), markNoSpace(err))
	}
	return b.Commit()
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
	in.paths, in.small = nil, nil
}
