package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/blobstore"
	bsync "github.com/barrel-db/barrel/sync"
)

// Blob replication, the store side (bsync.BlobStore). A blob a received
// document references and this database lacks is *wanted*: a 'W' digest
// record says so durably, so a restart still fetches it. The same record
// carries a transfer's progress: the upload id its chunks go under, the
// chunks stored and the SHA-256 state after them. The sink writes chunks
// as they arrive through a datastore.Ingest (written once, as table files
// past 4 MiB), committed every blobIngestChunks chunks and when the
// transfer stops, with the record updated after them: a cut connection
// loses nothing stored, a crash at most blobIngestChunks chunks, and the
// next transfer resumes at the record's offset with the hash state it
// saved. Only Commit, after the digest of the whole content matched,
// writes the 'B' metadata (the blob becomes visible) and deletes the
// record. A mismatch drops the chunks and the record.

// blobIngestChunks is how many received chunks one ingest holds (32 MiB):
// what a crash can cost a resumed transfer, against an ingest (a table,
// its link and a manifest update, synced) per that many bytes.
const blobIngestChunks = 128

type blobWant = blobstore.Want

func decodeBlobWant(b []byte) (blobWant, error) { return blobstore.DecodeWant(b) }

// blobStore is the node as the blob protocol sees it; its read check is
// the sync server's (syncStore.AuthorizeRead).
type blobStore struct{ syncStore }

var _ bsync.BlobStore = blobStore{}

// OpenBlob implements bsync.BlobStore.
func (s blobStore) OpenBlob(ctx context.Context, db string, d bsync.Digest) (io.ReadSeekCloser, int64, error) {
	dd, err := s.db(db)
	if err != nil {
		return nil, 0, err
	}
	snap, err := dd.store.Snapshot()
	if err != nil {
		return nil, 0, err
	}
	v, err := snap.Get(dd.keys.BlobMeta(digest(d)))
	if errors.Is(err, datastore.ErrNotFound) {
		_ = snap.Close()
		return nil, 0, fmt.Errorf("blob %s: %w", digest(d), bsync.ErrBlobNotFound)
	}
	if err != nil {
		_ = snap.Close()
		return nil, 0, fmt.Errorf("read blob %s: %w", digest(d), err)
	}
	m, err := decodeBlobMeta(v)
	if err != nil {
		_ = snap.Close()
		return nil, 0, fmt.Errorf("blob %s: %w", digest(d), err)
	}
	return blobstore.NewReader(snap, dd.keys, m), m.Length, nil
}

// ReceiveBlob implements bsync.BlobStore.
func (s blobStore) ReceiveBlob(ctx context.Context, db string, d bsync.Digest) (bsync.BlobSink, error) {
	dd, err := s.db(db)
	if err != nil {
		return nil, err
	}
	return dd.receiveBlob(digest(d))
}

// receiveBlob opens a sink for blob dg, resuming the transfer its want
// record describes.
func (d *DB) receiveBlob(dg digest) (*blobSink, error) {
	if err := d.checkOpen(); err != nil {
		return nil, err
	}
	got := d.blobs.StartReceive(dg)
	if got == nil {
		return nil, fmt.Errorf("blob %s: %w", dg, errReceiving)
	}
	w, err := d.blobWant(dg)
	if err != nil {
		d.blobs.EndReceive(dg)
		return nil, err
	}
	h := sha256.New()
	if w.Chunks > 0 {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(w.State); err != nil {
			// A state we cannot read: start over.
			d.log.Warn("blob transfer state unreadable; starting over", "digest", dg.String(), "err", err)
			d.dropUpload(w.Upload)
			w = blobWant{Length: w.Length}
			h = sha256.New()
		}
	}
	if w.Upload == (uploadID{}) {
		if _, err := rand.Read(w.Upload[:]); err != nil {
			d.blobs.EndReceive(dg)
			return nil, fmt.Errorf("upload id: %w", err)
		}
	}
	d.blobs.StartUpload(w.Upload)
	got.Store(int64(w.Chunks) * ChunkBytes)
	return &blobSink{d: d, dg: dg, w: w, h: h, buf: make([]byte, 0, ChunkBytes), in: d.store.NewIngest(), got: got}, nil
}

// errReceiving: a second transfer of a blob already being received.
var errReceiving = errors.New("being received already")

// blobWant reads the want record of dg (the zero record if none).
func (d *DB) blobWant(dg digest) (blobWant, error) {
	v, err := d.store.Get(d.keys.BlobWant(dg))
	if errors.Is(err, datastore.ErrNotFound) {
		return blobWant{}, nil
	}
	if err != nil {
		return blobWant{}, fmt.Errorf("read blob want %s: %w", dg, err)
	}
	w, err := decodeBlobWant(v)
	if err != nil {
		d.log.Warn("blob want record corrupt; starting over", "digest", dg.String(), "err", err)
		return blobWant{Length: max(w.Length, 0)}, nil
	}
	return w, nil
}

func (d *DB) dropUpload(u uploadID) {
	if err := blobstore.DropUpload(d.store, d.keys, u); err != nil {
		d.log.Warn("drop blob chunks failed; compaction will reclaim them", "err", err)
	}
}

// blobSink writes one received blob (bsync.BlobSink). It holds one chunk
// buffer and one ingest of chunks. Used by one goroutine.
type blobSink struct {
	d       *DB
	dg      digest
	w       blobWant
	h       hash.Hash // over the chunks in w.Chunks
	buf     []byte    // the chunk being filled
	in      *datastore.Ingest
	pending int           // chunks in in
	got     *atomic.Int64 // bytes received, stored or in buf (blobState.received)
	done    bool          // committed or dropped: nothing left to keep
	closed  bool
}

