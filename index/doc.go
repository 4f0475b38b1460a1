// Package index is barrel's automatic secondary index: every scalar leaf
// path of every document is indexed, so a query such as
// `/locations/country == "Germany"` needs no index declaration.
//
// It owns the index key layout and query execution, and nothing else: it
// does not open a store, write batches or know about databases. The caller
// (node) computes the keys to delete and to add with Diff and writes them in
// the same batch as the document, so a reader always sees its own writes;
// Search reads through the Reader interface this package declares
// (*datastore.Store satisfies it) and loads bodies through a Loader. It
// imports the key encoding from datastore/tuple and never datastore itself.
//
// # Keys
//
// One key per (path, value, document):
//
//	prefix | tuple.AppendString(path) | tuple.AppendValue(value) | tuple.AppendString(docID)
//
// with an empty value. Paths are RFC 6901 JSON pointers. Arrays are
// multikey: each element is indexed under the array's own path (objects in
// arrays extend it: /items/name), so a document may have several keys per
// path. Keys order by path, then value (null < false < true < numbers <
// strings; numbers as float64), then document id.
//
// # Queries
//
// A Query is an AND of Conds (==, !=, <, <=, >, >=, prefix, exists) with an
// optional OrderBy path, a Limit and a Cursor. Search validates it, scans the
// range of one driving condition (or of the OrderBy path), loads each
// candidate and checks every condition with Match, the same semantics as the
// index. See Search for the plan and Cond for comparison rules.
//
//	ids, cursor, err := index.Search(store, prefix, index.Query{
//		Where: []index.Cond{{Path: "/locations/country", Op: "==", Value: "Germany"}},
//	}, load)
//
// # Limits
//
// Integers beyond ±2^53 compare as float64. A query filters candidates by
// loading their bodies, so a selective driving condition matters: a query
// whose only narrow condition is "!=" scans the whole path. With OrderBy,
// documents lacking a scalar at that path are not returned, and a multikey
// document is placed at its smallest value (largest with Desc). Array
// positions ("/items/0") are not addressable: elements share their array's
// path.
package index
