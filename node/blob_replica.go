package node

import (
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/blobstore"
	bsync "github.com/barrel-db/barrel/sync"
)

type blobWant = blobstore.Want

// openBlob opens blob dg for a peer: a reader over a snapshot, and the
// blob's length (bsync.ErrBlobNotFound if this database lacks it).
func (d *DB) openBlob(dg digest) (io.ReadSeekCloser, int64, error) {
	snap, err := d.store.Snapshot()
	if err != nil {
		return nil, 0, err
	}
	v, err := snap.Get(d.keys.BlobMeta(dg))
	if errors.Is(err, datastore.ErrNotFound) {
		_ = snap.Close()
		return nil, 0, fmt.Errorf("blob %s: %w", dg, bsync.ErrBlobNotFound)
	}
	if err != nil {
		_ = snap.Close()
		return nil, 0, fmt.Errorf("read blob %s: %w", dg, err)
	}
	m, err := decodeBlobMeta(v)
	if err != nil {
		_ = snap.Close()
		return nil, 0, fmt.Errorf("blob %s: %w", dg, err)
	}
	return blobstore.NewReader(snap, d.keys, m), m.Length, nil
}

// receiveBlob opens a sink for blob dg (blobstore.Receive), resuming the
// transfer its want record describes.
func (d *DB) receiveBlob(dg digest) (blobSink, error) {
	if err := d.checkOpen(); err != nil {
		return blobSink{}, err
	}
	sk, err := blobstore.Receive(d.store, d.keys, &d.blobs, d.log, dg)
	return blobSink{sk}, err
}

// blobWant reads the want record of dg (the zero record if none).
func (d *DB) blobWant(dg digest) (blobWant, error) {
	return blobstore.ReadWant(d.store, d.keys, d.log, dg)
}

// blobSink is blobstore's sink as bsync.BlobSink: a mismatch is also
// bsync.ErrDigestMismatch, which the fetcher acts on.
type blobSink struct{ *blobstore.Sink }

// Commit implements bsync.BlobSink.
func (s blobSink) Commit(length int64) error {
	err := s.Sink.Commit(length)
	if errors.Is(err, blobstore.ErrMismatch) {
		return fmt.Errorf("%w (%w)", err, bsync.ErrDigestMismatch)
	}
	return err
}

// wantBlobs records the blobs that received changes reference and this
// database lacks, and asks the fetcher for them from the peer that sent the
// changes. Only changes that were applied count (a rejected change must not
// make us download anything). It runs after the writer answered, so a
// missing blob never holds the writer loop.
func (d *DB) wantBlobs(from peer.ID, changes []*crdt.Change) {
	for _, c := range changes {
		var infos []AttachmentInfo
		for _, op := range c.Ops {
			infos = append(infos, attachmentRefs(op)...)
		}
		if len(infos) == 0 {
			continue
		}
		if ok, err := d.store.Has(d.keys.Change(c.ID())); err != nil || !ok {
			continue
		}
		for _, info := range infos {
			dg, err := parseDigest(info.Digest)
			if err != nil || info.Length < 0 {
				continue
			}
			d.blobs.Pin(dg) // a running CompactBlobs spares the new record
			err = d.addBlobWant(dg, info.Length)
			d.blobs.Unpin(dg)
			if err != nil {
				d.log.Warn("record a wanted blob", "digest", info.Digest, "err", err)
				continue
			}
			if np := d.node.net.Load(); np != nil && np.blobs != nil {
				np.blobs.want(d.name, dg, info.Length, from)
			}
		}
	}
}

// attachmentRefs lists the attachments an operation sets.
func attachmentRefs(op crdt.Op) []AttachmentInfo {
	if op.Kind != crdt.OpSet {
		return nil
	}
	tokens, err := crdt.ParsePointer(op.Path)
	if err != nil || len(tokens) == 0 || tokens[0] != AttachmentsField {
		return nil
	}
	var out []AttachmentInfo
	switch len(tokens) {
	case 1:
		atts, _ := op.Value.(map[string]any)
		for name, v := range atts {
			if info, ok := attachmentInfo(name, v); ok {
				out = append(out, info)
			}
		}
	case 2:
		if info, ok := attachmentInfo(tokens[1], op.Value); ok {
			out = append(out, info)
		}
	}
	return out
}

// addBlobWant writes the want record of dg unless the blob or a record of
// it is stored already.
func (d *DB) addBlobWant(dg digest, length int64) error {
	return blobstore.AddWant(d.store, d.keys, dg, length)
}

// blobWants lists the wanted blobs of the database with their lengths
// (-1 when unknown), at most limit of them.
func (d *DB) blobWants(limit int) (map[digest]int64, error) {
	return blobstore.Wants(d.store, d.keys, limit)
}

// hasBlob reports whether the blob dg is complete here.
func (d *DB) hasBlob(dg digest) (bool, error) {
	return d.store.Has(d.keys.BlobMeta(dg))
}