// Offset implements bsync.BlobSink: resumes start at a chunk boundary.
func (s *blobSink) Offset() int64 { return int64(s.w.Chunks) * ChunkBytes }

// Write implements bsync.BlobSink.
func (s *blobSink) Write(p []byte) (int, error) {
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
// with the progress record every blobIngestChunks chunks.
func (s *blobSink) flushChunk() error {
	if err := s.addChunk(); err != nil {
		return err
	}
	if s.pending < blobIngestChunks {
		return nil
	}
	return s.persist()
}

// addChunk moves the chunk buffer, full or the last, into the ingest.
func (s *blobSink) addChunk() error {
	s.h.Write(s.buf)
	if err := s.in.Set(s.d.keys.BlobChunk(s.w.Upload, s.w.Chunks), s.buf); err != nil {
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
func (s *blobSink) persist() error {
	st, err := s.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return fmt.Errorf("blob %s: save hash state: %w", s.dg, err)
	}
	s.w.State = st
	b := s.d.store.NewWriteBatch()
	defer b.Close()
	b.Set(s.d.keys.BlobWant(s.dg), s.w.Encode())
	err = s.in.Commit(context.Background(), b)
	s.in, s.pending = s.d.store.NewIngest(), 0
	if err != nil {
		return fmt.Errorf("blob %s: write chunks: %w", s.dg, err)
	}
	return nil
}

// Commit implements bsync.BlobSink.
func (s *blobSink) Commit(length int64) error {
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
	var got digest
	s.h.Sum(got[:0])
	if got != s.dg {
		s.drop(true)
		return fmt.Errorf("blob %s: received content has %s: %w", s.dg, got, bsync.ErrDigestMismatch)
	}
	s.d.blobs.Pin(s.dg)
	defer s.d.blobs.Unpin(s.dg)
	if ok, err := s.d.store.Has(s.d.keys.BlobMeta(s.dg)); err != nil || ok {
		// Stored meanwhile (a local upload of the same content): keep it.
		s.drop(false)
		return err
	}
	m := blobMeta{Length: length, Chunks: s.w.Chunks, Chunk: ChunkBytes, Upload: s.w.Upload}
	b := s.d.store.NewWriteBatch()
	defer b.Close()
	b.Set(s.d.keys.BlobMeta(s.dg), m.Encode())
	b.Delete(s.d.keys.BlobWant(s.dg))
	if err := s.in.Commit(context.Background(), b); err != nil {
		return fmt.Errorf("blob %s: write metadata: %w", s.dg, err)
	}
	s.done = true
	return nil
}

// drop deletes every chunk this transfer stored. The want record is reset
// to no progress if the blob is still wanted (a mismatch: another peer may
// hold the right content), deleted otherwise.
func (s *blobSink) drop(stillWanted bool) {
	s.in.Close()
	b := s.d.store.NewWriteBatch()
	defer b.Close()
	b.DeleteRange(s.d.keys.BlobChunks(s.w.Upload), datastore.PrefixEnd(s.d.keys.BlobChunks(s.w.Upload)))
	if stillWanted {
		b.Set(s.d.keys.BlobWant(s.dg), blobWant{Length: s.w.Length}.Encode())
	} else {
		b.Delete(s.d.keys.BlobWant(s.dg))
	}
	if err := b.Commit(); err != nil {
		s.d.log.Warn("drop received blob chunks failed; compaction will reclaim them", "err", err)
	}
	s.done = true
}

// Drop implements bsync.BlobSink.
func (s *blobSink) Drop() {
	if !s.done && !s.closed {
		s.drop(true)
	}
}

// Close implements bsync.BlobSink: an unfinished transfer keeps its full
// chunks and their record for a resume (the partial chunk in the buffer is
// received again).
func (s *blobSink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	defer s.d.blobs.EndReceive(s.dg)
	defer s.d.blobs.EndUpload(s.w.Upload)
	if s.done || s.pending == 0 {
		s.in.Close()
		return nil
	}
	err := s.persist()
	s.in.Close()
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
// it is stored already. It reports nothing for a blob present.
func (d *DB) addBlobWant(dg digest, length int64) error {
	if ok, err := d.store.Has(d.keys.BlobMeta(dg)); err != nil || ok {
		return err
	}
	if ok, err := d.store.Has(d.keys.BlobWant(dg)); err != nil || ok {
		return err
	}
	b := d.store.NewWriteBatch()
	defer b.Close()
	b.Set(d.keys.BlobWant(dg), blobWant{Length: length}.Encode())
	return b.Commit()
}

// blobWants lists the wanted blobs of the database with their lengths
// (-1 when unknown), at most limit of them.
func (d *DB) blobWants(limit int) (map[digest]int64, error) {
	out := map[digest]int64{}
	pre := d.keys.BlobWants()
	err := d.store.Range(pre, datastore.PrefixEnd(pre), false, func(k, v []byte) (bool, error) {
		var dg digest
		if len(k) != len(pre)+len(dg) {
			return true, nil
		}
		copy(dg[:], k[len(pre):])
		w, err := decodeBlobWant(v)
		if err != nil {
			w.Length = -1 // unknown: the transfer takes the server's
		}
		out[dg] = w.Length
		return len(out) < limit, nil
	})
	return out, err
}

// hasBlob reports whether the blob dg is complete here.
func (d *DB) hasBlob(dg digest) (bool, error) {
	return d.store.Has(d.keys.BlobMeta(dg))
}
