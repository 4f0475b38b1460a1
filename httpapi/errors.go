package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"os"

	"github.com/barrel-db/barrel/node"
)

// Errors raised by the HTTP layer itself. Node errors are mapped as they are.
var (
	// errBadRequest marks a request the HTTP layer rejects before calling
	// the node: a reserved field, a bad query parameter, a wrong shape.
	errBadRequest = errors.New("bad request")
	// errDeleted is a read of a document that exists as a tombstone.
	errDeleted = errors.New("deleted")
	// errUnauthorized is a request without the configured bearer token.
	errUnauthorized = errors.New("missing or wrong bearer token")
	// errNoRoute is a request for a path no route serves.
	errNoRoute = errors.New("no such route")
	// errMethod is a request with a method the route does not serve.
	errMethod = errors.New("method not allowed")
	// errURITooLong is a request whose path and query exceed MaxURLBytes.
	errURITooLong = errors.New("request URI longer than the limit")
)

// reqError is an error the HTTP layer raises with its own reason text. It
// matches its kind (one of the sentinels above) with errors.Is.
type reqError struct {
	kind   error
	reason string
}

func (e *reqError) Error() string        { return e.reason }
func (e *reqError) Is(target error) bool { return target == e.kind }

// badRequest returns an error matching errBadRequest with reason.
func badRequest(reason string) error { return &reqError{kind: errBadRequest, reason: reason} }

// errorStatus is the one mapping from an error to an HTTP status, an error
// code and a reason text. Every error response goes through it. The reason
// of an unexpected error is generic; internal says it must be logged.
func errorStatus(err error) (status int, code, reason string, internal bool) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "too_large", "request body larger than the limit", false
	case errors.Is(err, errTooCostly):
		return http.StatusRequestEntityTooLarge, "too_large", err.Error(), false
	case errors.Is(err, errRateLimited):
		return http.StatusTooManyRequests, "rate_limited", err.Error(), false
	case errors.Is(err, errBusy):
		return http.StatusServiceUnavailable, "overloaded", err.Error(), false
	case errors.Is(err, errTooSlow):
		return http.StatusRequestTimeout, "timeout", err.Error(), false
	case errors.Is(err, errURITooLong):
		return http.StatusRequestURITooLong, "uri_too_long", err.Error(), false
	case errors.Is(err, os.ErrDeadlineExceeded): // the body did not arrive within ReadTimeout
		return http.StatusRequestTimeout, "timeout", "request body not received in time", false
	case errors.Is(err, node.ErrTooLarge): // a *crdt.LimitError: its text names the limit
		return http.StatusRequestEntityTooLarge, "too_large", err.Error(), false
	case errors.Is(err, errBadJSON):
		return http.StatusBadRequest, "bad_json", err.Error(), false
	case errors.Is(err, node.ErrDigestMismatch):
		return http.StatusBadRequest, "digest_mismatch", err.Error(), false
	case errors.Is(err, errBadRequest), errors.Is(err, errReadBody), errors.Is(err, node.ErrInvalid):
		return http.StatusBadRequest, "bad_request", err.Error(), false
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized, "unauthorized", err.Error(), false
	case errors.Is(err, errDeleted):
		return http.StatusNotFound, "not_found", "deleted", false
	case errors.Is(err, node.ErrNotFound), errors.Is(err, node.ErrDBNotFound), errors.Is(err, errNoRoute):
		return http.StatusNotFound, "not_found", err.Error(), false
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed, "method_not_allowed", err.Error(), false
	case errors.Is(err, node.ErrTxAborted):
		return http.StatusConflict, "tx_aborted", err.Error(), false
	case errors.Is(err, node.ErrRevMismatch):
		return http.StatusConflict, "conflict", err.Error(), false
	case errors.Is(err, node.ErrDBExists):
		return http.StatusPreconditionFailed, "db_exists", err.Error(), false
	case errors.Is(err, node.ErrOverloaded):
		return http.StatusServiceUnavailable, "overloaded", err.Error(), false
	case errors.Is(err, node.ErrNoNetwork):
		return http.StatusServiceUnavailable, "no_network", err.Error(), false
	case errors.Is(err, node.ErrNotAllowed):
		return http.StatusForbidden, "not_allowed", err.Error(), false
	case errors.Is(err, node.ErrDialFailed):
		return http.StatusBadGateway, "dial_failed", err.Error(), false
	case errors.Is(err, node.ErrLagging): // only ever in a stream: its end, never a status
		return http.StatusConflict, "lagging", err.Error(), false
	case errors.Is(err, node.ErrUnsubscribed): // likewise
		return http.StatusServiceUnavailable, "closed", err.Error(), false
	case errors.Is(err, node.ErrNoSpace):
		return http.StatusInsufficientStorage, "insufficient_storage", "the disk of the node's store is full, the write was refused and changed nothing, retry once space is freed: " + err.Error(), false
	case errors.Is(err, node.ErrCorrupt):
		return http.StatusInternalServerError, "corrupt", "the node's store is damaged where this request reads: " + err.Error() + "; re-sync the database from a peer (or restore the data dir)", false
	default:
		return http.StatusInternalServerError, "internal", "internal server error", true
	}
}

// errorBody is the JSON shape of every error response. Results is set only
// by the bulk endpoint, which reports per-document outcomes with the error.
type errorBody struct {
	Error   string       `json:"error"`
	Reason  string       `json:"reason"`
	Results []bulkResult `json:"results,omitempty"`
}

// bulkError is a failed bulk request carrying the per-document outcomes
// its error body reports. It unwraps to the error errorStatus maps.
type bulkError struct {
	err     error
	results []bulkResult
}

func (e *bulkError) Error() string { return e.err.Error() }
func (e *bulkError) Unwrap() error { return e.err }

// refusedBody reports whether err refuses a request body before its end.
func refusedBody(err error) bool {
	var tooLarge *http.MaxBytesError
	return errors.As(err, &tooLarge) || errors.Is(err, errBusy) || errors.Is(err, errTooCostly) ||
		errors.Is(err, errTooSlow) || errors.Is(err, os.ErrDeadlineExceeded)
}

// writeError writes err as a JSON error response, logging unexpected errors.
// The bulk results of a *bulkError go into the body.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, reason, internal := errorStatus(err)
	if !internal && reason == err.Error() {
		reason = nodeReason(err)
	}
	if internal {
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
	}
	if code == "overloaded" { // no_network is a 503 that retrying does not heal
		w.Header().Set("Retry-After", "1")
	}
	var rl *rateLimitedError
	if errors.As(err, &rl) {
		w.Header().Set("Retry-After", rl.retryAfterSeconds())
		s.logRateLimited(r, rl)
	}
	if refusedBody(err) {
		// Do not read what is left of a body refused for its size, cost or
		// rate: net/http would otherwise read up to 256 KiB of it before
		// answering, waiting on a client that may never send it.
		w.Header().Set("Connection", "close")
	}
	body := errorBody{Error: code, Reason: reason}
	var be *bulkError
	if errors.As(err, &be) {
		body.Results = be.results
	}
	writeJSON(w, status, body)
}
