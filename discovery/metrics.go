package discovery

import "github.com/prometheus/client_golang/prometheus"

// Sources of a found peer, the values of the source label.
const (
	sourceMDNS      = "mdns"
	sourceDHT       = "dht"
	sourceBootstrap = "bootstrap"
	sourceManual    = "manual"
)

// metrics are the package's collectors, registered on Config.Registerer.
type metrics struct {
	found *prometheus.CounterVec // by source
	dials *prometheus.CounterVec // by result
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		found: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_discovery_peers_found_total",
			Help: "Peers found, by source (mdns, dht, bootstrap, manual).",
		}, []string{"source"}),
		dials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_discovery_dials_total",
			Help: "Dials made by discovery, by result (ok, error).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.found, m.dials} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
