package sync

import (
	"errors"
	"fmt"

	"github.com/barrel-db/barrel/crdt"
)

// BlobProtocolID is the libp2p protocol that moves attachment blobs by
// digest, a sibling of ProtocolID (docs/sync-protocol.md, "Blob protocol").
// Its frames are those of the sync protocol (uvarint length, CBOR
// [type, message]) with message types of their own.
const BlobProtocolID = "/barrel/blob/1.0.0"

// BlobVersion is the message-level version a client sends in BlobGet.
const BlobVersion = 1

// Blob wire limits.
const (
	// MinBlobData and MaxBlobData bound the data bytes of one BlobData
	// frame that a client may ask for; DefaultBlobData is what it asks.
	MinBlobData     = 4 << 10
	MaxBlobData     = 1 << 20
	DefaultBlobData = 256 << 10
	// blobFrameSlack bounds the CBOR bytes a BlobData frame adds beyond
	// its data (envelope, array heads, byte string head).
	blobFrameSlack = 32
	// maxBlobRequest bounds a BlobGet or BlobHead frame (a database name
	// is at most crdt.MaxIDBytes).
	maxBlobRequest = 1 << 10
)

// Blob message types. They are a type space of their own (a blob stream
// carries no sync message); Error keeps the sync protocol's number.
const (
	msgBlobGet  msgType = 1 // client: send this blob from this offset
	msgBlobHead msgType = 2 // server: the blob's whole length
	msgBlobData msgType = 3 // server: the next bytes of the blob
)

// Digest is a blob's SHA-256.
type Digest [32]byte

// blobGetMsg asks for a blob, from Offset on (a resumed transfer).
type blobGetMsg struct {
	_       struct{} `cbor:",toarray"`
	Version uint32
	DB      string
	Digest  wireID // 32 bytes, as change ids
	Offset  uint64
	MaxData uint32 // most data bytes per BlobData frame the client accepts
}

// blobHeadMsg announces the blob's whole length; the server then sends
// exactly Length - Offset bytes in BlobData frames and closes.
type blobHeadMsg struct {
	_      struct{} `cbor:",toarray"`
	Length uint64
}

// blobDataMsg carries the next bytes of the blob (never none).
type blobDataMsg struct {
	_    struct{} `cbor:",toarray"`
	Data []byte
}

// decodeBlobMessage decodes and checks a blob frame's payload. It returns
// *blobGetMsg, *blobHeadMsg, *blobDataMsg or *errorMsg, or an error
// wrapping ErrBadRequest. It never panics on any input.
func decodeBlobMessage(p []byte) (any, error) {
	return decodeIn(p, "blob ", func(t msgType) any {
		switch t {
		case msgBlobGet:
			return new(blobGetMsg)
		case msgBlobHead:
			return new(blobHeadMsg)
		case msgBlobData:
			return new(blobDataMsg)
		case msgError:
			return new(errorMsg)
		}
		return nil
	}, checkBlob)
}

// checkBlob validates what a blob message's type cannot express.
func checkBlob(m any) error {
	switch m := m.(type) {
	case *blobGetMsg:
		if err := crdt.ValidateName("database", m.DB); err != nil {
			return err
		}
		if m.Offset > 1<<62 {
			return fmt.Errorf("offset %d out of range", m.Offset)
		}
	case *blobHeadMsg:
		if m.Length > 1<<62 {
			return fmt.Errorf("length %d out of range", m.Length)
		}
	case *blobDataMsg:
		if len(m.Data) == 0 {
			return errors.New("no data")
		}
	case *errorMsg:
		if len(m.Code) > 64 || len(m.Text) > maxErrorText {
			return errors.New("error text too long")
		}
	}
	return nil
}

// readBlob reads and decodes the next blob message within the conn's
// frame limit and deadline.
func (c *conn) readBlob() (any, error) { return c.readAs(decodeBlobMessage) }
