package sync

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
)

// rawStream opens a sync stream from c to s by hand.
func rawStream(t *testing.T, c, s host.Host) network.Stream {
	t.Helper()
	st, err := c.NewStream(t.Context(), s.ID(), ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Reset() })
	return st
}

func frame(t *testing.T, typ msgType, msg any) []byte {
	t.Helper()
	f, err := encodeFrame(typ, msg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func hello(db string) *helloMsg {
	return &helloMsg{Version: Version, DB: db, MaxFrame: DefaultMaxFrameBytes}
}

// readAll reads what the server sends until the stream ends, and how it
// ended (nil for a clean close).
func readAll(st network.Stream) ([]any, error) {
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(st)
	var msgs []any
	for {
		p, err := readFrame(r, DefaultMaxFrameBytes, nil)
		if err == io.EOF {
			return msgs, nil
		}
		if err != nil {
			return msgs, err
		}
		m, err := decodeMessage(p)
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

// Malformed and oversized frames get the stream reset (after an Error
// message, best effort); the server keeps serving.
func TestServerBadFrames(t *testing.T) {
	hs, hc := newHost(t), newHost(t)
	srv := newMemStore(t)
	srv.put(t, "db", "d", 1)
	reg := serve(t, hs, srv, Config{MaxFrameBytes: MinFrameBytes})
	connect(t, hc, hs)
	long := binary.AppendUvarint(nil, MinFrameBytes+1)
	tests := []struct {
		name string
		data []byte
	}{
		{"oversized length", append(long, make([]byte, 100)...)},
		{"huge length", binary.AppendUvarint(nil, 1<<62)},
		{"varint overflow", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"empty frame", []byte{0}},
		{"not cbor", append([]byte{3}, 0xff, 0xff, 0xff)},
		{"unknown type", frame(t, 99, &nextMsg{})},
		{"not a hello", frame(t, msgNext, &nextMsg{Since: 1})},
		{"bad version", frame(t, msgHello, &helloMsg{Version: 9, DB: "db", MaxFrame: MinFrameBytes})},
		{"bad db name", frame(t, msgHello, &helloMsg{Version: Version, DB: "", MaxFrame: MinFrameBytes})},
		{"tiny max frame", frame(t, msgHello, &helloMsg{Version: Version, DB: "db", MaxFrame: 10})},
		{"bad filter", frame(t, msgHello, &helloMsg{Version: Version, DB: "db", MaxFrame: MinFrameBytes,
			Filter: &Filter{Where: []Cond{{Path: "/a", Op: "~~"}}}})},
		{"index out of range", append(frame(t, msgHello, hello("db")), frame(t, msgWant, &wantMsg{Indices: []uint32{5}})...)},
		{"cut frame", append(binary.AppendUvarint(nil, 50), 1, 2, 3)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := rawStream(t, hc, hs)
			if _, err := st.Write(tt.data); err != nil {
				t.Fatal(err)
			}
			_ = st.CloseWrite()
			msgs, err := readAll(st)
			if err == nil {
				// Clean close: the last message must be an Error.
				if len(msgs) == 0 {
					t.Fatal("stream closed without an error message")
				}
				if _, ok := msgs[len(msgs)-1].(*errorMsg); !ok {
					t.Fatalf("stream closed cleanly after %T, want an error", msgs[len(msgs)-1])
				}
			}
			waitFor(t, "session counted", func() bool { return sessions(reg, "server", "bad_peer") == i+1 })
		})
	}
	// Still up.
	cli := newMemStore(t)
	if _, err := NewClient(hc, cli, Config{}).Pull(t.Context(), hs.ID(), "db", nil); err != nil {
		t.Fatalf("pull after bad frames: %v", err)
	}
	if cli.count("db") != 1 {
		t.Errorf("got %d changes, want 1", cli.count("db"))
	}
}

// A peer that stops sending or reading is cut off after StreamTimeout.
func TestServerTimeouts(t *testing.T) {
	hs, hc := newHost(t), newHost(t)
	srv := newMemStore(t)
	big := strings.Repeat("x", 60<<10)
	for range 30 { // ~1.8 MB: more than a stream's flow-control window
		srv.put(t, "db", "d", big)
	}
	reg := serve(t, hs, srv, Config{StreamTimeout: 300 * time.Millisecond})
	connect(t, hc, hs)
	all := make([]uint32, 30)
	for i := range all {
		all[i] = uint32(i)
	}
	tests := []struct {
		name string
		send [][]byte
	}{
		{"never sends hello", nil},
		{"stops after hello", [][]byte{frame(t, msgHello, hello("db"))}},
		{"never reads bodies", [][]byte{frame(t, msgHello, hello("db")), frame(t, msgWant, &wantMsg{Indices: all})}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := rawStream(t, hc, hs)
			for _, f := range tt.send {
				if _, err := st.Write(f); err != nil {
					t.Fatal(err)
				}
			}
			if len(tt.send) == 0 {
				// Opening a stream is lazy: force the protocol negotiation.
				if _, err := st.Write(nil); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "server session timed out", func() bool { return sessions(reg, "server", "timeout") == i+1 })
		})
	}
}

// Sessions beyond MaxStreams get Error{busy}.
func TestServerBusy(t *testing.T) {
	hs, hc := newHost(t), newHost(t)
	srv := newMemStore(t)
	srv.put(t, "db", "d", 1)
	serve(t, hs, srv, Config{MaxStreams: 1})
	connect(t, hc, hs)
	st := rawStream(t, hc, hs)
	if _, err := st.Write(frame(t, msgHello, hello("db"))); err != nil {
		t.Fatal(err)
	}
	// The IDs answer proves the session holds the only slot.
	if _, err := readFrame(bufio.NewReader(st), DefaultMaxFrameBytes, nil); err != nil {
		t.Fatal(err)
	}
	_, err := NewClient(hc, newMemStore(t), Config{}).Pull(t.Context(), hs.ID(), "db", nil)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("got %v, want ErrBusy", err)
	}
	_ = st.Close()
}

// Stopping the server resets its sessions and Run returns.
func TestServerStop(t *testing.T) {
	hs, hc := newHost(t), newHost(t)
	srv := newMemStore(t)
	srv.put(t, "db", "d", 1)
	s := NewServer(hs, srv, Config{Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	connect(t, hc, hs)
	waitHandler(t, hs)
	st := rawStream(t, hc, hs)
	if _, err := st.Write(frame(t, msgHello, hello("db"))); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(st)
	if _, err := readFrame(r, DefaultMaxFrameBytes, nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := readFrame(r, DefaultMaxFrameBytes, nil); err == nil || isTimeout(err) {
		t.Errorf("session after stop: got %v, want a reset", err)
	}
}
