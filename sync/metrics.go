package sync

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the sync protocol's collectors. One set is shared by the
// client, server and replicator built from one Config.
type metrics struct {
	sessions *prometheus.CounterVec   // role, result
	changes  prometheus.Counter       // changes applied by pulls
	bytes    prometheus.Counter       // frame bytes received by pulls
	seconds  *prometheus.HistogramVec // role
	slowed   prometheus.Counter       // seconds server sessions waited on their peer's budget
	recons   *prometheus.CounterVec   // client reconciliations by result
	reconB   prometheus.Counter       // bytes of reconciliations, bodies not counted
	bodyB    prometheus.Counter       // bytes of change bodies received by pulls
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_sync_sessions_total",
			Help: "Sync sessions by role (client, server) and result.",
		}, []string{"role", "result"}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "barrel_sync_changes_pulled_total",
			Help: "Changes pulled from peers that were new here.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "barrel_sync_bytes_received_total",
			Help: "Frame bytes received by pulls.",
		}),
		slowed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "barrel_sync_budget_wait_seconds_total",
			Help: "Time server sessions waited because their peer was over its budget of bodies or bytes per second.",
		}),
		recons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_sync_reconciliations_total",
			Help: "Reconciliations (protocol version 2) this node ran as a client, by result: in_sync (one round trip), reconciled, fallback (version 1 was used instead), error.",
		}, []string{"result"}),
		reconB: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "barrel_sync_recon_bytes_total",
			Help: "Frame bytes of reconciliations run as a client, both ways, change bodies not counted: answers (Diff) received and requests sent.",
		}),
		bodyB: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "barrel_sync_body_bytes_received_total",
			Help: "Bytes of the change bodies pulls received (part of barrel_sync_bytes_received_total).",
		}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "barrel_sync_session_seconds",
			Help:    "Duration of sync sessions by role.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"role"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	m.sessions = register(reg, m.sessions, &errs)
	m.changes = register(reg, m.changes, &errs)
	m.bytes = register(reg, m.bytes, &errs)
	m.seconds = register(reg, m.seconds, &errs)
	m.slowed = register(reg, m.slowed, &errs)
	m.recons = register(reg, m.recons, &errs)
	m.reconB = register(reg, m.reconB, &errs)
	m.bodyB = register(reg, m.bodyB, &errs)
	return m, errors.Join(errs...)
}

// register registers c, or returns the collector already registered under
// its name (a client and a server built separately share one registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errs *[]error) C {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	if err != nil {
		*errs = append(*errs, err)
	}
	return c
}

func (m *metrics) session(role, result string, seconds float64) {
	m.sessions.WithLabelValues(role, result).Inc()
	m.seconds.WithLabelValues(role).Observe(seconds)
}

func (m *metrics) throttled(seconds float64) { m.slowed.Add(seconds) }
