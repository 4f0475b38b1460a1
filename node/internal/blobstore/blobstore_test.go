package blobstore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
)

func TestParseDigest(t *testing.T) {
	d := Digest(sha256.Sum256([]byte("hello")))
	got, err := ParseDigest(d.String())
	if err != nil || got != d {
		t.Fatalf("got %v, %v, want %v", got, err, d)
	}
	for _, bad := range []string{"", "sha256-", "md5-00", DigestPrefix + "zz" + d.String()[len(DigestPrefix)+2:], d.String() + "00"} {
		if _, err := ParseDigest(bad); !errors.Is(err, ErrBadDigest) {
			t.Errorf("ParseDigest(%q): got %v, want ErrBadDigest", bad, err)
		}
	}
}

func TestWantRoundTrip(t *testing.T) {
	w := Want{Length: 3 * ChunkBytes, Chunks: 2, Upload: UploadID{1, 2}, State: []byte("state")}
	got, err := DecodeWant(w.Encode())
	if err != nil || got.Length != w.Length || got.Chunks != w.Chunks || got.Upload != w.Upload || !bytes.Equal(got.State, w.State) {
		t.Fatalf("got %+v, %v, want %+v", got, err, w)
	}
	bad := Want{Length: ChunkBytes, Chunks: 2, State: []byte("s")}.Encode()
	if _, err := DecodeWant(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("more chunks than length: got %v, want ErrCorrupt", err)
	}
	if _, err := DecodeWant(Want{Chunks: 1}.Encode()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("chunks without hash state: got %v, want ErrCorrupt", err)
	}
}

func TestMetaCorrupt(t *testing.T) {
	for _, m := range []Meta{
		{Length: 5, Chunks: 2, Chunk: ChunkBytes},
		{Length: 5, Chunks: 1, Chunk: 0},
		{Length: -1, Chunks: 0, Chunk: ChunkBytes},
	} {
		if _, err := DecodeMeta(m.Encode()); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeMeta(%+v): got %v, want ErrCorrupt", m, err)
		}
	}
	if _, err := DecodeMeta([]byte{1}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short record: got %v, want ErrCorrupt", err)
	}
}

// TestReader stores a blob of three chunks (the last one short) in a real
// Pebble store, reads it whole and from a seek, and keeps reading it from
// its snapshot after its chunks are deleted.
func TestReader(t *testing.T) {
	s, err := datastore.Open(t.TempDir(), datastore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	keys := layout.NewKeys(1)
	content := make([]byte, 2*ChunkBytes+17)
	for i := range content {
		content[i] = byte(i * 7)
	}
	u := UploadID{9}
	m := Meta{Length: int64(len(content)), Chunk: ChunkBytes, Upload: u}
	b := s.NewWriteBatch()
	for off := 0; off < len(content); off += ChunkBytes {
		b.Set(keys.BlobChunk(u, m.Chunks), content[off:min(off+ChunkBytes, len(content))])
		m.Chunks++
	}
	dg := Digest(sha256.Sum256(content))
	b.Set(keys.BlobMeta(dg), m.Encode())
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	v, err := s.Get(keys.BlobMeta(dg))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := DecodeMeta(v)
	if err != nil || stored != m {
		t.Fatalf("got %+v, %v, want %+v", stored, err, m)
	}

	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(snap, keys, stored)
	del := s.NewWriteBatch()
	del.DeleteRange(keys.BlobChunks(u), datastore.PrefixEnd(keys.BlobChunks(u)))
	if err := del.Commit(); err != nil {
		t.Fatal(err)
	}
	del.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read %d bytes, %v; want the %d stored", len(got), err, len(content))
	}
	if _, err := r.Seek(ChunkBytes+3, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(r)
	if err != nil || !bytes.Equal(got, content[ChunkBytes+3:]) {
		t.Fatalf("after seek: read %d bytes, %v; want %d", len(got), err, len(content)-ChunkBytes-3)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("seek to -1: got no error")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func FuzzDecodeBlobMeta(f *testing.F) {
	f.Add(Meta{Length: 5, Chunks: 1, Chunk: ChunkBytes}.Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		if got, err := DecodeMeta(m.Encode()); err != nil || got != m {
			t.Fatalf("re-decode: got %+v, %v, want %+v", got, err, m)
		}
	})
}
