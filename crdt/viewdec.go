package crdt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// This file is DecodeView's reader: a hand-written decoder of the CBOR a
// state is stored as, for the read path only.
//
// Why not the CBOR library: a query returning 10,000 documents decodes
// 10,000 states, and profiles of such a query put more than half of its
// time in the library-based view decoder (kept as decodeViewReflect, the
// reference the tests and the fuzz target compare against). That decoder
// checks the whole input's well-formedness, splits the state into raw
// fields, decodes seven of them one by one through reflection, and then
// walks the body and the conflicts a second time to turn CBOR's types
// (uint64, float32...) into normalized JSON values. This reader walks the
// bytes once and builds the normalized values directly. Everything else
// (changes, full states, the wire) stays with the library; only this one
// hot, read-only shape has a reader of its own.
//
// What it accepts: exactly what decodeViewReflect accepts, with the same
// result, except for the shapes listed at errViewShape, which crdt never
// writes and which it refuses where the library tolerated them. Like the
// library with the options of stDec, it refuses indefinite lengths, tags,
// reserved additional information, a two-byte simple value below 32, a
// break code outside an indefinite item and nesting past stateNesting
// anywhere in the input, including the fields it skips (Writers and Sets,
// which are checked for well-formedness only, as the library did), and
// bytes after the state. In what it decodes it refuses, as the library
// did, text that is not UTF-8, duplicate and non-text object keys, NaN and
// infinite numbers, byte strings, simple values and integers below -2^63
// as JSON values, and a state that is not an array of 9 fields; null (or
// undefined) in a typed field reads as its zero value, as there. Every
// declared length is checked against the bytes that remain before
// anything is allocated, so memory stays within a constant factor of the
// input (the largest: a one-byte null conflict takes a 72-byte Conflict),
// and recursion is bounded by stateNesting.

// errViewShape marks what this reader refuses although the library-based
// decoder accepted it; crdt never writes any of it, so a stored state that
// has it is damaged, and refusing it beats returning invented data:
//   - an id that is not a 32-byte byte string (the library zero-filled or
//     cut a byte string of another length and read an array of small
//     integers as the id's bytes),
//   - a count written as a CBOR simple value (the library read its number),
//   - null or undefined as an object key (the library read it as "").
var errViewShape = errors.New("shape crdt never writes")

// stateFields is the number of fields of an encoded State (toarray).
const stateFields = 9

// decodeView is DecodeView: see the comment at the top of this file.
func decodeView(data []byte) (*State, error) {
	r := viewReader{data: data}
	s, err := r.state()
	if err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	return s, nil
}

// viewReader reads one encoded state. off is the next byte to read.
type viewReader struct {
	data []byte
	off  int
}

// CBOR major types.
const (
	majorUint   = 0
	majorNegInt = 1
	majorBytes  = 2
	majorText   = 3
	majorArray  = 4
	majorMap    = 5
	majorTag    = 6
	majorSimple = 7
)

// Additional information of major type 7 that this reader tells apart.
const (
	aiFalse     = 20
	aiTrue      = 21
	aiNull      = 22
	aiUndefined = 23
	aiSimple8   = 24 // a simple value in the next byte
	aiFloat16   = 25
	aiFloat32   = 26
	aiFloat64   = 27
)

var errTruncated = errors.New("unexpected end of data")

// state reads State's fields by position, in their declared order (State
// is encoded toarray): a field added to State must be added here too, or
// every view is refused (TestDecodeViewMatchesReflect fails at once).
func (r *viewReader) state() (*State, error) {
	major, _, n, err := r.head()
	if err != nil {
		return nil, err
	}
	if major != majorArray {
		return nil, fmt.Errorf("major type %d, want an array", major)
	}
	if n != stateFields {
		return nil, fmt.Errorf("%d fields, want %d", n, stateFields)
	}
	const depth = 1 // inside the state's array
	s := &State{}
	if s.Heads, err = r.ids(depth); err != nil {
		return nil, fmt.Errorf("heads: %w", err)
	}
	if s.Last, err = r.id(); err != nil {
		return nil, fmt.Errorf("last: %w", err)
	}
	if s.Count, err = r.count(); err != nil {
		return nil, fmt.Errorf("count: %w", err)
	}
	if s.Deleted, err = r.boolean(); err != nil {
		return nil, fmt.Errorf("deleted: %w", err)
	}
	if s.DeletedBy, err = r.id(); err != nil {
		return nil, fmt.Errorf("deleted by: %w", err)
	}
	if s.Body, err = r.body(depth); err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	// Writers and Sets: the merge bookkeeping a reader never needs.
	for _, field := range []string{"writers", "sets"} {
		if err := r.skip(depth); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
	}
	if s.Conflicts, err = r.conflicts(depth); err != nil {
		return nil, fmt.Errorf("conflicts: %w", err)
	}
	if r.off != len(r.data) {
		return nil, fmt.Errorf("%d bytes of trailing data", len(r.data)-r.off)
	}
	return s, nil
}

