// Package tuple is the order-preserving key encoding shared by datastore,
// index and node: strings, big-endian integers and JSON scalars appended
// to a byte slice so that bytes.Compare of two encoded tuples orders them
// element by element.
//
// It imports only the standard library and does no I/O, so that index (which
// must not depend on the storage engine) and datastore (which re-exports these
// functions for its callers) can share one definition of key order.
//
// Encodings:
//
//   - AppendString: each 0x00 byte becomes 0x00 0xFF and the string ends with
//     0x00 0x01, so encodings sort like the strings and none is a prefix of
//     another.
//   - AppendUint64: 8 bytes big-endian.
//   - AppendValue: a type tag (null < false < true < number < string) then,
//     for numbers, 8 order-preserving float64 bytes (int64 and float64 alike;
//     -0 normalized to 0), for strings the AppendString encoding.
//
// Limits: numbers are ordered as float64, so integers beyond ±2^53 lose
// exactness (distinct large integers may encode equal). NaN is rejected.
// The Read functions return an error wrapping ErrCorrupt on malformed
// input and never panic; they allocate at most the length of their input.
//
// Use:
//
//	k := tuple.AppendString(prefix, path)
//	k, err := tuple.AppendValue(k, value)
//	path, rest, err := tuple.ReadString(k[len(prefix):])
package tuple
