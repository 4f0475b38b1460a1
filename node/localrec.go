package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/barrel-db/barrel/datastore"
)

// Local records are per-database metadata kept for a client of this node,
// not part of the database: a CouchDB replicator's checkpoints (_local
// documents) and the revisions couch/ showed its clients. They are never
// replicated, never in the feed, not read by the writer, and dropped with
// the database.
//
// They are written beside the writer, not through it, and that is safe:
// the writer never reads them, so no group can depend on one, and each
// PutLocal is one batch committed with the store's durability before it
// returns, so a client told "saved" finds it after a crash. Ordering
// between records is the caller's (couch/ holds a lock per database).

// Bounds of a local record.
const (
	MaxLocalKeyBytes   = 1024
	MaxLocalValueBytes = 1 << 20
)

// GetLocal returns the local record key. ErrNotFound if there is none.
func (d *DB) GetLocal(key string) ([]byte, error) {
	if err := d.checkOpen(); err != nil {
		return nil, err
	}
	v, err := d.store.Get(d.keys.Local(key))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, fmt.Errorf("local record %q: %w", key, ErrNotFound)
	}
	return v, err
}

// PutLocal sets and deletes local records in one durable batch. A key
// longer than MaxLocalKeyBytes or a value longer than MaxLocalValueBytes
// is ErrInvalid, and nothing is written.
func (d *DB) PutLocal(ctx context.Context, set map[string][]byte, del []string) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b := d.store.NewWriteBatch()
	defer b.Close()
	for k, v := range set {
		if len(k) == 0 || len(k) > MaxLocalKeyBytes {
			return invalid("local record", "key of %d bytes: want 1..%d", len(k), MaxLocalKeyBytes)
		}
		if len(v) > MaxLocalValueBytes {
			return invalid("local record", "%q: %d bytes: at most %d", k, len(v), MaxLocalValueBytes)
		}
		b.Set(d.keys.Local(k), v)
	}
	for _, k := range del {
		b.Delete(d.keys.Local(k))
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("write local records: %w", err)
	}
	return nil
}
