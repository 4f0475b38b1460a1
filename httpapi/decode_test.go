package httpapi

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/barrel-db/barrel/node"
)

func TestDecodeValue(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    any
		wantErr error
	}{
		{"object", `{"a":1,"b":"x","c":[true,null,1.5]}`, map[string]any{"a": int64(1), "b": "x", "c": []any{true, nil, 1.5}}, nil},
		{"big int becomes float", `18446744073709551616`, 18446744073709551616.0, nil},
		{"negative int", `-9223372036854775808`, int64(-9223372036854775808), nil},
		{"exponent is float", `1e3`, 1000.0, nil},
		{"empty array", `[]`, []any{}, nil},
		{"empty object", ` {} `, map[string]any{}, nil},
		{"trailing data", `{} {}`, nil, errBadJSON},
		{"trailing garbage", `{}x`, nil, errBadJSON},
		{"duplicate key", `{"a":1,"a":2}`, nil, errBadJSON},
		{"truncated", `{"a":`, nil, errBadJSON},
		{"empty", ``, nil, errBadJSON},
		{"bad token", `{a:1}`, nil, errBadJSON},
		{"too deep", strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2), nil, errBadJSON},
		{"huge number", `1e999`, nil, errBadJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeValue(strings.NewReader(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got err %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeTooLarge(t *testing.T) {
	rec := httptest.NewRecorder()
	body := http.MaxBytesReader(rec, ioNopCloser{bytes.NewReader([]byte(`{"a":"` + strings.Repeat("x", 100) + `"}`))}, 10)
	_, err := decodeObject(body)
	var tooLarge *http.MaxBytesError
	if !errors.As(err, &tooLarge) {
		t.Fatalf("got %v, want *http.MaxBytesError", err)
	}
	if status, code, _, _ := errorStatus(err); status != 413 || code != "too_large" {
		t.Fatalf("got %d %s, want 413 too_large", status, code)
	}
}

type ioNopCloser struct{ *bytes.Reader }

func (ioNopCloser) Close() error { return nil }

func TestDecodeObjectRejectsNonObject(t *testing.T) {
	for _, in := range []string{`[]`, `1`, `"s"`, `null`} {
		if _, err := decodeObject(strings.NewReader(in)); !errors.Is(err, errBadJSON) {
			t.Errorf("%s: got %v, want bad json", in, err)
		}
	}
}

func TestLiteral(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"Germany", "Germany"},
		{"42", int64(42)},
		{"-1.5", -1.5},
		{"true", true},
		{"false", false},
		{"null", nil},
		{`"quoted"`, `"quoted"`},
		{"[1]", "[1]"},
		{"1e999", "1e999"},
		{"12abc", "12abc"},
	}
	for _, tt := range tests {
		if got := literal(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("literal(%q): got %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,2.5,"x",null,true]`, `{"a":{"b":[{}]}}`, `{"a":1,"a":2}`, `1e400`, `"\u00e9"`, `{} x`,
		`{"keep_revisions":3,"keep_for":"720h","tombstones_for":"1m"}`, `{"ids":["a","b"]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rec := httptest.NewRecorder()
		r := http.MaxBytesReader(rec, ioNopCloser{bytes.NewReader(b)}, 1<<16)
		v, err := decodeValue(r)
		if err != nil {
			if status, _, _, internal := errorStatus(err); internal || (status != 400 && status != 413) {
				t.Fatalf("error %v maps to %d (internal %v), want 400 or 413", err, status, internal)
			}
			return
		}
		checkNormalized(t, v, 0)
		// The _compact and _purge parsers refuse with 400, never panic.
		if m, ok := v.(map[string]any); ok {
			for _, err := range []error{second(parseRetention(node.DefaultRetention, m)), second(parsePurge(m))} {
				if status, _, _, _ := errorStatus(err); err != nil && status != 400 {
					t.Fatalf("error %v maps to %d, want 400", err, status)
				}
			}
		}
	})
}

func second[T any](_ T, err error) error { return err }

// checkNormalized fails unless v only holds the normalized JSON types.
func checkNormalized(t *testing.T, v any, depth int) {
	t.Helper()
	if depth > maxDepth+1 {
		t.Fatalf("depth %d beyond the limit", depth)
	}
	switch x := v.(type) {
	case nil, bool, int64, float64, string:
	case []any:
		for _, e := range x {
			checkNormalized(t, e, depth+1)
		}
	case map[string]any:
		for _, e := range x {
			checkNormalized(t, e, depth+1)
		}
	default:
		t.Fatalf("unexpected type %T", v)
	}
}
