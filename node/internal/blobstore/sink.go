package blobstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"sync/atomic"

	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// Blob replication, the store side. A blob a received
// document references and this database lacks is *wanted*: a 'W' digest
// record says so durably, so a restart still fetches it. The same record
// carries a transfer's progress: the upload id its chunks go under, the
// chunks stored and the SHA-256 state after them. The sink writes chunks
// as they arrive through a datastore.Ingest (written once, as table files
// past 4 MiB), committed every IngestChunks chunks and when the
// transfer stops, with the record updated after them: a cut connection
// loses nothing stored, a crash at most IngestChunks chunks, and the
// next transfer resumes at the record's offset with the hash state it
// saved. Only Commit, after the digest of the whole content matched,
// writes the 'B' metadata (the blob becomes visible) and deletes the
// record. A mismatch drops the chunks and the record.

// IngestChunks is how many received chunks one ingest holds (32 MiB):
// what a crash can cost a resumed transfer, against an ingest (a table,
// its link and a manifest update, synced) per that many bytes.
const IngestChunks = 128

// Receive opens a sink for blob dg, resuming the transfer its want record
// describes. ErrReceiving if another transfer of dg runs. The sink is the
// receiving side of bsync.BlobSink; log receives what it had to start over.
func Receive(s *datastore.Store, keys layout.Keys, pins *Pins, log *slog.Logger, dg Digest) (*Sink, error) {
	got := pins.StartReceive(dg)
	if got == nil {
		return nil, fmt.Errorf("blob %s: %w", dg, ErrReceiving)
	}
	w, err := ReadWant(s, keys, log, dg)
	if err != nil {
		pins.EndReceive(dg)
		return nil, err
	}
	h := sha256.New()
	if w.Chunks > 0 {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(w.State); err != nil {
			// A state we cannot read: start over.
			log.Warn("blob transfer state unreadable; starting over", "digest", dg.String(), "err", err)
			if err := DropUpload(s, keys, w.Upload); err != nil {
				log.Warn("drop blob chunks failed; compaction will reclaim them", "err", err)
			}
			w = Want{Length: w.Length}
			h = sha256.New()
		}
	}
	if w.Upload == (UploadID{}) {
		if _, err := rand.Read(w.Upload[:]); err != nil {
			pins.EndReceive(dg)
			return nil, fmt.Errorf("upload id: %w", err)
		}
	}
	pins.StartUpload(w.Upload)
	got.Store(int64(w.Chunks) * ChunkBytes)
	return &Sink{s: s, keys: keys, pins: pins, log: log, dg: dg, w: w, h: h, buf: make([]byte, 0, ChunkBytes), in: s.NewIngest(), got: got}, nil
}

// ErrReceiving: a second transfer of a blob already being received.
var ErrReceiving = errors.New("being received already")

// ReadWant reads the want record of dg (the zero record if none; a
// corrupt one is logged and read as no progress).
func ReadWant(s *datastore.Store, keys layout.Keys, log *slog.Logger, dg Digest) (Want, error) {
	v, err := s.Get(keys.BlobWant(dg))
	if errors.Is(err, datastore.ErrNotFound) {
		return Want{}, nil
	}
	if err != nil {
		return Want{}, fmt.Errorf("read blob want %s: %w", dg, err)
	}
	w, err := DecodeWant(v)
	if err != nil {
		log.Warn("blob want record corrupt; starting over", "digest", dg.String(), "err", err)
		return Want{Length: max(w.Length, 0)}, nil
	}
	return w, nil
}

// Sink writes one received blob (the store side of bsync.BlobSink). It
// holds one chunk buffer and one ingest of chunks. Used by one goroutine.
type Sink struct {
	s       *datastore.Store
	keys    layout.Keys
	pins    *Pins
	log     *slog.Logger
	dg      Digest
	w       Want
	h       hash.Hash // over the chunks in w.Chunks
	buf     []byte    // the chunk being filled
	in      *datastore.Ingest
	pending int           // chunks in in
	got     *atomic.Int64 // bytes received, stored or in buf (Pins.Received)
	done    bool          // committed or dropped: nothing left to keep
	closed  bool
}

// Offset is where a resumed transfer starts: resumes start at a chunk boundary.
func (s *Sink) Offset() int64 { return int64(s.w.Chunks) * ChunkBytes }

