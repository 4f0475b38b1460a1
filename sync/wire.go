package sync

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/barrel-db/barrel/crdt"
)

// ProtocolID is the libp2p protocol of the pull protocol. Its last element
// is the wire version: an incompatible change gets a new ID.
const ProtocolID = "/barrel/sync/1.0.0"

// Version is the message-level version a client sends in Hello. A server
// refuses versions it does not know with bad_request.
const Version = 1

// Wire limits that do not depend on Config.
const (
	// MaxWantIDs bounds the explicit ids of one Want (missing parents).
	MaxWantIDs = 1024
	// maxFilterConds bounds the conditions of a Filter in Hello.
	maxFilterConds = 64
	// maxErrorText bounds the text of an Error message.
	maxErrorText = 1024
	// frameSlack bounds the CBOR bytes a Bodies frame adds beyond its
	// bodies' own (array heads, type), and bodyOverhead what each body adds.
	frameSlack   = 32
	bodyOverhead = 9
	// idEntryBytes bounds the encoded size of one IDs entry (array head,
	// uint64, 32-byte string) and indexBytes of one Want index.
	idEntryBytes = 48
	indexBytes   = 5
)

// msgType is the first element of every frame's payload.
type msgType uint8

// Message types. Values are part of the wire format: never renumber.
const (
	msgHello  msgType = 1 // client: open a session
	msgIDs    msgType = 2 // server: a batch of feed entries
	msgWant   msgType = 3 // client: bodies to send
	msgBodies msgType = 4 // server: encoded changes
	msgNext   msgType = 5 // client: list the next batch
	msgError  msgType = 6 // either: the session fails
)

// envelope is a frame's payload: the type, then the message.
type envelope struct {
	_    struct{} `cbor:",toarray"`
	Type msgType
	Body cbor.RawMessage
}

// helloMsg opens a session.
type helloMsg struct {
	_        struct{} `cbor:",toarray"`
	Version  uint32
	DB       string
	Since    uint64  // the client's checkpoint for this server
	Filter   *Filter // nil: the whole database
	Limit    uint32  // most entries per IDs batch the client accepts
	MaxFrame uint32  // largest frame payload the client accepts
}

// wireID is a change id on the wire: a byte string of exactly 32 bytes (the
// CBOR library would silently pad or cut a crdt.ID).
type wireID crdt.ID

// MarshalCBOR encodes the id as a byte string.
func (w wireID) MarshalCBOR() ([]byte, error) { return wireEnc.Marshal(w[:]) }

// UnmarshalCBOR decodes a 32-byte string.
func (w *wireID) UnmarshalCBOR(data []byte) error {
	var b []byte
	if err := wireDec.Unmarshal(data, &b); err != nil {
		return err
	}
	if len(b) != len(w) {
		return fmt.Errorf("change id of %d bytes, want %d", len(b), len(w))
	}
	copy(w[:], b)
	return nil
}

// wireEntry is one listed feed entry.
type wireEntry struct {
	_   struct{} `cbor:",toarray"`
	Seq uint64
	ID  wireID
}

// idsMsg lists feed entries after the cursor.
type idsMsg struct {
	_       struct{} `cbor:",toarray"`
	Entries []wireEntry
	Last    uint64 // the sequence the listing reached
	Done    bool   // Last is the server's current end
}

// wantMsg asks for bodies: entries of the last IDs batch by index
// (ascending), then explicit ids.
type wantMsg struct {
	_       struct{} `cbor:",toarray"`
	Indices []uint32
	IDs     []wireID
}

// bodiesMsg carries encoded changes in the order they were asked for.
type bodiesMsg struct {
	_       struct{} `cbor:",toarray"`
	Changes [][]byte
}

// nextMsg asks for the IDs batch after Since.
type nextMsg struct {
	_     struct{} `cbor:",toarray"`
	Since uint64
}

