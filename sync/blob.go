package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// BlobStore is what the blob protocol needs from the node: blobs to serve
// and a place to receive them. node satisfies it; sync never imports node.
// Its AuthorizeRead is asked before a blob is served (node applies the
// sync server's rule). Every method is safe for concurrent use.
type BlobStore interface {
	ReadAuthorizer
	// OpenBlob opens the complete blob d of db for reading and returns its
	// length. The caller closes the reader. ErrNoDB when db does not
	// exist, ErrBlobNotFound when the blob is not (yet) complete here.
	OpenBlob(ctx context.Context, db string, d Digest) (r io.ReadSeekCloser, length int64, err error)
	// ReceiveBlob starts receiving blob d of db, or resumes a transfer an
	// earlier sink left (after a cut connection or a restart). The caller
	// closes the sink. ErrNoDB; an error when the blob is being received
	// already.
	ReceiveBlob(ctx context.Context, db string, d Digest) (BlobSink, error)
}

// BlobSink receives one blob's content, in order, into the store.
type BlobSink interface {
	// Offset is where the transfer resumes: the bytes already stored.
	Offset() int64
	// Write appends content. The sink stores it as it arrives, in chunks,
	// so that Close can keep the progress; it holds a bounded amount.
	Write(p []byte) (int, error)
	// Commit ends a transfer of length bytes in all: it checks the
	// SHA-256 of the whole content and only then makes the blob visible.
	// A mismatch returns an error wrapping ErrDigestMismatch and drops
	// everything received (nothing is visible).
	Commit(length int64) error
	// Drop forgets everything received so far (a peer broke the protocol,
	// so its bytes are not trusted for a resume); the blob stays wanted.
	Drop()
	// Close keeps the progress of an uncommitted transfer for a resume and
	// releases the sink. It is safe after Commit or Drop.
	Close() error
}

// Defaults of BlobConfig.
const (
	DefaultMaxBlobBytes   = 4 << 30
	DefaultBlobMinRate    = 256 << 10
	DefaultMaxBlobStreams = 16
)

// BlobConfig configures the blob protocol's server and client. The zero
// value is valid.
type BlobConfig struct {
	// MaxBlobBytes bounds the length of a blob a client accepts. Default
	// 4 GiB (the HTTP API's attachment limit).
	MaxBlobBytes int64
	// DataBytes is the data a client asks per BlobData frame and the most
	// a server sends. Default 256 KiB, MinBlobData..MaxBlobData.
	DataBytes int
	// StreamTimeout bounds every read and write on a stream. Default 30s.
	StreamTimeout time.Duration
	// MinRate, in bytes per second, bounds a whole transfer's time:
	// StreamTimeout + remaining bytes / MinRate. A peer that trickles is
	// cut and the transfer resumes elsewhere or later. Default 256 KiB/s.
	MinRate int64
	// MaxStreams bounds concurrent server sessions; more get Error{busy}.
	// Default 16.
	MaxStreams int

	// Logger receives the component's logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil means they are not registered.
	Registerer prometheus.Registerer
}

// Validate fills defaults and reports every invalid field.
func (c *BlobConfig) Validate() error {
	var errs []error
	if c.MaxBlobBytes == 0 {
		c.MaxBlobBytes = DefaultMaxBlobBytes
	}
	if c.DataBytes == 0 {
		c.DataBytes = DefaultBlobData
	}
	if c.StreamTimeout == 0 {
		c.StreamTimeout = DefaultStreamTimeout
	}
	if c.MinRate == 0 {
		c.MinRate = DefaultBlobMinRate
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxBlobStreams
	}
	if c.MaxBlobBytes < 0 {
		errs = append(errs, fmt.Errorf("max blob bytes %d: must not be negative", c.MaxBlobBytes))
	}
	if c.DataBytes < MinBlobData || c.DataBytes > MaxBlobData {
		errs = append(errs, fmt.Errorf("blob data bytes %d: want %d..%d", c.DataBytes, MinBlobData, MaxBlobData))
	}
	if c.StreamTimeout < 0 || c.MinRate < 0 || c.MaxStreams < 0 {
		errs = append(errs, errors.New("blob stream timeout, min rate and max streams must not be negative"))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return errors.Join(errs...)
}

// BlobServer serves blobs: one transfer per stream of BlobProtocolID.
type BlobServer struct {
	h     host.Host
	store BlobStore
	cfg   BlobConfig
	log   *slog.Logger
	m     *blobMetrics
	slots chan struct{}

	// mu guards closed and the Add of wg against Run's Wait.
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// NewBlobServer returns a server of store's blobs on h. It panics if cfg
// does not Validate (node validates its config). It serves nothing until
// Run.
func NewBlobServer(h host.Host, store BlobStore, cfg BlobConfig) *BlobServer {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("sync: invalid blob config: %v", err))
	}
	m, err := newBlobMetrics(cfg.Registerer)
	if err != nil {
		cfg.Logger.Warn("blob metrics not registered", "err", err)
	}
	return &BlobServer{h: h, store: store, cfg: cfg, m: m,
		log: cfg.Logger.With("role", "blob_server"), slots: make(chan struct{}, cfg.MaxStreams)}
}

