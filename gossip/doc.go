// Package gossip announces a node's heads for each database over libp2p
// gossipsub and hands the node the announcements of other peers.
//
// # What it owns
//
// One gossipsub router per host, one topic per joined database (see Topic),
// a topic validator that rejects malformed announcements before gossipsub
// forwards them, the publish loop (debounce and heartbeat) and one reader
// goroutine per joined topic. It does not sync changes: an announcement only
// tells the node that a peer holds changes up to a sequence number; the node
// decides whether to pull them with the sync protocol.
//
// # Reach
//
// By default a node's announcements go to the peers it is connected to and
// are not forwarded (no gossipsub mesh, no lazy gossip; see Mesh): a peer
// that pulls the changes announces its own heads, so the news travels hop
// by hop with the changes. Mesh.Relay turns gossipsub's mesh forwarding on.
//
// # Use
//
//	g, err := gossip.New(ctx, h, gossip.Config{Logger: log, Registerer: reg})
//	_ = g.Join("places")
//	go g.Run(ctx)                      // the caller owns this goroutine
//	g.Notify("places", gossip.Announcement{Seq: 7, Digest: d, Changes: 7})
//	for r := range g.Announcements() { … r.From, r.Ann … }
//
// # Wire format
//
// A message's data is one Announcement encoded as a deterministic CBOR array
// [db, seq, digest, changes] (see Announcement). Messages are signed by their
// author (gossipsub StrictSign), so Received.From is the author, not the
// forwarder. The topic name carries a version suffix ("/heads/1").
//
// # Limits
//
// Announcements are best effort: gossipsub may drop them, and the
// Announcements channel drops the oldest entry when the node falls behind
// (counted by barrel_gossip_dropped_total). The heartbeat re-announces every
// joined database so a lost announcement is repaired within one Heartbeat.
// The router lives until the context given to New ends.
package gossip
