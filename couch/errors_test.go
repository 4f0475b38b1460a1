package couch

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriteError(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
		reason string
	}{
		{BadRequest("Invalid rev format"), 400, "bad_request", "Invalid rev format"},
		{DocValidation("Bad special document member: _foo"), 400, "doc_validation", "Bad special document member: _foo"},
		{Unauthorized("Name or password is incorrect."), 401, "unauthorized", "Name or password is incorrect."},
		{Forbidden("read only"), 403, "forbidden", "read only"},
		{NotFound(ReasonMissing), 404, "not_found", "missing"},
		{NotFound(ReasonNoDB), 404, "not_found", "Database does not exist."},
		{MethodNotAllowed("GET,HEAD,POST"), 405, "method_not_allowed", "Only GET,HEAD,POST allowed"},
		{Conflict(), 409, "conflict", "Document update conflict."},
		{FileExists(), 412, "file_exists", "The database could not be created, the file already exists."},
		{MissingStub("no attachment a.txt at revpos 2"), 412, "missing_stub", "no attachment a.txt at revpos 2"},
		{TooLarge("the request entity is too large"), 413, "too_large", "the request entity is too large"},
		{BadContentType(), 415, "bad_content_type", "Content-Type must be application/json"},
		{ServiceUnavailable("overloaded"), 503, "service_unavailable", "overloaded"},
		// Wrapped: the *Error inside is written.
		{fmt.Errorf("revs_diff db1: %w", NotFound(ReasonNoDB)), 404, "not_found", "Database does not exist."},
		// Not an *Error: nothing of it reaches the client.
		{errors.New("pebble: /secret/path: corrupt"), 500, "unknown_error", "internal error"},
		{nil, 500, "unknown_error", "internal error"},
		{(*Error)(nil), 500, "unknown_error", "internal error"},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		WriteError(rec, c.err)
		if rec.Code != c.status {
			t.Errorf("%v: status %d, want %d", c.err, rec.Code, c.status)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%v: Content-Type %q", c.err, ct)
		}
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%v: body %q: %v", c.err, rec.Body, err)
		}
		if len(body) != 2 || body["error"] != c.code || body["reason"] != c.reason {
			t.Errorf("%v: body %v, want error %q reason %q", c.err, body, c.code, c.reason)
		}
		if strings.Contains(rec.Body.String(), "secret") {
			t.Errorf("%v: leaked %q", c.err, rec.Body)
		}
	}
}

func TestErrorString(t *testing.T) {
	if got := Conflict().Error(); got != "conflict: Document update conflict." {
		t.Fatalf("Error() = %q", got)
	}
	var e *Error
	if !errors.As(fmt.Errorf("x: %w", BadRequest("y")), &e) || e.Status != http.StatusBadRequest {
		t.Fatal("errors.As")
	}
}
