package couch

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the endpoint's collectors, registered beside the node's
// (node.Node.Registerer), so /metrics shows them.
type metrics struct {
	requests *prometheus.CounterVec // route, code
	written  *prometheus.CounterVec // db: revisions written by clients (pushed or edited)
	sent     *prometheus.CounterVec // db: document revisions sent to clients

	connector       *prometheus.CounterVec // connector, direction: revisions moved
	connectorErrors *prometheus.CounterVec // connector: failed rounds
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "barrel_couch_requests_total",
			Help: "Requests to the CouchDB-protocol endpoint, by route and status code."}, []string{"route", "code"}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "barrel_couch_docs_written_total",
			Help: "Document revisions CouchDB-protocol clients wrote (pushed or edited), by database."}, []string{"db"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "barrel_couch_docs_sent_total",
			Help: "Document revisions sent to CouchDB-protocol clients (_bulk_get, open_revs), by database."}, []string{"db"}),
		connector: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "barrel_couch_connector_docs_total",
			Help: "Document revisions a connector moved, by connector and direction (pull, push)."}, []string{"connector", "direction"}),
		connectorErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "barrel_couch_connector_errors_total",
			Help: "Connector rounds that failed (retried with backoff), by connector."}, []string{"connector"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.written, m.sent, m.connector, m.connectorErrors} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				// A second Server on the same node shares the first one's.
				switch c {
				case m.requests:
					m.requests = are.ExistingCollector.(*prometheus.CounterVec)
				case m.written:
					m.written = are.ExistingCollector.(*prometheus.CounterVec)
				case m.sent:
					m.sent = are.ExistingCollector.(*prometheus.CounterVec)
				case m.connector:
					m.connector = are.ExistingCollector.(*prometheus.CounterVec)
				case m.connectorErrors:
					m.connectorErrors = are.ExistingCollector.(*prometheus.CounterVec)
				}
			}
		}
	}
	return m
}

func (m *metrics) request(route string, code int) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}
