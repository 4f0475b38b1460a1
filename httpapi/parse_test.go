package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/barrel-db/barrel/node"
)

func mustObject(t *testing.T, s string) map[string]any {
	t.Helper()
	m, err := decodeObject(strings.NewReader(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

func TestErrorStatus(t *testing.T) {
	tests := []struct {
		err      error
		status   int
		code     string
		internal bool
	}{
		{&node.InvalidError{What: "doc id", Reason: "empty"}, 400, "bad_request", false},
		{fmt.Errorf("put: %w", node.ErrNotFound), 404, "not_found", false},
		{node.ErrDBNotFound, 404, "not_found", false},
		{fmt.Errorf("x: %w", node.ErrRevMismatch), 409, "conflict", false},
		{node.ErrDBExists, 412, "db_exists", false},
		{&http.MaxBytesError{Limit: 1}, 413, "too_large", false},
		{node.ErrOverloaded, 503, "overloaded", false},
		{fmt.Errorf("bulk: %w", node.ErrTxAborted), 409, "tx_aborted", false},
		{badJSON("x"), 400, "bad_json", false},
		{badRequest("x"), 400, "bad_request", false},
		{errDeleted, 404, "not_found", false},
		{errUnauthorized, 401, "unauthorized", false},
		{errNoRoute, 404, "not_found", false},
		{errMethod, 405, "method_not_allowed", false},
		{errors.New("disk on fire"), 500, "internal", true},
		{node.ErrClosed, 500, "internal", true},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			status, code, reason, internal := errorStatus(tt.err)
			if status != tt.status || code != tt.code || internal != tt.internal {
				t.Fatalf("got %d %s internal=%v, want %d %s internal=%v", status, code, internal, tt.status, tt.code, tt.internal)
			}
			if internal && reason != "internal server error" {
				t.Fatalf("internal reason leaks: %q", reason)
			}
		})
	}
	if _, _, reason, _ := errorStatus(errDeleted); reason != "deleted" {
		t.Fatalf("got reason %q, want deleted", reason)
	}
}

func TestPutBody(t *testing.T) {
	tests := []struct {
		name     string
		qrev     string
		in       string
		wantBody map[string]any
		wantRev  string
		wantErr  bool
	}{
		{"plain", "", `{"a":1}`, map[string]any{"a": int64(1)}, "", false},
		{"rev in body", "", `{"a":1,"_rev":"r1","_id":"d"}`, map[string]any{"a": int64(1)}, "r1", false},
		{"rev in query", "r2", `{"a":1}`, map[string]any{"a": int64(1)}, "r2", false},
		{"same rev both", "r2", `{"_rev":"r2"}`, map[string]any{}, "r2", false},
		{"revs disagree", "r2", `{"_rev":"r1"}`, nil, "", true},
		{"id mismatch", "", `{"_id":"other"}`, nil, "", true},
		{"reserved", "", `{"_deleted":true}`, nil, "", true},
		{"rev not string", "", `{"_rev":1}`, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, rev, err := putBody("d", tt.qrev, mustObject(t, tt.in))
			if !parsed(t, err, tt.wantErr) {
				return
			}
			if !reflect.DeepEqual(body, tt.wantBody) || rev != tt.wantRev {
				t.Fatalf("got %v %q, want %v %q", body, rev, tt.wantBody, tt.wantRev)
			}
		})
	}
}

