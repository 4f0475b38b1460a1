package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestReaderLimitsCoverWriters: every decoder limit is a margin above the
// writer limit it covers (DESIGN.md invariant 8).
func TestReaderLimitsCoverWriters(t *testing.T) {
	for _, tc := range []struct {
		name           string
		reader, writer int
	}{
		{"change arrays hold the ops", changeArray, MaxOps + 1},
		{"change arrays hold an array value", changeArray, MaxArrayElements + 1},
		{"change arrays hold the parents", changeArray, MaxParents + 1},
		{"change maps hold an object value", changeMapPairs, MaxObjectKeys + 1},
		// change array, ops array, op array, then the value's levels.
		{"change nesting holds a value of MaxDepth levels", changeNesting, 3 + MaxDepth + 1},
		// state array, conflicts array, conflict array, then a value; a
		// stored body as deep as the longest path allows.
		{"state nesting holds conflicts", stateNesting, 3 + MaxDepth + 1},
		{"state nesting holds the deepest path", stateNesting, changePathBytes/2 + MaxDepth + 2},
		{"change bytes hold a sealed change", MaxChangeBytes, MaxChangeBytes - sealSlack},
		{"change paths hold a writer's path", changePathBytes, MaxPathBytes + 1},
	} {
		if tc.reader < tc.writer {
			t.Errorf("%s: reader limit %d < %d", tc.name, tc.reader, tc.writer)
		}
	}
}

// limitCase is a body at or past one limit.
type limitCase struct {
	limit string
	at    func() map[string]any
	past  func() map[string]any
}

func nested(levels int) map[string]any {
	var v any = "leaf"
	for range levels - 1 {
		v = map[string]any{"k": v}
	}
	return map[string]any{"k": v}
}

func array(n int) map[string]any {
	a := make([]any, n)
	for i := range a {
		a[i] = int64(i)
	}
	return map[string]any{"a": a}
}

func object(n int) map[string]any {
	m := make(map[string]any, n)
	for i := range n {
		m[fmt.Sprint(i)] = int64(i)
	}
	return map[string]any{"o": m}
}

// bigDoc is a body of exactly n encoded bytes, of strings within
// MaxStringBytes.
func bigDoc(n int) map[string]any {
	body := map[string]any{}
	left := n - 1 // the map head, for fewer than 24 members
	for i := 0; left > 0; i++ {
		k := fmt.Sprintf("s%02d", i)
		over := 1 + len(k) + 5 // key head, key, string head (5 bytes past 64 KiB)
		size := min(MaxStringBytes, left-over)
		if size < 1<<16 { // keep the 5-byte head so the arithmetic is exact
			size = 1 << 16
		}
		body[k] = strings.Repeat("x", size)
		left -= over + size
	}
	if left != 0 {
		panic(fmt.Sprintf("bigDoc %d: %d bytes left", n, left))
	}
	return body
}

// LimitCases are the documents at and just past every document limit.
func limitCases() []limitCase {
	longKey := func(extra int) map[string]any {
		// "/" + key: a pointer of MaxPathBytes+extra bytes.
		return map[string]any{strings.Repeat("p", MaxPathBytes-1+extra): int64(1)}
	}
	return []limitCase{
		{LimitDepth, func() map[string]any { return nested(MaxDepth) }, func() map[string]any { return nested(MaxDepth + 1) }},
		{LimitArrayElements, func() map[string]any { return array(MaxArrayElements) }, func() map[string]any { return array(MaxArrayElements + 1) }},
		{LimitObjectKeys, func() map[string]any { return object(MaxObjectKeys) }, func() map[string]any { return object(MaxObjectKeys + 1) }},
		{LimitStringBytes, func() map[string]any { return map[string]any{"s": strings.Repeat("x", MaxStringBytes)} },
			func() map[string]any { return map[string]any{"s": strings.Repeat("x", MaxStringBytes+1)} }},
		{LimitPathBytes, func() map[string]any { return longKey(0) }, func() map[string]any { return longKey(1) }},
		{LimitDocBytes, func() map[string]any { return bigDoc(MaxDocBytes) }, func() map[string]any { return bigDoc(MaxDocBytes + 1) }},
	}
}

