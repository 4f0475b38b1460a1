// Package datastore is barrel's storage edge: it opens the Pebble-backed
// store in a data directory and gives the engine atomic batches, ordered
// iteration over binary keys, and an order-preserving tuple encoding for
// building those keys.
//
// # Why raw Pebble and not only go-datastore
//
// The store is opened through the IPFS project's go-datastore adapter
// (github.com/ipfs/go-ds-pebble), and the adapter's *pebble.DB is used
// directly for everything the engine does. go-datastore's Key type cleans
// its input as a path (it collapses "//", strips trailing slashes, and
// forces a leading "/"), and its Query supports only prefix scans with no
// seek and no exclusive upper bound. Neither can express ordered binary keys
// such as "database, index path, encoded value, document id", nor a range
// scan that resumes strictly after a cursor key. Going through Pebble keeps
// one store, one WAL and one atomic batch for documents, changes, the feed
// and the index, while Datastore still hands out a go-datastore view (under
// its own key namespace) for libp2p components such as the peerstore or the
// DHT, which expect a ds.Batching.
//
// # Durability
//
// go-ds-pebble writes without fsync unless told otherwise. Store commits
// every batch with pebble.Sync under DurabilitySync (the default), so a
// batch whose Commit returned survives kill -9 and power loss
// (Invariant 2 in DESIGN.md). DurabilityBatch writes the WAL without fsync:
// a process crash loses nothing the OS already has, but a power loss or
// kernel crash can lose the most recent commits (never part of a batch:
// Pebble's WAL replay stops at the first torn record).
//
// # A damaged or full store
//
// Open refuses, changing and deleting nothing, a store it cannot open as
// it was (ErrCorrupt: a damaged MANIFEST, damage in the newest WAL followed
// by acknowledged records, Pebble files without a MANIFEST) and one another
// process holds (*LockedError, with its pid). A read of a damaged sstable
// block returns ErrCorrupt and is counted in Health; the rest keeps
// serving. A commit is refused with ErrNoSpace while the disk has less
// than Config.ReserveBytes free. Pebble's log goes through slog at a
// bounded rate. docs/design.md ("A damaged store") says why each is so.
//
// # Keys
//
// AppendString, AppendUint64 and AppendValue build keys whose bytes.Compare
// order is the order of the encoded tuples; ReadString, ReadUint64 and
// ReadValue decode them and return an error (never panic) on malformed input.
// They forward to package tuple, which index shares without depending on
// the storage engine.
//
// # Use
//
//	s, err := datastore.Open(dir, datastore.Config{})
//	if err != nil { ... }
//	defer s.Close()
//	b := s.NewBatch()
//	b.Set(key, value)
//	if err := b.Commit(); err != nil { ... }
//	err = s.Range(lo, datastore.PrefixEnd(lo), false, func(k, v []byte) (bool, error) { ... })
//
// # Limits
//
// Store is safe for concurrent use; a Batch and an Iter are not. Store
// methods must not race with Close. Numbers in AppendValue are ordered as
// float64, so integers beyond ±2^53 lose exactness in ordering.
package datastore
