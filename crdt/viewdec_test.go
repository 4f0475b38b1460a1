package crdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// genValue draws a normalized JSON value nested at most depth levels: the
// integers and floats that take every CBOR width (small, 1-8 byte
// integers, negative ones, integers past 2^53, floats exact in float16,
// float32 or only float64), strings with multi-byte UTF-8, and containers.
func genValue(t *rapid.T, depth int) any {
	kinds := 6
	if depth > 0 {
		kinds = 8
	}
	switch rapid.IntRange(0, kinds-1).Draw(t, "kind") {
	case 0:
		return nil
	case 1:
		return rapid.Bool().Draw(t, "bool")
	case 2:
		return rapid.SampledFrom([]int64{0, 1, 23, 24, 255, 256, 65535, 65536, 1 << 32, -1, -24, -25, -256, -257,
			math.MaxInt64, math.MinInt64, 1<<53 + 1, -(1<<53 + 1)}).Draw(t, "int")
	case 3:
		v, _ := normFloat(rapid.SampledFrom([]float64{0.5, -1.5, 65504.5, 1e-7, 3.4e38, 1.0 / 3, 1e300, -2.5e-310,
			math.SmallestNonzeroFloat64, 1 << 60, 0.1}).Draw(t, "float"))
		return v
	case 4:
		return rapid.Float64().Draw(t, "anyfloat")
	case 5:
		return rapid.SampledFrom([]string{"", "x", "France", "Ünïcødé", "日本語", "emoji 🎉", "a/b~c",
			"twenty-four bytes long!!", "a string that is well past twenty-three bytes"}).Draw(t, "string")
	case 6:
		out := make([]any, rapid.IntRange(0, 4).Draw(t, "len"))
		for i := range out {
			out[i] = genValue(t, depth-1)
		}
		return out
	default:
		out := map[string]any{}
		for range rapid.IntRange(0, 4).Draw(t, "keys") {
			out[rapid.SampledFrom([]string{"", "k", "name", "ключ", "z"}).Draw(t, "key")] = genValue(t, depth-1)
		}
		return out
	}
}

// genViewOp is genOp with random values for sets, so that bodies and
// conflicts hold every kind of value.
func genViewOp(t *rapid.T) Op {
	op := genOp(t)
	if op.Kind == OpSet && rapid.Bool().Draw(t, "random value") {
		v, err := Normalize(genValue(t, 3))
		if err != nil {
			t.Fatalf("normalize: %v", err)
		}
		op.Value = v
	}
	return op
}

// assertSameView checks that both decoders read data the same way.
func assertSameView(t interface{ Fatalf(string, ...any) }, data []byte) {
	want, err := decodeViewReflect(data)
	if err != nil {
		t.Fatalf("reference decoder: %v", err)
	}
	got, err := decodeView(data)
	if err != nil {
		t.Fatalf("decodeView: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeView differs from the reference:\ngot  %#v\nwant %#v", got, want)
	}
}

// TestDecodeViewMatchesReflect: on states built through real changes
// (random documents, concurrent edits that conflict, deletes, sets and
// increments on 2-3 replicas), the hand-written reader returns exactly
// what the library-based decoder does, types and nil-ness included.
func TestDecodeViewMatchesReflect(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		reps := []*replica{newReplica(0), newReplica(1)}
		if rapid.Bool().Draw(t, "three") {
			reps = append(reps, newReplica(2))
		}
		var all []*Change
		for range rapid.IntRange(1, 25).Draw(t, "steps") {
			r := reps[rapid.IntRange(0, len(reps)-1).Draw(t, "who")]
			if len(all) > 0 && rapid.IntRange(0, 2).Draw(t, "deliver") == 0 {
				r.receive(t, all[rapid.IntRange(0, len(all)-1).Draw(t, "which")])
			} else {
				ops := []Op{genViewOp(t)}
				if ops[0].Kind != OpDeleteDoc && rapid.Bool().Draw(t, "more") {
					if op := genViewOp(t); op.Kind != OpDeleteDoc {
						ops = append(ops, op)
					}
				}
				all = append(all, r.write(t, int64(rapid.IntRange(0, 100).Draw(t, "wall")), nil, ops))
			}
			assertSameView(t, r.encoded(t))
		}
		heal(t, reps, all)
		assertSameView(t, reps[0].encoded(t))
	})
}

