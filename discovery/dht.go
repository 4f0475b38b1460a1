package discovery

import (
	"fmt"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// dhtPrefix keeps our DHT apart from the public IPFS one (/ipfs/kad/1.0.0):
// a peer that bootstraps from an IPFS node does not join the public DHT.
const dhtPrefix = "/barrel"

// newDHT starts the DHT: seeded only from Config.Bootstrap, no values (only
// provider records, which rendezvous uses), and, unless AllowPrivateAddrs,
// the public-internet filters on queries, the routing table and stored
// addresses.
func (d *Discovery) newDHT() (*dht.IpfsDHT, error) {
	mode := dht.ModeAutoServer
	if d.cfg.DHTServer {
		mode = dht.ModeServer
	}
	opts := []dht.Option{
		dht.ProtocolPrefix(dhtPrefix),
		dht.Mode(mode),
		dht.BootstrapPeers(d.boot...),
		dht.DisableValues(),
	}
	if !d.cfg.AllowPrivateAddrs {
		opts = append(opts,
			dht.QueryFilter(dht.PublicQueryFilter),
			dht.RoutingTableFilter(dht.PublicRoutingTableFilter),
			dht.AddressFilter(func(addrs []ma.Multiaddr) []ma.Multiaddr {
				return ma.FilterAddrs(addrs, manet.IsPublicAddr)
			}),
		)
	}
	k, err := dht.New(d.h, opts...)
	if err != nil {
		return nil, fmt.Errorf("start dht: %w", err)
	}
	return k, nil
}
