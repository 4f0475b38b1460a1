// Package httpapi serves a barrel node over HTTP with JSON bodies.
//
// It owns the translation between HTTP and the node API: routing (Go 1.22
// ServeMux patterns with methods and wildcards), request decoding into the
// normalized JSON form the node expects (nil, bool, int64, float64, string,
// []any, map[string]any), rendering documents with their reserved fields
// (_id, _rev, _conflicts, _revs), the changes feed (normal, longpoll and
// Server-Sent Events) and the one mapping from errors to HTTP statuses
// (errorStatus in errors.go). The JSON shapes of the responses are its
// own types (wire.go: Info, DBInfo, ReplicationState, ACL, ...), converted
// from node's, which carry no json tags; the CLI decodes the same types.
//
// It must not hold database state or mutate anything except through the
// node API, and it must not read a body without a bound: every body goes
// through http.MaxBytesReader, a minimum rate, a UTF-8 check and a
// depth-limited decoder, and every request is charged against a memory
// budget all requests share (limits.go), with caps on writes, uploads and
// connections in flight.
//
// Use:
//
//	cfg := httpapi.Config{Logger: log, Token: token}
//	srv := httpapi.NewServer(n, cfg)
//	err := srv.Serve(httpapi.LimitListener(ln, cfg))
//
// Limits: document ids that contain "/" must be percent-encoded in URLs;
// JSON pointer keys that contain "/" must be written as "~1". Duplicate keys
// in a request object are rejected rather than resolved.
package httpapi
