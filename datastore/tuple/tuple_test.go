package tuple

import (
	"bytes"
	"cmp"
	"errors"
	"math"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// genScalar draws JSON scalars, biased towards collisions and edge cases.
func genScalar() *rapid.Generator[any] {
	return rapid.OneOf(
		rapid.Just[any](nil),
		rapid.Map(rapid.Bool(), func(b bool) any { return b }),
		rapid.Map(rapid.Int64Range(-5, 5), func(i int64) any { return i }),
		rapid.Map(rapid.Int64(), func(i int64) any { return i }),
		rapid.Map(rapid.Float64(), func(f float64) any { return f }),
		rapid.Map(rapid.SampledFrom([]float64{0, math.Copysign(0, -1), 1.5, -1.5, 2, -2, math.Inf(1), math.Inf(-1), 1e300, -1e-300}), func(f float64) any { return f }),
		rapid.Map(genString(), func(s string) any { return s }),
	).Filter(func(v any) bool {
		f, ok := v.(float64)
		return !ok || !math.IsNaN(f)
	})
}

func genString() *rapid.Generator[string] {
	return rapid.OneOf(
		rapid.String(),
		rapid.StringOfN(rapid.SampledFrom([]rune{0, 1, 'a', 0xFF}), 0, 4, -1),
	)
}

// classOf and compareScalars define the value order AppendValue must keep.
func classOf(v any) int {
	switch v.(type) {
	case nil:
		return 0
	case bool:
		return 1
	case int64, float64:
		return 2
	default:
		return 3
	}
}

func toFloat(v any) float64 {
	if i, ok := v.(int64); ok {
		return float64(i)
	}
	return v.(float64)
}

func compareScalars(a, b any) int {
	if c := cmp.Compare(classOf(a), classOf(b)); c != 0 {
		return c
	}
	switch x := a.(type) {
	case nil:
		return 0
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		default:
			return 1
		}
	case string:
		return strings.Compare(x, b.(string))
	default:
		return cmp.Compare(toFloat(a), toFloat(b))
	}
}

func sign(c int) int { return cmp.Compare(c, 0) }

func TestAppendValueOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := genScalar().Draw(t, "a")
		b := genScalar().Draw(t, "b")
		ea, err := AppendValue(nil, a)
		if err != nil {
			t.Fatalf("encode %v: %v", a, err)
		}
		eb, err := AppendValue(nil, b)
		if err != nil {
			t.Fatalf("encode %v: %v", b, err)
		}
		if got, want := sign(bytes.Compare(ea, eb)), sign(compareScalars(a, b)); got != want {
			t.Fatalf("compare(%#v, %#v): got %d, want %d (encodings %x %x)", a, b, got, want, ea, eb)
		}
		// Tuples: a following element never changes the order of unequal values.
		sa := rapid.String().Draw(t, "sa")
		sb := rapid.String().Draw(t, "sb")
		ta := AppendString(append([]byte(nil), ea...), sa)
		tb := AppendString(append([]byte(nil), eb...), sb)
		want := sign(compareScalars(a, b))
		if want == 0 {
			want = sign(strings.Compare(sa, sb))
		}
		if got := sign(bytes.Compare(ta, tb)); got != want {
			t.Fatalf("tuple compare (%#v,%q) (%#v,%q): got %d, want %d", a, sa, b, sb, got, want)
		}
	})
}

func TestAppendValueRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := genScalar().Draw(t, "v")
		tail := rapid.SliceOf(rapid.Byte()).Draw(t, "tail")
		enc, err := AppendValue(nil, v)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		got, rest, err := ReadValue(append(enc, tail...))
		if err != nil {
			t.Fatalf("decode %x: %v", enc, err)
		}
		if !bytes.Equal(rest, tail) {
			t.Fatalf("rest: got %x, want %x", rest, tail)
		}
		if compareScalars(got, v) != 0 {
			t.Fatalf("round trip: got %#v, want %#v", got, v)
		}
		if f, ok := got.(float64); ok && f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
			t.Fatalf("integral %v within 2^53 decoded as float64", f)
		}
	})
}