// errorMsg ends a session with a wire code.
type errorMsg struct {
	_    struct{} `cbor:",toarray"`
	Code string
	Text string
}

var (
	wireEnc cbor.EncMode
	wireDec cbor.DecMode
)

func init() {
	var err error
	wireEnc, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	wireDec, err = cbor.DecOptions{
		MaxNestedLevels:  32,
		MaxArrayElements: MaxBatchSize,
		MaxMapPairs:      1024,
		DefaultMapType:   reflect.TypeOf(map[string]any(nil)),
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// encodeFrame returns a whole frame: the uvarint payload length, then the
// payload (the envelope of msg in deterministic CBOR).
func encodeFrame(t msgType, msg any) ([]byte, error) {
	body, err := wireEnc.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode message %d: %w", t, err)
	}
	p, err := wireEnc.Marshal(envelope{Type: t, Body: body})
	if err != nil {
		return nil, fmt.Errorf("encode envelope %d: %w", t, err)
	}
	out := binary.AppendUvarint(make([]byte, 0, len(p)+binary.MaxVarintLen64), uint64(len(p)))
	return append(out, p...), nil
}

// memory reserves and releases buffer space (a libp2p stream's resource
// scope); nil reserves nothing.
type memory interface {
	ReserveMemory(size int, prio uint8) error
	ReleaseMemory(size int)
}

// readFrame reads one frame's payload. The length is checked against max
// and reserved from mem before the payload is allocated. It returns io.EOF
// only at a clean end between frames; an over-long frame gives
// ErrFrameTooLarge, a malformed or cut one ErrBadRequest. On success the
// caller releases len(payload) bytes from mem.
func readFrame(r *bufio.Reader, max int, mem memory) ([]byte, error) {
	n, err := readLength(r)
	switch {
	case err != nil:
		return nil, err
	case n == 0:
		return nil, fmt.Errorf("%w: empty frame", ErrBadRequest)
	case n > uint64(max):
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrFrameTooLarge, n, max)
	}
	if mem != nil {
		if err := mem.ReserveMemory(int(n), network.ReservationPriorityHigh); err != nil {
			return nil, fmt.Errorf("reserve %d bytes for a frame: %w", n, err)
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if mem != nil {
			mem.ReleaseMemory(int(n))
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: frame of %d bytes cut short", ErrBadRequest, n)
		}
		return nil, fmt.Errorf("read frame of %d bytes: %w", n, err)
	}
	return p, nil
}

// readLength reads a frame's uvarint length prefix: io.EOF before its
// first byte, ErrBadRequest for a cut or over-long prefix, the reader's
// error otherwise.
func readLength(r io.ByteReader) (uint64, error) {
	var x uint64
	for i := range binary.MaxVarintLen64 {
		b, err := r.ReadByte()
		switch {
		case err == io.EOF && i == 0:
			return 0, io.EOF
		case err == io.EOF:
			return 0, fmt.Errorf("%w: frame length cut short", ErrBadRequest)
		case err != nil:
			return 0, fmt.Errorf("read frame length: %w", err)
		}
		if i == binary.MaxVarintLen64-1 && b > 1 {
			break
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if i > 0 && b == 0 {
				return 0, fmt.Errorf("%w: frame length not minimally encoded", ErrBadRequest)
			}
			return x, nil
		}
	}
	return 0, fmt.Errorf("%w: frame length overflows 64 bits", ErrBadRequest)
}

// decodeMessage decodes and checks a frame's payload. It returns one of
// *helloMsg, *idsMsg, *wantMsg, *bodiesMsg, *nextMsg, *errorMsg (version
// 1), *reconHelloMsg, *reconMsg, *diffMsg (version 2), or an
// error wrapping ErrBadRequest. It never panics on any input.
func decodeMessage(p []byte) (any, error) {
	return decodeIn(p, "", func(t msgType) any {
		switch t {
		case msgHello:
			return new(helloMsg)
		case msgIDs:
			return new(idsMsg)
		case msgWant:
			return new(wantMsg)
		case msgBodies:
			return new(bodiesMsg)
		case msgNext:
			return new(nextMsg)
		case msgError:
			return new(errorMsg)
		case msgReconHello:
			return new(reconHelloMsg)
		case msgRecon:
			return new(reconMsg)
		case msgDiff:
			return new(diffMsg)
		}
		return nil
	}, func(m any) error {
		if err := check(m); err != nil {
			return err
		}
		return checkRecon(m)
	})
}

// decodeIn decodes a frame's payload in one protocol's message space:
// newMsg gives the message a type decodes into (nil: unknown type), check
// validates what the type cannot express. Errors wrap ErrBadRequest; no
// input panics.
func decodeIn(p []byte, space string, newMsg func(msgType) any, check func(any) error) (any, error) {
	var env envelope
	if err := wireDec.Unmarshal(p, &env); err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrBadRequest, err)
	}
	m := newMsg(env.Type)
	if m == nil {
		return nil, fmt.Errorf("%w: unknown %smessage type %d", ErrBadRequest, space, env.Type)
	}
	if err := wireDec.Unmarshal(env.Body, m); err != nil {
		return nil, fmt.Errorf("%w: %smessage type %d: %v", ErrBadRequest, space, env.Type, err)
	}
	if err := check(m); err != nil {
		return nil, fmt.Errorf("%w: %smessage type %d: %v", ErrBadRequest, space, env.Type, err)
	}
	return m, nil
}

