package gossip

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/peer"
)

// DigestBytes is the length of Announcement.Digest.
const DigestBytes = 32

// maxDBBytes bounds a database name (the node allows 128).
const maxDBBytes = 128

// Announcement is what a peer publishes about one database: how far its
// local feed goes and a digest of the set of changes it holds. It is a wire
// type, encoded as the CBOR array [DB, Seq, Digest, Changes].
type Announcement struct {
	_ struct{} `cbor:",toarray"`
	// DB is the database's name; it must equal the topic's database.
	DB string
	// Seq is the announcer's latest local sequence number for DB.
	Seq uint64
	// Digest is a DigestBytes-long digest of the announcer's change set, so
	// two peers with equal digests need not sync.
	Digest []byte
	// Changes is the number of changes the announcer holds for DB.
	Changes uint64
}

// Received is an announcement from another peer.
type Received struct {
	// From is the announcement's author (verified by its signature), not
	// the peer that forwarded it.
	From peer.ID
	// Via is the connected peer that delivered the message: the author
	// itself, or a peer forwarding it through the mesh. The author may not
	// be connected to us; Via is.
	Via peer.ID
	// Ann is the announcement; the receiver owns its Digest.
	Ann Announcement
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  4,
		MaxArrayElements: 16,
		MaxMapPairs:      16,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// encode returns a's deterministic CBOR encoding.
func encode(a Announcement) ([]byte, error) {
	return encMode.Marshal(a)
}

// decode parses one announcement and checks its fields (see check). It
// never panics; allocation is bounded by len(b).
func decode(b []byte) (Announcement, error) {
	a, err := unmarshal(b)
	if err != nil {
		return Announcement{}, err
	}
	if err := check(a); err != nil {
		return Announcement{}, err
	}
	return a, nil
}

// unmarshal parses exactly one CBOR announcement without checking its
// fields.
func unmarshal(b []byte) (Announcement, error) {
	var a Announcement
	if err := decMode.Unmarshal(b, &a); err != nil {
		return Announcement{}, fmt.Errorf("%w: %v", ErrBadAnnouncement, err)
	}
	return a, nil
}

// check reports whether a's fields are well-formed on their own.
func check(a Announcement) error {
	if len(a.Digest) != DigestBytes {
		return fmt.Errorf("%w: digest is %d bytes, want %d", ErrBadAnnouncement, len(a.Digest), DigestBytes)
	}
	if err := checkDB(a.DB); err != nil {
		return fmt.Errorf("%w: %v", ErrBadAnnouncement, err)
	}
	return nil
}

// checkDB reports whether db can name a topic.
func checkDB(db string) error {
	if db == "" || len(db) > maxDBBytes {
		return fmt.Errorf("%w: %q", ErrInvalidDB, db)
	}
	for i := 0; i < len(db); i++ {
		if db[i] == '/' {
			return fmt.Errorf("%w: %q", ErrInvalidDB, db)
		}
	}
	return nil
}

// Topic is the gossipsub topic on which db's heads are announced.
func Topic(db string) string { return "/barrel/db/" + db + "/heads/1" }
