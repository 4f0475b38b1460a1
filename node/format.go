package node

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/barrel-db/barrel/datastore"
)

// storeFormat is the version of what this binary stores: the key layout
// (keys.go) and the encodings of the values (crdt's canonical CBOR, the
// records of node). A data dir records it when first opened; Open refuses a
// data dir of another format instead of misreading it. Raise it with any
// change to what is stored, together with a migration from the formats
// before.
const storeFormat = 1

var formatKey = []byte("\x00nformat")

// checkFormat records storeFormat in a data dir that has none (a new one,
// or one written before the record existed, in format 1) and checks it
// otherwise. A store with no record and no key at all next to an identity
// (hasIdentity) is not new: the identity is created after the record, so
// its data was lost, and the error wraps ErrCorrupt. Errors wrap
// ErrStoreFormat or ErrCorrupt, or are the store's.
func checkFormat(s *datastore.Store, hasIdentity bool) error {
	v, err := s.Get(formatKey)
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
		b.Set(formatKey, binary.BigEndian.AppendUint64(nil, storeFormat))
		if err := b.Commit(); err != nil {
			return fmt.Errorf("record the store format: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the store format: %w", err)
	}
	if len(v) != 8 {
		return fmt.Errorf("%w: unreadable format record (%d bytes)", ErrStoreFormat, len(v))
	}
	if f := binary.BigEndian.Uint64(v); f != storeFormat {
		return fmt.Errorf("%w: the data dir has store format %d, this binary reads format %d", ErrStoreFormat, f, storeFormat)
	}
	return nil
}
