package sync

import (
	"errors"
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
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzFrames(t, data, MinBlobData+blobFrameSlack, decodeBlobMessage, func(m any) error {
			if d, ok := m.(*blobDataMsg); ok && len(d.Data) == 0 {
				return errors.New("a data frame without data decoded")
			}
			return nil
		})
	})
}
