// Package couch speaks the CouchDB replication protocol, so PouchDB apps
// and CouchDB servers can replicate with a barrel peer (issue 12).
//
// This package holds the parts that need no node: revision strings
// (rev.go), CouchDB's JSON errors (errors.go), and bounded decoders for the
// request bodies the replicator sends plus the response shapes it reads
// (wire.go). The revision mapping and the HTTP handlers are built on top of
// it elsewhere; it must not import node, httpapi or cmd, and holds no state.
//
// Every decoder reads at most the byte bound it is given, returns an
// *Error (400 bad_request, or 413 when the bound is exceeded) on bad input,
// and never panics. Numbers in document bodies are json.Number: converting
// them is the caller's choice.
//
// Server.Sync (client.go, over remote.go's bounded HTTP client) is the
// other direction: barrel as a one-shot replication client of a
// CouchDB-protocol server, pulling and pushing through the same revision
// records the handlers use, with checkpoints as _local/ documents on both
// sides; POST /couch/_replicate runs it for `barrel-peer couch-sync`.
//
// The directory js/ holds the Node.js harness of the protocol tests
// (PouchDB 9, express-pouchdb), installed by `make couch-deps`.
package couch
