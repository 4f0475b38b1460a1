package couch

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Error is an error a CouchDB client understands: an HTTP status and the
// body {"error": Code, "reason": Reason}. The replicator branches on Status
// and Code (a 409 conflict, a 404 not_found), people read Reason; both
// are sent as they are, so Reason must never carry internal detail.
type Error struct {
	Status int
	Code   string
	Reason string
}

// Error returns "Code: Reason".
func (e *Error) Error() string { return e.Code + ": " + e.Reason }

// Reasons CouchDB sends with a 404 not_found, which PouchDB shows and
// some clients compare.
const (
	ReasonMissing = "missing"                  // no such document, or revision
	ReasonDeleted = "deleted"                  // the document's winner is a tombstone
	ReasonNoDB    = "Database does not exist." // no such database
)

// BadRequest is 400 bad_request: a body, a parameter or a revision that
// does not parse.
func BadRequest(reason string) *Error { return &Error{http.StatusBadRequest, "bad_request", reason} }

// DocValidation is 400 doc_validation: a document CouchDB would refuse
// as a document (a bad special member such as _foo), not as a request.
func DocValidation(reason string) *Error {
	return &Error{http.StatusBadRequest, "doc_validation", reason}
}

// Unauthorized is 401 unauthorized: no credentials, or wrong ones.
func Unauthorized(reason string) *Error {
	return &Error{http.StatusUnauthorized, "unauthorized", reason}
}

// Forbidden is 403 forbidden: the credentials are good but not enough
// (a database this node may not write).
func Forbidden(reason string) *Error { return &Error{http.StatusForbidden, "forbidden", reason} }

// NotFound is 404 not_found; reason is usually ReasonMissing,
// ReasonDeleted or ReasonNoDB.
func NotFound(reason string) *Error { return &Error{http.StatusNotFound, "not_found", reason} }

// MethodNotAllowed is 405 method_not_allowed; allowed lists the methods,
// as CouchDB words it: "Only GET,HEAD,POST allowed". The caller sets the
// Allow header.
func MethodNotAllowed(allowed string) *Error {
	return &Error{http.StatusMethodNotAllowed, "method_not_allowed", "Only " + allowed + " allowed"}
}

// Conflict is 409 conflict with CouchDB's reason: the base revision is
// not the current one.
func Conflict() *Error { return &Error{http.StatusConflict, "conflict", "Document update conflict."} }

// FileExists is 412 file_exists, CouchDB's answer to creating a database
// that exists (412 Precondition Failed, not 409).
func FileExists() *Error {
	return &Error{http.StatusPreconditionFailed, "file_exists", "The database could not be created, the file already exists."}
}

// MissingStub is 412 missing_stub: an attachment stub names a revision
// whose attachment this side does not have.
func MissingStub(reason string) *Error {
	return &Error{http.StatusPreconditionFailed, "missing_stub", reason}
}

// TooLarge is 413 too_large: a body over its bound. CouchDB's code is
// "too_large" (couch_httpd error_info(request_entity_too_large)), not the
// status's name.
func TooLarge(reason string) *Error {
	return &Error{http.StatusRequestEntityTooLarge, "too_large", reason}
}

// BadContentType is 415 bad_content_type with CouchDB's reason.
func BadContentType() *Error {
	return &Error{http.StatusUnsupportedMediaType, "bad_content_type", "Content-Type must be application/json"}
}

// Internal is 500 unknown_error, CouchDB's code for an error it has no
// name for. reason is sent to the client: a fixed sentence, never an
// error's text.
func Internal(reason string) *Error {
	return &Error{http.StatusInternalServerError, "unknown_error", reason}
}

// ServiceUnavailable is 503 service_unavailable: the node is overloaded
// or stopping; the caller sets Retry-After.
func ServiceUnavailable(reason string) *Error {
	return &Error{http.StatusServiceUnavailable, "service_unavailable", reason}
}

// internalReason is what a client reads for an error that is not an
// *Error: the error itself is the server's to log.
const internalReason = "internal error"

// WriteError writes err as CouchDB does: its status and the JSON body
// {"error":code,"reason":reason}. The first *Error in err's chain is
// written as it is; any other error (nil included) is 500 unknown_error
// with a generic reason, so no internal detail reaches the client.
// Logging err is the caller's.
func WriteError(w http.ResponseWriter, err error) {
	var ce *Error
	if !errors.As(err, &ce) || ce == nil {
		ce = Internal(internalReason)
	}
	body, jerr := json.Marshal(struct {
		Error  string `json:"error"`
		Reason string `json:"reason"`
	}{ce.Code, ce.Reason})
	if jerr != nil { // two strings always marshal
		body = []byte(`{"error":"unknown_error","reason":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(ce.Status)
	_, _ = w.Write(append(body, '\n')) // the client went away: nothing left to tell it
}
