package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

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

// blobState is what blob writers and CompactBlobs share. mu guards every
// field; CompactBlobs holds it across its final delete batch (see there).
type blobState struct {
	mu         sync.Mutex
	pins       map[digest]int
	uploads    map[uploadID]bool
	compacting bool
	touched    map[digest]bool          // pinned at some point of the running compaction
	touchedUp  map[uploadID]bool        // uploading at some point of the running compaction
	receiving  map[digest]*atomic.Int64 // blobs a replication transfer is writing: bytes received
}

// startReceive claims dg for one replication transfer, whose sink counts
// the bytes received in the counter returned; nil if another transfer
// holds dg.
func (b *blobState) startReceive(d digest) *atomic.Int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.receiving[d] != nil {
		return nil
	}
	if b.receiving == nil {
		b.receiving = map[digest]*atomic.Int64{}
	}
	got := new(atomic.Int64)
	b.receiving[d] = got
	return got
}

// received reports the bytes of dg a running transfer holds (stored or
// not yet); false when no transfer of dg runs.
func (b *blobState) received(d digest) (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if got := b.receiving[d]; got != nil {
		return got.Load(), true
	}
	return 0, false
}

func (b *blobState) endReceive(d digest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.receiving, d)
}

func (b *blobState) pin(d digest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pins == nil {
		b.pins = map[digest]int{}
	}
	b.pins[d]++
	if b.compacting {
		b.touched[d] = true
	}
}

func (b *blobState) unpin(d digest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pins[d]--; b.pins[d] <= 0 {
		delete(b.pins, d)
	}
}

func (b *blobState) startUpload(u uploadID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.uploads == nil {
		b.uploads = map[uploadID]bool{}
	}
	b.uploads[u] = true
	if b.compacting {
		b.touchedUp[u] = true
	}
}

func (b *blobState) endUpload(u uploadID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.uploads, u)
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Digest string // "sha256-<hex>"
	Length int64  // bytes
}

// writeBlob streams r into the store and returns its digest, pinned: the
// caller must call d.blobs.unpin once the blob is referenced (or not
// needed). want, when set, is the digest the content must have; a mismatch
// stores nothing and returns ErrDigestMismatch.
func (d *DB) writeBlob(ctx context.Context, r io.Reader, want string) (digest, blobMeta, error) {
	var wantD digest
	if want != "" {
		var err error
		if wantD, err = parseDigest(want); err != nil {
			return digest{}, blobMeta{}, err
		}
	}
	var u uploadID
	if _, err := rand.Read(u[:]); err != nil {
		return digest{}, blobMeta{}, fmt.Errorf("upload id: %w", err)
	}
	d.blobs.startUpload(u)
	defer d.blobs.endUpload(u)
	in := d.store.NewIngest()
	defer in.Close()
	h := sha256.New()
	buf := make([]byte, ChunkBytes)
	m := blobMeta{Chunk: ChunkBytes, Upload: u}
	for {
		if err := ctx.Err(); err != nil {
			return digest{}, blobMeta{}, err
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			if serr := in.Set(d.keys.BlobChunk(u, m.Chunks), buf[:n]); serr != nil {
				return digest{}, blobMeta{}, fmt.Errorf("write blob chunks: %w", serr)
			}
			m.Chunks++
			m.Length += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return digest{}, blobMeta{}, fmt.Errorf("read blob: %w", err)
		}
	}
	var dg digest
	h.Sum(dg[:0])
	if want != "" && dg != wantD {
		return digest{}, blobMeta{}, fmt.Errorf("content has %s, want %s: %w", dg, want, ErrDigestMismatch)
	}
	d.blobs.pin(dg)
	ok, err := d.store.Has(d.keys.BlobMeta(dg))
	if err != nil {
		d.blobs.unpin(dg)
		return digest{}, blobMeta{}, fmt.Errorf("write blob: %w", err)
	}
	if ok {
		// Stored already: keep the old copy, drop ours (in.Close).
		old, err := d.blobMetaOf(dg)
		if err != nil {
			d.blobs.unpin(dg)
			return digest{}, blobMeta{}, err
		}
		return dg, old, nil
	}
	// A small blob's chunks commit with its metadata in one batch; a larger
	// one's are ingested first, so a failure of the metadata batch leaves
	// chunks no metadata points at.
	b := d.store.NewWriteBatch()
	defer b.Close()
	b.Set(d.keys.BlobMeta(dg), m.Encode())
	if err := in.Commit(ctx, b); err != nil {
		d.blobs.unpin(dg)
		d.dropUpload(u)
		return digest{}, blobMeta{}, fmt.Errorf("write blob: %w", err)
	}
	return dg, m, nil
}

func (d *DB) blobMetaOf(dg digest) (blobMeta, error) {
	v, err := d.store.Get(d.keys.BlobMeta(dg))
	if errors.Is(err, datastore.ErrNotFound) {
		return blobMeta{}, fmt.Errorf("blob %s: %w", dg, ErrNotFound)
	}
	if err != nil {
		return blobMeta{}, fmt.Errorf("read blob %s: %w", dg, err)
	}
	return decodeBlobMeta(v)
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
	d.blobs.unpin(dg)
	return BlobInfo{Digest: dg.String(), Length: m.Length}, nil
}

