package datastore

import "github.com/barrel-db/barrel/datastore/tuple"

// The key encoding lives in package tuple so that index can share it
// without importing the storage engine; these forwarders keep it reachable
// as datastore.AppendString and so on. See package tuple for the formats.

// AppendString appends the order-preserving encoding of s (tuple.AppendString).
func AppendString(b []byte, s string) []byte { return tuple.AppendString(b, s) }

// ReadString decodes a string from the front of b (tuple.ReadString). Errors
// wrap ErrCorruptKey.
func ReadString(b []byte) (s string, rest []byte, err error) { return tuple.ReadString(b) }

// AppendUint64 appends v as 8 big-endian bytes (tuple.AppendUint64).
func AppendUint64(b []byte, v uint64) []byte { return tuple.AppendUint64(b, v) }

// ReadUint64 decodes 8 big-endian bytes from the front of b
// (tuple.ReadUint64). Errors wrap ErrCorruptKey.
func ReadUint64(b []byte) (v uint64, rest []byte, err error) { return tuple.ReadUint64(b) }

// AppendValue appends the order-preserving encoding of a JSON scalar
// (tuple.AppendValue). Integers beyond ±2^53 lose exactness in ordering.
// Errors wrap ErrBadValue.
func AppendValue(b []byte, v any) ([]byte, error) { return tuple.AppendValue(b, v) }

// ReadValue decodes a JSON scalar from the front of b (tuple.ReadValue).
// Errors wrap ErrCorruptKey.
func ReadValue(b []byte) (v any, rest []byte, err error) { return tuple.ReadValue(b) }
