package node

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/blobstore"
)

// Blob storage. A blob is the content of an attachment, stored once per
// database and content, named by its SHA-256 digest.
//
// Write path (bounded memory, no visible partial blob): the content is cut
// into ChunkBytes chunks as it streams in and hashed on the way; the chunks
// go under a random upload id ('b' uploadID chunk), in key order, through a
// datastore.Ingest: past 4 MiB they are written into table files that join
// the store in one step when the stream ends (each byte written once, not
// to the log and again by a memtable flush), so one upload holds one chunk
// buffer and at most 4 MiB in memory. Then, the digest known, the metadata
// key 'B' digest is written, pointing at the upload id (a small blob's
// chunks in the same batch). A blob is visible exactly when its metadata
// key exists, so a crash mid-upload leaves table files the next Open
// removes, or chunks no metadata points at, which CompactBlobs reclaims;
// never a partial blob under a digest. Writing chunks under the
// digest would need the digest first (the whole content in memory or on a
// spool file), and renaming them after the hash would rewrite every byte
// once more. When the digest is already stored, the new upload's tables
// are dropped before they join the store.
//
// Replication writes the chunks it receives through batches instead
// (blob_replica.go): a transfer cut half-way resumes from the chunks it
// committed, which an ingest, all or nothing, could not offer.
//
// Readers read a datastore snapshot, so CompactBlobs may delete a blob a
// reader holds: the reader keeps seeing it and Pebble keeps its data until
// the reader is closed.
//
// Writers and CompactBlobs meet in DB.blobs: a writer pins the digest it is
// about to reference (from before it checks or writes the metadata until the
// document change that references it is committed) and registers its
// upload id while the chunks are in flight; CompactBlobs spares every digest
// and upload id pinned or registered at any moment of its run.

// ChunkBytes is the size of a blob chunk; the last chunk may be shorter.
const ChunkBytes = blobstore.ChunkBytes

// DigestPrefix starts every attachment digest: "sha256-" and 64 hex digits.
const DigestPrefix = blobstore.DigestPrefix

// The records are blobstore's; node names them as it did before the cut.
type (
	digest   = blobstore.Digest
	uploadID = blobstore.UploadID
	blobMeta = blobstore.Meta
)

// parseDigest parses "sha256-<64 hex digits>"; a bad one is an
// InvalidError (HTTP 400), as before blobstore had its own error.
func parseDigest(s string) (digest, error) {
	d, err := blobstore.ParseDigest(s)
	if err != nil {
		return d, invalid("digest", "%q: want sha256-<64 hex digits>", s)
	}
	return d, nil
}

func decodeBlobMeta(b []byte) (blobMeta, error) { return blobstore.DecodeMeta(b) }

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Digest string // "sha256-<hex>"
	Length int64  // bytes
}

// writeBlob streams r into the store (blobstore.Write) and returns its
// digest, pinned: the caller must call d.blobs.Unpin once the blob is
// referenced (or not needed). want, when set, is the digest the content
// must have; a mismatch stores nothing and returns ErrDigestMismatch.
func (d *DB) writeBlob(ctx context.Context, r io.Reader, want string) (digest, blobMeta, error) {
	var wantD *digest
	if want != "" {
		w, err := parseDigest(want)
		if err != nil {
			return digest{}, blobMeta{}, err
		}
		wantD = &w
	}
	return blobstore.Write(ctx, d.store, d.keys, &d.blobs, r, wantD)
}

func (d *DB) blobMetaOf(dg digest) (blobMeta, error) {
	m, err := blobstore.ReadMeta(d.store, d.keys, dg)
	if errors.Is(err, datastore.ErrNotFound) {
		return blobMeta{}, fmt.Errorf("blob %s: %w", dg, ErrNotFound)
	}
	return m, err
}

// PutBlob stores the content of r, streaming, and returns its digest and
// length. want, when set ("sha256-<hex>"), is the digest the content must
// have (ErrDigestMismatch otherwise; nothing is stored). A blob no document
// references is reclaimed by the next CompactBlobs: reference it with
// LinkAttachment, which fails with ErrNotFound if it was reclaimed since.
func (d *DB) PutBlob(ctx context.Context, r io.Reader, want string) (BlobInfo, error) {
	if err := d.checkOpen(); err != nil {
		return BlobInfo{}, err
	}
	dg, m, err := d.writeBlob(ctx, r, want)
	if err != nil {
		return BlobInfo{}, err
	}
	d.blobs.Unpin(dg)
	return BlobInfo{Digest: dg.String(), Length: m.Length}, nil
}

// CompactStats counts what CompactBlobs reclaimed.
type CompactStats = blobstore.Stats

// CompactBlobs deletes the blobs of database db that no document
// references (in its body or in a kept conflict value) and the chunks of
// abandoned uploads. It never takes a blob from a reader: readers read a
// snapshot, which keeps deleted data until they close. Blobs being written
// or about to be referenced are pinned and spared. Pebble reclaims the disk
// space in its own compactions.
func (n *Node) CompactBlobs(ctx context.Context, db string) (CompactStats, error) {
	d, err := n.DB(db)
	if err != nil {
		return CompactStats{}, err
	}
	return d.compactBlobs(ctx)
}

func (d *DB) compactBlobs(ctx context.Context) (CompactStats, error) {
	d.compactMu.Lock()
	defer d.compactMu.Unlock()
	st, err := blobstore.Compact(ctx, d.store, d.keys, &d.blobs, d.referencedDigests)
	if err != nil {
		return st, err
	}
	if st != (CompactStats{}) {
		d.log.Info("blobs compacted", "blobs", st.Blobs, "bytes", st.Bytes, "uploads", st.Uploads)
	}
	return st, nil
}
