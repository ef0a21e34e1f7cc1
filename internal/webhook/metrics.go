package webhook

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the ingress's Prometheus collectors. Source labels are only
// configured source names (unknown ones count as "unknown"), so senders
// cannot mint series.
type metrics struct {
	received          *prometheus.CounterVec // source
	verified          *prometheus.CounterVec // source
	signatureFailures *prometheus.CounterVec // source
	stale             *prometheus.CounterVec // source
	duplicates        *prometheus.CounterVec // source
	rateLimited       *prometheus.CounterVec // scope: source, ip
	shed              prometheus.Counter
	enqueueFailures   *prometheus.CounterVec // source
	enqueueSeconds    prometheus.Histogram
	secretReloads     *prometheus.CounterVec // outcome: reloaded, failed
	alerts            *prometheus.CounterVec // source, rule

	// Resolved once, as the hot path would otherwise look them up by
	// label on every request.
	receivedUnknown                                   prometheus.Counter
	rateLimitedIP, rateLimitedSource, rateLimitedConn prometheus.Counter
}

// sourceMetrics are one source's counters, resolved once.
type sourceMetrics struct {
	received, verified, signatureFailures, stale, duplicates, enqueueFailures prometheus.Counter
}

func (m *metrics) forSource(name string) sourceMetrics {
	return sourceMetrics{
		received:          m.received.WithLabelValues(name),
		verified:          m.verified.WithLabelValues(name),
		signatureFailures: m.signatureFailures.WithLabelValues(name),
		stale:             m.stale.WithLabelValues(name),
		duplicates:        m.duplicates.WithLabelValues(name),
		enqueueFailures:   m.enqueueFailures.WithLabelValues(name),
	}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	cv := func(name, help, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "telguard_webhook_" + name, Help: help}, []string{label})
	}
	m := &metrics{
		received:          cv("received_total", "Webhook requests received, by source.", "source"),
		verified:          cv("verified_total", "Webhooks whose signature and timestamp were valid, by source.", "source"),
		signatureFailures: cv("signature_failures_total", "Webhooks refused for a missing, malformed or wrong signature, by source.", "source"),
		stale:             cv("stale_total", "Webhooks with a valid signature but a timestamp outside tolerance (possible replays), by source.", "source"),
		duplicates:        cv("duplicates_total", "Webhooks whose event id was already queued, by source.", "source"),
		rateLimited:       cv("rate_limited_total", "Webhook requests refused with 429 by limit (source, ip), and connections closed at accept (connection).", "scope"),
		enqueueFailures:   cv("enqueue_failures_total", "Verified webhooks answered 503 because the queue did not take them, by source.", "source"),
		secretReloads:     cv("secret_reloads_total", "Times the webhook secret store was re-read after a change, by outcome (reloaded, failed).", "outcome"),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telguard_webhook_alerts_total",
			Help: "Alerts raised on a spike of signature failures or duplicates, by source and rule (at most one per window).",
		}, []string{"source", "rule"}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telguard_webhook_shed_total",
			Help: "Webhook requests refused with 503 because too many were in flight.",
		}),
		enqueueSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "telguard_webhook_enqueue_seconds",
			Help:    "Time to store a verified webhook durably in the queue.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	m.receivedUnknown = m.received.WithLabelValues("unknown")
	m.rateLimitedIP = m.rateLimited.WithLabelValues("ip")
	m.rateLimitedSource = m.rateLimited.WithLabelValues("source")
	m.rateLimitedConn = m.rateLimited.WithLabelValues("connection")
	for _, c := range []prometheus.Collector{m.received, m.verified, m.signatureFailures, m.stale,
		m.duplicates, m.rateLimited, m.enqueueFailures, m.shed, m.enqueueSeconds, m.secretReloads, m.alerts} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register metrics: %w (one webhook server per registry)", err)
			}
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// registerDedupe exposes the dedupe index's size.
func (m *metrics) registerDedupe(reg prometheus.Registerer, x *dedupeIndex) error {
	ids := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "telguard_webhook_dedupe_ids",
		Help: "Event ids the dedupe index remembers (about 16 bytes each in memory and on disk).",
	}, func() float64 { n, _ := x.stats(); return float64(n) })
	forgotten := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "telguard_webhook_dedupe_forgotten_total",
		Help: "Event ids forgotten before the dedupe window ended because the index reached its limit.",
	}, func() float64 { _, d := x.stats(); return float64(d) })
	for _, c := range []prometheus.Collector{ids, forgotten} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register webhook metrics: %w", err)
		}
	}
	return nil
}
