package sync

import (
	"bufio"
	"bytes"
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
	const max = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for range 4 {
			p, err := readFrame(r, max, nil)
			if err != nil {
				return
			}
			if len(p) > max {
				t.Fatalf("frame of %d bytes past the limit", len(p))
			}
			m, err := decodeMessage(p)
			if err != nil {
				continue
			}
			// What decodes re-encodes.
			if _, err := encodeFrame(msgNext, m); err != nil {
				t.Fatalf("re-encode %T: %v", m, err)
			}
		}
	})
}

func mustFrame(t msgType, m any) []byte {
	f, err := encodeFrame(t, m)
	if err != nil {
		panic(err)
	}
	return f
}