func TestPatchFromBody(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    node.Patch
		wantErr bool
	}{
		{"merge", `{"a":null,"b":{"c":1}}`, node.Patch{Merge: map[string]any{"a": nil, "b": map[string]any{"c": int64(1)}}}, false},
		{"all ops", `{"_rev":"r","_incr":{"/n":2,"/f":0.5},"_add":{"/tags":["x"]},"_remove":{"/tags":["y"]}}`, node.Patch{
			Merge:  map[string]any{},
			Rev:    "r",
			Incr:   map[string]any{"/n": int64(2), "/f": 0.5},
			Add:    map[string][]any{"/tags": {"x"}},
			Remove: map[string][]any{"/tags": {"y"}},
		}, false},
		{"incr not number", `{"_incr":{"/n":"1"}}`, node.Patch{}, true},
		{"incr not object", `{"_incr":[1]}`, node.Patch{}, true},
		{"add not array", `{"_add":{"/t":"x"}}`, node.Patch{}, true},
		{"reserved", `{"_deleted":true}`, node.Patch{}, true},
		{"id mismatch", `{"_id":"e"}`, node.Patch{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := patchFromBody("d", "", mustObject(t, tt.in))
			if !parsed(t, err, tt.wantErr) {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestBulkRequest(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		want       []node.DocOp
		wantAtomic bool
		wantErr    bool
	}{
		{"docs", `{"docs":[{"_id":"a","x":1},{"_id":"b","_rev":"r","_deleted":true}],"atomic":true}`, []node.DocOp{
			{ID: "a", Body: map[string]any{"x": int64(1)}},
			{ID: "b", Rev: "r", Delete: true},
		}, true, false},
		{"empty docs", `{"docs":[]}`, []node.DocOp{}, false, false},
		{"no docs", `{"atomic":true}`, nil, false, true},
		{"missing id", `{"docs":[{"x":1}]}`, nil, false, true},
		{"reserved", `{"docs":[{"_id":"a","_conflicts":[]}]}`, nil, false, true},
		{"unknown field", `{"docs":[],"all_or_nothing":true}`, nil, false, true},
		{"doc not object", `{"docs":[1]}`, nil, false, true},
		{"atomic not bool", `{"docs":[],"atomic":1}`, nil, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops, atomic, err := bulkRequest(mustObject(t, tt.in))
			if !parsed(t, err, tt.wantErr) {
				return
			}
			if !reflect.DeepEqual(ops, tt.want) || atomic != tt.wantAtomic {
				t.Fatalf("got %#v %v, want %#v %v", ops, atomic, tt.want, tt.wantAtomic)
			}
		})
	}
}

func TestQueryFromBody(t *testing.T) {
	got, err := queryFromBody(mustObject(t, `{"where":[{"path":"/a","op":">=","value":3}],"order_by":"/a","desc":true,"limit":5,"cursor":"c"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := node.Query{Where: []node.Cond{{Path: "/a", Op: ">=", Value: int64(3)}}, OrderBy: "/a", Desc: true, Limit: 5, Cursor: "c"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
	for _, bad := range []string{`{"where":{}}`, `{"where":[{"op":"=="}]}`, `{"limit":-1}`, `{"limit":1.5}`, `{"x":1}`, `{"where":[{"path":"/a","op":"==","v":1}]}`} {
		if _, err := queryFromBody(mustObject(t, bad)); !errors.Is(err, errBadRequest) {
			t.Errorf("%s: got %v, want bad request", bad, err)
		}
	}
}

func TestPathValue(t *testing.T) {
	tests := []struct {
		in      string
		path    string
		value   any
		wantErr bool
	}{
		{"locations/country/Germany", "/locations/country", "Germany", false},
		{"n/42", "/n", int64(42), false},
		{"flag/true", "/flag", true, false},
		{"Germany", "", nil, true},
		{"a/", "", nil, true},
	}
	for _, tt := range tests {
		path, value, err := pathValue(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%q: want error", tt.in)
			}
			continue
		}
		if err != nil || path != tt.path || !reflect.DeepEqual(value, tt.value) {
			t.Errorf("%q: got %q %#v %v, want %q %#v", tt.in, path, value, err, tt.path, tt.value)
		}
	}
}

func TestHistoryRevs(t *testing.T) {
	got := historyRevs([]node.Revision{{Rev: "a", Seq: 1}, {Rev: "c", Seq: 3}, {Rev: "b", Seq: 2}})
	if want := []string{"c", "b", "a"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestNewChangesPage(t *testing.T) {
	p := newChangesPage(nil, 5, 3)
	if p.LastSeq != 5 || p.Results == nil {
		t.Fatalf("got %+v, want last_seq 5 and empty results", p)
	}
	p = newChangesPage([]node.Change{{Seq: 6}, {Seq: 7}}, 5, 9)
	if p.LastSeq != 7 {
		t.Fatalf("got last_seq %d, want 7", p.LastSeq)
	}
}

// parsed checks a parse result against a table row's wantErr: it fails the
// test on an unexpected outcome and reports whether the row goes on to
// compare the parsed value.
func parsed(t *testing.T, err error, wantErr bool) bool {
	t.Helper()
	if wantErr {
		if !errors.Is(err, errBadRequest) {
			t.Fatalf("got err %v, want bad request", err)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}
