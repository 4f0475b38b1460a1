package httpapi

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestDecodeRefusesBadText: bytes that are not UTF-8 and unpaired
// surrogate escapes are refused as bad JSON, wherever the reads split the
// body; valid text, U+FFFD itself and paired escapes pass unchanged.
func TestDecodeRefusesBadText(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want any // nil: an error matching errBadJSON
	}{
		{"invalid byte in a value", "{\"a\":\"x\xffy\"}", nil},
		{"invalid byte in a key", "{\"k\xff\":1}", nil},
		{"overlong encoding", "{\"a\":\"\xc0\xaf\"}", nil},
		{"encoded surrogate", "{\"a\":\"\xed\xa0\x80\"}", nil},
		{"truncated sequence at the end of a string", "{\"a\":\"\xe2\x82\"}", nil},
		{"truncated sequence at the end of the body", "\"\xe2\x82", nil},
		{"lone high surrogate escape", `{"a":"\ud800"}`, nil},
		{"lone low surrogate escape", `{"a":"\udc00x"}`, nil},
		{"high surrogate then other escape", `{"a":"\ud800\n"}`, nil},
		{"two high surrogates", `{"a":"\ud800\ud800"}`, nil},
		{"lone surrogate in a key", `{"\uD83D":1}`, nil},
		{"valid multi-byte", "{\"a\":\"€𝄞é\"}", map[string]any{"a": "€𝄞é"}},
		{"U+FFFD itself", "{\"a\":\"\xef\xbf\xbd\"}", map[string]any{"a": "\ufffd"}},
		{"escaped U+FFFD", `{"a":"\ufffd"}`, map[string]any{"a": "\ufffd"}},
		{"paired surrogate escapes", `{"a":"\ud834\udd1e"}`, map[string]any{"a": "𝄞"}},
		{"escaped backslash before u", `{"a":"\\ud800"}`, map[string]any{"a": `\ud800`}},
		{"escaped quote", `{"a":"\"\ud834\udd1e\""}`, map[string]any{"a": "\"𝄞\""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, rd := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", strings.NewReader(tt.in)},
				{"one byte at a time", iotest.OneByteReader(strings.NewReader(tt.in))},
				{"half", iotest.HalfReader(strings.NewReader(tt.in))},
			} {
				got, err := decodeValue(rd.r)
				if tt.want == nil {
					if !errors.Is(err, errBadJSON) {
						t.Errorf("%s: got %#v, %v, want bad json", rd.name, got, err)
					}
					continue
				}
				if err != nil || mustJSON(t, got) != mustJSON(t, tt.want) {
					t.Errorf("%s: got %#v, %v, want %#v", rd.name, got, err, tt.want)
				}
			}
		})
	}
}

// TestPutInvalidUTF8 checks the HTTP answer: 400 bad_json, nothing stored.
func TestPutInvalidUTF8(t *testing.T) {
	srv := newTestServer(t, Config{})
	do(t, srv, "PUT", "/dbs/db", "", nil)
	for _, body := range []string{"{\"a\":\"x\xffy\"}", "{\"k\xff\":1}", `{"a":"\udc00"}`} {
		st, raw, _ := do(t, srv, "PUT", "/dbs/db/docs/d", body, nil)
		if st != 400 || errorCode(t, raw) != "bad_json" {
			t.Errorf("PUT %q: got %d %s, want 400 bad_json", body, st, raw)
		}
		st, raw, _ = do(t, srv, "POST", "/dbs/db/bulk", `{"docs":[{"_id":"d","v":`+body+`}]}`, nil)
		if st != 400 || errorCode(t, raw) != "bad_json" {
			t.Errorf("bulk %q: got %d %s, want 400 bad_json", body, st, raw)
		}
	}
	if st, raw, _ := do(t, srv, "GET", "/dbs/db/docs/d", "", nil); st != 404 {
		t.Errorf("GET after refused writes: got %d %s, want 404", st, raw)
	}
}
