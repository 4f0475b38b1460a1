package layout

import (
	"bytes"
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

// A change record (the value of a change key) is one of two kinds, told
// apart by its first byte:
//
//   - whole: the change's signed encoding (crdt.Change.Encode), a CBOR array
//     of ten, so its first byte is 0x8a. Every record of format 1 is one,
//     and so is a change stored without the rest of its signing group.
//   - member: groupedTag, the group (uvarint: the key of its GroupRecord),
//     the change's leaf position (uvarint), then the signed encoding
//     without its last three elements (signature, proof, leaf), which the
//     group's record gives back.
const groupedTag = 0x00

// errNotSuffixed: a signed encoding does not end as the change's own
// signature, proof and leaf encode (it cannot be stored as a member).
var errNotSuffixed = errors.New("encoding does not end with the change's signature")

// MemberRecord returns the member record of change c of group, whose
// signed encoding is enc.
func MemberRecord(group uint64, c *crdt.Change, enc []byte) ([]byte, error) {
	tail, err := signedTail(c)
	if err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(enc, tail) {
		return nil, errNotSuffixed
	}
	head := enc[:len(enc)-len(tail)]
	out := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(head))
	out = append(out, groupedTag)
	out = binary.AppendUvarint(out, group)
	out = binary.AppendUvarint(out, uint64(c.Leaf))
	return append(out, head...), nil
}

// signedTail is how a change's signed encoding ends: its signature, proof
// and leaf, each in canonical CBOR (as crdt encodes them in the array).
func signedTail(c *crdt.Change) ([]byte, error) {
	var out []byte
	for _, v := range []any{c.Sig, c.Proof, c.Leaf} {
		b, err := crdt.Marshal(v)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// ChangeRecord is a parsed change record. A whole one has Whole set; a
// member one has Group, Leaf and Head (aliasing the record).
type ChangeRecord struct {
	Whole []byte
	Group uint64
	Leaf  uint32
	Head  []byte
}

// ParseChangeRecord splits a change record into its kind's parts.
func ParseChangeRecord(v []byte) (ChangeRecord, error) {
	if len(v) == 0 {
		return ChangeRecord{}, fmt.Errorf("%w: empty change record", ErrCorruptRecord)
	}
	if v[0] != groupedTag {
		return ChangeRecord{Whole: v}, nil
	}
	group, n := binary.Uvarint(v[1:])
	if n <= 0 {
		return ChangeRecord{}, fmt.Errorf("%w: change record's group", ErrCorruptRecord)
	}
	rest := v[1+n:]
	leaf, n := binary.Uvarint(rest)
	if n <= 0 || leaf >= 1<<crdt.MaxProof {
		return ChangeRecord{}, fmt.Errorf("%w: change record's leaf", ErrCorruptRecord)
	}
	return ChangeRecord{Group: group, Leaf: uint32(leaf), Head: rest[n:]}, nil
}

// Signed returns a member record's signed encoding, given its group's
// record and the proof of its leaf.
func (r ChangeRecord) Signed(sig []byte, proof []crdt.ID) ([]byte, error) {
	tail, err := signedTail(&crdt.Change{Sig: sig, Proof: proof, Leaf: r.Leaf})
	if err != nil {
		return nil, err
	}
	return append(append(make([]byte, 0, len(r.Head)+len(tail)), r.Head...), tail...), nil
}

// GroupRecord is the value of a group key: what every member of a signing
// group shares. Leaves are the group's leaves in order (the zero ids that
// pad its last level left out), Depth the length of its proofs.
type GroupRecord struct {
	_      struct{} `cbor:",toarray"`
	Sig    []byte
	Depth  uint8
	Leaves []crdt.ID
}

// ParseGroupRecord reads a group record.
func ParseGroupRecord(v []byte) (*GroupRecord, error) {
	g := new(GroupRecord)
	if err := crdt.Unmarshal(v, g); err != nil {
		return nil, fmt.Errorf("%w: group record: %v", ErrCorruptRecord, err)
	}
	if int(g.Depth) > crdt.MaxProof || g.Depth == 0 || len(g.Leaves) > 1<<g.Depth {
		return nil, fmt.Errorf("%w: group record of depth %d with %d leaves", ErrCorruptRecord, g.Depth, len(g.Leaves))
	}
	return g, nil
}
