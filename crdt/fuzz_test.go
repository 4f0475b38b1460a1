package crdt

import "testing"

// FuzzDecode: arbitrary bytes give a change or an error, never a panic, and a
// decoded change re-encodes to bytes that decode to the same id.
func FuzzDecode(f *testing.F) {
	r := newReplica(0)
	c := r.write(f, 1, nil, []Op{{Kind: OpSet, Path: "/a", Value: map[string]any{"b": []any{int64(1), "x"}}}, {Kind: OpIncr, Path: "/n", Value: 2.5}})
	data, _ := c.Encode()
	f.Add(data)
	f.Add([]byte{0x88})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			return
		}
		again, err := c.Encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c2, err := Decode(again)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		if c2.ID() != c.ID() {
			t.Fatalf("id not stable")
		}
	})
}
