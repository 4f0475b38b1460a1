package sync

import (
	"bufio"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// conn frames messages on one stream. Every read and write has its own
// deadline; every frame buffer is reserved from the stream's resource
// scope while it lives. A conn is used by one goroutine.
type conn struct {
	s       network.Stream
	r       *bufio.Reader
	timeout time.Duration // of a write, and of a read unless readTimeout is set
	// readTimeout bounds the wait for the next frame; the server sets it
	// to Config.IdleTimeout. Zero: timeout.
	readTimeout time.Duration
	slot        bool         // the session holds one of the server's MaxStreams slots
	maxFrame    int          // largest payload read or written
	bytesIn     atomic.Int64 // frame bytes read (atomic: a reader goroutine may count)
	bytesOut    atomic.Int64 // frame bytes written
}

func newConn(s network.Stream, timeout time.Duration, maxFrame int) *conn {
	return &conn{s: s, r: bufio.NewReaderSize(s, 4096), timeout: timeout, maxFrame: maxFrame}
}

// read reads and decodes the next message. See decodeMessage.
func (c *conn) read() (any, error) { return c.readAs(decodeMessage) }

// readAs reads the next frame and decodes it with decode (the message
// space of the stream's protocol).
func (c *conn) readAs(decode func([]byte) (any, error)) (any, error) {
	d := c.timeout
	if c.readTimeout > 0 {
		d = c.readTimeout
	}
	if err := c.s.SetReadDeadline(time.Now().Add(d)); err != nil {
		return nil, fmt.Errorf("set read deadline: %w", err)
	}
	p, err := readFrame(c.r, c.maxFrame, c.s.Scope())
	if err != nil {
		return nil, err
	}
	defer c.s.Scope().ReleaseMemory(len(p))
	c.bytesIn.Add(int64(len(p)))
	return decode(p)
}

// write encodes and sends one message. A message larger than the frame
// limit is ErrFrameTooLarge (the caller's bug: senders split bodies).
func (c *conn) write(t msgType, msg any) error {
	f, err := encodeFrame(t, msg)
	if err != nil {
		return err
	}
	if len(f) > c.maxFrame+10 {
		return fmt.Errorf("%w: message type %d of %d bytes exceeds %d", ErrFrameTooLarge, t, len(f), c.maxFrame)
	}
	scope := c.s.Scope()
	if err := scope.ReserveMemory(len(f), network.ReservationPriorityHigh); err != nil {
		return fmt.Errorf("reserve %d bytes for a frame: %w", len(f), err)
	}
	defer scope.ReleaseMemory(len(f))
	if err := c.s.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := c.s.Write(f); err != nil {
		return fmt.Errorf("write message type %d: %w", t, err)
	}
	c.bytesOut.Add(int64(len(f)))
	return nil
}

// writeError sends an Error message for err, best effort.
func (c *conn) writeError(err error) {
	text := err.Error()
	if len(text) > maxErrorText {
		text = text[:maxErrorText]
	}
	_ = c.write(msgError, &errorMsg{Code: codeOf(err), Text: text})
}
