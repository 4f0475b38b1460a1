package blobstore

import (
	"fmt"
	"io"

	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// Reader reads a complete blob's chunks from a store snapshot, which it
// owns: Close closes it. It holds one chunk in memory. Not safe for
// concurrent use.
type Reader struct {
	snap *datastore.Snapshot
	keys layout.Keys
	m    Meta
	off  int64
	idx  uint64 // index of cur
	cur  []byte // nil: none loaded
}

// NewReader reads the blob m names under keys from snap; the Reader owns
// snap from here on.
func NewReader(snap *datastore.Snapshot, keys layout.Keys, m Meta) *Reader {
	return &Reader{snap: snap, keys: keys, m: m}
}

// Read reads the content from the current offset.
func (br *Reader) Read(p []byte) (int, error) {
	if br.off >= br.m.Length {
		return 0, io.EOF
	}
	idx := uint64(br.off / int64(br.m.Chunk))
	if br.cur == nil || br.idx != idx {
		v, err := br.snap.Get(br.keys.BlobChunk(br.m.Upload, idx))
		if err != nil {
			return 0, fmt.Errorf("read blob chunk %d: %w", idx, err)
		}
		br.cur, br.idx = v, idx
	}
	within := br.off - int64(idx)*int64(br.m.Chunk)
	if within >= int64(len(br.cur)) {
		return 0, fmt.Errorf("read blob chunk %d: %d bytes, want more than %d", idx, len(br.cur), within)
	}
	n := copy(p, br.cur[within:])
	br.off += int64(n)
	return n, nil
}

// Seek sets the offset of the next Read (io.Seeker).
func (br *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += br.off
	case io.SeekEnd:
		offset += br.m.Length
	default:
		return 0, fmt.Errorf("seek: whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek to %d: negative offset", offset)
	}
	br.off = offset
	return offset, nil
}

// Close releases the snapshot; a second Close does nothing.
func (br *Reader) Close() error {
	if br.snap == nil {
		return nil
	}
	err := br.snap.Close()
	br.snap, br.cur = nil, nil
	return err
}
