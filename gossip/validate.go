package gossip

import (
	"context"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// validator returns the topic validator for db. It rejects a message that
// is bigger than MaxMessageBytes, does not decode as an Announcement, carries
// a digest of the wrong length or names another database; gossipsub then
// neither delivers nor forwards it. On success the decoded Announcement is
// left in msg.ValidatorData for the reader.
//
// Invariant 4 (DESIGN.md): no input from a peer can crash the node; the size
// check comes before decoding and the decoder's limits bound its work.
func (g *Gossip) validator(db string) pubsub.ValidatorEx {
	return func(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		data := msg.GetData()
		reason := ""
		var a Announcement
		if len(data) > g.cfg.MaxMessageBytes {
			reason = reasonSize
		} else {
			var err error
			a, err = unmarshal(data)
			switch {
			case err != nil:
				reason = reasonDecode
			case len(a.Digest) != DigestBytes:
				reason = reasonDigest
			case a.DB != db:
				reason = reasonDB
			}
		}
		if reason != "" {
			g.m.rejected.WithLabelValues(reason).Inc()
			g.log.Debug("announcement rejected", "db", db, "peer", from, "reason", reason, "bytes", len(data))
			return pubsub.ValidationReject
		}
		msg.ValidatorData = a
		return pubsub.ValidationAccept
	}
}