// CompactStats counts what CompactBlobs reclaimed.
type CompactStats struct {
	Blobs   int   // unreferenced complete blobs deleted
	Bytes   int64 // their content length
	Uploads int   // abandoned uploads (a crash mid-upload) deleted
}

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
	bs := &d.blobs
	bs.mu.Lock()
	bs.compacting = true
	bs.touched = map[digest]bool{}
	bs.touchedUp = map[uploadID]bool{}
	for dg := range bs.pins {
		bs.touched[dg] = true
	}
	for u := range bs.uploads {
		bs.touchedUp[u] = true
	}
	bs.mu.Unlock()
	defer func() {
		bs.mu.Lock()
		bs.compacting, bs.touched, bs.touchedUp = false, nil, nil
		bs.mu.Unlock()
	}()

	refs, err := d.referencedDigests(ctx)
	if err != nil {
		return CompactStats{}, err
	}
	type cand struct {
		dg digest
		m  blobMeta
	}
	var dead []cand
	live := map[uploadID]bool{}
	pre := d.keys.BlobMetas()
	err = d.store.Range(pre, datastore.PrefixEnd(pre), false, func(k, v []byte) (bool, error) {
		var dg digest
		if len(k) != len(pre)+len(dg) {
			return false, fmt.Errorf("blob metadata key %x: corrupt", k)
		}
		copy(dg[:], k[len(pre):])
		m, err := decodeBlobMeta(v)
		if err != nil {
			return false, fmt.Errorf("blob %s: %w", dg, err)
		}
		live[m.Upload] = true
		if !refs[dg] {
			dead = append(dead, cand{dg, m})
		}
		return true, ctx.Err()
	})
	if err != nil {
		return CompactStats{}, fmt.Errorf("list blobs: %w", err)
	}
	// A wanted blob's partial transfer is live while a document references
	// the blob; a want no document needs any more goes with its chunks.
	var deadWants []cand
	wpre := d.keys.BlobWants()
	err = d.store.Range(wpre, datastore.PrefixEnd(wpre), false, func(k, v []byte) (bool, error) {
		var dg digest
		if len(k) != len(wpre)+len(dg) {
			return false, fmt.Errorf("blob want key %x: corrupt", k)
		}
		copy(dg[:], k[len(wpre):])
		w, _ := decodeBlobWant(v) // a corrupt record still names its upload
		live[w.Upload] = true
		if !refs[dg] {
			deadWants = append(deadWants, cand{dg, blobMeta{Upload: w.Upload}})
		}
		return true, ctx.Err()
	})
	if err != nil {
		return CompactStats{}, fmt.Errorf("list wanted blobs: %w", err)
	}
	var orphans []uploadID
	cpre := d.keys.AllBlobChunks()
	for lo := cpre; ; {
		var u uploadID
		var found bool
		err := d.store.Range(lo, datastore.PrefixEnd(cpre), false, func(k, _ []byte) (bool, error) {
			if len(k) < len(cpre)+len(u) {
				return false, fmt.Errorf("blob chunk key %x: corrupt", k)
			}
			copy(u[:], k[len(cpre):])
			found = true
			return false, nil
		})
		if err != nil {
			return CompactStats{}, fmt.Errorf("list uploads: %w", err)
		}
		if !found {
			break
		}
		if !live[u] {
			orphans = append(orphans, u)
		}
		lo = datastore.PrefixEnd(d.keys.BlobChunks(u))
		if err := ctx.Err(); err != nil {
			return CompactStats{}, err
		}
	}

	// The check against the pins and the deletion happen under bs.mu, held
	// across one batch commit: a writer that pins a digest after this
	// finds its metadata gone and writes it anew, one that pinned it before
	// is spared. A "condemned" set released before the commit was the
	// alternative; it makes writers wait on compaction instead.
	bs.mu.Lock()
	defer bs.mu.Unlock()
	var st CompactStats
	b := d.store.NewWriteBatch()
	defer b.Close()
	for _, c := range dead {
		if bs.touched[c.dg] || bs.pins[c.dg] > 0 {
			continue
		}
		b.Delete(d.keys.BlobMeta(c.dg))
		b.DeleteRange(d.keys.BlobChunks(c.m.Upload), datastore.PrefixEnd(d.keys.BlobChunks(c.m.Upload)))
		st.Blobs++
		st.Bytes += c.m.Length
	}
	for _, c := range deadWants {
		if bs.touched[c.dg] || bs.pins[c.dg] > 0 || bs.receiving[c.dg] != nil || bs.touchedUp[c.m.Upload] {
			continue
		}
		b.Delete(d.keys.BlobWant(c.dg))
		b.DeleteRange(d.keys.BlobChunks(c.m.Upload), datastore.PrefixEnd(d.keys.BlobChunks(c.m.Upload)))
		st.Uploads++
	}
	for _, u := range orphans {
		if bs.touchedUp[u] || bs.uploads[u] {
			continue
		}
		b.DeleteRange(d.keys.BlobChunks(u), datastore.PrefixEnd(d.keys.BlobChunks(u)))
		st.Uploads++
	}
	if b.Len() == 0 {
		return st, nil
	}
	if err := b.Commit(); err != nil {
		return CompactStats{}, fmt.Errorf("delete blobs: %w", err)
	}
	d.log.Info("blobs compacted", "blobs", st.Blobs, "bytes", st.Bytes, "uploads", st.Uploads)
	return st, nil
}
