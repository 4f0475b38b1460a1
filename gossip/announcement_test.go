package gossip

import (
	"bytes"
	"errors"
	"testing"
)

func digest(b byte) []byte { return bytes.Repeat([]byte{b}, DigestBytes) }

func mustEncode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeAnnouncement(t *testing.T) {
	good := Announcement{DB: "db", Seq: 7, Digest: digest(1), Changes: 9}
	goodBytes := mustEncode(t, good)
	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"valid", goodBytes, nil},
		{"empty", nil, ErrBadAnnouncement},
		{"garbage", []byte("not cbor at all"), ErrBadAnnouncement},
		{"trailing bytes", append(append([]byte{}, goodBytes...), 0x00), ErrBadAnnouncement},
		{"map instead of array", mustEncode(t, map[string]any{"DB": "db"}), ErrBadAnnouncement},
		{"extra element", mustEncode(t, []any{"db", 7, digest(1), 9, 1}), ErrBadAnnouncement},
		{"short digest", mustEncode(t, Announcement{DB: "db", Digest: digest(1)[:31]}), ErrBadAnnouncement},
		{"long digest", mustEncode(t, Announcement{DB: "db", Digest: append(digest(1), 0)}), ErrBadAnnouncement},
		{"empty db", mustEncode(t, Announcement{Digest: digest(1)}), ErrBadAnnouncement},
		{"slash in db", mustEncode(t, Announcement{DB: "a/b", Digest: digest(1)}), ErrBadAnnouncement},
		{"negative seq", mustEncode(t, []any{"db", -1, digest(1), 9}), ErrBadAnnouncement},
		{"deep nesting", []byte{0x84, 0x81, 0x81, 0x81, 0x81, 0x81, 0x00, 0x00, 0x40, 0x00}, ErrBadAnnouncement},
		{"huge array header", []byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrBadAnnouncement},
		{"huge bytes header", []byte{0x84, 0x62, 'd', 'b', 0x07, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrBadAnnouncement},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("decode: got err %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil {
				if got.DB != good.DB || got.Seq != good.Seq || !bytes.Equal(got.Digest, good.Digest) || got.Changes != good.Changes {
					t.Fatalf("decode: got %+v, want %+v", got, good)
				}
			}
		})
	}
}

func TestEncodeDeterministic(t *testing.T) {
	a := Announcement{DB: "db", Seq: 1 << 40, Digest: digest(2), Changes: 3}
	b1, err := encode(a)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := encode(a)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("encode: got %x then %x, want equal", b1, b2)
	}
	if b1[0] != 0x84 {
		t.Fatalf("encode: got first byte %#x, want 0x84 (array of 4)", b1[0])
	}
}

func TestTopic(t *testing.T) {
	if got, want := Topic("places"), "/barrel/db/places/heads/1"; got != want {
		t.Fatalf("Topic: got %q, want %q", got, want)
	}
}

func FuzzDecodeAnnouncement(f *testing.F) {
	f.Add(mustEncode(f, Announcement{DB: "db", Seq: 1, Digest: digest(1), Changes: 1}))
	f.Add([]byte{0x84, 0x60, 0x00, 0x40, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := decode(data)
		if err != nil {
			if !errors.Is(err, ErrBadAnnouncement) {
				t.Fatalf("decode: got err %v, want ErrBadAnnouncement", err)
			}
			return
		}
		if len(a.Digest) != DigestBytes {
			t.Fatalf("decode accepted a %d-byte digest", len(a.Digest))
		}
		re, err := encode(a)
		if err != nil {
			t.Fatalf("encode decoded announcement: %v", err)
		}
		b, err := decode(re)
		if err != nil {
			t.Fatalf("decode re-encoded announcement: %v", err)
		}
		if b.DB != a.DB || b.Seq != a.Seq || !bytes.Equal(b.Digest, a.Digest) || b.Changes != a.Changes {
			t.Fatalf("round trip: got %+v, want %+v", b, a)
		}
	})
}
