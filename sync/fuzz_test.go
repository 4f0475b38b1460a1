package sync

import (
	"bufio"
	"bytes"
	"fmt"
	"testing"
)

// FuzzReadFrame feeds arbitrary bytes to the frame reader and message
// decoder: they return errors, never panic, and never allocate past the
// frame limit.
func FuzzReadFrame(f *testing.F) {
	for _, s := range [][]byte{
		mustFrame(msgHello, &helloMsg{Version: Version, DB: "db", MaxFrame: MinFrameBytes, Filter: &Filter{IDPrefix: "a"}}),
		mustFrame(msgIDs, &idsMsg{Entries: []wireEntry{{Seq: 1}}, Last: 1, Done: true}),
		mustFrame(msgWant, &wantMsg{Indices: []uint32{0, 1}, IDs: []wireID{{1}}}),
		mustFrame(msgBodies, &bodiesMsg{Changes: [][]byte{{0x80}}}),
		mustFrame(msgError, &errorMsg{Code: CodeNoDB, Text: "x"}),
		{0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzFrames(t, data, 1<<16, decodeMessage, nil) })
}

// fuzzFrames reads up to four frames of at most max bytes from data and
// decodes each with decode: errors, never a panic, never a frame past the
// limit; what decodes passes check (if any) and re-encodes.
func fuzzFrames(t *testing.T, data []byte, max int, decode func([]byte) (any, error), check func(any) error) {
	r := bufio.NewReader(bytes.NewReader(data))
	for range 4 {
		p, err := readFrame(r, max, nil)
		if err != nil {
			return
		}
		if len(p) > max {
			t.Fatalf("frame of %d bytes past the limit", len(p))
		}
		m, err := decode(p)
		if err != nil {
			continue
		}
		if check != nil {
			if err := check(m); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := encodeFrame(msgError, m); err != nil {
			t.Fatalf("re-encode %T: %v", m, err)
		}
	}
}

func mustFrame(t msgType, m any) []byte {
	f, err := encodeFrame(t, m)
	if err != nil {
		panic(err)
	}
	return f
}

// FuzzDecodeSnapMessage: the snapshot protocol's decoder on arbitrary
// frames; a documents batch that decodes is in order and bounded.
func FuzzDecodeSnapMessage(f *testing.F) {
	for _, s := range [][]byte{
		mustFrame(msgSnapHello, &snapHelloMsg{Version: SnapshotVersion, DB: "db", After: "a", MaxFrame: MinFrameBytes}),
		mustFrame(msgSnapHead, &SnapshotHead{Seq: 7}),
		mustFrame(msgSnapDocs, &snapDocsMsg{Docs: []SnapshotDoc{{Doc: ACLDoc, Changes: [][]byte{{0x80}}}, {Doc: "a", Base: []byte{0x80},
			Authors: []AuthorClock{{Author: []byte("p")}}}}}),
		mustFrame(msgSnapDocs, &snapDocsMsg{Done: true}),
		mustFrame(msgError, &errorMsg{Code: CodeSnapshot, Text: "x"}),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzFrames(t, data, 1<<16, decodeSnapMessage, func(m any) error {
			d, ok := m.(*snapDocsMsg)
			if !ok {
				return nil
			}
			for i, doc := range d.Docs {
				if i > 0 && doc.Doc <= d.Docs[i-1].Doc && d.Docs[i-1].Doc != ACLDoc {
					return fmt.Errorf("documents out of order: %q after %q", doc.Doc, d.Docs[i-1].Doc)
				}
				if len(doc.Base) == 0 && len(doc.Changes) == 0 {
					return fmt.Errorf("document %q without base or changes", doc.Doc)
				}
			}
			return nil
		})
	})
}
