// Package ui is the web dashboard: a few static files (HTML, JavaScript
// modules, CSS) embedded in the binary and served under /ui/ by Handler.
//
// It owns no data and no state: the page reads and writes everything
// through the HTTP API, with the bearer token the user types in, so the
// files themselves are served without the token. It must not import node
// or httpapi: the only contract between the page and the daemon is the
// public HTTP API (README.md), the same one every other client uses.
//
// Use:
//
//	mux.Handle("/ui/", ui.Handler())
//
// Limits: no build step and no framework (docs/design.md, Dashboard), so
// the pages are plain DOM code; they need a browser with ES modules and
// fetch streams (every current one).
package ui
