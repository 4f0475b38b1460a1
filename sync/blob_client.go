package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// BlobClient fetches blobs from peers into a BlobStore.
type BlobClient struct {
	h     host.Host
	store BlobStore
	cfg   BlobConfig
	log   *slog.Logger
	m     *blobMetrics
}

// NewBlobClient returns a client that fetches into store over h. It panics
// if cfg does not Validate (node validates its config).
func NewBlobClient(h host.Host, store BlobStore, cfg BlobConfig) *BlobClient {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("sync: invalid blob config: %v", err))
	}
	m, err := newBlobMetrics(cfg.Registerer)
	if err != nil {
		cfg.Logger.Warn("blob metrics not registered", "err", err)
	}
	return &BlobClient{h: h, store: store, cfg: cfg, m: m, log: cfg.Logger.With("role", "blob_client")}
}

// Fetch copies blob d of db from peer p into the store, resuming after the
// bytes the store already holds, and commits it (the store checks the
// digest before the blob becomes visible). length, when not negative, is
// the length the referencing document announced; a peer announcing another
// is refused. It returns the data bytes received by this call.
//
// Everything p sends is bounded: one frame's data (BlobConfig.DataBytes)
// is held at a time and written to the store as it arrives; a blob longer
// than MaxBlobBytes, a frame past the limit, data past the announced
// length, a stall past StreamTimeout or a transfer slower than MinRate
// ends the transfer, keeping what was stored for a resume.
//
// Errors: ErrNoDB and ErrBlobNotFound (wrapped in a *RemoteError) when p
// lacks the database or the blob; ErrDigestMismatch when the content is
// not the blob's (nothing stored); ErrBadRequest or ErrFrameTooLarge when
// p breaks the protocol; a *RemoteError for other refusals (ErrForbidden,
// ErrBusy).
func (c *BlobClient) Fetch(ctx context.Context, p peer.ID, db string, d Digest, length int64) (n int64, err error) {
	defer func() {
		c.m.fetched.WithLabelValues(blobResult(ctx, err)).Inc()
		c.m.received.Add(float64(n))
	}()
	if length > c.cfg.MaxBlobBytes {
		return 0, fmt.Errorf("fetch blob %x of %s: %w: %d bytes exceed %d", d, db, ErrFrameTooLarge, length, c.cfg.MaxBlobBytes)
	}
	sink, err := c.store.ReceiveBlob(ctx, db, d)
	if err != nil {
		return 0, fmt.Errorf("fetch blob %x of %s: %w", d, db, err)
	}
	defer func() {
		if cerr := sink.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("fetch blob %x of %s: %w", d, db, cerr)
		}
	}()
	s, err := c.h.NewStream(ctx, p, BlobProtocolID)
	if err != nil {
		return 0, fmt.Errorf("open blob stream to %s: %w", p, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	cn := newConn(s, c.cfg.StreamTimeout, maxBlobRequest)
	t := &blobTransfer{c: c, cn: cn, sink: sink, length: length}
	err = t.run(ctx, db, d)
	if err != nil {
		var re *RemoteError
		if !errors.As(err, &re) && ctx.Err() == nil {
			cn.writeError(err)
		}
		if ctx.Err() == nil && (errors.Is(err, ErrBadRequest) || errors.Is(err, ErrFrameTooLarge)) {
			sink.Drop() // a peer that breaks the protocol may have sent anything
		}
		_ = s.Reset()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return t.got, fmt.Errorf("fetch blob %x of %s from %s: %w", d, db, p, err)
	}
	return t.got, s.Close()
}

// blobTransfer is one fetch on one stream.
type blobTransfer struct {
	c      *BlobClient
	cn     *conn
	sink   BlobSink
	length int64 // announced by the document; negative: unknown
	got    int64 // data bytes received
}

func (t *blobTransfer) run(ctx context.Context, db string, d Digest) error {
	cfg := &t.c.cfg
	off := t.sink.Offset()
	err := t.cn.write(msgBlobGet, &blobGetMsg{Version: BlobVersion, DB: db, Digest: wireID(d),
		Offset: uint64(off), MaxData: uint32(cfg.DataBytes)})
	if err != nil {
		return err
	}
	total, err := t.head(off)
	if err != nil {
		return err
	}
	// A whole-transfer deadline: per-frame deadlines alone would let a
	// peer trickle one byte per StreamTimeout forever.
	budget := cfg.StreamTimeout + time.Duration(float64(total-off)/float64(cfg.MinRate)*float64(time.Second))
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = t.cn.s.Reset() })
	defer stop()
	t.cn.maxFrame = cfg.DataBytes + blobFrameSlack
	for remaining := total - off; remaining > 0; {
		m, err := t.cn.readBlob()
		if err == io.EOF {
			return fmt.Errorf("%w: stream ended %d bytes short of %d", ErrBadRequest, remaining, total)
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("transfer of %d bytes over its %s budget: %w", total-off, budget, ctx.Err())
			}
			return fmt.Errorf("read blob data: %w", err)
		}
		switch m := m.(type) {
		case *blobDataMsg:
			if int64(len(m.Data)) > remaining {
				return fmt.Errorf("%w: %d more bytes than the announced length %d", ErrBadRequest, int64(len(m.Data))-remaining, total)
			}
			if _, err := t.sink.Write(m.Data); err != nil {
				return fmt.Errorf("store blob data: %w", err)
			}
			t.got += int64(len(m.Data))
			remaining -= int64(len(m.Data))
		case *errorMsg:
			return &RemoteError{Code: m.Code, Text: m.Text}
		default:
			return fmt.Errorf("%w: unexpected %T during blob data", ErrBadRequest, m)
		}
	}
	return t.sink.Commit(total)
}

// head reads the server's answer to the request: the blob's length, or an
// error. The length is checked against the limits and the document.
func (t *blobTransfer) head(off int64) (int64, error) {
	m, err := t.cn.readBlob()
	if err == io.EOF {
		return 0, fmt.Errorf("%w: stream closed before the blob's length", ErrBadRequest)
	}
	if err != nil {
		return 0, fmt.Errorf("read blob head: %w", err)
	}
	var total int64
	switch m := m.(type) {
	case *blobHeadMsg:
		total = int64(m.Length)
	case *errorMsg:
		return 0, &RemoteError{Code: m.Code, Text: m.Text}
	default:
		return 0, fmt.Errorf("%w: want the blob's length, got %T", ErrBadRequest, m)
	}
	switch {
	case total > t.c.cfg.MaxBlobBytes:
		return 0, fmt.Errorf("%w: blob of %d bytes exceeds %d", ErrFrameTooLarge, total, t.c.cfg.MaxBlobBytes)
	case t.length >= 0 && total != t.length:
		return 0, fmt.Errorf("%w: blob of %d bytes, the document says %d", ErrBadRequest, total, t.length)
	case off > total:
		return 0, fmt.Errorf("%w: blob of %d bytes, %d already received", ErrBadRequest, total, off)
	}
	return total, nil
}