// TestDecodeViewRefuses: what both decoders refuse, and the shapes only
// the hand-written one refuses (errViewShape). Each case is a state whose
// fields are given as raw CBOR, the rest as an empty document's.
func TestDecodeViewRefuses(t *testing.T) {
	id := append([]byte{0x58, 0x20}, make([]byte, 32)...)
	fields := func(body, conflicts []byte) []byte {
		out := []byte{0x89, 0x80}        // 9 fields; heads []
		out = append(out, id...)         // last
		out = append(out, 0x01, 0xf4)    // count 1, not deleted
		out = append(out, id...)         // deleted by
		out = append(out, body...)       // body
		out = append(out, 0xa0, 0xa0)    // writers, sets
		return append(out, conflicts...) // conflicts
	}
	body := func(b ...byte) []byte { return fields(b, []byte{0xf6}) }
	ok := body(0xa1, 0x61, 'a', 0x01)
	deep := func(levels int) []byte { // {"a": [[...[1]...]]}
		return append(append([]byte{0xa1, 0x61, 'a'}, bytes.Repeat([]byte{0x81}, levels)...), 0x01)
	}
	withWriters := func(w ...byte) []byte {
		out := append([]byte{}, ok...)
		return slices.Concat(out[:len(out)-3], w, []byte{0xa0, 0xf6})
	}
	// Accepted by both: the skipped fields are checked for well-formedness
	// only, as the library did.
	for _, data := range [][]byte{ok, body(deep(stateNesting - 2)...),
		withWriters(0xa1, 0x61, 0xff, 0xf9, 0x7e, 0x00), // invalid UTF-8 and NaN in Writers
		withWriters(0xa1, 0x01, 0xe0),                   // an integer key and a simple value
	} {
		assertSameView(t, data)
	}

	both := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated", ok[:len(ok)-1]},
		{"trailing byte", append(append([]byte{}, ok...), 0x00)},
		{"8 fields", append([]byte{0x88}, ok[1:len(ok)-1]...)},
		{"10 fields", append(append([]byte{0x8a}, ok[1:]...), 0xf6)},
		{"not an array", []byte{0xa0}},
		{"invalid UTF-8 value", body(0xa1, 0x61, 'a', 0x61, 0xff)},
		{"invalid UTF-8 key", body(0xa1, 0x62, 0xc3, 0x28, 0x01)},
		{"duplicate key", body(0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02)},
		{"integer key", body(0xa1, 0x01, 0x01)},
		{"byte string key", body(0xa1, 0x41, 'a', 0x01)},
		{"indefinite map", body(0xbf, 0x61, 'a', 0x01, 0xff)},
		{"indefinite text", body(0xa1, 0x61, 'a', 0x7f, 0x61, 'x', 0xff)},
		{"tag", body(0xa1, 0x61, 'a', 0xc1, 0x01)},
		{"NaN", body(0xa1, 0x61, 'a', 0xf9, 0x7e, 0x00)},
		{"infinity", body(0xa1, 0x61, 'a', 0xfa, 0x7f, 0x80, 0x00, 0x00)},
		{"byte string value", body(0xa1, 0x61, 'a', 0x41, 0x00)},
		{"simple value", body(0xa1, 0x61, 'a', 0xe0)},
		{"integer below -2^63", body(0xa1, 0x61, 'a', 0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0)},
		{"body not a map", body(0x80)},
		{"length past the input", body(0xa1, 0x61, 'a', 0x7a, 0xff, 0xff, 0xff, 0xff)},
		{"count past the input", body(0xa1, 0x61, 'a', 0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
		{"reserved additional information", body(0xa1, 0x61, 'a', 0x1c)},
		{"short simple value", body(0xa1, 0x61, 'a', 0xf8, 0x10)},
		{"break code", body(0xa1, 0x61, 'a', 0xff)},
		{"conflict of 3 fields", fields([]byte{0xa0}, []byte{0x81, 0x83, 0x60, 0xf6, 0xf4})},
		{"conflict as a map", fields([]byte{0xa0}, []byte{0x81, 0xa0})},
		{"nesting past stateNesting", body(deep(stateNesting - 1)...)},
		{"nesting past stateNesting in Writers", withWriters(append(bytes.Repeat([]byte{0x81}, stateNesting), 0x01)...)},
		{"tag in Writers", withWriters(0xc1, 0x01)},
		{"indefinite length in Sets", slices.Concat(ok[:len(ok)-2], []byte{0x9f, 0xff, 0xf6})},
	}
	for _, c := range both {
		t.Run(c.name, func(t *testing.T) {
			if _, err := decodeViewReflect(c.data); err == nil {
				t.Fatalf("reference decoder accepted %x", c.data)
			}
			if _, err := decodeView(c.data); err == nil {
				t.Fatalf("decodeView accepted %x", c.data)
			}
		})
	}

	withCount := func(count ...byte) []byte {
		out := append([]byte{}, ok...)
		i := bytes.Index(out, []byte{0x01, 0xf4})
		return append(append(out[:i:i], count...), out[i+1:]...)
	}
	withLast := func(last ...byte) []byte {
		return append(append([]byte{0x89, 0x80}, last...), ok[2+len(id):]...)
	}
	stricter := []struct {
		name string
		data []byte
	}{
		{"null key", body(0xa1, 0xf6, 0x01)},
		{"short id", withLast(0x41, 0x01)},
		{"id as an array", withLast(0x81, 0x01)},
		{"count as a simple value", withCount(0xe5)},
	}
	for _, c := range stricter {
		t.Run(c.name, func(t *testing.T) {
			if _, err := decodeViewReflect(c.data); err != nil {
				t.Fatalf("reference decoder refused %x: %v (the case no longer shows what it is for)", c.data, err)
			}
			if _, err := decodeView(c.data); !errors.Is(err, errViewShape) {
				t.Fatalf("decodeView: got %v, want errViewShape", err)
			}
		})
	}
}

// rare is true about once in 20 draws. (rapid favours the bounds of a
// range, so the test is on a value in its middle.)
func rare(t *rapid.T, label string) bool { return rapid.IntRange(0, 19).Draw(t, label) == 13 }

// genHead encodes a head with an argument of a random width that holds
// it (the shortest, as crdt writes, or a longer one, which both decoders
// accept).
func genHead(t *rapid.T, major byte, arg uint64) []byte {
	widths := []int{0, 1, 2, 4, 8}
	switch {
	case arg < 24:
	case arg < 1<<8:
		widths = widths[1:]
	case arg < 1<<16:
		widths = widths[2:]
	case arg < 1<<32:
		widths = widths[3:]
	default:
		widths = widths[4:]
	}
	switch w := rapid.SampledFrom(widths).Draw(t, "width"); w {
	case 0:
		return []byte{major<<5 | byte(arg)}
	case 1:
		return []byte{major<<5 | 24, byte(arg)}
	case 2:
		return binary.BigEndian.AppendUint16([]byte{major<<5 | 25}, uint16(arg))
	case 4:
		return binary.BigEndian.AppendUint32([]byte{major<<5 | 26}, uint32(arg))
	default:
		return binary.BigEndian.AppendUint64([]byte{major<<5 | 27}, arg)
	}
}

// genCBOR draws one well-formed CBOR item, mostly of the kinds a state
// holds, with the quirks the decoders must agree on: every integer width,
// floats of every width from random bits (NaN and infinities included),
// undefined and simple values, byte strings, invalid UTF-8, non-text and
// duplicate keys.
func genCBOR(t *rapid.T, depth int) []byte {
	// Weights keep most states acceptable to both decoders, so that their
	// values are compared and not only their refusals.
	kind := rapid.IntRange(0, 99).Draw(t, "cbor kind")
	if depth <= 0 && kind >= 73 {
		kind %= 73
	}
	switch {
	case kind < 15:
		return genHead(t, majorUint, rapid.Uint64().Draw(t, "uint"))
	case kind < 25:
		n := rapid.Uint64Range(0, math.MaxInt64).Draw(t, "negint")
		if rare(t, "below -2^63") {
			n = rapid.Uint64().Draw(t, "any negint")
		}
		return genHead(t, majorNegInt, n)
	case kind < 45:
		b := []byte(rapid.SampledFrom([]string{"", "a", "é", "ключ", "twenty-four bytes long!!", "日本", "b", "\xff", "a\xc3"}).Draw(t, "text"))
		return append(genHead(t, majorText, uint64(len(b))), b...)
	case kind < 48:
		n := rapid.SampledFrom([]int{0, 1, 31, 32, 33}).Draw(t, "bytes")
		return append(genHead(t, majorBytes, uint64(n)), make([]byte, n)...)
	case kind < 53:
		return binary.BigEndian.AppendUint16([]byte{0xf9}, rapid.Uint16().Draw(t, "f16"))
	case kind < 58:
		return binary.BigEndian.AppendUint32([]byte{0xfa}, rapid.Uint32().Draw(t, "f32"))
	case kind < 63:
		return binary.BigEndian.AppendUint64([]byte{0xfb}, rapid.Uint64().Draw(t, "f64"))
	case kind < 73:
		return rapid.SampledFrom([][]byte{{0xf4}, {0xf5}, {0xf6}, {0xf7}, {0xf4}, {0xf5}, {0xf6}, {0xf7},
			{0xe0}, {0xf3}, {0xf8, 0x20}, {0xf8, 0xff}}).Draw(t, "simple")
	case kind < 86:
		n := rapid.IntRange(0, 3).Draw(t, "items")
		out := genHead(t, majorArray, uint64(n))
		for range n {
			out = append(out, genCBOR(t, depth-1)...)
		}
		return out
	default:
		return genCBORMap(t, depth)
	}
}

func genCBORMap(t *rapid.T, depth int) []byte {
	n := rapid.IntRange(0, 3).Draw(t, "pairs")
	out := genHead(t, majorMap, uint64(n))
	for range n {
		if rare(t, "odd key") {
			out = append(out, genCBOR(t, 0)...)
		} else {
			k := rapid.SampledFrom([]string{"a", "b", "é", "c", "ключ", "d", "e", "f", "g", "h"}).Draw(t, "key")
			out = append(append(out, genHead(t, majorText, uint64(len(k)))...), k...)
		}
		out = append(out, genCBOR(t, depth-1)...)
	}
	return out
}

// genStateCBOR draws a state of 9 fields, each mostly of its own type
// (ids of 32 bytes, a count, an object body, conflicts of 4 fields) and
// sometimes any CBOR item.
func genStateCBOR(t *rapid.T) []byte {
	id := func() []byte {
		if rare(t, "odd id") {
			return genCBOR(t, 1)
		}
		return append([]byte{0x58, 0x20}, bytes.Repeat([]byte{rapid.Byte().Draw(t, "id")}, 32)...)
	}
	field := func(typed func() []byte) []byte {
		if rare(t, "odd field") {
			return genCBOR(t, 2)
		}
		return typed()
	}
	array := func(elem func() []byte) func() []byte {
		return func() []byte {
			n := rapid.IntRange(0, 3).Draw(t, "len")
			out := genHead(t, majorArray, uint64(n))
			for range n {
				out = append(out, elem()...)
			}
			return out
		}
	}
	out := []byte{0x89}
	out = append(out, field(array(id))...)
	out = append(out, field(id)...)
	out = append(out, field(func() []byte { return genHead(t, majorUint, rapid.Uint64().Draw(t, "count")) })...)
	out = append(out, field(func() []byte { return []byte{rapid.SampledFrom([]byte{0xf4, 0xf5}).Draw(t, "deleted")} })...)
	out = append(out, field(id)...)
	out = append(out, field(func() []byte { return genCBORMap(t, 3) })...)
	out = append(out, genCBOR(t, 2)...)
	out = append(out, genCBOR(t, 2)...)
	conflict := func() []byte {
		c := append(genHead(t, majorArray, 4), 0x62, '/', 'a')
		c = append(c, genCBOR(t, 2)...)
		c = append(c, rapid.SampledFrom([]byte{0xf4, 0xf5, 0xf6}).Draw(t, "conflict deleted"))
		return append(c, id()...)
	}
	return append(out, field(array(conflict))...)
}

// TestDecodeViewOnRandomCBOR: on random well-formed states that are not
// only what Encode writes (integers in longer forms, unsorted and
// duplicate keys, floats of every width, values of the wrong type), the
// two decoders accept and refuse the same inputs, but for errViewShape,
// and read the same values.
func TestDecodeViewOnRandomCBOR(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		compareViews(t, genStateCBOR(t))
	})
}

