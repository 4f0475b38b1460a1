package crdt

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Limits on what a writer may write (docs/design.md, "Limits"). Every one
// is checked before a write is acknowledged (Seal for a change's own limits,
// CheckBody for the document a write leaves) and, for a change a peer sends,
// before it is applied (CheckLimits). The decoders that read changes and
// states back allow more than these (see the reader limits below), so that
// whatever was accepted stays readable (DESIGN.md invariant 8).
const (
	// MaxDepth is the deepest nesting of a document: the JSON pointer of
	// every value in it has at most MaxDepth tokens (a top-level field is at
	// depth 1, an element of an array in it at depth 2).
	MaxDepth = 64
	// MaxArrayElements bounds the elements of one array.
	MaxArrayElements = 100_000
	// MaxObjectKeys bounds the members of one object.
	MaxObjectKeys = 100_000
	// MaxStringBytes bounds one string value or member name, in UTF-8 bytes.
	MaxStringBytes = 1 << 20
	// MaxDocBytes bounds a document's body, in bytes of its canonical CBOR
	// encoding (a float counted as 9 bytes).
	MaxDocBytes = 8 << 20
	// MaxStateBytes bounds the encoded state a local write leaves: the body
	// plus the merge bookkeeping (the writer of every path, set tags) and
	// the conflicts, which can grow past the body.
	MaxStateBytes = 32 << 20
	// MaxChangeBytes bounds the encoding of one change, signature included.
	MaxChangeBytes = 10 << 20
	// MaxOps bounds the operations of one change.
	MaxOps = 100_000
	// MaxParents bounds the parents of one change.
	MaxParents = 1024
	// MaxIDBytes bounds a database name and a document id.
	MaxIDBytes = 512
	// MaxPathBytes bounds one JSON pointer: an operation's path and the
	// pointer of every value of a document, so that every later write of
	// any of its values has a valid path.
	MaxPathBytes = 4096
	// MaxProof is the longest Merkle proof: groups of at most 2^6 changes
	// share a signature.
	MaxProof = 6
)

// Names of the limits, as a LimitError and the HTTP reason give them.
const (
	LimitDepth         = "max_depth"
	LimitArrayElements = "max_array_elements"
	LimitObjectKeys    = "max_object_keys"
	LimitStringBytes   = "max_string_bytes"
	LimitDocBytes      = "max_doc_bytes"
	LimitStateBytes    = "max_state_bytes"
	LimitChangeBytes   = "max_change_bytes"
	LimitOps           = "max_ops"
	LimitPathBytes     = "max_path_bytes"
)

// Reader limits: what the decoders of changes and states accept. Each is a
// margin above the writer limit it covers, never below (invariant 8).
const (
	// changeNesting is the CBOR nesting Decode accepts: a change array, its
	// ops array, an op array, then a value of at most MaxDepth levels, and
	// a margin.
	changeNesting = MaxDepth + 8
	// changeArray is the longest CBOR array Decode accepts: ops, parents
	// and value arrays, with a margin of 2 so that a change a peer sends
	// past a writer limit is decoded and refused by CheckLimits (counted,
	// not fetched again) instead of failing the whole sync session.
	changeArray = 2 * max(MaxOps, MaxArrayElements, MaxParents)
	// changeMapPairs is the largest CBOR map Decode accepts.
	changeMapPairs = 2 * MaxObjectKeys
	// changePathBytes is the longest operation path Decode accepts.
	changePathBytes = 2 * MaxPathBytes
	// stateNesting is the nesting a stored state may have. A state is data
	// this node wrote after checking it, so the reader is bounded by the
	// stored bytes only: counts are not limited (the CBOR decoder checks a
	// declared count against the bytes present before allocating), and
	// nesting only as far as recursion must be: past anything applying
	// changes Decode accepts can build (a path of changePathBytes has at
	// most changePathBytes/2 tokens, a value MaxDepth levels), including
	// stores written before the depth limit counted the path.
	stateNesting = changePathBytes/2 + 2*MaxDepth
)

// ErrLimit is what every *LimitError matches: a write or a received change
// past a size or shape limit.
var ErrLimit = errors.New("limit exceeded")

// LimitError says which limit a value or change passed, where, and by how
// much. It matches ErrLimit.
type LimitError struct {
	Limit string // one of the Limit* names
	Path  string // JSON pointer of the value past the limit; "" for the whole change or document
	Got   int64  // what the input has (for LimitDepth: at least this)
	Max   int64  // the limit
}

