package crdt

import (
	"bytes"
	"testing"
)

// TestSignGroup: every change of a group verifies on its own, for every
// group size up to and past one tree, and a tampered proof, leaf or content
// does not.
func TestSignGroup(t *testing.T) {
	signer, _ := newSigner(9)
	r := newReplica(8)
	for _, n := range []int{1, 2, 3, 5, 8, 63, 64, 65, 130} {
		var cs []*Change
		for i := range n {
			cs = append(cs, &Change{DB: "db", Doc: "d", Clock: HLC{Wall: int64(i)}, Author: r.author,
				Ops: []Op{{Kind: OpSet, Path: "/i", Value: int64(i)}}})
		}
		if err := SealGroup(cs, signer); err != nil {
			t.Fatal(err)
		}
		for i, c := range cs {
			data, _ := c.Encode()
			if fast, _ := c.EncodeSealed(); !bytes.Equal(data, fast) {
				t.Fatalf("n=%d change %d: EncodeSealed differs from Encode", n, i)
			}
			got, err := Decode(data)
			if err != nil {
				t.Fatalf("n=%d change %d: decode: %v", n, i, err)
			}
			if err := got.Verify(verify); err != nil {
				t.Fatalf("n=%d change %d: verify: %v", n, i, err)
			}
			if len(got.Proof) > 0 {
				bad := *got
				bad.Leaf ^= 1
				if bad.Verify(verify) == nil {
					t.Fatalf("n=%d change %d: verified with a wrong leaf", n, i)
				}
				bad = *got
				bad.Proof = append([]ID{{1}}, got.Proof[1:]...)
				if bad.Verify(verify) == nil {
					t.Fatalf("n=%d change %d: verified with a wrong proof", n, i)
				}
			}
			bad := *got
			bad.Ops = []Op{{Kind: OpSet, Path: "/i", Value: int64(-1)}}
			enc, _ := bad.Encode()
			tampered, err := Decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			if tampered.Verify(verify) == nil {
				t.Fatalf("n=%d change %d: tampered content verified", n, i)
			}
		}
	}
}
