package crdt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// maxExactInt is the largest integer a float64 holds exactly (2^53).
const maxExactInt = 1 << 53

// Normalize returns v as a canonical JSON value: nil, bool, int64, float64,
// string, []any or map[string]any. Integral numbers within ±2^53 become int64
// so that 1 and 1.0 are the same value everywhere. It accepts json.Number,
// every Go integer and float type, and the CBOR decoder's uint64. It copies
// maps and slices; the caller keeps ownership of v.
// A value nested deeper than MaxDepth is a *LimitError (LimitDepth).
func Normalize(v any) (any, error) { return normalize(v, 0, MaxDepth) }

// normalizeStored is Normalize for values read back from the store, which
// may nest as deep as the state decoder allows (stateNesting).
func normalizeStored(v any) (any, error) { return normalize(v, 0, stateNesting) }

func normalize(v any, depth, maxDepth int) (any, error) {
	if depth > maxDepth {
		return nil, &LimitError{Limit: LimitDepth, Got: int64(depth), Max: int64(maxDepth)}
	}
	switch x := v.(type) {
	case nil, bool, string:
		return x, nil
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return normFloat(float64(x))
		}
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case float32:
		return normFloat(float64(x))
	case float64:
		return normFloat(x)
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, fmt.Errorf("%w: number %q", ErrInvalidValue, string(x))
		}
		return normFloat(f)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e, depth+1, maxDepth)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalize(e, depth+1, maxDepth)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%w: object key of type %T", ErrInvalidValue, k)
			}
			n, err := normalize(e, depth+1, maxDepth)
			if err != nil {
				return nil, err
			}
			out[ks] = n
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unsupported type %T", ErrInvalidValue, v)
	}
}

func normFloat(f float64) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%w: %v is not a JSON number", ErrInvalidValue, f)
	}
	if f == math.Trunc(f) && f >= -maxExactInt && f <= maxExactInt {
		return int64(f), nil
	}
	return f, nil
}

// ParseJSON decodes one JSON value from data into its normalized form.
// Trailing data after the value is an error.
func ParseJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after JSON value", ErrInvalidValue)
	}
	return Normalize(v)
}

// Equal reports whether two normalized values are the same JSON value.
func Equal(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !Equal(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

// Copy returns a deep copy of a normalized value.
func Copy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = Copy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Copy(e)
		}
		return out
	default:
		return v
	}
}

// canonicalKey is the canonical JSON text of a normalized value: the identity
// of a set element.
func canonicalKey(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("crdt: marshal normalized value: %v", err)) // normalized values always marshal
	}
	return string(b)
}

// ParsePointer splits a JSON pointer (RFC 6901) into its reference tokens.
// "" is the whole document and yields no tokens.
func ParsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("%w: %q does not start with /", ErrInvalidPath, p)
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		if !strings.Contains(s, "~") {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(s); j++ {
			if s[j] != '~' {
				b.WriteByte(s[j])
				continue
			}
			if j+1 == len(s) || (s[j+1] != '0' && s[j+1] != '1') {
				return nil, fmt.Errorf("%w: bad escape in %q", ErrInvalidPath, p)
			}
			if s[j+1] == '0' {
				b.WriteByte('~')
			} else {
				b.WriteByte('/')
			}
			j++
		}
		parts[i] = b.String()
	}
	return parts, nil
}

// FormatPointer joins reference tokens into a JSON pointer.
func FormatPointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		b.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return b.String()
}

// Lookup returns the value at a JSON pointer inside v. Array elements are
// addressed by decimal index. ok is false when the path does not exist.
func Lookup(v any, tokens []string) (any, bool) {
	cur := v
	for _, t := range tokens {
		switch x := cur.(type) {
		case map[string]any:
			n, ok := x[t]
			if !ok {
				return nil, false
			}
			cur = n
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(x) || strconv.Itoa(i) != t {
				return nil, false
			}
			cur = x[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// isUnder reports whether pointer p is q or inside q.
func isUnder(p, q string) bool {
	return p == q || q == "" || (strings.HasPrefix(p, q) && p[len(q)] == '/')
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
