package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// memBlobs is an in-memory BlobStore for the protocol's tests (node's
// Pebble store is tested in node/blob_replica_test.go): complete blobs,
// and partial ones that a sink keeps on Close for a resume.
type memBlobs struct {
	mu       sync.Mutex
	complete map[Digest][]byte
	partial  map[Digest][]byte
	// forbid, when set, is the error AuthorizeRead refuses every peer with.
	forbid error
}

// AuthorizeRead lets every peer read unless forbid is set: the blob
// protocol's tests are not about access control.
func (m *memBlobs) AuthorizeRead(ctx context.Context, db string, remote peer.ID) error {
	return m.forbid
}

func newMemBlobs() *memBlobs {
	return &memBlobs{complete: map[Digest][]byte{}, partial: map[Digest][]byte{}}
}

func (m *memBlobs) OpenBlob(ctx context.Context, db string, d Digest) (io.ReadSeekCloser, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.complete[d]
	if !ok {
		return nil, 0, ErrBlobNotFound
	}
	return nopCloser{bytes.NewReader(b)}, int64(len(b)), nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func (m *memBlobs) ReceiveBlob(ctx context.Context, db string, d Digest) (BlobSink, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &memSink{m: m, d: d, buf: slices.Clone(m.partial[d])}, nil
}

type memSink struct {
	m    *memBlobs
	d    Digest
	buf  []byte
	done bool
}

func (s *memSink) Offset() int64 { return int64(len(s.m.partial[s.d])) }

func (s *memSink) Write(p []byte) (int, error) { s.buf = append(s.buf, p...); return len(p), nil }

func (s *memSink) Commit(length int64) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.done = true
	delete(s.m.partial, s.d)
	if int64(len(s.buf)) != length || sha256.Sum256(s.buf) != s.d {
		return ErrDigestMismatch
	}
	s.m.complete[s.d] = s.buf
	return nil
}

func (s *memSink) Drop() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.done = true
	delete(s.m.partial, s.d)
}

func (s *memSink) Close() error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if !s.done {
		s.m.partial[s.d] = s.buf
	}
	return nil
}

func blobContent(n int) ([]byte, Digest) {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{4}).Read(b)
	return b, sha256.Sum256(b)
}

// TestBlobFetchResumes: a fetch copies a blob byte-identical, and one that
// starts from a kept partial asks only for the rest.
func TestBlobFetchResumes(t *testing.T) {
	srv, cli := newHost(t), newHost(t)
	connect(t, cli, srv)
	from, to := newMemBlobs(), newMemBlobs()
	data, d := blobContent(3<<20 + 5)
	from.complete[d] = data
	to.partial[d] = slices.Clone(data[:1<<20]) // a transfer cut after 1 MiB
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = NewBlobServer(srv, from, BlobConfig{Logger: testLogger(t)}).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "blob handler", func() bool { return slices.Contains(srv.Mux().Protocols(), BlobProtocolID) })

	c := NewBlobClient(cli, to, BlobConfig{Logger: testLogger(t)})
	n, err := c.Fetch(t.Context(), srv.ID(), "db", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data))-1<<20 {
		t.Errorf("received %d bytes, want the missing %d", n, len(data)-1<<20)
	}
	if !bytes.Equal(to.complete[d], data) {
		t.Fatal("fetched blob differs")
	}
	// A blob the server lacks is no_blob, not a failure of the protocol.
	if _, err := c.Fetch(t.Context(), srv.ID(), "db", Digest{1}, 10); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("fetch of an absent blob: %v, want ErrBlobNotFound", err)
	}
}

// TestBlobFetchForbidden: the blob server asks its store's AuthorizeRead
// before it opens a blob; a refusal reaches the client as forbidden and no
// byte of the blob is received.
func TestBlobFetchForbidden(t *testing.T) {
	srv, cli := newHost(t), newHost(t)
	connect(t, cli, srv)
	from, to := newMemBlobs(), newMemBlobs()
	data, d := blobContent(64 << 10)
	from.complete[d] = data
	from.forbid = fmt.Errorf("may not read: %w", ErrForbidden)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = NewBlobServer(srv, from, BlobConfig{Logger: testLogger(t)}).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "blob handler", func() bool { return slices.Contains(srv.Mux().Protocols(), BlobProtocolID) })

	c := NewBlobClient(cli, to, BlobConfig{Logger: testLogger(t)})
	n, err := c.Fetch(t.Context(), srv.ID(), "db", d, int64(len(data)))
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("fetch: %v, want ErrForbidden", err)
	}
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeForbidden {
		t.Errorf("got %v, want a RemoteError with code %s", err, CodeForbidden)
	}
	if n != 0 || len(to.partial[d]) != 0 || to.complete[d] != nil {
		t.Errorf("a refused fetch received %d bytes (partial %d, complete %v)", n, len(to.partial[d]), to.complete[d] != nil)
	}
}

// TestBlobFetchDeadlines: a server that answers the length and then goes
// silent is cut by the frame deadline, and one that trickles by the whole
// transfer's budget; either way the client returns, and what arrived is
// kept for a resume.
func TestBlobFetchDeadlines(t *testing.T) {
	data, d := blobContent(1 << 20)
	for _, tc := range []struct {
		name  string
		cfg   BlobConfig
		serve func(s network.Stream)
	}{
		{"silent", BlobConfig{StreamTimeout: 300 * time.Millisecond}, func(s network.Stream) {
			s.Write(mustFrame(msgBlobHead, &blobHeadMsg{Length: uint64(len(data))}))
			time.Sleep(10 * time.Second) // the hostile peer stalls; the client must not wait for it
		}},
		{"trickle", BlobConfig{StreamTimeout: 300 * time.Millisecond, MinRate: 1 << 20}, func(s network.Stream) {
			s.Write(mustFrame(msgBlobHead, &blobHeadMsg{Length: uint64(len(data))}))
			for i := 0; i < 200; i++ { // 100 bytes every 100 ms: under every frame deadline
				if _, err := s.Write(mustFrame(msgBlobData, &blobDataMsg{Data: data[i*100 : (i+1)*100]})); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, cli := newHost(t), newHost(t)
			connect(t, cli, srv)
			srv.SetStreamHandler(BlobProtocolID, func(s network.Stream) {
				defer s.Reset()
				if _, err := newConn(s, time.Second, maxBlobRequest).readBlob(); err != nil {
					return
				}
				tc.serve(s)
			})
			to := newMemBlobs()
			tc.cfg.Logger = testLogger(t)
			start := time.Now()
			_, err := NewBlobClient(cli, to, tc.cfg).Fetch(t.Context(), srv.ID(), "db", d, int64(len(data)))
			// The budgets end the transfer at about 0.3 s (silent) and 1.3 s
			// (trickle); the peers would go on for 10 and 20 s.
			if err == nil || time.Since(start) > 3*time.Second {
				t.Fatalf("fetch from a %s peer: %v after %v, want an error within 3s", tc.name, err, time.Since(start))
			}
			if !isTimeout(err) && !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "reset") {
				t.Logf("error: %v", err)
			}
			if _, ok := to.complete[d]; ok {
				t.Fatal("a blob became visible")
			}
		})
	}
}