// TestLimitsAtAndPast: a document at each limit passes CheckBody, seals,
// decodes as a change and as a state; one just past fails CheckBody with a
// *LimitError naming that limit. Before the limits were checked on write, a
// document of MaxOps+1 array elements was accepted and its state could not
// be decoded any more.
func TestLimitsAtAndPast(t *testing.T) {
	for _, tc := range limitCases() {
		t.Run(tc.limit, func(t *testing.T) {
			at := tc.at()
			if err := CheckBody(at); err != nil {
				t.Fatalf("at the limit: %v", err)
			}
			r := newReplica(0)
			c := r.write(t, 1, nil, Diff(nil, at, nil))
			enc, err := c.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Decode(enc); err != nil {
				t.Fatalf("decode a change at the limit: %v", err)
			}
			st, err := r.state.Encode()
			if err != nil {
				t.Fatal(err)
			}
			for name, dec := range map[string]func([]byte) (*State, error){"DecodeState": DecodeState, "DecodeView": DecodeView} {
				got, err := dec(st)
				if err != nil {
					t.Fatalf("%s at the limit: %v", name, err)
				}
				if !Equal(got.Body, at) {
					t.Fatalf("%s: body differs", name)
				}
			}
			err = CheckBody(tc.past())
			var le *LimitError
			if !errors.As(err, &le) || le.Limit != tc.limit || !errors.Is(err, ErrLimit) {
				t.Fatalf("past the limit: got %v, want a LimitError for %s", err, tc.limit)
			}
			if !strings.Contains(err.Error(), tc.limit) {
				t.Errorf("error %q does not name %s", err, tc.limit)
			}
		})
	}
}

// TestDocBytesIsTheEncodedSize: CheckBody's size is the canonical encoding's
// for bodies without floats.
func TestDocBytesIsTheEncodedSize(t *testing.T) {
	for _, body := range []map[string]any{
		{}, {"a": int64(-1 << 40), "b": []any{"x", nil, true, int64(300)}, "c": map[string]any{"d": int64(70000)}},
		bigDoc(1 << 20), object(1000), array(70000),
	} {
		enc, err := Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		n, err := walkLimits(body, "", 0)
		if err != nil || n != int64(len(enc)) {
			t.Errorf("size %d (%v), encoding %d bytes", n, err, len(enc))
		}
	}
}

// TestChangePastLimitsDecodesAndIsRefused: a change a peer builds past a
// writer limit (here 100,001 array elements) decodes, so that the receiver
// can refuse it by id, and CheckLimits refuses it; Seal refuses to make it.
func TestChangePastLimitsDecodesAndIsRefused(t *testing.T) {
	_, pub := newSigner(1)
	c := &Change{DB: "db", Doc: "doc", Author: pub, Ops: []Op{{Kind: OpSet, Path: "/a", Value: array(MaxArrayElements + 1)["a"]}}}
	enc, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(enc)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if err := got.CheckLimits(); !errors.Is(err, ErrLimit) {
		t.Fatalf("CheckLimits: got %v, want ErrLimit", err)
	}
	if err := c.Seal(nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("Seal: got %v, want ErrLimit", err)
	}
	// Depth counts the path: a value of MaxDepth levels at /a/b is too deep.
	deep := &Change{DB: "db", Doc: "doc", Author: pub, Ops: []Op{{Kind: OpSet, Path: "/a/b", Value: nested(MaxDepth - 1)}}}
	if err := deep.Seal(nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("Seal of a too deep path+value: got %v, want ErrLimit", err)
	}
	// A null counts like any value: set at a path of MaxDepth+1 tokens, it
	// would leave a body too deep.
	null := &Change{DB: "db", Doc: "doc", Author: pub, Ops: []Op{{Kind: OpSet, Path: strings.Repeat("/p", MaxDepth+1)}}}
	if err := null.Seal(nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("Seal of a null too deep: got %v, want ErrLimit", err)
	}
	big := &Change{DB: "db", Doc: "doc", Author: pub}
	for i := range 11 {
		big.Ops = append(big.Ops, Op{Kind: OpSet, Path: fmt.Sprintf("/s%d", i), Value: strings.Repeat("x", MaxStringBytes)})
	}
	var le *LimitError
	if err := big.Seal(nil); !errors.As(err, &le) || le.Limit != LimitChangeBytes {
		t.Fatalf("Seal of an 11 MiB change: got %v, want %s", err, LimitChangeBytes)
	}
}

