package couch

import (
	"errors"
	"fmt"
	"strconv"
)

// Bounds on revisions a client may send.
const (
	// MaxRevHashLen is the longest revision hash accepted, in hex digits.
	// CouchDB writes 32 (an MD5 digest) and PouchDB 9 writes 32 (a random
	// uuid without dashes); 64 leaves room for a SHA-256.
	MaxRevHashLen = 64
	// MaxRevLen is the longest revision string accepted: a uint64
	// generation (20 digits), "-" and the longest hash.
	MaxRevLen = 20 + 1 + MaxRevHashLen
	// MaxRevisions is the most ids a _revisions object may hold. It is
	// CouchDB's default revs_limit.
	MaxRevisions = 1000
)

// ErrBadRev is wrapped by every error ParseRev and Revisions.Revs return.
var ErrBadRev = errors.New("invalid rev format")

// Rev is a CouchDB revision, "Gen-Hash": Gen counts the edits from the
// document's first revision (1), Hash is lowercase hex.
type Rev struct {
	Gen  uint64
	Hash string
}

// ParseRev parses CouchDB's "N-hex": N is a decimal generation ≥ 1
// without sign or leading zeros, hex is 1 to MaxRevHashLen lowercase hex
// digits. An error wraps ErrBadRev and quotes s only when s is short.
func ParseRev(s string) (Rev, error) {
	if len(s) > MaxRevLen {
		return Rev{}, fmt.Errorf("%w: longer than %d bytes", ErrBadRev, MaxRevLen)
	}
	dash := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			dash = i
			break
		}
	}
	if dash < 0 {
		return Rev{}, fmt.Errorf("%w: %q has no '-'", ErrBadRev, s)
	}
	gen, err := parseGen(s[:dash])
	if err != nil {
		return Rev{}, fmt.Errorf("%w: %q: %v", ErrBadRev, s, err)
	}
	hash := s[dash+1:]
	if err := checkHash(hash); err != nil {
		return Rev{}, fmt.Errorf("%w: %q: %v", ErrBadRev, s, err)
	}
	return Rev{Gen: gen, Hash: hash}, nil
}

// String returns r as "Gen-Hash".
func (r Rev) String() string {
	return strconv.FormatUint(r.Gen, 10) + "-" + r.Hash
}

func parseGen(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("empty generation")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("generation is not a decimal number")
		}
	}
	if s[0] == '0' {
		return 0, errors.New("generation must be at least 1, without leading zeros")
	}
	gen, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errors.New("generation out of range")
	}
	return gen, nil
}

func checkHash(h string) error {
	if h == "" {
		return errors.New("empty hash")
	}
	if len(h) > MaxRevHashLen {
		return fmt.Errorf("hash longer than %d digits", MaxRevHashLen)
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return errors.New("hash is not lowercase hex")
		}
	}
	return nil
}

// Revisions is CouchDB's _revisions: a document's ancestry, newest first.
// IDs[i] is the hash of generation Start-i.
type Revisions struct {
	Start uint64   `json:"start"`
	IDs   []string `json:"ids"`
}

// Revs returns the revisions in order, newest first: Start-IDs[0],
// (Start-1)-IDs[1], ... It refuses (an error wrapping ErrBadRev) an
// empty list, more than MaxRevisions ids, a Start smaller than the number
// of ids (a generation would fall below 1), and an id that is not a valid
// hash. The returned slice is the caller's.
func (rs Revisions) Revs() ([]Rev, error) {
	if len(rs.IDs) == 0 {
		return nil, fmt.Errorf("%w: _revisions has no ids", ErrBadRev)
	}
	if len(rs.IDs) > MaxRevisions {
		return nil, fmt.Errorf("%w: _revisions has %d ids, more than %d", ErrBadRev, len(rs.IDs), MaxRevisions)
	}
	if rs.Start < uint64(len(rs.IDs)) {
		return nil, fmt.Errorf("%w: _revisions start %d is less than its %d ids", ErrBadRev, rs.Start, len(rs.IDs))
	}
	out := make([]Rev, len(rs.IDs))
	for i, id := range rs.IDs {
		if err := checkHash(id); err != nil {
			return nil, fmt.Errorf("%w: _revisions id %d: %v", ErrBadRev, i, err)
		}
		out[i] = Rev{Gen: rs.Start - uint64(i), Hash: id}
	}
	return out, nil
}
