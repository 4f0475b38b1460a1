package node

import (
	"errors"
	"fmt"
	"log/slog"

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
func checkFormat(s *datastore.Store, hasIdentity bool, log *slog.Logger) error {
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
	if f == 1 {
		return migrate1(s, log)
	}
	if f != layout.Format {
		return fmt.Errorf("%w: the data dir has store format %d, this binary reads format %d", ErrStoreFormat, f, layout.Format)
	}
	return nil
}

// migrate1 migrates a data dir of format 1 to format 2 in place. Every
// record of format 1 is a record of format 2 (format 2 only adds group
// records and member change records, which a format-1 store has none of:
// layout.Format), so the migration is the one durable write of the format
// record: a crash leaves format 1 intact or format 2 complete. The changes
// stored before stay whole records, read as they are; what is written from
// now on is stored in groups.
func migrate1(s *datastore.Store, log *slog.Logger) error {
	b := s.NewWriteBatch()
	defer b.Close()
	b.Set(layout.FormatKey, layout.FormatValue(layout.Format))
	if err := b.Commit(); err != nil {
		return fmt.Errorf("migrate the store from format 1 to %d: %w", layout.Format, err)
	}
	log.Info("store migrated", "from_format", 1, "to_format", layout.Format)
	return nil
}
