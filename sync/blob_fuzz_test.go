package sync

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzDecodeBlobMessage feeds arbitrary bytes to the frame reader and the
// blob message decoder: errors, never a panic, never an allocation past
// the frame limit, and what decodes re-encodes.
func FuzzDecodeBlobMessage(f *testing.F) {
	for _, s := range [][]byte{
		mustFrame(msgBlobGet, &blobGetMsg{Version: BlobVersion, DB: "db", Offset: 1 << 20, MaxData: DefaultBlobData}),
		mustFrame(msgBlobHead, &blobHeadMsg{Length: 200 << 20}),
		mustFrame(msgBlobData, &blobDataMsg{Data: []byte("chunk")}),
		mustFrame(msgError, &errorMsg{Code: CodeNoBlob, Text: "x"}),
		mustFrame(msgBlobData, &blobDataMsg{}),
		{0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		f.Add(s)
	}
	const max = MinBlobData + blobFrameSlack
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
			m, err := decodeBlobMessage(p)
			if err != nil {
				continue
			}
			if d, ok := m.(*blobDataMsg); ok && len(d.Data) == 0 {
				t.Fatal("a data frame without data decoded")
			}
			if _, err := encodeFrame(msgBlobData, m); err != nil {
				t.Fatalf("re-encode %T: %v", m, err)
			}
		}
	})
}