func (e *LimitError) Error() string {
	where := ""
	if e.Path != "" {
		where = " at " + e.Path
	}
	return fmt.Sprintf("%s%s: %d %s exceeds the limit of %d (%s)", limitWhat(e.Limit), where, e.Got, limitUnit(e.Limit), e.Max, e.Limit)
}

// Unwrap makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Unwrap() error { return ErrLimit }

func limitWhat(l string) string {
	switch l {
	case LimitDepth:
		return "document nested too deep"
	case LimitArrayElements:
		return "array too long"
	case LimitObjectKeys:
		return "object has too many members"
	case LimitStringBytes:
		return "string too long"
	case LimitDocBytes:
		return "document too large"
	case LimitStateBytes:
		return "document state (body, merge bookkeeping and conflicts) too large"
	case LimitChangeBytes:
		return "change too large"
	case LimitOps:
		return "change has too many operations"
	case LimitPathBytes:
		return "path too long"
	}
	return l
}

func limitUnit(l string) string {
	switch l {
	case LimitDepth:
		return "levels"
	case LimitArrayElements:
		return "elements"
	case LimitObjectKeys:
		return "members"
	case LimitOps:
		return "operations"
	}
	return "bytes"
}

// sealSlack bounds what signing adds to a change's unsigned encoding: the
// signature (an ed25519 signature is 64 bytes; 256 allows other key
// types), a proof of MaxProof ids and the leaf index.
const sealSlack = 256 + MaxProof*(2+len(ID{})) + 16

// CheckBody checks a whole document body against the document limits:
// depth, array and object sizes, string and path lengths and its encoded
// size. It returns a *LimitError for the first limit passed (in a
// deterministic walk: members in key order), nil otherwise. body must be
// normalized.
func CheckBody(body map[string]any) error {
	n, err := walkLimits(body, "", 0)
	if err != nil {
		return err
	}
	if n > MaxDocBytes {
		return &LimitError{Limit: LimitDocBytes, Got: n, Max: MaxDocBytes}
	}
	return nil
}

// CheckValue checks a normalized value written at path (a JSON pointer of
// depth tokens) against the document limits, as CheckBody would check it
// inside a document: the pointer of each of its values must stay within
// MaxDepth tokens and MaxPathBytes. It does not check the document's total
// size (CheckBody does).
func CheckValue(v any, path string, depth int) error {
	n, err := walkLimits(v, path, depth)
	if err == nil && n > MaxDocBytes {
		err = &LimitError{Limit: LimitDocBytes, Path: path, Got: n, Max: MaxDocBytes}
	}
	return err
}

// CheckLimits checks a change against the writer limits that depend on the
// change alone: its operations' count and paths, the value of each (as
// CheckValue), and its encoded size. Seal calls it; a node calls it on every
// change a peer sends before applying it (Decode accepts a margin more, so
// that such a change can be refused by id rather than fail its session).
// The result depends only on the change, so every peer refuses the same
// changes (invariant 1).
func (c *Change) CheckLimits() error {
	if len(c.Ops) > MaxOps {
		return &LimitError{Limit: LimitOps, Got: int64(len(c.Ops)), Max: MaxOps}
	}
	for _, op := range c.Ops {
		if len(op.Path) > MaxPathBytes {
			return &LimitError{Limit: LimitPathBytes, Path: truncatePath(op.Path), Got: int64(len(op.Path)), Max: MaxPathBytes}
		}
		if op.Kind == OpDelete || op.Kind == OpDeleteDoc {
			continue // writes no value (a null set is a value at its path)
		}
		depth := strings.Count(op.Path, "/") // a pointer's tokens; "/" inside one is escaped as ~1
		if op.Kind == OpAdd || op.Kind == OpRemove {
			depth++ // a set element is an element of the array at Path
		}
		if err := CheckValue(op.Value, op.Path, depth); err != nil {
			return err
		}
	}
	if len(c.unsigned) > 0 {
		if n := int64(len(c.unsigned) + sealSlack); n > MaxChangeBytes {
			return &LimitError{Limit: LimitChangeBytes, Got: n, Max: MaxChangeBytes}
		}
	}
	return nil
}

