package sync

import (
	"fmt"
	"testing"
)

// FuzzDecodeReconMessage feeds arbitrary frames to the decoder of the
// version 2 messages: errors, never a panic, never an allocation past the
// frame limit; what decodes is within the protocol's bounds, and a
// split's children unpack.
func FuzzDecodeReconMessage(f *testing.F) {
	salt := make([]byte, saltBytes)
	fs := [16]Fingerprint{{Count: 1}, {}, {Count: 3, Sum: [2]uint64{1, 2}}}
	for _, s := range [][]byte{
		mustFrame(msgReconHello, &reconHelloMsg{Version: ReconVersion, DB: "db", MaxFrame: MinFrameBytes, Salt: salt, Count: 3, FP: 7}),
		mustFrame(msgRecon, &reconMsg{Split: []wireRange{{}, {Depth: 2, Path: 0xab}},
			Leaves: []wireLeaf{{Depth: 4, Path: 0xabcd, Hashes: make([]byte, 2*shortHashBytes)}}}),
		mustFrame(msgDiff, &diffMsg{Seq: 9, Splits: []wireSplit{{Depth: 1, Path: 3, Children: packChildren(salt, Range{Depth: 1, Path: 3}, &fs)}},
			Docs: []wireDoc{{Doc: "a", Heads: []wireID{{1}}}}, More: true}),
		mustFrame(msgDiff, &diffMsg{Seq: 1, InSync: true}),
		mustFrame(msgWant, &wantMsg{IDs: []wireID{{2}}}),
		{0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzFrames(t, data, 1<<16, decodeMessage, func(m any) error {
			switch m := m.(type) {
			case *reconMsg:
				if len(m.Split)+len(m.Leaves) > MaxReconRanges {
					return fmt.Errorf("%d ranges decoded", len(m.Split)+len(m.Leaves))
				}
				for _, l := range m.Leaves {
					if len(l.Hashes) > MaxLeafItems*shortHashBytes || !(Range{Depth: l.Depth, Path: l.Path}).valid() {
						return fmt.Errorf("leaf %d/%x of %d bytes decoded", l.Depth, l.Path, len(l.Hashes))
					}
				}
			case *diffMsg:
				for _, s := range m.Splits {
					if _, err := unpackChildren(s.Children); err != nil || s.Depth >= MaxReconDepth {
						return fmt.Errorf("split %d decoded: %v", s.Depth, err)
					}
				}
				for _, d := range m.Docs {
					if len(d.Heads) == 0 || len(d.Heads) > MaxEntryHeads {
						return fmt.Errorf("document with %d heads decoded", len(d.Heads))
					}
				}
			case *reconHelloMsg:
				if len(m.Salt) != saltBytes {
					return fmt.Errorf("salt of %d bytes decoded", len(m.Salt))
				}
			}
			return nil
		})
	})
}

// FuzzUnpackChildren: any bytes unpack or fail, and what unpacks packs
// back to the same bytes.
func FuzzUnpackChildren(f *testing.F) {
	salt := make([]byte, saltBytes)
	f.Add(packChildren(salt, Range{}, &[16]Fingerprint{{Count: 2}, {Count: 1}}))
	f.Add([]byte{0xff, 0xff})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		cs, err := unpackChildren(p)
		if err != nil {
			return
		}
		out := make([]byte, 2)
		for i, c := range cs {
			if c.full {
				out[i/8] |= 0x80 >> (i % 8)
				out = append(out, byte(c.fp>>24), byte(c.fp>>16), byte(c.fp>>8), byte(c.fp))
			}
		}
		if string(out) != string(p) {
			t.Fatalf("unpacked %x packs to %x", p, out)
		}
	})
}