// head reads the initial byte of an item and its argument: a length, an
// integer's magnitude, a float's bits or a simple value. It refuses what
// the library refuses wherever it appears: a tag, an indefinite length
// (or a stray break code), reserved additional information, a truncated
// argument and a two-byte simple value below 32.
func (r *viewReader) head() (major, ai byte, arg uint64, err error) {
	if r.off >= len(r.data) {
		return 0, 0, 0, errTruncated
	}
	b := r.data[r.off]
	r.off++
	major, ai = b>>5, b&0x1f
	if major == majorTag {
		return 0, 0, 0, errors.New("CBOR tags are not allowed")
	}
	if ai < 24 {
		return major, ai, uint64(ai), nil
	}
	var size int
	switch ai {
	case 24:
		size = 1
	case 25:
		size = 2
	case 26:
		size = 4
	case 27:
		size = 8
	case 31:
		return 0, 0, 0, errors.New("indefinite length or break code")
	default:
		return 0, 0, 0, fmt.Errorf("reserved additional information %d", ai)
	}
	if len(r.data)-r.off < size {
		return 0, 0, 0, errTruncated
	}
	p := r.data[r.off:]
	switch size {
	case 1:
		arg = uint64(p[0])
	case 2:
		arg = uint64(binary.BigEndian.Uint16(p))
	case 4:
		arg = uint64(binary.BigEndian.Uint32(p))
	default:
		arg = binary.BigEndian.Uint64(p)
	}
	r.off += size
	if major == majorSimple && ai == aiSimple8 && arg < 32 {
		return 0, 0, 0, fmt.Errorf("invalid simple value %d", arg)
	}
	return major, ai, arg, nil
}

// take returns the next n bytes (a string's content). The slice aliases
// the input: callers copy what they keep.
func (r *viewReader) take(n uint64) ([]byte, error) {
	if n > uint64(len(r.data)-r.off) {
		return nil, errTruncated
	}
	b := r.data[r.off : r.off+int(n)]
	r.off += int(n)
	return b, nil
}

// items checks that n items (pairs when per is 2) can fit in the bytes
// that remain, each taking at least one byte, so that a declared count
// never allocates past the input's size.
func (r *viewReader) items(n uint64, per int) (int, error) {
	if n > uint64((len(r.data)-r.off)/per) {
		return 0, errTruncated
	}
	return int(n), nil
}

// nest is the nesting check of the library's MaxNestedLevels: a container
// opened inside depth containers is at depth+1.
func nest(depth int) (int, error) {
	if depth+1 > stateNesting {
		return 0, fmt.Errorf("nesting exceeds %d", stateNesting)
	}
	return depth + 1, nil
}

// isNull reports whether a head is null or undefined, which the library
// decodes into any typed field as its zero value.
func isNull(major, ai byte) bool {
	return major == majorSimple && (ai == aiNull || ai == aiUndefined)
}

// skip passes over one item, checking it as the library's well-formedness
// check does (and no more: neither UTF-8 nor float values, which it
// accepted there too).
func (r *viewReader) skip(depth int) error {
	major, _, arg, err := r.head()
	if err != nil {
		return err
	}
	switch major {
	case majorBytes, majorText:
		_, err = r.take(arg)
		return err
	case majorArray, majorMap:
		per := 1
		if major == majorMap {
			per = 2
		}
		n, err := r.items(arg, per)
		if err != nil {
			return err
		}
		if depth, err = nest(depth); err != nil {
			return err
		}
		for range n * per {
			if err := r.skip(depth); err != nil {
				return err
			}
		}
	}
	return nil
}

