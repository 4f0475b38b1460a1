package node

import (
	"errors"
	"fmt"

	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// checkFormat records layout.Format (the version of what this binary
// stores) in a data dir that has none (a new one,
// or one written before the record existed, in format 1) and checks it
// otherwise. A store with no record and no key at all next to an identity
// (hasIdentity) is not new: the identity is created after the record, so
// its data was lost, and the error wraps ErrCorrupt. Errors wrap
// ErrStoreFormat or ErrCorrupt, or are the store's.
func checkFormat(s *datastore.Store, hasIdentity bool) error {
	v, err := s.Get(layout.FormatKey)
	if errors.Is(err, datastore.ErrNotFound) {
		if hasIdentity {
			empty := true
			if err := s.Range(nil, nil, false, func(k, v []byte) (bool, error) { empty = false; return false, nil }); err != nil {
				return fmt.Errorf("read the store: %w", err)
			}
			if empty {
				return fmt.Errorf("%w: the data dir has an identity (%s) but its store is empty, without even a format record: its data was lost; restore the data dir, or move %s away too to start a new, empty node with a new identity",
					ErrCorrupt, identityFile, identityFile)
			}
		}
		b := s.NewWriteBatch()
		defer b.Close()
		b.Set(layout.FormatKey, layout.FormatValue(layout.Format))
		if err := b.Commit(); err != nil {
			return fmt.Errorf("record the store format: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the store format: %w", err)
	}
	f, err := layout.ParseFormat(v)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStoreFormat, err)
	}
	if f != layout.Format {
		return fmt.Errorf("%w: the data dir has store format %d, this binary reads format %d", ErrStoreFormat, f, layout.Format)
	}
	return nil
}
