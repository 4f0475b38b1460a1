// Package discovery finds peers and keeps connections to the ones we know.
//
// # What it owns
//
// mDNS on the LAN, a Kademlia DHT (its own protocol prefix, /barrel/kad,
// bootstrapped only from Config.Bootstrap) with a rendezvous namespace per
// database, the set of known peers (persisted in Config.Datastore) and the
// redial loop that reconnects them with exponential backoff. It does not
// decide what to sync with a peer: it only makes and keeps connections.
//
// A peer becomes known when Connect dials it, or when a peer found by mDNS,
// by rendezvous or in Config.Bootstrap has been connected. Known peers are
// protected in the host's connection manager so it does not trim what the
// redial loop would restore.
//
// # Use
//
//	d, err := discovery.New(h, discovery.Config{DHT: true, Bootstrap: addrs, Datastore: dstore})
//	d.Advertise("barrel/db/places")
//	go d.Run(ctx)                      // the caller owns this goroutine
//	info, err := d.Connect(ctx, addr)  // addr ends in /p2p/<id>
//
// # Network rules
//
// Nothing here dials an address that did not come from the configuration,
// the user, the LAN (mDNS) or the DHT seeded from the configuration: there
// is no built-in bootstrap list. By default the DHT only accepts public
// addresses; Config.AllowPrivateAddrs lifts that for LANs and tests.
//
// # Limits
//
// Rendezvous advertises and looks up every namespace each Config.Rendezvous,
// which is chatty on a large DHT. A peer whose connections keep dropping right
// after a successful dial is redialed every Backoff.Min.
package discovery
