package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// Export reads every live document of a database from one store snapshot,
// in id order: what a dump needs. Documents written after Export opened it
// are not seen, those deleted after are still seen, so an export is a
// consistent copy as of one instant whatever is written meanwhile.
//
// An Export holds a snapshot, which keeps Pebble from reclaiming what was
// overwritten since: close it promptly. It reads one document at a time,
// so memory does not grow with the database. It is not safe for
// concurrent use, and must be closed before the node.
type Export struct {
	d     *DB
	sn    *datastore.Snapshot
	it    *datastore.Iter
	base  []byte // the prefix of document records
	seq   uint64
	count int64
	err   error
	done  bool
}

// ExportDoc is one document of an export. Body is owned by the caller.
// When the document's record cannot be read, Err says why and Body is nil;
// the export goes on with the next document. ID is empty when even the
// record's key is unreadable.
type ExportDoc struct {
	ID   string
	Rev  string
	Seq  uint64 // the local sequence number of the document's last change
	Body map[string]any
	Err  error
}

// Export opens an export of d's live documents as of now, those whose id
// starts with prefix ("" for all). The _acl document is not part of it:
// access control is not document data, and writing _acl through Put or
// Bulk is refused (use SetACL).
func (d *DB) Export(ctx context.Context, prefix string) (*Export, error) {
	if err := d.checkOpen(); err != nil {
		return nil, err
	}
	sn, err := d.store.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", d.name, err)
	}
	e := &Export{d: d, sn: sn, base: d.keys.Docs()}
	var count uint64
	for _, m := range []struct {
		name string
		dst  *uint64
	}{{layout.MetaSeq, &e.seq}, {layout.MetaCount, &count}} {
		v, err := sn.Get(d.keys.Meta(m.name))
		switch {
		case err == nil && len(v) == 8:
			*m.dst = binary.BigEndian.Uint64(v)
		case err != nil && !errors.Is(err, datastore.ErrNotFound):
			_ = sn.Close()
			return nil, fmt.Errorf("export %s: %w", d.name, err)
		}
	}
	e.count = int64(count)
	switch _, err := sn.Get(d.keys.Doc(ACLDocID)); {
	case err == nil && e.count > 0:
		e.count-- // counted among the live documents, not exported
	case err != nil && !errors.Is(err, datastore.ErrNotFound):
		_ = sn.Close()
		return nil, fmt.Errorf("export %s: %w", d.name, err)
	}
	lo := tuple.AppendStringPrefix(slices.Clone(e.base), prefix)
	if e.it, err = sn.Iter(lo, datastore.PrefixEnd(lo), false); err != nil {
		_ = sn.Close()
		return nil, fmt.Errorf("export %s: %w", d.name, err)
	}
	return e, nil
}

// Seq is the database's last local sequence number as of the snapshot: a
// changes feed read from Seq on sees exactly what the export missed.
func (e *Export) Seq() uint64 { return e.seq }

// DocCount is the number of live documents of the database as of the
// snapshot, whatever the prefix, the _acl document left out: the total of
// a whole export, for a progress bar.
func (e *Export) DocCount() int64 { return e.count }

// Next returns the next live document, or false at the end or on an error
// that stops the export (see Err). An unreadable document does not stop
// it: it is returned with Err set.
func (e *Export) Next(ctx context.Context) (ExportDoc, bool) {
	for !e.done {
		if e.err = ctx.Err(); e.err == nil {
			e.err = e.d.checkOpen()
		}
		if e.err != nil {
			e.done = true
			break
		}
		if !e.it.Next() {
			e.err, e.done = e.it.Err(), true
			break
		}
		v := e.it.Value()
		if e.err = e.it.Err(); e.err != nil { // the store could not read the value
			e.done = true
			break
		}
		if doc, live := e.read(e.it.Key(), v); live {
			return doc, true
		}
	}
	return ExportDoc{}, false
}

// read decodes one document record; live is false for a tombstone and
// for the _acl document.
func (e *Export) read(k, v []byte) (doc ExportDoc, live bool) {
	id, _, err := tuple.ReadString(k[len(e.base):])
	if err != nil {
		return ExportDoc{Err: fmt.Errorf("document key %x: %w", k, err)}, true
	}
	if id == ACLDocID {
		return ExportDoc{}, false
	}
	seq, enc, err := layout.ParseDocRecord(v)
	if err != nil {
		return ExportDoc{ID: id, Err: fmt.Errorf("document %s: %w (%d bytes)", id, err, len(v))}, true
	}
	st, err := crdt.DecodeView(enc)
	if err != nil {
		return ExportDoc{ID: id, Err: fmt.Errorf("document %s: %w", id, err)}, true
	}
	if !st.Exists() || st.Deleted {
		return ExportDoc{}, false
	}
	return ExportDoc{ID: id, Rev: st.Last.String(), Seq: seq, Body: st.Body}, true
}

// Err is the error that stopped the export early, nil when it reached the
// end.
func (e *Export) Err() error {
	if e.err != nil {
		return fmt.Errorf("export %s: %w", e.d.name, e.err)
	}
	return nil
}

// Close releases the snapshot. It may be called more than once.
func (e *Export) Close() {
	if e.sn == nil {
		return
	}
	_ = e.it.Close()
	_ = e.sn.Close()
	e.sn = nil
}
