package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	bsync "github.com/barrel-db/barrel/sync"
)

// content is a deterministic stream of n bytes: the same seed gives the
// same bytes, never held whole in memory.
func content(seed byte, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{seed}), n)
}

// contentDigest is the digest of content(seed, n).
func contentDigest(t *testing.T, seed byte, n int64) digest {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, content(seed, n)); err != nil {
		t.Fatal(err)
	}
	var d digest
	h.Sum(d[:0])
	return d
}

// readDigest reads attachment name of doc on d and returns its digest.
func readDigest(d *DB, doc, name string) (digest, error) {
	_, r, err := d.Attachment(context.Background(), doc, name)
	if err != nil {
		return digest{}, err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return digest{}, err
	}
	var got digest
	h.Sum(got[:0])
	return got, nil
}

// counter reads a counter of n's registry with the given labels.
func counter(n *Node, name string, labels ...string) float64 {
	mfs, err := n.Gatherer().Gather()
	if err != nil {
		return -1
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func fastBlobRetry(_ int, c *P2PConfig) { c.BlobRetry = 50 * time.Millisecond }

// TestBlobReplicationTransitive: an attachment written on peer 0 reaches
// peer 2 through peer 1 (0 and 2 never meet), byte-identical.
func TestBlobReplicationTransitive(t *testing.T) {
	tn := newTestNetWith(t, 3, fastBlobRetry)
	tn.createDB("files")
	tn.connect(0, 1)
	tn.connect(1, 2)
	const size = 9<<20 + 12345 // not a whole number of chunks
	want := contentDigest(t, 1, size)
	if _, err := tn.db(0, "files").PutAttachment(t.Context(), "d1", "big.bin", "application/octet-stream", content(1, size), ""); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		waitFor(t, fmt.Sprintf("the blob on peer %d", i), 30*time.Second, func() bool {
			got, err := readDigest(tn.db(i, "files"), "d1", "big.bin")
			return err == nil && got == want
		})
	}
	// Nothing is left wanted, and the transfer went through peer 1.
	for i := range 3 {
		if w, err := tn.db(i, "files").blobWants(10); err != nil || len(w) != 0 {
			t.Errorf("peer %d: wanted blobs %v (%v), want none", i, w, err)
		}
	}
	if got := counter(tn.nodes[2], "barrel_sync_blob_bytes_received_total"); got != size {
		t.Errorf("peer 2 received %v blob bytes, want %d", got, size)
	}
}

// evilHost is a libp2p host with a key of its own, for a peer that sends
// documents and then serves their blobs its own way.
func evilHost(t *testing.T) (host.Host, crypto.PrivKey) {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, priv
}

// sendAttachmentDoc makes the evil host's signed change that attaches
// digest dg (length bytes) to doc reach node n as if pulled from it:
// through the sync store, so it triggers the fetch from the evil host.
func sendAttachmentDoc(t *testing.T, n *Node, evil host.Host, key crypto.PrivKey, doc string, dg digest, length int64) {
	t.Helper()
	ctx := t.Context()
	if err := evil.Connect(ctx, peer.AddrInfo{ID: n.PeerID(), Addrs: n.net.Load().host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	info := AttachmentInfo{ContentType: "application/octet-stream", Length: length, Digest: dg.String()}
	v, err := crdt.Normalize(info.value())
	if err != nil {
		t.Fatal(err)
	}
	c := craft(t, key, evil.ID(), "files", doc, nil, crdt.Op{Kind: crdt.OpSet, Path: "/_attachments/f", Value: v})
	if _, err := (syncStore{n}).Apply(ctx, "files", evil.ID(), []*crdt.Change{c}); err != nil {
		t.Fatal(err)
	}
}

// blobFrame encodes one blob protocol frame by hand, as a hostile peer
// would: uvarint length, CBOR [type, [fields...]].
func blobFrame(t *testing.T, typ int, fields ...any) []byte {
	t.Helper()
	p, err := cbor.Marshal([]any{typ, fields})
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.AppendUvarint(nil, uint64(len(p))), p...)
}

// readBlobRequest reads a client's BlobGet frame and returns its offset.
func readBlobRequest(s network.Stream) (uint64, error) {
	r := &byteReader{r: s}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > 1<<10 {
		return 0, fmt.Errorf("request length %d: %v", n, err)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(s, p); err != nil {
		return 0, err
	}
	var env struct {
		_    struct{} `cbor:",toarray"`
		Type int
		Body []any
	}
	if err := cbor.Unmarshal(p, &env); err != nil || len(env.Body) != 5 {
		return 0, fmt.Errorf("request: %v", err)
	}
	off, _ := env.Body[3].(uint64)
	return off, nil
}

type byteReader struct{ r io.Reader }

func (b *byteReader) ReadByte() (byte, error) {
	var p [1]byte
	_, err := io.ReadFull(b.r, p[:])
	return p[0], err
}

// TestBlobTransferResumes: a transfer cut half-way keeps what arrived,
// survives a restart of the receiver, and completes from another peer
// starting at the stored offset: the bytes received after the restart are
// the missing half only.
func TestBlobTransferResumes(t *testing.T) {
	tn := newTestNetWith(t, 2, fastBlobRetry)
	tn.createDB("files")
	const size = 32 << 20
	const half = size / 2
	dg := contentDigest(t, 2, size)
	// Peer 1 holds the blob (not yet connected to peer 0).
	if _, err := tn.db(1, "files").PutAttachment(t.Context(), "d1", "f", "application/octet-stream", content(2, size), ""); err != nil {
		t.Fatal(err)
	}
	// The evil peer sends half the content, then stalls until cut.
	evil, key := evilHost(t)
	cut := make(chan struct{})
	evil.SetStreamHandler(bsync.BlobProtocolID, func(s network.Stream) {
		defer s.Reset()
		if _, err := readBlobRequest(s); err != nil {
			return
		}
		s.Write(blobFrame(t, 2, uint64(size)))
		src := content(2, half)
		buf := make([]byte, 256<<10)
		for {
			n, err := io.ReadFull(src, buf)
			if n > 0 {
				if _, err := s.Write(blobFrame(t, 3, buf[:n])); err != nil {
					return
				}
			}
			if err != nil {
				break
			}
		}
		<-cut
	})
	sendAttachmentDoc(t, tn.nodes[0], evil, key, "d1", dg, size)
	waitFor(t, "half the blob received by peer 0", 20*time.Second, func() bool {
		got, ok := tn.db(0, "files").blobs.Received(dg)
		return ok && got == half
	})
	_, err := readDigest(tn.db(0, "files"), "d1", "f")
	if want := fmt.Sprintf("%d of %d bytes received", half, size); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("read during the transfer: %v, want it to say %q", err, want)
	}
	// Cut the connection (what arrived is stored when the transfer stops,
	// not only every blobstore.IngestChunks), then restart the receiver.
	tn.nodes[0].net.Load().host.Network().ClosePeer(evil.ID())
	close(cut)
	evil.Close()
	tn.stop(0)
	tn.start(0)
	w, err := tn.db(0, "files").blobWant(dg)
	if err != nil || w.Chunks*ChunkBytes != half || w.Length != size {
		t.Fatalf("after the restart: want record %+v (%v), want %d bytes of %d stored", w, err, half, size)
	}
	if _, err := readDigest(tn.db(0, "files"), "d1", "f"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not arrived") {
		t.Fatalf("read before the blob arrived: %v, want not found: has not arrived", err)
	}
	tn.connect(0, 1)
	waitFor(t, "the blob on peer 0", 30*time.Second, func() bool {
		got, err := readDigest(tn.db(0, "files"), "d1", "f")
		return err == nil && got == dg
	})
	if got := counter(tn.nodes[0], "barrel_sync_blob_bytes_received_total"); got != size-half {
		t.Errorf("received %v bytes after the restart, want the missing %d", got, size-half)
	}
	// The partial upload's chunks are the blob's: nothing orphaned.
	if st, err := tn.nodes[0].CompactBlobs(t.Context(), "files"); err != nil || st.Uploads != 0 || st.Blobs != 0 {
		t.Errorf("compaction after the resumed transfer: %+v, %v; want nothing to reclaim", st, err)
	}
}

// TestHostileBlobPeer: a peer that sends other bytes than the digest's, a
// frame past the limit, or data past the length it announced gets its
// stream reset; nothing becomes visible, no chunk stays behind, the
// failures are counted, and memory stays bounded.
func TestHostileBlobPeer(t *testing.T) {
	// One attempt per blob: no retry stores anything after the check.
	tn := newTestNetWith(t, 1, func(_ int, c *P2PConfig) { c.BlobRetry = time.Hour })
	tn.createDB("files")
	n := tn.nodes[0]
	d := tn.db(0, "files")
	const size = 3<<20 + 17
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	for _, tc := range []struct {
		name   string
		result string // barrel_sync_blob_fetches_total result
		serve  func(s network.Stream, off uint64)
	}{
		{"wrong content", "digest_mismatch", func(s network.Stream, off uint64) {
			s.Write(blobFrame(t, 2, uint64(size)))
			src := content(99, size) // not the digest's content
			io.CopyN(io.Discard, src, int64(off))
			buf := make([]byte, 256<<10)
			for {
				n, err := io.ReadFull(src, buf)
				if n > 0 {
					s.Write(blobFrame(t, 3, buf[:n]))
				}
				if err != nil {
					return
				}
			}
		}},
		{"oversized frame", "bad_peer", func(s network.Stream, _ uint64) {
			s.Write(blobFrame(t, 2, uint64(size)))
			s.Write(binary.AppendUvarint(nil, 1<<30))
			s.Write(bytes.Repeat([]byte{0x41}, 1<<16))
		}},
		{"endless data", "bad_peer", func(s network.Stream, _ uint64) {
			s.Write(blobFrame(t, 2, uint64(size)))
			f := blobFrame(t, 3, bytes.Repeat([]byte{7}, 64<<10))
			for range 10_000 { // 640 MiB at most; the receiver stops it far sooner
				if _, err := s.Write(f); err != nil {
					return
				}
			}
		}},
		{"data without a length", "bad_peer", func(s network.Stream, _ uint64) {
			s.Write(blobFrame(t, 3, []byte("surprise")))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evil, key := evilHost(t)
			evil.SetStreamHandler(bsync.BlobProtocolID, func(s network.Stream) {
				defer s.Reset()
				s.SetDeadline(time.Now().Add(10 * time.Second))
				off, err := readBlobRequest(s)
				if err != nil {
					return
				}
				tc.serve(s, off)
				// Let the receiver read everything before the stream goes.
				s.CloseWrite()
				io.Copy(io.Discard, s)
			})
			dg := contentDigest(t, byte(len(tc.name)), size)
			was := counter(n, "barrel_sync_blob_fetches_total", "result", tc.result)
			sendAttachmentDoc(t, n, evil, key, "doc-"+tc.name, dg, size)
			waitFor(t, tc.result+" counted", 20*time.Second, func() bool {
				return counter(n, "barrel_sync_blob_fetches_total", "result", tc.result) > was
			})
			evil.Close() // no more retries against it
			if ok, err := d.hasBlob(dg); err != nil || ok {
				t.Fatalf("blob visible after a hostile transfer (%v)", err)
			}
			if _, err := readDigest(d, "doc-"+tc.name, "f"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("read the attachment: %v, want not found", err)
			}
			if w, err := d.blobWant(dg); err != nil || w.Length != size {
				t.Fatalf("want record %+v (%v): the blob must stay wanted", w, err)
			}
		})
	}
	// No chunk stays behind: wrong content is dropped at the digest check,
	// and what a peer that broke the protocol sent is not kept for a resume.
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<20 {
		t.Errorf("heap grew by %d MiB across hostile transfers", grew>>20)
	}
	if chunks := countKeys(t, d, d.keys.AllBlobChunks()); chunks != 0 {
		t.Errorf("%d blob chunks stored after hostile transfers, want none", chunks)
	}
}

// TestBlobReadAccess: a peer that may not read the database gets no blob.
func TestBlobReadAccess(t *testing.T) {
	tn := newTestNetWith(t, 2, fastBlobRetry)
	tn.createDB("files")
	owner, other := tn.nodes[0], tn.nodes[1]
	mustSetACL(t, owner, "files", ACL{Owner: owner.PeerID().String(), Readers: []string{owner.PeerID().String()}})
	info, err := tn.db(0, "files").PutBlob(t.Context(), content(5, 1<<20), "")
	if err != nil {
		t.Fatal(err)
	}
	dg, _ := parseDigest(info.Digest)
	tn.connect(1, 0)
	_, err = other.net.Load().blobs.client.Fetch(t.Context(), owner.PeerID(), "files", bsync.Digest(dg), info.Length)
	if !errors.Is(err, bsync.ErrForbidden) {
		t.Fatalf("fetch by a peer that may not read: %v, want forbidden", err)
	}
	if ok, _ := tn.db(1, "files").hasBlob(dg); ok {
		t.Fatal("the blob reached a peer that may not read")
	}
}