// viewSeeds are encodings of real states: conflicts, deletes, sets,
// counters, floats of every width, a deleted document.
func viewSeeds(tb testing.TB) [][]byte {
	a, b := newReplica(0), newReplica(1)
	base := a.write(tb, 1, nil, []Op{{Kind: OpSet, Path: "/f", Value: "base"}, {Kind: OpAdd, Path: "/s", Value: "x"},
		{Kind: OpSet, Path: "/n", Value: map[string]any{"i": int64(-300), "h": 0.5, "s": 1.0 / 3, "big": int64(1) << 60, "u": "Ünï"}},
		{Kind: OpSet, Path: "/l", Value: []any{nil, true, false, int64(24), []any{}, map[string]any{}}}})
	b.receive(tb, base)
	ca := a.write(tb, 10, nil, []Op{{Kind: OpSet, Path: "/f", Value: "a"}, {Kind: OpIncr, Path: "/c", Value: int64(2)}})
	b.write(tb, 20, nil, []Op{{Kind: OpSet, Path: "/f", Value: map[string]any{"x": 1.5}}, {Kind: OpAdd, Path: "/s", Value: int64(7)}})
	b.receive(tb, ca)
	seeds := [][]byte{a.encoded(tb), b.encoded(tb)}
	a.write(tb, 30, nil, []Op{{Kind: OpDeleteDoc}})
	b.write(tb, 31, nil, []Op{{Kind: OpSet, Path: "/g", Value: int64(1)}})
	b.receive(tb, a.known[a.state.Last])
	empty, _ := NewState().Encode()
	return append(seeds, a.encoded(tb), b.encoded(tb), empty)
}

