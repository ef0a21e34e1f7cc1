package deliver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Deliverer's Prometheus collectors. Destination labels
// are configured names only.
type metrics struct {
	deliveries *prometheus.CounterVec // destination, outcome
	replayed   prometheus.Counter
}

// Outcomes counted by telguard_webhook_deliveries_total: delivered,
// failed (retry scheduled or exhausted), rate_limited (429), gone (410),
// deferred (breaker open, no attempt spent), dead_lettered.
func newMetrics(reg prometheus.Registerer, d *Deliverer) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telguard_webhook_deliveries_total",
			Help: "Outbound webhook delivery outcomes, by destination and outcome.",
		}, []string{"destination", "outcome"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telguard_webhook_dlq_replayed_total",
			Help: "Dead letters moved back to the outbox by a replay.",
		}),
	}
	cs := []prometheus.Collector{m.deliveries, m.replayed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "telguard_webhook_dlq_size",
			Help: "Outbound deliveries given up on and kept for replay.",
		}, func() float64 { return float64(d.dead.len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "telguard_webhook_outbox_pending",
			Help: "Outbound deliveries waiting for their first attempt or a retry.",
		}, func() float64 { return float64(d.outbox.len()) }),
	}
	for _, dest := range d.order {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "telguard_webhook_destination_breaker_open",
			Help:        "1 while a destination's circuit breaker is open.",
			ConstLabels: prometheus.Labels{"destination": dest.Name},
		}, func() float64 { return b2f(dest.breaker.open()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name:        "telguard_webhook_destination_disabled",
				Help:        "1 while a destination is disabled after answering 410 Gone.",
				ConstLabels: prometheus.Labels{"destination": dest.Name},
			}, func() float64 { return b2f(dest.disabled.Load()) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
