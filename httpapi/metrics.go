package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's own collectors, registered beside the node's
// (node.Node.Registerer) so /metrics shows them.
type metrics struct {
	rateLimited prometheus.Counter // requests refused with 429
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{rateLimited: prometheus.NewCounter(prometheus.CounterOpts{Name: "barrel_http_rate_limited_total",
		Help: "HTTP requests refused with 429 rate_limited: their client was over its request budget."})}
	if err := reg.Register(m.rateLimited); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) { // A second server on the same node shares the first one's.
			m.rateLimited = are.ExistingCollector.(prometheus.Counter)
		}
	}
	return m
}

// rateLimitLogEvery bounds the log lines of refused requests: one per
// interval, with the client of that one.
const rateLimitLogEvery = 10 * time.Second

// logRateLimited counts a refused request and logs it at a bounded rate
// (barrel_http_rate_limited_total counts them all).
func (s *server) logRateLimited(r *http.Request, e *rateLimitedError) {
	s.met.rateLimited.Inc()
	s.rlLog.Do(func() {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "client over its request budget: answering 429",
			slog.String("client", e.client), slog.Float64("per_second", e.perSecond), slog.Int("burst", e.burst))
	})
}
