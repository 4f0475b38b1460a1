package blobstore

import "errors"

// ErrBadDigest: a digest string that is not "sha256-" and 64 hex digits.
// node reports it as an InvalidError (HTTP 400).
var ErrBadDigest = errors.New("bad digest")

// ErrCorrupt: a stored blob record whose fields disagree.
var ErrCorrupt = errors.New("corrupt blob record")

// ErrMismatch: content whose SHA-256 differs from the digest announced.
// node's ErrDigestMismatch is this error.
var ErrMismatch = errors.New("digest mismatch")