// TestConcurrentMaximalDocumentsStayReadable: two replicas write maximal
// documents at the same paths concurrently. The merged state holds one body
// and the other in _conflicts, about twice the largest body, and must
// decode (its readers have no count limits) and be byte-identical on both.
func TestConcurrentMaximalDocumentsStayReadable(t *testing.T) {
	for _, tc := range []struct {
		name string
		body func(v int64) map[string]any
	}{
		{"arrays", func(v int64) map[string]any {
			a := array(MaxArrayElements)
			a["a"].([]any)[0] = v
			return a
		}},
		{"objects", func(v int64) map[string]any {
			o := object(MaxObjectKeys)
			o["o"].(map[string]any)["0"] = v
			return o
		}},
		{"bytes", func(v int64) map[string]any {
			d := bigDoc(MaxDocBytes)
			d["s00"] = fmt.Sprint(v) + d["s00"].(string)[1:]
			return d
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newReplica(0), newReplica(1)
			ca := a.write(t, 10, nil, Diff(nil, tc.body(7), nil))
			cb := b.write(t, 20, nil, Diff(nil, tc.body(8), nil))
			a.receive(t, cb)
			b.receive(t, ca)
			ea, eb := a.encoded(t), b.encoded(t)
			if !bytes.Equal(ea, eb) {
				t.Fatal("replicas differ")
			}
			if len(a.state.Conflicts) == 0 {
				t.Fatal("no conflicts: the test does not merge two maximal documents")
			}
			for name, dec := range map[string]func([]byte) (*State, error){"DecodeState": DecodeState, "DecodeView": DecodeView} {
				st, err := dec(ea)
				if err != nil {
					t.Fatalf("%s of the merged state (%d bytes): %v", name, len(ea), err)
				}
				if len(st.Conflicts) != len(a.state.Conflicts) {
					t.Fatalf("%s: %d conflicts, want %d", name, len(st.Conflicts), len(a.state.Conflicts))
				}
			}
			if len(ea) > MaxStateBytes {
				t.Errorf("merged state of %d bytes passes MaxStateBytes %d", len(ea), MaxStateBytes)
			}
		})
	}
}

// genNearLimits draws a document that sits near the limits: a chain of
// containers around MaxDepth deep, and now and then an array, an object, a
// string or a member name at, below or just past its limit.
func genNearLimits(t *rapid.T) map[string]any {
	near := func(limit int, label string) int {
		return limit + rapid.IntRange(-1, 1).Draw(t, label)
	}
	body := map[string]any{"small": int64(1)}
	// A chain of objects and arrays of about MaxDepth levels.
	levels := rapid.IntRange(MaxDepth-3, MaxDepth+2).Draw(t, "levels")
	v := rapid.SampledFrom([]any{"leaf", int64(7), nil, 1.5}).Draw(t, "leaf")
	for range levels - 1 {
		if rapid.Bool().Draw(t, "array level") {
			v = []any{v}
		} else {
			v = map[string]any{"k": v}
		}
	}
	body["chain"] = v
	switch rapid.IntRange(0, 19).Draw(t, "big part") { // one in 20 of each big part: they cost most of the run
	case 0:
		a := make([]any, near(MaxArrayElements, "elements"))
		for i := range a {
			a[i] = int64(i)
		}
		body["array"] = a
	case 1:
		n := near(MaxObjectKeys, "members")
		o := make(map[string]any, n)
		for i := range n {
			o[fmt.Sprint(i)] = true
		}
		body["object"] = o
	case 2:
		n := near(MaxStringBytes, "string bytes") // in two-byte runes, to count bytes, not runes
		body["string"] = strings.Repeat("é", n/2) + strings.Repeat("x", n%2)
	case 3:
		// "/" + key: a pointer around MaxPathBytes.
		body[strings.Repeat("k", near(MaxPathBytes, "path bytes")-1)] = int64(1)
	}
	return body
}

// TestNearLimitsAcceptedIsUsable: whatever CheckBody accepts seals, encodes,
// decodes as a change and as a state with the same body; whatever it
// refuses is a *LimitError, and Seal refuses the same write for every limit
// a single change can pass (all but the document's total size).
func TestNearLimitsAcceptedIsUsable(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		body := genNearLimits(t)
		err := CheckBody(body)
		r := newReplica(0)
		c := &Change{DB: "db", Doc: "doc", Author: r.author, Ops: Diff(nil, body, nil)}
		serr := c.Seal(r.signer)
		if err != nil {
			var le *LimitError
			if !errors.As(err, &le) {
				t.Fatalf("CheckBody: %v is not a LimitError", err)
			}
			if le.Limit != LimitDocBytes && !errors.Is(serr, ErrLimit) {
				t.Fatalf("CheckBody refuses (%v) but Seal accepts (%v)", err, serr)
			}
			return
		}
		if serr != nil {
			t.Fatalf("CheckBody accepts but Seal refuses: %v", serr)
		}
		enc, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		dc, err := Decode(enc)
		if err != nil {
			t.Fatalf("decode an accepted change: %v", err)
		}
		if err := dc.CheckLimits(); err != nil {
			t.Fatalf("a receiver refuses an accepted change: %v", err)
		}
		st := NewState()
		if !st.ApplyNext(dc) {
			t.Fatal("apply")
		}
		senc, err := st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		for name, dec := range map[string]func([]byte) (*State, error){"DecodeState": DecodeState, "DecodeView": DecodeView} {
			got, err := dec(senc)
			if err != nil {
				t.Fatalf("%s of an accepted document: %v", name, err)
			}
			if !Equal(got.Body, body) {
				t.Fatalf("%s: body differs", name)
			}
		}
	})
}
