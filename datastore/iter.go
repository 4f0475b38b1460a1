package datastore

import (
	"bytes"
	"fmt"

	"github.com/barrel-db/barrel/datastore/tuple"
	"github.com/cockroachdb/pebble/v2"
)

// Iter walks the keys of a range in order. It reads a consistent view of the
// store as of its creation. It is not safe for concurrent use and must be
// closed.
type Iter struct {
	it      *pebble.Iterator
	reverse bool
	started bool
	err     error
}

// Iter returns an iterator over the keys in [lo, hi), ascending, or
// descending when reverse is set. An empty (or nil) lo means no lower
// bound; an empty (or nil) hi means no upper bound. lo and hi are copied.
func (s *Store) Iter(lo, hi []byte, reverse bool) (*Iter, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return newIter(s.db, lo, hi, reverse)
}

// iterSource is what iterators read: the store or a snapshot of it.
type iterSource interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

func newIter(src iterSource, lo, hi []byte, reverse bool) (*Iter, error) {
	o := &pebble.IterOptions{}
	// Pebble treats a non-nil empty bound as a key; keep "empty" as "none".
	if len(lo) > 0 {
		o.LowerBound = bytes.Clone(lo)
	}
	if len(hi) > 0 {
		o.UpperBound = bytes.Clone(hi)
	}
	it, err := src.NewIter(o)
	if err != nil {
		return nil, fmt.Errorf("new iterator [%x, %x): %w", lo, hi, err)
	}
	return &Iter{it: it, reverse: reverse}, nil
}

// Next advances to the next key and reports whether there is one. After it
// returns false, check Err.
func (i *Iter) Next() bool {
	if i.err != nil {
		return false
	}
	switch {
	case !i.started && i.reverse:
		i.started = true
		return i.it.Last()
	case !i.started:
		i.started = true
		return i.it.First()
	case i.reverse:
		return i.it.Prev()
	default:
		return i.it.Next()
	}
}

// SeekGE moves an ascending iterator to the first key at or after key
// (within its bounds) and reports whether there is one; Next then goes on
// from there.
func (i *Iter) SeekGE(key []byte) bool {
	i.started = true
	return i.it.SeekGE(key)
}

// Key returns the current key. The slice is owned by the iterator and valid
// only until the next call to Next or Close; copy it to keep it.
func (i *Iter) Key() []byte { return i.it.Key() }

// Value returns the current value, with the same ownership rule as Key. If
// reading the value fails, Value returns nil, Next returns false and Err
// reports the failure.
func (i *Iter) Value() []byte {
	v, err := i.it.ValueAndErr()
	if err != nil {
		i.err = fmt.Errorf("read value of %x: %w", i.it.Key(), readErr(err))
		return nil
	}
	return v
}

// Err returns the error, if any, that stopped the iteration.
func (i *Iter) Err() error {
	if i.err != nil {
		return i.err
	}
	if err := i.it.Error(); err != nil {
		return fmt.Errorf("iterate: %w", readErr(err))
	}
	return nil
}

// Close releases the iterator and returns any iteration error.
func (i *Iter) Close() error {
	err := i.Err()
	if cerr := i.it.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close iterator: %w", cerr)
	}
	return err
}

// Range calls fn for each key in [lo, hi) in order (descending when reverse),
// with the bounds rules of Iter, until fn returns more == false or an error,
// which Range returns. k and v are valid only during the call.
func (s *Store) Range(lo, hi []byte, reverse bool, fn func(k, v []byte) (more bool, err error)) error {
	it, err := s.Iter(lo, hi, reverse)
	if err != nil {
		return err
	}
	return it.each(fn)
}

// each calls fn for every key of the iterator (see Range) and closes it.
func (it *Iter) each(fn func(k, v []byte) (more bool, err error)) error {
	for it.Next() {
		v := it.Value()
		if v == nil && it.err != nil {
			break
		}
		more, err := fn(it.Key(), v)
		if err != nil {
			_ = it.Close()
			return err
		}
		if !more {
			break
		}
	}
	return it.Close()
}

// PrefixEnd returns the smallest key greater than every key that starts
// with prefix, or nil (no upper bound) when there is none (prefix empty or
// all 0xFF). It is the exclusive upper bound for a prefix scan
// (tuple.PrefixEnd).
func PrefixEnd(prefix []byte) []byte { return tuple.PrefixEnd(prefix) }