// walkLimits checks a normalized value against the document limits and
// returns its canonical CBOR size. The first walk visits members in map
// order and counts path lengths without building paths (it runs on every
// write: about 0.26 µs and no allocation for a 200-byte document); only when it finds a limit
// passed does a second walk, in key order and building paths, report the
// first one, so that the error is the same on every run.
func walkLimits(v any, path string, depth int) (int64, error) {
	n, err := limitWalker{}.value(v, path, len(path), depth)
	if err != nil {
		_, err = limitWalker{report: true}.value(v, path, len(path), depth)
	}
	return n, err
}

// limitWalker walks a normalized value, checking the document limits and
// adding up its canonical CBOR size. plen is the length of the value's
// JSON pointer; path is the pointer itself only when report is set.
type limitWalker struct{ report bool }

func (w limitWalker) value(v any, path string, plen, depth int) (int64, error) {
	if depth > MaxDepth {
		return 0, &LimitError{Limit: LimitDepth, Path: path, Got: int64(depth), Max: MaxDepth}
	}
	switch x := v.(type) {
	case nil, bool:
		return 1, nil
	case int64:
		u := uint64(x)
		if x < 0 {
			u = uint64(-(x + 1))
		}
		return cborHead(u), nil
	case float64:
		return 9, nil
	case string:
		if len(x) > MaxStringBytes {
			return 0, &LimitError{Limit: LimitStringBytes, Path: path, Got: int64(len(x)), Max: MaxStringBytes}
		}
		return cborHead(uint64(len(x))) + int64(len(x)), nil
	case []any:
		if len(x) > MaxArrayElements {
			return 0, &LimitError{Limit: LimitArrayElements, Path: path, Got: int64(len(x)), Max: MaxArrayElements}
		}
		n := cborHead(uint64(len(x)))
		if len(x) > 0 && depth+1 > MaxDepth {
			return 0, &LimitError{Limit: LimitDepth, Path: path + "/0", Got: int64(depth + 1), Max: MaxDepth}
		}
		for _, e := range x {
			// Elements share their array's path in error reports: an index
			// per element would cost a string per element.
			m, err := w.value(e, path, plen, depth+1)
			if err != nil {
				return 0, err
			}
			n += m
		}
		return n, nil
	case map[string]any:
		if len(x) > MaxObjectKeys {
			return 0, &LimitError{Limit: LimitObjectKeys, Path: path, Got: int64(len(x)), Max: MaxObjectKeys}
		}
		n := cborHead(uint64(len(x)))
		member := func(k string) error {
			if len(k) > MaxStringBytes {
				return &LimitError{Limit: LimitStringBytes, Path: path, Got: int64(len(k)), Max: MaxStringBytes}
			}
			kp := plen + 1 + len(k) + strings.Count(k, "~") + strings.Count(k, "/") // escaped as ~0, ~1
			p := ""
			if w.report {
				p = path + "/" + escapeToken(k)
			}
			if kp > MaxPathBytes {
				return &LimitError{Limit: LimitPathBytes, Path: truncatePath(p), Got: int64(kp), Max: MaxPathBytes}
			}
			m, err := w.value(x[k], p, kp, depth+1)
			n += cborHead(uint64(len(k))) + int64(len(k)) + m
			return err
		}
		if w.report {
			for _, k := range sortedKeys(x) {
				if err := member(k); err != nil {
					return 0, err
				}
			}
		} else {
			for k := range x {
				if err := member(k); err != nil {
					return 0, err
				}
			}
		}
		return n, nil
	}
	// Other Go numbers (a caller may seal values it did not normalize):
	// at most a 9-byte head. Types are Normalize's and Decode's business.
	return 9, nil
}

// cborHead is the size of a CBOR head carrying argument u.
func cborHead(u uint64) int64 {
	switch {
	case u < 24:
		return 1
	case u <= math.MaxUint8:
		return 2
	case u <= math.MaxUint16:
		return 3
	case u <= math.MaxUint32:
		return 5
	}
	return 9
}

func escapeToken(k string) string {
	for i := 0; i < len(k); i++ {
		if k[i] == '~' || k[i] == '/' {
			return FormatPointer([]string{k})[1:]
		}
	}
	return k
}

// truncatePath shortens a pointer for an error message.
func truncatePath(p string) string {
	if len(p) <= 128 {
		return p
	}
	i := 128
	for i > 0 && !utf8.RuneStart(p[i]) {
		i--
	}
	return p[:i] + "..."
}
