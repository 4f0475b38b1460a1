package sync

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// blobMetrics are the blob protocol's collectors, shared by the server and
// the client built on one registry.
type blobMetrics struct {
	served   *prometheus.CounterVec // result
	fetched  *prometheus.CounterVec // result
	sent     prometheus.Counter
	received prometheus.Counter
}

func newBlobMetrics(reg prometheus.Registerer) (*blobMetrics, error) {
	m := &blobMetrics{
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_sync_blob_served_total",
			Help: "Blob transfers served to peers, by result.",
		}, []string{"result"}),
		fetched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_sync_blob_fetches_total",
			Help: "Blob fetches from peers, by result (ok, no_blob, digest_mismatch, bad_peer, timeout, ...).",
		}, []string{"result"}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "barrel_sync_blob_bytes_sent_total",
			Help: "Blob content bytes sent to peers.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "barrel_sync_blob_bytes_received_total",
			Help: "Blob content bytes received from peers.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	m.served = register(reg, m.served, &errs)
	m.fetched = register(reg, m.fetched, &errs)
	m.sent = register(reg, m.sent, &errs)
	m.received = register(reg, m.received, &errs)
	return m, errors.Join(errs...)
}
