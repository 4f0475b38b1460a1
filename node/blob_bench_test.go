package node

import (
	"log/slog"
	"runtime"
	"testing"

	"github.com/barrel-db/barrel/datastore"
	bsync "github.com/barrel-db/barrel/sync"
)

// benchPeer opens a networked node on 127.0.0.1 (durability sync, no mDNS
// or DHT) with database "files".
func benchPeer(b *testing.B) *Node {
	b.Helper()
	n, err := Open(b.Context(), Config{DataDir: b.TempDir(), Logger: slog.New(slog.DiscardHandler),
		P2P: &P2PConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, NoDHT: true}})
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	b.Cleanup(func() { n.Close() })
	if err := n.CreateDB(b.Context(), "files"); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkBlobWrite: PutBlob of 64 MiB on a fresh node (the write path of
// an HTTP attachment upload, without HTTP), MB/s.
func BenchmarkBlobWrite(b *testing.B) {
	const size = 64 << 20
	d := benchDB(b, "sync")
	b.SetBytes(size)
	seed := byte(0)
	for b.Loop() {
		seed++
		if _, err := d.PutBlob(b.Context(), content(seed, size), ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBlobReplication: one peer fetches a 64 MiB blob from another
// over libp2p on loopback, into its store, verified; MB/s. Between
// iterations (untimed) the receiver forgets the blob.
func BenchmarkBlobReplication(b *testing.B) {
	const size = 64 << 20
	src, dst := benchPeer(b), benchPeer(b)
	ctx := b.Context()
	if _, err := dst.Connect(ctx, src.Addrs()[0]); err != nil {
		b.Fatal(err)
	}
	sd, _ := src.DB("files")
	info, err := sd.PutBlob(ctx, content(7, size), "")
	if err != nil {
		b.Fatal(err)
	}
	dg, _ := parseDigest(info.Digest)
	dd, _ := dst.DB("files")
	client := dst.net.Load().blobs.client
	var peak uint64
	b.SetBytes(size)
	for b.Loop() {
		if _, err := client.Fetch(ctx, src.PeerID(), "files", bsync.Digest(dg), size); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		forgetBlob(b, dd, dg)
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// forgetBlob deletes a complete blob's metadata and chunks.
func forgetBlob(b *testing.B, d *DB, dg digest) {
	m, err := d.blobMetaOf(dg)
	if err != nil {
		b.Fatal(err)
	}
	bt := d.store.NewWriteBatch()
	bt.Delete(d.keys.BlobMeta(dg))
	bt.DeleteRange(d.keys.BlobChunks(m.Upload), datastore.PrefixEnd(d.keys.BlobChunks(m.Upload)))
	if err := bt.Commit(); err != nil {
		b.Fatal(err)
	}
}
