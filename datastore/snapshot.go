package datastore

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Snapshot is a read-only, point-in-time view of the store. Keys deleted
// after it was taken stay readable through it, and Pebble keeps their data
// on disk until it is closed. It is safe for concurrent use and must be
// closed before the store.
type Snapshot struct {
	s  *Store
	sn *pebble.Snapshot
}

// Snapshot returns a view of the store as of now.
func (s *Store) Snapshot() (*Snapshot, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return &Snapshot{s: s, sn: s.db.NewSnapshot()}, nil
}

// Get returns a copy of the value of key as of the snapshot, or an error
// wrapping ErrNotFound. The caller owns the returned slice.
func (sn *Snapshot) Get(key []byte) ([]byte, error) {
	if sn.s.closed.Load() {
		return nil, ErrClosed
	}
	v, closer, err := sn.sn.Get(key)
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
	_ = closer.Close() // releases a reference only
	return out, nil
}

// Iter is Store.Iter as of the snapshot.
func (sn *Snapshot) Iter(lo, hi []byte, reverse bool) (*Iter, error) {
	if sn.s.closed.Load() {
		return nil, ErrClosed
	}
	return newIter(sn.sn, lo, hi, reverse)
}

// Range is Store.Range as of the snapshot.
func (sn *Snapshot) Range(lo, hi []byte, reverse bool, fn func(k, v []byte) (more bool, err error)) error {
	if sn.s.closed.Load() {
		return ErrClosed
	}
	it, err := newIter(sn.sn, lo, hi, reverse)
	if err != nil {
		return err
	}
	return it.each(fn)
}

// Close releases the snapshot. It must be called exactly once.
func (sn *Snapshot) Close() error {
	if err := sn.sn.Close(); err != nil {
		return fmt.Errorf("close snapshot: %w", err)
	}
	return nil
}