// Write takes the next bytes of the content.
func (s *Sink) Write(p []byte) (int, error) {
	if s.done || s.closed {
		return 0, fmt.Errorf("blob %s: write after the end", s.dg)
	}
	n := len(p)
	defer func() { s.got.Add(int64(n - len(p))) }()
	for len(p) > 0 {
		k := copy(s.buf[len(s.buf):cap(s.buf)], p)
		s.buf, p = s.buf[:len(s.buf)+k], p[k:]
		if len(s.buf) == cap(s.buf) {
			if err := s.flushChunk(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// flushChunk moves the full chunk buffer into the ingest, and commits it
// with the progress record every IngestChunks chunks.
func (s *Sink) flushChunk() error {
	if err := s.addChunk(); err != nil {
		return err
	}
	if s.pending < IngestChunks {
		return nil
	}
	return s.persist()
}

// addChunk moves the chunk buffer, full or the last, into the ingest.
func (s *Sink) addChunk() error {
	s.h.Write(s.buf)
	if err := s.in.Set(s.keys.BlobChunk(s.w.Upload, s.w.Chunks), s.buf); err != nil {
		return fmt.Errorf("blob %s: write chunks: %w", s.dg, err)
	}
	s.w.Chunks++
	s.pending++
	s.buf = s.buf[:0]
	return nil
}

// persist commits the pending chunks, then the record of the progress
// (with them when they are few; after them, once they are stored, when
// they were ingested as tables).
func (s *Sink) persist() error {
	st, err := s.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return fmt.Errorf("blob %s: save hash state: %w", s.dg, err)
	}
	s.w.State = st
	b := s.s.NewWriteBatch()
	defer b.Close()
	b.Set(s.keys.BlobWant(s.dg), s.w.Encode())
	err = s.in.Commit(context.Background(), b)
	s.in, s.pending = s.s.NewIngest(), 0
	if err != nil {
		return fmt.Errorf("blob %s: write chunks: %w", s.dg, err)
	}
	return nil
}

// Commit ends the transfer of length bytes: the blob becomes visible if
// its content has its digest (else ErrMismatch, and the chunks go).
func (s *Sink) Commit(length int64) error {
	if s.done || s.closed {
		return fmt.Errorf("blob %s: commit after the end", s.dg)
	}
	if got := s.Offset() + int64(len(s.buf)); got != length {
		return fmt.Errorf("blob %s: %d bytes received, want %d", s.dg, got, length)
	}
	if len(s.buf) > 0 {
		if err := s.addChunk(); err != nil {
			return err
		}
	}
	var got Digest
	s.h.Sum(got[:0])
	if got != s.dg {
		s.drop(true)
		return fmt.Errorf("blob %s: received content has %s: %w", s.dg, got, ErrMismatch)
	}
	s.pins.Pin(s.dg)
	defer s.pins.Unpin(s.dg)
	if ok, err := s.s.Has(s.keys.BlobMeta(s.dg)); err != nil || ok {
		// Stored meanwhile (a local upload of the same content): keep it.
		s.drop(false)
		return err
	}
	m := Meta{Length: length, Chunks: s.w.Chunks, Chunk: ChunkBytes, Upload: s.w.Upload}
	b := s.s.NewWriteBatch()
	defer b.Close()
	b.Set(s.keys.BlobMeta(s.dg), m.Encode())
	b.Delete(s.keys.BlobWant(s.dg))
	if err := s.in.Commit(context.Background(), b); err != nil {
		return fmt.Errorf("blob %s: write metadata: %w", s.dg, err)
	}
	s.done = true
	return nil
}

// drop deletes every chunk this transfer stored. The want record is reset
// to no progress if the blob is still wanted (a mismatch: another peer may
// hold the right content), deleted otherwise.
func (s *Sink) drop(stillWanted bool) {
	s.in.Close()
	b := s.s.NewWriteBatch()
	defer b.Close()
	b.DeleteRange(s.keys.BlobChunks(s.w.Upload), datastore.PrefixEnd(s.keys.BlobChunks(s.w.Upload)))
	if stillWanted {
		b.Set(s.keys.BlobWant(s.dg), Want{Length: s.w.Length}.Encode())
	} else {
		b.Delete(s.keys.BlobWant(s.dg))
	}
	if err := b.Commit(); err != nil {
		s.log.Warn("drop received blob chunks failed; compaction will reclaim them", "err", err)
	}
	s.done = true
}

// Drop abandons the transfer and its chunks.
func (s *Sink) Drop() {
	if !s.done && !s.closed {
		s.drop(true)
	}
}

// Close ends the transfer: an unfinished transfer keeps its full
// chunks and their record for a resume (the partial chunk in the buffer is
// received again).
func (s *Sink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	defer s.pins.EndReceive(s.dg)
	defer s.pins.EndUpload(s.w.Upload)
	if s.done || s.pending == 0 {
		s.in.Close()
		return nil
	}
	err := s.persist()
	s.in.Close()
	return err
}

// AddWant writes the want record of dg unless the blob or a record of it
// is stored already. It reports nothing for a blob present.
func AddWant(s *datastore.Store, keys layout.Keys, dg Digest, length int64) error {
	if ok, err := s.Has(keys.BlobMeta(dg)); err != nil || ok {
		return err
	}
	if ok, err := s.Has(keys.BlobWant(dg)); err != nil || ok {
		return err
	}
	b := s.NewWriteBatch()
	defer b.Close()
	b.Set(keys.BlobWant(dg), Want{Length: length}.Encode())
	return b.Commit()
}

// Wants lists the wanted blobs with their lengths (-1 when unknown), at
// most limit of them.
func Wants(s *datastore.Store, keys layout.Keys, limit int) (map[Digest]int64, error) {
	out := map[Digest]int64{}
	pre := keys.BlobWants()
	err := s.Range(pre, datastore.PrefixEnd(pre), false, func(k, v []byte) (bool, error) {
		var dg Digest
		if len(k) != len(pre)+len(dg) {
			return true, nil
		}
		copy(dg[:], k[len(pre):])
		w, err := DecodeWant(v)
		if err != nil {
			w.Length = -1 // unknown: the transfer takes the server's
		}
		out[dg] = w.Length
		return len(out) < limit, nil
	})
	return out, err
}
