// Package acl is barrel's access-control policy: what a database's _acl
// document says (Decode, Body), who may read and write under it (MayRead,
// MayWrite at a change's clock, Admin) and whether a change to the _acl
// document itself may be applied (CheckChange), with the rejection
// reasons those decisions give.
//
// It decides, nothing else: it reads no store, does no I/O, reads no
// clock and does not log. The caller (node) reads the committed _acl
// document and the database's owner, loads the ancestors of a change,
// picks the time of a revocation, records rejections and counts them.
// Every decision is a function of its arguments, so every peer given the
// same changes decides the same.
//
// Limits: a Policy is a plain value with no lock; share one only to read.
// The time package is used to parse and format RFC 3339 revocation times,
// never to read the clock (node/deps_test.go checks it).
package acl
