// Package blobstore is the storage of attachment content (blobs): the
// records a blob is stored as and the reading of a stored blob.
//
// It owns, per database: the digest a blob is named by (Digest,
// ParseDigest), the 'B' metadata record that makes a blob visible (Meta),
// the 'W' record of a blob wanted from peers with its transfer progress
// (Want), the upload ids chunks are stored under (UploadID, ChunkBytes),
// and Reader, which streams a complete blob from a store snapshot. The
// keys are layout.Keys' BlobMeta, BlobWant and BlobChunk; the caller
// passes its store and keys, so the package knows no database.
//
// It may not: import node, hold a *DB, speak to peers (which peer to ask
// and the bsync adapters stay in node), or know documents (which blobs a
// document references, and the attachment ops the writer commits, stay
// in node). Its errors are its own (errors.go); node maps them to its
// public errors.
//
// Writes beside the writer. Blob chunk, metadata and want writes do not
// go through the database's writer, and need not:
//   - chunks are content-addressed by their upload id, random per upload,
//     and written before any record names them: a crash leaves chunks no
//     record names, which reclaim deletes;
//   - a 'B' record is written only after its chunks are durable and the
//     content's digest matched, and says only "this content is stored":
//     writing it twice writes the same fact, and no document change or
//     checkpoint waits on it (invariant 3 orders changes, not blobs);
//   - a 'W' record is written after the document change naming the blob
//     is committed, and is idempotent (written unless the blob or a want
//     is stored); losing one costs a refetch trigger, not a change.
//
// Reclaim (node's CompactBlobs) meets writers through pins, not through
// the writer: a pinned digest or live upload is spared.
//
// Limits: this is a first cut. The upload and receive paths (node's
// writeBlob and blobSink), the pins and reclaim still live in node
// (blob.go, blob_replica.go) on top of these records.
package blobstore
