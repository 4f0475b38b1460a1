package gossip

import "github.com/prometheus/client_golang/prometheus"

// Reasons a message is rejected, the values of barrel_gossip_rejected_total's
// reason label.
const (
	reasonSize   = "size"
	reasonDecode = "decode"
	reasonDB     = "db"
	reasonDigest = "digest"
)

// metrics are the package's collectors, registered on Config.Registerer.
type metrics struct {
	sent     prometheus.Counter
	received prometheus.Counter
	rejected *prometheus.CounterVec // by reason
	dropped  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "barrel_gossip_announcements_sent_total",
			Help: "Announcements published, after debouncing and by the heartbeat.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "barrel_gossip_announcements_received_total",
			Help: "Valid announcements received from other peers.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_gossip_rejected_total",
			Help: "Messages rejected by the topic validator, by reason (size, decode, db, digest).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "barrel_gossip_dropped_total",
			Help: "Received announcements dropped because the Announcements channel was full.",
		}),
	}
	for _, c := range []prometheus.Collector{m.sent, m.received, m.rejected, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
