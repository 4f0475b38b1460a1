package layout

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/barrel-db/barrel/crdt"
)

// ErrCorruptRecord: a record's bytes do not have its encoding's shape.
var ErrCorruptRecord = errors.New("corrupt record")

// Names of a database's metadata entries (Keys.Meta).
const (
	MetaSeq       = "seq"
	MetaCount     = "count"
	MetaRevisions = "revisions"  // history entries held (8 bytes)
	MetaTombs     = "tombstones" // deleted documents held (8 bytes)
	MetaClock     = "hlc"
	MetaDigest    = "digest"    // XOR of every change id held (32 bytes) + count (8 bytes)
	MetaHorizon   = "horizon"   // highest seq folded or purged (8 bytes)
	MetaPurged    = "purged"    // latest clock of a purged tombstone (HLC)
	MetaCompacted = "compacted" // CompactStats of the last compaction
	MetaSeqMarks  = "seqmarks"  // []seqMark: the local seq reached at the times compaction ran
	MetaBasesFrom = "bases:"    // + peer id: highest seq of a base installed from that peer's snapshots
)

// Uint64 is the encoding of a number record (a counter, a sequence, a
// checkpoint): 8 bytes, big endian.
func Uint64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// ParseUint64 reads a number record.
func ParseUint64(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: number of %d bytes", ErrCorruptRecord, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// DocRecord is the value of a document key: the local seq of its latest
// change, then its state's encoding.
func DocRecord(seq uint64, state []byte) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(state)), seq), state...)
}

// ParseDocRecord splits a document record into its seq and state encoding
// (which aliases v).
func ParseDocRecord(v []byte) (seq uint64, state []byte, err error) {
	if len(v) < 8 {
		return 0, nil, ErrCorruptRecord
	}
	return binary.BigEndian.Uint64(v[:8]), v[8:], nil
}

// Digest is the value of MetaDigest: the XOR of every change id held and
// how many there are.
func Digest(xor crdt.ID, n uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, len(xor)+8), xor[:]...), n)
}

// ParseDigest reads the value of MetaDigest.
func ParseDigest(v []byte) (xor crdt.ID, n uint64, err error) {
	if len(v) != len(xor)+8 {
		return xor, 0, fmt.Errorf("%w: digest of %d bytes", ErrCorruptRecord, len(v))
	}
	copy(xor[:], v)
	return xor, binary.BigEndian.Uint64(v[len(xor):]), nil
}

// FeedEntry is the value of a feed key.
type FeedEntry struct {
	_       struct{} `cbor:",toarray"`
	Doc     string
	Rev     crdt.ID
	Deleted bool
	From    []byte // the peer the change was received from; nil for local writes
}

// FoldRecord is the value of a document's fold key: its base state and the
// latest clock folded into it.
type FoldRecord struct {
	_       struct{}      `cbor:",toarray"`
	Base    []byte        // crdt.State encoding; its heads are the frontier
	Clock   crdt.HLC      // no change after the frontier has a clock at or below this
	Authors []AuthorClock // per author, the latest clock of theirs folded; sorted by author
}

// AuthorClock is one author's latest clock folded into a base.
type AuthorClock struct {
	_      struct{} `cbor:",toarray"`
	Author []byte   // peer id bytes
	Clock  crdt.HLC
}

// SnapProgress is the value of a snapshot-progress key: an install from a
// peer that was interrupted resumes after After, and the checkpoint it ends
// with is Seq, the first session's position.
type SnapProgress struct {
	_     struct{} `cbor:",toarray"`
	After string
	Seq   uint64
}
