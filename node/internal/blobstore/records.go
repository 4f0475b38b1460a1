package blobstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// ChunkBytes is the size of a blob chunk; the last chunk may be shorter.
const ChunkBytes = 256 << 10

// DigestPrefix starts every attachment digest: "sha256-" and 64 hex digits.
const DigestPrefix = "sha256-"

// Digest is a blob's SHA-256, the name it is stored under.
type Digest [sha256.Size]byte

// String is "sha256-<64 hex digits>".
func (d Digest) String() string { return DigestPrefix + hex.EncodeToString(d[:]) }

// ParseDigest parses "sha256-<64 hex digits>"; ErrBadDigest otherwise.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	h, ok := strings.CutPrefix(s, DigestPrefix)
	if !ok || len(h) != 2*len(d) {
		return d, fmt.Errorf("%q: want sha256-<64 hex digits>: %w", s, ErrBadDigest)
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return d, fmt.Errorf("%q: want sha256-<64 hex digits>: %w", s, ErrBadDigest)
	}
	return d, nil
}

// UploadID names the chunks of one upload or transfer; random.
type UploadID [16]byte

// Meta is the value of a 'B' key (layout.Keys.BlobMeta): the blob is
// complete, its chunks are under Upload.
type Meta struct {
	Length int64
	Chunks uint64
	Chunk  uint32 // chunk size in bytes
	Upload UploadID
}

const metaBytes = 8 + 8 + 4 + 16

// Encode is the stored form of m.
func (m Meta) Encode() []byte {
	b := make([]byte, 0, metaBytes)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Length))
	b = binary.BigEndian.AppendUint64(b, m.Chunks)
	b = binary.BigEndian.AppendUint32(b, m.Chunk)
	return append(b, m.Upload[:]...)
}

// DecodeMeta checks the fields agree with each other, so a reader never
// trusts a corrupt length or chunk count (ErrCorrupt otherwise).
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) != metaBytes {
		return m, fmt.Errorf("blob metadata: %d bytes, want %d: %w", len(b), metaBytes, ErrCorrupt)
	}
	m.Length = int64(binary.BigEndian.Uint64(b))
	m.Chunks = binary.BigEndian.Uint64(b[8:])
	m.Chunk = binary.BigEndian.Uint32(b[16:])
	copy(m.Upload[:], b[20:])
	if m.Length < 0 || m.Chunk == 0 || m.Chunk > 64<<20 {
		return m, fmt.Errorf("blob metadata: length %d, chunk size %d: %w", m.Length, m.Chunk, ErrCorrupt)
	}
	if want := (uint64(m.Length) + uint64(m.Chunk) - 1) / uint64(m.Chunk); m.Chunks != want {
		return m, fmt.Errorf("blob metadata: %d chunks for %d bytes, want %d: %w", m.Chunks, m.Length, want, ErrCorrupt)
	}
	return m, nil
}

// Want is the value of a 'W' key (layout.Keys.BlobWant): a blob wanted
// from peers, with the progress of its transfer.
type Want struct {
	Length int64    // bytes, as the document announced; 0 unknown
	Chunks uint64   // full chunks stored under Upload
	Upload UploadID // zero: no transfer started
	State  []byte   // SHA-256 state after Chunks chunks (empty when Chunks is 0)
}

const wantBytes = 8 + 8 + 16

// Encode is the stored form of w.
func (w Want) Encode() []byte {
	b := make([]byte, 0, wantBytes+len(w.State))
	b = binary.BigEndian.AppendUint64(b, uint64(w.Length))
	b = binary.BigEndian.AppendUint64(b, w.Chunks)
	b = append(b, w.Upload[:]...)
	return append(b, w.State...)
}

// DecodeWant checks the fields agree, so a resume never trusts a corrupt
// offset (ErrCorrupt otherwise). A corrupt record still returns the
// fields it could read: its Upload names chunks to reclaim. w.State
// aliases b.
func DecodeWant(b []byte) (Want, error) {
	var w Want
	if len(b) < wantBytes || len(b) > wantBytes+256 {
		return w, fmt.Errorf("blob want record: %d bytes: %w", len(b), ErrCorrupt)
	}
	w.Length = int64(binary.BigEndian.Uint64(b))
	w.Chunks = binary.BigEndian.Uint64(b[8:])
	copy(w.Upload[:], b[16:])
	w.State = b[wantBytes:]
	if w.Length < 0 || w.Chunks > 1<<40 || (w.Length > 0 && int64(w.Chunks)*ChunkBytes > w.Length) {
		return w, fmt.Errorf("blob want record: %d chunks for %d bytes: %w", w.Chunks, w.Length, ErrCorrupt)
	}
	if (w.Chunks > 0) != (len(w.State) > 0) {
		return w, fmt.Errorf("blob want record: %d chunks with %d bytes of hash state: %w", w.Chunks, len(w.State), ErrCorrupt)
	}
	return w, nil
}