// check validates what a message's type cannot express.
func check(m any) error {
	switch m := m.(type) {
	case *helloMsg:
		if err := crdt.ValidateName("database", m.DB); err != nil {
			return err
		}
		return checkFilter(m.Filter)
	case *idsMsg:
		for i := 1; i < len(m.Entries); i++ {
			if m.Entries[i].Seq <= m.Entries[i-1].Seq {
				return errors.New("entries not in ascending sequence order")
			}
		}
		if n := len(m.Entries); n > 0 && m.Entries[n-1].Seq > m.Last {
			return errors.New("entry after the listing's last sequence")
		}
	case *wantMsg:
		for i := 1; i < len(m.Indices); i++ {
			if m.Indices[i] <= m.Indices[i-1] {
				return errors.New("indices not ascending")
			}
		}
		if len(m.IDs) > MaxWantIDs {
			return fmt.Errorf("%d ids exceed %d", len(m.IDs), MaxWantIDs)
		}
	case *bodiesMsg:
		if len(m.Changes) == 0 {
			return errors.New("no bodies")
		}
	case *errorMsg:
		if len(m.Code) > 64 || len(m.Text) > maxErrorText {
			return errors.New("error text too long")
		}
	}
	return nil
}

// checkFilter validates a filter received from a peer.
func checkFilter(f *Filter) error {
	if f == nil {
		return nil
	}
	if len(f.IDPrefix) > crdt.MaxIDBytes {
		return fmt.Errorf("filter id prefix longer than %d bytes", crdt.MaxIDBytes)
	}
	if len(f.Where) > maxFilterConds {
		return fmt.Errorf("filter has %d conditions, at most %d", len(f.Where), maxFilterConds)
	}
	for i := range f.Where {
		c := &f.Where[i]
		if len(c.Path) > crdt.MaxPathBytes {
			return fmt.Errorf("filter condition %d: path too long", i)
		}
		if _, err := crdt.ParsePointer(c.Path); err != nil {
			return fmt.Errorf("filter condition %d: %v", i, err)
		}
		switch c.Op {
		case "==", "!=", "<", "<=", ">", ">=", "prefix", "exists":
		default:
			return fmt.Errorf("filter condition %d: unknown operator %q", i, c.Op)
		}
		v, err := crdt.Normalize(c.Value)
		if err != nil {
			return fmt.Errorf("filter condition %d: %v", i, err)
		}
		c.Value = v
	}
	return nil
}