// FuzzDecodeView: the hand-written reader against the library-based one.
// Whatever the reference accepts, decodeView accepts with an equal result,
// unless it refuses one of the shapes of errViewShape, which Encode never
// writes; whatever decodeView accepts, the reference accepts too. Each
// input is tried as a whole state, and also as the body and as a
// conflict's value of an otherwise valid state, so that mutations of a
// small value are compared inside a state both decoders can accept.
func FuzzDecodeView(f *testing.F) {
	for _, s := range viewSeeds(f) {
		f.Add(s)
		if st, err := DecodeState(s); err == nil {
			body, _ := Marshal(st.Body)
			f.Add(body)
		}
	}
	id := append([]byte{0x58, 0x20}, bytes.Repeat([]byte{7}, 32)...)
	head := append(append(append([]byte{0x89, 0x81}, id...), id...), 0x02, 0xf4, 0xf6) // heads, last, count, deleted, deleted by
	f.Fuzz(func(t *testing.T, data []byte) {
		compareViews(t, data)
		compareViews(t, slices.Concat(head, data, []byte{0xa0, 0xa0, 0xf6}))
		compareViews(t, slices.Concat(head, []byte{0xa0, 0xa0, 0xa0, 0x81, 0x84, 0x62, '/', 'a'}, data, []byte{0xf5}, id))
	})
}

