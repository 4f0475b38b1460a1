// Package sync is barrel's replication protocol: a pull protocol over libp2p
// streams (ProtocolID "/barrel/sync/1.0.0") with per-peer checkpoints, and
// its version 2 (ReconProtocolID "/barrel/sync/2.0.0"), range-based set
// reconciliation of the documents' heads, tried first on a new connection
// and on anti-entropy.
//
// Importers name it bsync (it shares its name with the standard library's
// sync, which this package itself imports under its own name).
//
// # What it owns
//
// Frames and messages on the wire (wire.go, conn.go), the server side of a
// session (Server), the client side (Client.Pull), and the Replicator that
// decides when to pull: on a new connection, on Trigger (an announcement
// ahead of the checkpoint, from gossip), and on a periodic anti-entropy
// tick. It does not store anything: the node implements Store (store.go)
// and sync never imports node. It does not check signatures or permissions
// to write: Store.Apply does. Permission to read is Store.AuthorizeRead,
// a required method (of BlobStore too) asked before any session or blob
// is served.
//
// # A session
//
// The client sends Hello{db, since: its checkpoint for this server,
// filter}. The server lists up to BatchSize feed entries after since (IDs);
// the client asks Has, requests the bodies it lacks (Want) and at once the
// next batch (Next), checks every body's content id against the id listed,
// and applies them in feed order (which is causal) in a second goroutine
// while it fetches the next batch; the checkpoint moves to a batch's Last
// once the whole batch is applied. Missing parents reported by Apply
// (*MissingError) are fetched by id, then the batch is listed again from
// the checkpoint. The protocol is specified in docs/sync-protocol.md.
//
// # Reconciliation (version 2)
//
// A Store that also implements ReconStore keeps a ReconIndex per
// database: one item per document, (id, heads), with the fingerprints
// (count and additive hash) of key ranges maintained as documents change.
// The client (Client.Reconcile) sends its whole set's fingerprint; the
// server answers in sync, or with the fingerprints of 16 sub-ranges; the
// client asks about the sub-ranges that differ, recursively, lists its
// items at small leaves, and fetches the heads of the documents the
// server lists and their missing history by id (Want), then moves its
// checkpoint to the server's feed sequence. The Replicator reconciles on
// a new connection and on the anti-entropy tick (TriggerAll), and pulls
// from the checkpoint on an announcement (Trigger); it falls back to
// version 1 when the remote does not speak version 2, for a partial view,
// for an empty replica, and when it holds a checkpoint of the server
// (listing the feed after it costs less than locating what it changed):
// so version 2 walks the sets for a new pairing or a lost checkpoint, and
// is the one-round-trip in-sync check otherwise.
//
// # Use
//
//	r := bsync.New(host, store, bsync.Config{Logger: log, Registerer: reg})
//	go r.Run(ctx)           // serves and pulls until ctx is done
//	r.Trigger(peerID, "db") // e.g. on an announcement
//	r.Status()              // per (peer, db) state for the HTTP API
//
// # Limits, stated honestly
//
//   - Every frame is at most Config.MaxFrameBytes (default 4 MiB), checked
//     before allocating, and reserved from the stream's libp2p resource
//     scope while it is read or written. A change whose encoding does not
//     fit a frame cannot be served (the server answers too_large): the node
//     must keep changes below the frame size, or raise it.
//   - Every read and write has a deadline (Config.StreamTimeout); a peer
//     that stops reading or sending is cut off, and a server session
//     waits at most Config.IdleTimeout for the client's next message.
//     Sessions are bounded (Config.MaxStreams, a slot taken only after the
//     Hello was read and the peer authorized; Config.MaxPeerStreams per
//     peer, counted from the stream's opening) and so are pulls
//     (Config.MaxPulls) and queued triggers (Config.MaxQueued). A session's
//     length is not bounded otherwise: a client that keeps asking keeps one
//     session slot.
//   - A pull that keeps failing is logged once, then every
//     Config.FailLogEvery with the count, and its recovery once.
//   - The server reads bodies 16 at a time from the Store; the client
//     decodes and applies them one frame at a time, holding at most three
//     frames (one applied, one handed over, one decoded). When Apply
//     reports missing parents the client reads and drops the answers still
//     due, fetches the parents, and lists the batch again from its
//     checkpoint: holding the rest would make memory depend on the peer.
//     Parents it fetches are held until applied, at most
//     Config.MaxPendingBytes.
//   - Replicator.Status reports a running pull's Progress (checkpoint
//     reached, changes applied, a rate over the last 10 s from 16 samples)
//     but not where the remote feed ends: the protocol tells that only in
//     the last IDs batch, so the caller estimates it (node uses the
//     sequence the peer announced over gossip).
//   - Version 1 lists ids in full after the checkpoint. Version 2 bounds
//     a session: at most MaxReconRanges ranges per request (and 60 KiB),
//     MaxLeafItems items per leaf, MaxEntryHeads heads per listed
//     document, MaxReconRounds rounds and 16,384 pending ranges, then it
//     stops and the client pulls with version 1; the missing history it
//     fetches by id is bounded by Config.MaxMissingRounds generations and
//     Config.MaxPendingBytes. A difference of d documents in a set of n
//     costs about ceil(log16 n) + 2 round trips and 150-200 bytes per
//     differing document at n = 100,000 (docs/sync-protocol.md).
//   - Fingerprints on the wire are 32 bits, salted per session: a
//     difference hidden by a collision (2^-32 per comparison) is found by
//     the next session. Reconciliation does not serve partial views
//     (Filter): those pull with version 1.
//   - The ReconIndex lives in memory (about 100 bytes per document at
//     1,000,000 documents, see docs/benchmarks.md W5): the store builds it
//     when a database opens, which costs a scan of the documents.
package sync