// Run registers the stream handler for BlobProtocolID and serves until
// ctx is done; it then removes the handler, resets the running transfers
// and returns nil after all of them ended. A BlobServer runs once.
func (s *BlobServer) Run(ctx context.Context) error {
	s.h.SetStreamHandler(BlobProtocolID, func(st network.Stream) { s.handle(ctx, st) })
	<-ctx.Done()
	s.h.RemoveStreamHandler(BlobProtocolID)
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// handle serves one transfer; it owns the stream.
func (s *BlobServer) handle(ctx context.Context, st network.Stream) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = st.Reset()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	start := time.Now()
	remote := st.Conn().RemotePeer()
	c := newConn(st, s.cfg.StreamTimeout, maxBlobRequest)
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		c.writeError(fmt.Errorf("%w: %d blob transfers", ErrBusy, cap(s.slots)))
		_ = st.Close()
		s.m.served.WithLabelValues("busy").Inc()
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()

	n, err := s.serve(ctx, c, remote)
	res := blobResult(ctx, err)
	s.m.served.WithLabelValues(res).Inc()
	s.m.sent.Add(float64(n))
	switch res {
	case "ok":
		_ = st.Close()
		return
	case "canceled", "timeout":
		_ = st.Reset()
		return
	case "bad_peer":
		c.writeError(err)
		_ = st.Reset()
	default:
		c.writeError(err)
		_ = st.Close()
	}
	if res == "no_db" || res == "forbidden" || res == "no_blob" {
		s.log.Debug("blob request refused", "peer", remote, "err", err)
		return
	}
	s.log.Warn("blob transfer failed", "peer", remote, "err", err, "bytes", n, "dur", time.Since(start))
}

// serve answers one BlobGet and returns the data bytes it sent.
func (s *BlobServer) serve(ctx context.Context, c *conn, remote peer.ID) (int64, error) {
	m, err := c.readBlob()
	if err == io.EOF {
		return 0, fmt.Errorf("%w: stream closed before the request", ErrBadRequest)
	}
	if err != nil {
		return 0, fmt.Errorf("read blob request: %w", err)
	}
	g, ok := m.(*blobGetMsg)
	switch {
	case !ok:
		return 0, fmt.Errorf("%w: want a blob request, got %T", ErrBadRequest, m)
	case g.Version != BlobVersion:
		return 0, fmt.Errorf("%w: unsupported blob version %d", ErrBadRequest, g.Version)
	case g.MaxData < MinBlobData:
		return 0, fmt.Errorf("%w: max data %d below %d", ErrBadRequest, g.MaxData, MinBlobData)
	}
	if err := s.store.AuthorizeRead(ctx, g.DB, remote); err != nil {
		return 0, fmt.Errorf("authorize %s: %w", g.DB, err)
	}
	d := Digest(g.Digest)
	r, length, err := s.store.OpenBlob(ctx, g.DB, d)
	if err != nil {
		return 0, fmt.Errorf("open blob %x of %s: %w", d, g.DB, err)
	}
	defer r.Close()
	if g.Offset > uint64(length) {
		return 0, fmt.Errorf("%w: offset %d past the blob's %d bytes", ErrBadRequest, g.Offset, length)
	}
	if _, err := r.Seek(int64(g.Offset), io.SeekStart); err != nil {
		return 0, fmt.Errorf("seek blob %x to %d: %w", d, g.Offset, err)
	}
	c.maxFrame = min(int(g.MaxData), s.cfg.DataBytes) + blobFrameSlack
	if err := c.write(msgBlobHead, &blobHeadMsg{Length: uint64(length)}); err != nil {
		return 0, err
	}
	return s.send(ctx, c, r, length-int64(g.Offset))
}

// send streams the remaining bytes of r in BlobData frames, one frame's
// data in memory at a time.
func (s *BlobServer) send(ctx context.Context, c *conn, r io.Reader, remaining int64) (int64, error) {
	buf := make([]byte, c.maxFrame-blobFrameSlack)
	var sent int64
	for sent < remaining {
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), remaining-sent)])
		if err != nil {
			return sent, fmt.Errorf("read blob at %d: %w", sent, err)
		}
		if err := c.write(msgBlobData, &blobDataMsg{Data: buf[:n]}); err != nil {
			return sent, err
		}
		sent += int64(n)
	}
	return sent, nil
}

// blobResult names a transfer's outcome for metrics: the sync session
// results plus no_blob and digest_mismatch.
func blobResult(ctx context.Context, err error) string {
	switch {
	case err != nil && ctx.Err() == nil && errors.Is(err, ErrBlobNotFound):
		return "no_blob"
	case err != nil && ctx.Err() == nil && errors.Is(err, ErrDigestMismatch):
		return "digest_mismatch"
	}
	return result(ctx, err)
}
