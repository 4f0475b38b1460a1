// Package layout is the on-disk format of a barrel node: the key of every
// record in the store and the encoding of the records that are not crdt
// values themselves (feed entries, document records, fold records,
// checkpoints, snapshot progress, database metadata), and the store format
// number that names them all.
//
// It owns the bytes, nothing else: it does no I/O, holds no state and
// knows nothing of databases, writers or peers beyond the ids it is given.
// Every change to what it produces is a change of store format: raise
// Format, and give node a migration from the formats before.
package layout
