package discovery

import (
	"context"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// record is a known peer's value in the datastore, under key "/<peer id>":
// the CBOR array [[addr bytes…]].
type record struct {
	_     struct{} `cbor:",toarray"`
	Addrs [][]byte
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  4,
		MaxArrayElements: 2 * maxAddrs,
		MaxMapPairs:      16,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

func peerKey(p peer.ID) ds.Key { return ds.NewKey(p.String()) }

// store persists p's addresses.
func (d *Discovery) store(ctx context.Context, p peer.ID, addrs []multiaddr.Multiaddr) error {
	var r record
	for _, a := range addrs {
		r.Addrs = append(r.Addrs, a.Bytes())
	}
	b, err := encMode.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode peer record: %w", err)
	}
	if err := d.cfg.Datastore.Put(ctx, peerKey(p), b); err != nil {
		return fmt.Errorf("store peer record: %w", err)
	}
	return nil
}

// load reads every persisted known peer. A record that does not decode is
// skipped and logged: the store is ours, but a bad record must not stop
// the node.
func (d *Discovery) load(ctx context.Context) ([]peer.AddrInfo, error) {
	res, err := d.cfg.Datastore.Query(ctx, query.Query{})
	if err != nil {
		return nil, fmt.Errorf("query known peers: %w", err)
	}
	defer func() { _ = res.Close() }() // read only: nothing to lose
	var out []peer.AddrInfo
	for e := range res.Next() {
		if e.Error != nil {
			return nil, fmt.Errorf("read known peers: %w", e.Error)
		}
		ai, err := decodeRecord(e.Key, e.Value)
		if err != nil {
			d.log.Warn("known peer record skipped", "key", e.Key, "err", err)
			continue
		}
		out = append(out, ai)
	}
	return out, nil
}

// decodeRecord parses the record stored under key.
func decodeRecord(key string, value []byte) (peer.AddrInfo, error) {
	id, err := peer.Decode(ds.RawKey(key).BaseNamespace())
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("peer id: %w", err)
	}
	var r record
	if err := decMode.Unmarshal(value, &r); err != nil {
		return peer.AddrInfo{}, fmt.Errorf("decode: %w", err)
	}
	ai := peer.AddrInfo{ID: id}
	for _, b := range r.Addrs {
		a, err := multiaddr.NewMultiaddrBytes(b)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("address: %w", err)
		}
		ai.Addrs = append(ai.Addrs, a)
	}
	return ai, nil
}
