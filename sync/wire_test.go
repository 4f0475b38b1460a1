package sync

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/barrel-db/barrel/crdt"
)

func TestMessageRoundTrip(t *testing.T) {
	id := crdt.ID{1, 2, 3}
	tests := []struct {
		name string
		typ  msgType
		msg  any
	}{
		{"hello", msgHello, &helloMsg{Version: 1, DB: "db", Since: 7, Filter: &Filter{IDPrefix: "u/", Where: []Cond{{Path: "/a", Op: "==", Value: int64(1)}}}, Limit: 10, MaxFrame: 1 << 20}},
		{"ids", msgIDs, &idsMsg{Entries: []wireEntry{{Seq: 3, ID: wireID(id)}, {Seq: 9, ID: wireID(id)}}, Last: 12, Done: true}},
		{"want", msgWant, &wantMsg{Indices: []uint32{0, 4}, IDs: []wireID{wireID(id)}}},
		{"bodies", msgBodies, &bodiesMsg{Changes: [][]byte{{1}, {2, 3}}}},
		{"next", msgNext, &nextMsg{Since: 5}},
		{"error", msgError, &errorMsg{Code: CodeNoDB, Text: "no"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := encodeFrame(tt.typ, tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			p, err := readFrame(bufio.NewReader(bytes.NewReader(f)), 1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeMessage(p)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.msg) {
				t.Errorf("got %#v, want %#v", got, tt.msg)
			}
		})
	}
}

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error // nil: a payload
	}{
		{"ok", append(binary.AppendUvarint(nil, 3), 1, 2, 3), nil},
		{"eof", nil, io.EOF},
		{"too large", binary.AppendUvarint(nil, 101), ErrFrameTooLarge},
		{"empty", []byte{0}, ErrBadRequest},
		{"cut length", []byte{0x80}, ErrBadRequest},
		{"cut payload", []byte{5, 1}, ErrBadRequest},
		{"non-minimal length", []byte{0x83, 0x00, 1, 2, 3}, ErrBadRequest},
		{"overflow", bytes.Repeat([]byte{0xff}, 11), ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := readFrame(bufio.NewReader(bytes.NewReader(tt.in)), 100, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.want == nil && len(p) != 3 {
				t.Errorf("got %d bytes, want 3", len(p))
			}
		})
	}
}

func TestDecodeMessageRejects(t *testing.T) {
	short, _ := wireEnc.Marshal([]byte{1, 2})
	tests := []struct {
		name string
		typ  msgType
		msg  any
	}{
		{"short id", msgWant, []any{[]uint32{}, []any{cborRaw(short)}}},
		{"indices not ascending", msgWant, &wantMsg{Indices: []uint32{3, 3}}},
		{"entries not ascending", msgIDs, &idsMsg{Entries: []wireEntry{{Seq: 3}, {Seq: 2}}, Last: 5}},
		{"entry after last", msgIDs, &idsMsg{Entries: []wireEntry{{Seq: 6}}, Last: 5}},
		{"no bodies", msgBodies, &bodiesMsg{}},
		{"wrong shape", msgNext, []any{"x", "y"}},
		{"bad filter path", msgHello, &helloMsg{Version: 1, DB: "db", Filter: &Filter{Where: []Cond{{Path: "a", Op: "=="}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := encodeFrame(tt.typ, tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			p, err := readFrame(bufio.NewReader(bytes.NewReader(f)), 1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decodeMessage(p); !errors.Is(err, ErrBadRequest) {
				t.Errorf("got %v, want ErrBadRequest", err)
			}
		})
	}
}

type cborRaw []byte

func (r cborRaw) MarshalCBOR() ([]byte, error) { return r, nil }

func TestErrorCodes(t *testing.T) {
	for _, c := range codes {
		if got := codeOf(c.err); got != c.code {
			t.Errorf("codeOf(%v) = %s, want %s", c.err, got, c.code)
		}
		re := &RemoteError{Code: c.code}
		want := c.err
		if c.err == ErrWrongContentID {
			want = ErrBadRequest // one code, the first sentinel
		}
		if !errors.Is(re, want) {
			t.Errorf("RemoteError{%s} is not %v", c.code, want)
		}
	}
	if got := codeOf(errors.New("disk on fire")); got != CodeInternal {
		t.Errorf("unknown error code %s, want %s", got, CodeInternal)
	}
	if !errors.Is(&RemoteError{Code: "future"}, ErrInternal) {
		t.Error("unknown code is not ErrInternal")
	}
}

func TestConfigValidate(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.MaxFrameBytes != DefaultMaxFrameBytes || c.BatchSize != DefaultBatchSize || c.AntiEntropy != DefaultAntiEntropy || c.StreamTimeout != DefaultStreamTimeout {
		t.Errorf("defaults not filled: %+v", c)
	}
	bad := Config{MaxFrameBytes: 10, BatchSize: MaxBatchSize + 1, MaxPulls: -1}
	if err := bad.Validate(); err == nil {
		t.Error("invalid config accepted")
	}
	off := Config{AntiEntropy: -1}
	if err := off.Validate(); err != nil || off.AntiEntropy >= 0 {
		t.Errorf("negative anti-entropy: %v, %s", err, off.AntiEntropy)
	}
}
