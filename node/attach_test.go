package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// randomBytes returns n seeded pseudo-random bytes (the seed is logged).
func randomBytes(t *testing.T, n int, seed uint64) []byte {
	t.Helper()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return DigestPrefix + hex.EncodeToString(s[:])
}

func readAttachment(t *testing.T, db *DB, id, name string) (AttachmentInfo, []byte) {
	t.Helper()
	info, r, err := db.Attachment(t.Context(), id, name)
	if err != nil {
		t.Fatalf("attachment %s/%s: %v", id, name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read attachment %s/%s: %v", id, name, err)
	}
	return info, b
}

func countKeys(t *testing.T, db *DB, pre []byte) int {
	t.Helper()
	n := 0
	if err := db.store.Range(pre, nil, false, func(k, _ []byte) (bool, error) {
		if !bytes.HasPrefix(k, pre) {
			return false, nil
		}
		n++
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAttachmentRoundTrip(t *testing.T) {
	_, db := testDB(t)
	data := randomBytes(t, 5<<20+123, 1) // several chunks and a short last one
	rev := mustPut(t, db, "a", map[string]any{"title": "report"}, "")
	res, err := db.PutAttachment(t.Context(), "a", "report.bin", "application/octet-stream", bytes.NewReader(data), rev)
	if err != nil {
		t.Fatal(err)
	}
	info, got := readAttachment(t, db, "a", "report.bin")
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want the %d written", len(got), len(data))
	}
	if info.Digest != sha(data) || info.Length != int64(len(data)) || info.ContentType != "application/octet-stream" {
		t.Fatalf("got info %+v, want digest %s length %d", info, sha(data), len(data))
	}
	if sha(got) != info.Digest {
		t.Fatalf("content hashes to %s, info says %s", sha(got), info.Digest)
	}
	doc := mustGet(t, db, "a")
	if doc.Rev != res.Rev {
		t.Fatalf("got rev %s, want %s", doc.Rev, res.Rev)
	}
	atts, _ := doc.Body[AttachmentsField].(map[string]any)
	if e, _ := atts["report.bin"].(map[string]any); e["digest"] != sha(data) || e["length"] != int64(len(data)) {
		t.Fatalf("got _attachments %v", doc.Body[AttachmentsField])
	}
	// A Put keeps the attachments it cannot name.
	mustPut(t, db, "a", map[string]any{"title": "report v2"}, "")
	if _, got := readAttachment(t, db, "a", "report.bin"); !bytes.Equal(got, data) {
		t.Fatal("attachment lost by a Put of the body")
	}
	if _, err := db.Put(t.Context(), "a", map[string]any{AttachmentsField: map[string]any{}}, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("put with _attachments: got %v, want ErrInvalid", err)
	}
}

func TestAttachmentSeek(t *testing.T) {
	_, db := testDB(t)
	data := randomBytes(t, 3*ChunkBytes+17, 2)
	if _, err := db.PutAttachment(t.Context(), "s", "x", "", bytes.NewReader(data), ""); err != nil {
		t.Fatal(err)
	}
	_, r, err := db.Attachment(t.Context(), "s", "x")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, off := range []int64{0, 1, ChunkBytes - 1, ChunkBytes, 2*ChunkBytes + 5, int64(len(data)) - 3} {
		if _, err := r.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 10)
		n, err := io.ReadFull(r, got)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("read at %d: %v", off, err)
		}
		if want := data[off:min(off+10, int64(len(data)))]; !bytes.Equal(got[:n], want) {
			t.Fatalf("at %d: got %x, want %x", off, got[:n], want)
		}
	}
	if end, _ := r.Seek(0, io.SeekEnd); end != int64(len(data)) {
		t.Fatalf("seek end: got %d, want %d", end, len(data))
	}
}

func TestAttachmentStoredOnce(t *testing.T) {
	_, db := testDB(t)
	data := randomBytes(t, ChunkBytes*2+1, 3)
	for _, id := range []string{"a", "b"} {
		if _, err := db.PutAttachment(t.Context(), id, "f", "", bytes.NewReader(data), ""); err != nil {
			t.Fatal(err)
		}
	}
	if got := countKeys(t, db, db.keys.BlobMetas()); got != 1 {
		t.Fatalf("got %d blobs, want 1", got)
	}
	if got := countKeys(t, db, db.keys.AllBlobChunks()); got != 3 {
		t.Fatalf("got %d chunks, want 3", got)
	}
}

func TestAttachmentDigestChecks(t *testing.T) {
	_, db := testDB(t)
	data := []byte("hello")
	other := sha([]byte("other"))
	_, err := db.PutAttachmentDigest(t.Context(), "d", "f", "text/plain", bytes.NewReader(data), "", other)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("wrong digest: got %v, want ErrDigestMismatch", err)
	}
	if _, err := db.Get(t.Context(), "d"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("document after a rejected attachment: got %v, want ErrNotFound", err)
	}
	if n := countKeys(t, db, db.keys.BlobMetas()) + countKeys(t, db, db.keys.AllBlobChunks()); n != 0 {
		t.Fatalf("a rejected blob left %d keys", n)
	}
	if _, err := db.LinkAttachment(t.Context(), "d", "f", "text/plain", other, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("link of an absent digest: got %v, want ErrNotFound", err)
	}
	if _, err := db.LinkAttachment(t.Context(), "d", "f", "text/plain", "sha256-zz", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("link of a malformed digest: got %v, want ErrInvalid", err)
	}
	if _, err := db.PutAttachmentDigest(t.Context(), "d", "f", "text/plain", bytes.NewReader(data), "", sha(data)); err != nil {
		t.Fatalf("right digest: %v", err)
	}
	bi, err := db.PutBlob(t.Context(), bytes.NewReader([]byte("linked")), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.LinkAttachment(t.Context(), "d", "g", "text/plain", bi.Digest, ""); err != nil {
		t.Fatalf("link of a stored blob: %v", err)
	}
	if _, got := readAttachment(t, db, "d", "g"); string(got) != "linked" {
		t.Fatalf("got %q, want linked", got)
	}
}

func TestDeleteAttachmentAndCompact(t *testing.T) {
	n, db := testDB(t)
	keep := randomBytes(t, ChunkBytes+5, 4)
	drop := randomBytes(t, 2*ChunkBytes, 5)
	if _, err := db.PutAttachment(t.Context(), "k", "keep", "", bytes.NewReader(keep), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutAttachment(t.Context(), "k", "drop", "", bytes.NewReader(drop), ""); err != nil {
		t.Fatal(err)
	}
	// A reader opened before the delete and the compaction keeps its view.
	_, held, err := db.Attachment(t.Context(), "k", "drop")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := db.DeleteAttachment(t.Context(), "k", "drop", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Attachment(t.Context(), "k", "drop"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted attachment: got %v, want ErrNotFound", err)
	}
	if _, err := db.DeleteAttachment(t.Context(), "k", "drop", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: got %v, want ErrNotFound", err)
	}
	doc := mustGet(t, db, "k")
	if atts := doc.Body[AttachmentsField].(map[string]any); len(atts) != 1 || atts["keep"] == nil {
		t.Fatalf("got _attachments %v, want only keep", atts)
	}
	st, err := n.CompactBlobs(t.Context(), "db")
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 1 || st.Bytes != int64(len(drop)) {
		t.Fatalf("got %+v, want 1 blob of %d bytes reclaimed", st, len(drop))
	}
	if got := countKeys(t, db, db.keys.AllBlobChunks()); got != 2 {
		t.Fatalf("got %d chunks left, want the 2 of keep", got)
	}
	if _, got := readAttachment(t, db, "k", "keep"); !bytes.Equal(got, keep) {
		t.Fatal("referenced blob damaged by compaction")
	}
	if got, err := io.ReadAll(held); err != nil || !bytes.Equal(got, drop) {
		t.Fatalf("reader held across compaction: %d bytes, %v", len(got), err)
	}
	if st, err := n.CompactBlobs(t.Context(), "db"); err != nil || st != (CompactStats{}) {
		t.Fatalf("second compaction: got %+v, %v, want nothing", st, err)
	}
}

func TestCompactBlobsReclaimsAbandonedUploads(t *testing.T) {
	n, db := testDB(t)
	// A crash mid-upload leaves chunks under an upload id no metadata names.
	b := db.store.NewWriteBatch()
	b.Set(db.keys.BlobChunk(uploadID{1}, 0), []byte("partial"))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutAttachment(t.Context(), "x", "f", "", bytes.NewReader([]byte("whole")), ""); err != nil {
		t.Fatal(err)
	}
	st, err := n.CompactBlobs(t.Context(), "db")
	if err != nil {
		t.Fatal(err)
	}
	if st.Uploads != 1 || st.Blobs != 0 {
		t.Fatalf("got %+v, want 1 abandoned upload and no blob reclaimed", st)
	}
	if _, got := readAttachment(t, db, "x", "f"); string(got) != "whole" {
		t.Fatalf("got %q, want whole", got)
	}
}

func TestPinnedBlobSurvivesCompaction(t *testing.T) {
	n, db := testDB(t)
	bi, err := db.PutBlob(t.Context(), bytes.NewReader([]byte("pinned")), "")
	if err != nil {
		t.Fatal(err)
	}
	dg, _ := parseDigest(bi.Digest)
	db.blobs.Pin(dg)
	if st, err := n.CompactBlobs(t.Context(), "db"); err != nil || st.Blobs != 0 {
		t.Fatalf("got %+v, %v, want the pinned blob kept", st, err)
	}
	db.blobs.Unpin(dg)
	if st, err := n.CompactBlobs(t.Context(), "db"); err != nil || st.Blobs != 1 {
		t.Fatalf("got %+v, %v, want the unreferenced blob reclaimed", st, err)
	}
}