// compareViews is FuzzDecodeView's check of one input.
func compareViews(t interface{ Fatalf(string, ...any) }, data []byte) {
	want, werr := decodeViewReflect(data)
	got, gerr := decodeView(data)
	switch {
	case werr != nil && gerr == nil:
		t.Fatalf("decodeView accepted what the reference refuses (%v):\n%x", werr, data)
	case werr == nil && gerr != nil:
		if !errors.Is(gerr, errViewShape) {
			t.Fatalf("decodeView refused what the reference accepts: %v\n%x", gerr, data)
		}
		if s, err := DecodeState(data); err == nil {
			if enc, err := s.Encode(); err == nil && bytes.Equal(enc, data) {
				t.Fatalf("decodeView refused a state as Encode writes it: %v\n%x", gerr, data)
			}
		}
	case werr == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("decodeView differs from the reference:\ngot  %#v\nwant %#v\n%x", got, want, data)
	}
}

// benchState is a ~200-byte document written one field per op, as a PUT
// of a new document is, encoded as the store keeps it.
func benchState(b *testing.B) []byte {
	r := newReplica(0)
	doc := map[string]any{
		"name": "Café de la Gare", "country": "France", "city": "Lyon", "rating": 4.5, "visits": int64(1234),
		"open": true, "tags": []any{"coffee", "wifi", "terrace"},
		"address": map[string]any{"street": "12 rue de la République", "zip": "69002"}, "owner": nil,
	}
	var ops []Op
	for _, k := range sortedKeys(doc) {
		ops = append(ops, Op{Kind: OpSet, Path: "/" + k, Value: doc[k]})
	}
	r.write(b, 1, nil, ops)
	return r.encoded(b)
}

// BenchmarkDecodeView: the hand-written reader against the library-based
// one on the same state.
func BenchmarkDecodeView(b *testing.B) {
	data := benchState(b)
	for _, c := range []struct {
		name   string
		decode func([]byte) (*State, error)
	}{{"reflect", decodeViewReflect}, {"hand", decodeView}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
