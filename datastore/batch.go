package datastore

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Batch is a set of writes applied atomically by Commit. Reads through Get
// see the batch's own pending writes over the store. A Batch is not safe for
// concurrent use. After Commit or Close, writes are ignored and Commit
// returns ErrBatchDone.
type Batch struct {
	s   *Store
	b   *pebble.Batch
	err error // first error from a write; returned by Commit
}

// NewBatch returns an empty indexed batch. The caller must Commit or Close it.
func (s *Store) NewBatch() *Batch {
	if s.closed.Load() {
		return &Batch{s: s, err: ErrClosed}
	}
	return &Batch{s: s, b: s.db.NewIndexedBatch()}
}

// NewWriteBatch returns an empty batch without an index: cheaper to fill
// than NewBatch's (no skiplist insert per write), for writers that keep
// their own view of what they wrote. Its Get answers ErrNoIndex.
func (s *Store) NewWriteBatch() *Batch {
	if s.closed.Load() {
		return &Batch{s: s, err: ErrClosed}
	}
	return &Batch{s: s, b: s.db.NewBatch()}
}

func (b *Batch) record(op string, err error) {
	if err != nil && b.err == nil {
		b.err = fmt.Errorf("batch %s: %w", op, err)
	}
}

// Set records key = value. Key and value are copied; the caller may reuse
// them.
func (b *Batch) Set(key, value []byte) {
	if b.b == nil {
		return
	}
	b.record("set", b.b.Set(key, value, nil))
}

// Delete records the deletion of key.
func (b *Batch) Delete(key []byte) {
	if b.b == nil {
		return
	}
	b.record("delete", b.b.Delete(key, nil))
}

// DeleteRange records the deletion of every key in [lo, hi).
func (b *Batch) DeleteRange(lo, hi []byte) {
	if b.b == nil {
		return
	}
	b.record("delete range", b.b.DeleteRange(lo, hi, nil))
}

// Get returns a copy of the value of key as this batch would leave it: the
// batch's pending write if any, else the store's value. ok is false when the
// key does not exist (or this batch deleted it).
func (b *Batch) Get(key []byte) (value []byte, ok bool, err error) {
	if b.b == nil {
		if b.err != nil {
			return nil, false, b.err
		}
		return nil, false, ErrBatchDone
	}
	if !b.b.Indexed() {
		return nil, false, ErrNoIndex
	}
	v, closer, err := b.b.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("batch get %x: %w", key, readErr(err))
	}
	out := bytes.Clone(v)
	if out == nil {
		out = []byte{}
	}
	_ = closer.Close()
	return out, true, nil
}

// Len returns the number of operations recorded.
func (b *Batch) Len() int {
	if b.b == nil {
		return 0
	}
	return int(b.b.Count())
}

// Bytes returns the size of the batch's encoded operations in bytes.
func (b *Batch) Bytes() int {
	if b.b == nil {
		return 0
	}
	return b.b.Len()
}

// Commit applies every recorded write in one atomic write. Under
// DurabilitySync the WAL is fsynced before Commit returns
// (Invariant 2 in DESIGN.md). The batch is unusable afterwards, whether or
// not Commit succeeded.
func (b *Batch) Commit() (err error) {
	if b.b == nil {
		if b.err != nil {
			return b.err
		}
		return ErrBatchDone
	}
	defer b.Close()
	if b.err != nil {
		return b.err
	}
	if b.s.closed.Load() {
		return ErrClosed
	}
	if err := b.s.writable(); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	defer func() {
		// Pebble calls Logger.Fatalf on a commit it could not write; our
		// logger panics with a *fatalError so that the write fails here
		// instead of being acknowledged or ending the process.
		if r := recover(); r != nil {
			fe, ok := r.(*fatalError)
			if !ok {
				panic(r)
			}
			err = b.s.failWrites(fe)
		}
	}()
	if err := b.b.Commit(b.s.writeOpts); err != nil {
		if isNoSpace(err) {
			b.s.health.noSpace.Store(true)
		}
		return fmt.Errorf("commit batch: %w", markNoSpace(err))
	}
	return nil
}

// Close discards the batch if it was not committed. It is safe to call
// more than once and after Commit.
func (b *Batch) Close() {
	if b.b == nil {
		return
	}
	_ = b.b.Close() // Close of an uncommitted or committed batch only recycles memory.
	b.b = nil
	if b.err == nil {
		b.err = ErrBatchDone
	}
}