// id reads a change id: a 32-byte byte string, or null for the zero id.
func (r *viewReader) id() (ID, error) {
	var id ID
	major, ai, arg, err := r.head()
	switch {
	case err != nil:
		return id, err
	case isNull(major, ai):
		return id, nil
	case major == majorBytes && arg == uint64(len(id)):
		b, err := r.take(arg)
		copy(id[:], b)
		return id, err
	case major == majorBytes || major == majorArray:
		return id, fmt.Errorf("%w: an id of major type %d and length %d", errViewShape, major, arg)
	}
	return id, fmt.Errorf("major type %d for an id", major)
}

// ids reads the heads: an array of ids, or null for none.
func (r *viewReader) ids(depth int) ([]ID, error) {
	major, ai, arg, err := r.head()
	if err != nil {
		return nil, err
	}
	if isNull(major, ai) {
		return nil, nil
	}
	if major != majorArray {
		return nil, fmt.Errorf("major type %d for ids", major)
	}
	n, err := r.items(arg, 1)
	if err != nil {
		return nil, err
	}
	if _, err := nest(depth); err != nil {
		return nil, err
	}
	out := make([]ID, n)
	for i := range out {
		if out[i], err = r.id(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// count reads an unsigned integer, or null for 0.
func (r *viewReader) count() (uint64, error) {
	major, ai, arg, err := r.head()
	switch {
	case err != nil:
		return 0, err
	case major == majorUint:
		return arg, nil
	case isNull(major, ai):
		return 0, nil
	case major == majorSimple && (ai < aiFalse || ai == aiSimple8):
		return 0, fmt.Errorf("%w: simple value %d as a count", errViewShape, arg)
	}
	return 0, fmt.Errorf("major type %d (%d) for a count", major, ai)
}

// boolean reads true or false, or null for false.
func (r *viewReader) boolean() (bool, error) {
	major, ai, _, err := r.head()
	switch {
	case err != nil:
		return false, err
	case major == majorSimple && ai == aiTrue:
		return true, nil
	case major == majorSimple && ai == aiFalse, isNull(major, ai):
		return false, nil
	}
	return false, fmt.Errorf("major type %d (%d) for a bool", major, ai)
}

// text reads a UTF-8 text string (a copy). Tried: one string of the whole
// input, every text a substring of it (21 allocations instead of 39 for a
// 200-byte document, about 15% faster); rejected, since any string of a
// view would then keep the whole state alive, Writers and Sets included.
func (r *viewReader) text(arg uint64) (string, error) {
	b, err := r.take(arg)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", errors.New("invalid UTF-8 text")
	}
	return string(b), nil
}

// body reads the document's body: an object, or null for an empty one.
func (r *viewReader) body(depth int) (map[string]any, error) {
	major, ai, arg, err := r.head()
	if err != nil {
		return nil, err
	}
	if isNull(major, ai) {
		return map[string]any{}, nil
	}
	if major != majorMap {
		return nil, fmt.Errorf("major type %d for the body", major)
	}
	return r.object(arg, depth)
}

// value reads a JSON value into its normalized form (see Normalize): the
// integers CBOR can hold in int64 as int64, others as float64, floats of
// any width through normFloat, so an integral float is an int64.
func (r *viewReader) value(depth int) (any, error) {
	major, ai, arg, err := r.head()
	if err != nil {
		return nil, err
	}
	switch major {
	case majorUint:
		if arg > math.MaxInt64 {
			return normFloat(float64(arg))
		}
		return int64(arg), nil
	case majorNegInt:
		if arg > math.MaxInt64 {
			return nil, fmt.Errorf("%w: integer below -2^63", ErrInvalidValue)
		}
		return -1 - int64(arg), nil
	case majorText:
		return r.text(arg)
	case majorArray:
		n, err := r.items(arg, 1)
		if err != nil {
			return nil, err
		}
		if depth, err = nest(depth); err != nil {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = r.value(depth); err != nil {
				return nil, err
			}
		}
		return out, nil
	case majorMap:
		return r.object(arg, depth)
	case majorSimple:
		switch ai {
		case aiFalse:
			return false, nil
		case aiTrue:
			return true, nil
		case aiNull, aiUndefined:
			return nil, nil
		case aiFloat16:
			return normFloat(float16(uint16(arg)))
		case aiFloat32:
			return normFloat(float64(math.Float32frombits(uint32(arg))))
		case aiFloat64:
			return normFloat(math.Float64frombits(arg))
		}
	}
	return nil, fmt.Errorf("%w: CBOR major type %d (%d) is not a JSON value", ErrInvalidValue, major, ai)
}

// object reads the pairs of a map whose head declared n: text keys, each
// once, to normalized values.
func (r *viewReader) object(arg uint64, depth int) (map[string]any, error) {
	n, err := r.items(arg, 2)
	if err != nil {
		return nil, err
	}
	if depth, err = nest(depth); err != nil {
		return nil, err
	}
	out := make(map[string]any, n)
	for range n {
		major, ai, arg, err := r.head()
		if err != nil {
			return nil, err
		}
		if major != majorText {
			if isNull(major, ai) {
				return nil, fmt.Errorf("%w: null object key", errViewShape)
			}
			return nil, fmt.Errorf("%w: object key of major type %d", ErrInvalidValue, major)
		}
		k, err := r.text(arg)
		if err != nil {
			return nil, err
		}
		v, err := r.value(depth)
		if err != nil {
			return nil, err
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%w: duplicate object key %q", ErrInvalidValue, k)
		}
		out[k] = v
	}
	return out, nil
}

// conflicts reads the conflicts: an array of 4-field arrays (null: none).
func (r *viewReader) conflicts(depth int) ([]Conflict, error) {
	major, ai, arg, err := r.head()
	if err != nil {
		return nil, err
	}
	if isNull(major, ai) {
		return nil, nil
	}
	if major != majorArray {
		return nil, fmt.Errorf("major type %d for conflicts", major)
	}
	n, err := r.items(arg, 1)
	if err != nil {
		return nil, err
	}
	if depth, err = nest(depth); err != nil {
		return nil, err
	}
	out := make([]Conflict, n)
	for i := range out {
		if err := r.conflict(&out[i], depth); err != nil {
			return nil, fmt.Errorf("conflict %d: %w", i, err)
		}
	}
	return out, nil
}

// conflict reads one Conflict (toarray: path, value, deleted, rev), or null
// for the zero Conflict.
func (r *viewReader) conflict(c *Conflict, depth int) error {
	major, ai, arg, err := r.head()
	if err != nil {
		return err
	}
	if isNull(major, ai) {
		return nil
	}
	if major != majorArray || arg != 4 {
		return fmt.Errorf("major type %d of length %d, want an array of 4", major, arg)
	}
	if depth, err = nest(depth); err != nil {
		return err
	}
	if major, ai, arg, err = r.head(); err != nil {
		return err
	}
	switch {
	case major == majorText:
		if c.Path, err = r.text(arg); err != nil {
			return err
		}
	case !isNull(major, ai):
		return fmt.Errorf("major type %d for a path", major)
	}
	if c.Value, err = r.value(depth); err != nil {
		return err
	}
	if c.Deleted, err = r.boolean(); err != nil {
		return err
	}
	c.Rev, err = r.id()
	return err
}

// float16 converts IEEE 754 half-precision bits to a float64 (exactly, as
// the library's float16 to float32 to float64 does).
func float16(h uint16) float64 {
	exp, frac := int(h>>10&0x1f), float64(h&0x3ff)
	var f float64
	switch exp {
	case 0: // zero and subnormals: frac × 2^-24
		f = math.Ldexp(frac, -24)
	case 0x1f:
		if frac == 0 {
			f = math.Inf(1)
		} else {
			f = math.NaN()
		}
	default: // (1024 + frac) × 2^(exp-25)
		f = math.Ldexp(1024+frac, exp-25)
	}
	if h&0x8000 != 0 {
		f = -f
	}
	return f
}