func TestStringEncoding(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := genString().Draw(t, "a")
		b := genString().Draw(t, "b")
		ea, eb := AppendString(nil, a), AppendString(nil, b)
		if got, want := sign(bytes.Compare(ea, eb)), sign(strings.Compare(a, b)); got != want {
			t.Fatalf("compare(%q, %q): got %d, want %d", a, b, got, want)
		}
		if a != b && (bytes.HasPrefix(ea, eb) || bytes.HasPrefix(eb, ea)) {
			t.Fatalf("encoding of %q and %q: one is a prefix of the other", a, b)
		}
		s, rest, err := ReadString(append(ea, eb...))
		if err != nil || s != a {
			t.Fatalf("read: got %q, %v; want %q", s, err, a)
		}
		if s2, rest2, err := ReadString(rest); err != nil || s2 != b || len(rest2) != 0 {
			t.Fatalf("read second: got %q, %x, %v; want %q", s2, rest2, err, b)
		}
		if strings.HasPrefix(a, b) != bytes.HasPrefix(ea, AppendStringPrefix(nil, b)) {
			t.Fatalf("prefix %q of %q: string and encoding disagree", b, a)
		}
	})
}

func TestUint64(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := rapid.Uint64().Draw(t, "a")
		b := rapid.Uint64().Draw(t, "b")
		ea, eb := AppendUint64(nil, a), AppendUint64(nil, b)
		if got, want := sign(bytes.Compare(ea, eb)), cmp.Compare(a, b); got != want {
			t.Fatalf("compare(%d, %d): got %d, want %d", a, b, got, want)
		}
		if got, rest, err := ReadUint64(ea); err != nil || got != a || len(rest) != 0 {
			t.Fatalf("read: got %d %x %v, want %d", got, rest, err, a)
		}
	})
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		read func([]byte) error
		in   []byte
	}{
		{"string empty", readStr, nil},
		{"string no terminator", readStr, []byte("abc")},
		{"string truncated escape", readStr, []byte("abc\x00")},
		{"string bad escape", readStr, []byte("abc\x00\x02")},
		{"escaped string no terminator", readStr, []byte("a\x00\xffb")},
		{"uint64 short", readU64, []byte{1, 2, 3}},
		{"value empty", readVal, nil},
		{"value unknown tag", readVal, []byte{0x99}},
		{"value short number", readVal, []byte{TagNumber, 1, 2}},
		{"value NaN", readVal, AppendUint64([]byte{TagNumber}, math.Float64bits(math.NaN())|1<<63)},
		{"value bad string", readVal, []byte{TagString, 'a'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.read(tt.in); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
}

func readStr(b []byte) error { _, _, err := ReadString(b); return err }
func readU64(b []byte) error { _, _, err := ReadUint64(b); return err }
func readVal(b []byte) error { _, _, err := ReadValue(b); return err }

func TestAppendValueErrors(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"NaN", math.NaN()},
		{"object", map[string]any{}},
		{"array", []any{1}},
		{"uint", uint(3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := AppendValue(nil, tt.v); !errors.Is(err, ErrBadValue) {
				t.Fatalf("got %v, want ErrBadValue", err)
			}
		})
	}
}

// FuzzReadValue checks that the decoders never panic on arbitrary bytes and
// that whatever decodes re-encodes to the bytes it consumed.
func FuzzReadValue(f *testing.F) {
	for _, v := range []any{nil, true, false, int64(-3), 2.5, "a\x00b", ""} {
		enc, _ := AppendValue(nil, v)
		f.Add(enc)
	}
	f.Add([]byte{TagString, 0, 0xFF, 0})
	f.Add([]byte{TagNumber, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = ReadString(b)
		_, _, _ = ReadUint64(b)
		v, rest, err := ReadValue(b)
		if err != nil {
			return
		}
		enc, err := AppendValue(nil, v)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", v, err)
		}
		consumed := b[:len(b)-len(rest)]
		if v2, _, err := ReadValue(enc); err != nil || compareScalars(v, v2) != 0 {
			t.Fatalf("re-decode %x: got %#v %v, want %#v (consumed %x)", enc, v2, err, v, consumed)
		}
	})
}
