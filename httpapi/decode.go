package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/barrel-db/barrel/crdt"
)

// maxDepth bounds the nesting of a request body so that decoding recursion
// stays bounded whatever the input: a document's limit (crdt.MaxDepth, which
// the node checks and reports as too_large) plus the two levels of a bulk
// request's {"docs": [...]}. A body past it holds a document past
// crdt.MaxDepth, so the message names that one number.
const maxDepth = crdt.MaxDepth + 2

// errBadJSON marks a body that is not one well-formed JSON value.
var errBadJSON = errors.New("bad json")

// errReadBody marks a body that could not be read to its end (the client
// went away or sent a broken chunked encoding).
var errReadBody = errors.New("cannot read request body")

// jsonError says why a body was not accepted as JSON. It matches errBadJSON.
type jsonError struct{ reason string }

func (e *jsonError) Error() string        { return e.reason }
func (e *jsonError) Is(target error) bool { return target == errBadJSON }

func badJSON(format string, args ...any) error {
	return &jsonError{reason: fmt.Sprintf(format, args...)}
}

// decodeValue reads exactly one JSON value from r and returns it in the
// normalized form: nil, bool, int64, float64, string, []any, map[string]any.
// Integers that fit int64 become int64, every other number float64.
// Duplicate object keys, nesting deeper than maxDepth, trailing data, bytes
// that are not UTF-8 and unpaired surrogate escapes (see textReader) are
// errors matching errBadJSON. Read errors (such as *http.MaxBytesError) are
// returned wrapped as they are, so the caller can map them. When r is a
// request body (see body), every value decoded is charged costPerValue to
// the request's share of the memory budget, and decoding stops with its
// error when the budget refuses.
func decodeValue(r io.Reader) (any, error) {
	dec := json.NewDecoder(&textReader{r: r})
	dec.UseNumber()
	v, err := decodeNext(dec, chargeOf(r), 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, classify(err)
		}
		return nil, badJSON("trailing data after the JSON value")
	}
	return v, nil
}

// decodeObject is decodeValue for bodies that must be a JSON object.
func decodeObject(r io.Reader) (map[string]any, error) {
	v, err := decodeValue(r)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, badJSON("body must be a JSON object")
	}
	return m, nil
}

// decodeBytes decodes one JSON value from b.
func decodeBytes(b []byte) (any, error) { return decodeValue(bytes.NewReader(b)) }

// classify turns a decoder error into a bad-json error unless it comes from
// the underlying reader (size limit, client gone), which is kept.
func classify(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, errBadJSON), errors.Is(err, errBusy), errors.Is(err, errTooCostly), errors.Is(err, errTooSlow):
		return err // from textReader or body
	case errors.As(err, &syn), errors.As(err, &typ):
		return badJSON("malformed JSON: %v", err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badJSON("malformed JSON: unexpected end of input")
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return err
	}
	return fmt.Errorf("read body: %w: %w", errReadBody, err)
}

func decodeNext(dec *json.Decoder, c *charge, depth int) (any, error) {
	if depth > maxDepth {
		return nil, badJSON("JSON nested deeper than %d levels (max_depth)", crdt.MaxDepth)
	}
	if err := c.add(costPerValue); err != nil {
		return nil, err
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, classify(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, classify(err)
				}
				k, ok := kt.(string)
				if !ok {
					return nil, badJSON("object key is not a string")
				}
				if _, dup := m[k]; dup {
					return nil, badJSON("duplicate key %q", k)
				}
				v, err := decodeNext(dec, c, depth+1)
				if err != nil {
					return nil, err
				}
				m[k] = v
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, classify(err)
			}
			return m, nil
		case '[':
			a := []any{}
			for dec.More() {
				v, err := decodeNext(dec, c, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, classify(err)
			}
			return a, nil
		default:
			return nil, badJSON("unexpected %q", t)
		}
	case json.Number:
		return normalizeNumber(t)
	case string, bool, nil:
		return t, nil
	default:
		return nil, badJSON("unexpected token %v", tok)
	}
}

// normalizeNumber converts a JSON number to int64 when it is an integer that
// fits, else to float64.
func normalizeNumber(n json.Number) (any, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return nil, badJSON("number %s out of range", n)
	}
	return f, nil
}
