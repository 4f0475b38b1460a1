package tuple

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Type tags of AppendValue. Their order is the order of JSON scalar types:
// null < false < true < numbers < strings. Gaps leave room for new types.
const (
	TagNull   byte = 0x10 // TagNull encodes JSON null.
	TagFalse  byte = 0x20 // TagFalse encodes false.
	TagTrue   byte = 0x21 // TagTrue encodes true.
	TagNumber byte = 0x30 // TagNumber is followed by 8 order-preserving float64 bytes.
	TagString byte = 0x40 // TagString is followed by an AppendString encoding.
)

// maxExactInt is 2^53: integers with a larger magnitude are not exact in
// float64, so numbers decode to int64 only within ±maxExactInt.
const maxExactInt = 1 << 53

// AppendString appends an order-preserving, self-delimiting encoding of s:
// each 0x00 byte becomes 0x00 0xFF and the string ends with 0x00 0x01.
// Encodings compare like the raw strings, and no encoding is a prefix of
// another's, so a tuple of encoded elements compares element by element.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			b = append(b, 0x00, 0xFF)
		} else {
			b = append(b, s[i])
		}
	}
	return append(b, 0x00, 0x01)
}

// AppendStringPrefix appends the encoding of s without its terminator: every
// string with prefix s encodes to bytes starting with the result, which makes
// it the start of a prefix scan.
func AppendStringPrefix(b []byte, s string) []byte {
	b = AppendString(b, s)
	return b[:len(b)-2]
}

// ReadString decodes a string written by AppendString from the front of b
// and returns the rest of b. Malformed input gives an error wrapping
// ErrCorrupt.
func ReadString(b []byte) (s string, rest []byte, err error) {
	// Fast path: no escaped zero bytes.
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			continue
		}
		if i+1 >= len(b) {
			return "", nil, fmt.Errorf("read string: truncated escape: %w", ErrCorrupt)
		}
		switch b[i+1] {
		case 0x01:
			return string(b[:i]), b[i+2:], nil
		case 0xFF:
			return readEscapedString(b)
		default:
			return "", nil, fmt.Errorf("read string: bad escape 0x00 0x%02x: %w", b[i+1], ErrCorrupt)
		}
	}
	return "", nil, fmt.Errorf("read string: no terminator: %w", ErrCorrupt)
}

func readEscapedString(b []byte) (string, []byte, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			out = append(out, b[i])
			continue
		}
		if i+1 >= len(b) {
			return "", nil, fmt.Errorf("read string: truncated escape: %w", ErrCorrupt)
		}
		switch b[i+1] {
		case 0x01:
			return string(out), b[i+2:], nil
		case 0xFF:
			out = append(out, 0)
			i++
		default:
			return "", nil, fmt.Errorf("read string: bad escape 0x00 0x%02x: %w", b[i+1], ErrCorrupt)
		}
	}
	return "", nil, fmt.Errorf("read string: no terminator: %w", ErrCorrupt)
}

// AppendUint64 appends v as 8 big-endian bytes, which order like the numbers.
func AppendUint64(b []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(b, v)
}

// ReadUint64 decodes 8 big-endian bytes from the front of b and returns the
// rest. Fewer than 8 bytes give an error wrapping ErrCorrupt.
func ReadUint64(b []byte) (v uint64, rest []byte, err error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("read uint64: %d bytes: %w", len(b), ErrCorrupt)
	}
	return binary.BigEndian.Uint64(b), b[8:], nil
}

// AppendValue appends an order-preserving encoding of a JSON scalar: a type
// tag (see TagNull and the others), then for numbers 8 bytes, for strings the
// AppendString encoding. Accepted types: nil, bool, int, int64, float64 and
// string. Encodings order as null < false < true < numbers < strings, numbers
// numerically (int64 and float64 alike, -0 equal to 0) and strings bytewise.
//
// Numbers are encoded as float64: integers beyond ±2^53 round to the nearest
// float64, so two distinct large integers may encode equal, and ordering
// among them is only as exact as float64. NaN and non-scalars return an
// error wrapping ErrBadValue.
func AppendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, TagNull), nil
	case bool:
		if x {
			return append(b, TagTrue), nil
		}
		return append(b, TagFalse), nil
	case int:
		return appendFloat(b, float64(x)), nil
	case int64:
		return appendFloat(b, float64(x)), nil
	case float64:
		if math.IsNaN(x) {
			return b, fmt.Errorf("encode value: NaN: %w", ErrBadValue)
		}
		return appendFloat(b, x), nil
	case string:
		return AppendString(append(b, TagString), x), nil
	default:
		return b, fmt.Errorf("encode value of type %T: %w", v, ErrBadValue)
	}
}

func appendFloat(b []byte, f float64) []byte {
	if f == 0 {
		f = 0 // Normalize -0.
	}
	u := math.Float64bits(f)
	if u&(1<<63) != 0 {
		u = ^u // Negative: flip all bits so larger magnitudes sort first.
	} else {
		u |= 1 << 63 // Positive: flip the sign bit so they sort after negatives.
	}
	return binary.BigEndian.AppendUint64(append(b, TagNumber), u)
}

// ReadValue decodes a value written by AppendValue from the front of b and
// returns the rest. Numbers decode to int64 when integral and within ±2^53,
// else to float64. Malformed input gives an error wrapping ErrCorrupt.
func ReadValue(b []byte) (v any, rest []byte, err error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("read value: empty: %w", ErrCorrupt)
	}
	switch b[0] {
	case TagNull:
		return nil, b[1:], nil
	case TagFalse:
		return false, b[1:], nil
	case TagTrue:
		return true, b[1:], nil
	case TagNumber:
		u, rest, err := ReadUint64(b[1:])
		if err != nil {
			return nil, nil, fmt.Errorf("read number: %w", err)
		}
		if u&(1<<63) != 0 {
			u &^= 1 << 63
		} else {
			u = ^u
		}
		f := math.Float64frombits(u)
		if math.IsNaN(f) {
			return nil, nil, fmt.Errorf("read number: NaN: %w", ErrCorrupt)
		}
		if f == math.Trunc(f) && math.Abs(f) <= maxExactInt {
			return int64(f), rest, nil
		}
		return f, rest, nil
	case TagString:
		s, rest, err := ReadString(b[1:])
		if err != nil {
			return nil, nil, err
		}
		return s, rest, nil
	default:
		return nil, nil, fmt.Errorf("read value: unknown tag 0x%02x: %w", b[0], ErrCorrupt)
	}
}

// PrefixEnd returns the smallest key greater than every key that starts
// with prefix, or nil (no upper bound) when there is none (prefix empty or
// all 0xFF). It is the exclusive upper bound of a prefix scan. prefix is not
// modified.
func PrefixEnd(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xFF {
			end := make([]byte, i+1)
			copy(end, prefix)
			end[i]++
			return end
		}
	}
	return nil
}
