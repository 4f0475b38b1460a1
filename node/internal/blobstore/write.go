package blobstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// Write streams r into the store as a blob and returns its digest,
// pinned: the caller must Unpin it once the blob is referenced (or not
// needed). want, when not nil, is the digest the content must have; a
// mismatch stores nothing and returns ErrMismatch. A blob stored already
// keeps its first copy. Memory: one chunk.
func Write(ctx context.Context, s *datastore.Store, keys layout.Keys, pins *Pins, r io.Reader, want *Digest) (Digest, Meta, error) {
	var u UploadID
	if _, err := rand.Read(u[:]); err != nil {
		return Digest{}, Meta{}, fmt.Errorf("upload id: %w", err)
	}
	pins.StartUpload(u)
	defer pins.EndUpload(u)
	in := s.NewIngest()
	defer in.Close()
	h := sha256.New()
	buf := make([]byte, ChunkBytes)
	m := Meta{Chunk: ChunkBytes, Upload: u}
	for {
		if err := ctx.Err(); err != nil {
			return Digest{}, Meta{}, err
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			if serr := in.Set(keys.BlobChunk(u, m.Chunks), buf[:n]); serr != nil {
				return Digest{}, Meta{}, fmt.Errorf("write blob chunks: %w", serr)
			}
			m.Chunks++
			m.Length += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return Digest{}, Meta{}, fmt.Errorf("read blob: %w", err)
		}
	}
	var dg Digest
	h.Sum(dg[:0])
	if want != nil && dg != *want {
		return Digest{}, Meta{}, fmt.Errorf("content has %s, want %s: %w", dg, *want, ErrMismatch)
	}
	pins.Pin(dg)
	ok, err := s.Has(keys.BlobMeta(dg))
	if err != nil {
		pins.Unpin(dg)
		return Digest{}, Meta{}, fmt.Errorf("write blob: %w", err)
	}
	if ok {
		// Stored already: keep the old copy, drop ours (in.Close).
		old, err := ReadMeta(s, keys, dg)
		if err != nil {
			pins.Unpin(dg)
			return Digest{}, Meta{}, err
		}
		return dg, old, nil
	}
	// A small blob's chunks commit with its metadata in one batch; a larger
	// one's are ingested first, so a failure of the metadata batch leaves
	// chunks no metadata points at.
	b := s.NewWriteBatch()
	defer b.Close()
	b.Set(keys.BlobMeta(dg), m.Encode())
	if err := in.Commit(ctx, b); err != nil {
		pins.Unpin(dg)
		_ = DropUpload(s, keys, u) // compaction reclaims them if this fails too
		return Digest{}, Meta{}, fmt.Errorf("write blob: %w", err)
	}
	return dg, m, nil
}

// ReadMeta reads the metadata of the complete blob d. ErrNotFound (wrapped)
// if the store holds none.
func ReadMeta(s *datastore.Store, keys layout.Keys, d Digest) (Meta, error) {
	v, err := s.Get(keys.BlobMeta(d))
	if errors.Is(err, datastore.ErrNotFound) {
		return Meta{}, fmt.Errorf("blob %s: %w", d, err)
	}
	if err != nil {
		return Meta{}, fmt.Errorf("read blob %s: %w", d, err)
	}
	return DecodeMeta(v)
}

// DropUpload deletes the chunks of upload u.
func DropUpload(s *datastore.Store, keys layout.Keys, u UploadID) error {
	b := s.NewWriteBatch()
	defer b.Close()
	b.DeleteRange(keys.BlobChunks(u), datastore.PrefixEnd(keys.BlobChunks(u)))
	return b.Commit()
}
