package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telguard/telguard/internal/clock"
	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/store"
)

// engineCollector reports the engine's and the writer's state at scrape
// time, so the decision path never touches a gauge.
type engineCollector struct {
	eng    *engine.Engine
	writer *store.Writer
	clock  clock.Clock

	inFlight, bans, suspended, quotaSecs, quotaMoney *prometheus.Desc
	queued, written, dropped, shed, writeErrors      *prometheus.Desc
}

func newEngineCollector(e *engine.Engine, w *store.Writer, c clock.Clock) *engineCollector {
	t := []string{"tenant"}
	return &engineCollector{
		eng: e, writer: w, clock: c,
		inFlight:    prometheus.NewDesc("telguard_calls_in_flight", "Calls allowed and not yet ended.", t, nil),
		bans:        prometheus.NewDesc("telguard_bans", "Source bans in force.", t, nil),
		suspended:   prometheus.NewDesc("telguard_suspended_accounts", "Accounts whose international calling is suspended.", t, nil),
		quotaSecs:   prometheus.NewDesc("telguard_quota_international_seconds", "International seconds used today (tenant's local day), all accounts.", t, nil),
		quotaMoney:  prometheus.NewDesc("telguard_quota_international_money", "International spend today (tenant's local day, tenant currency), all accounts.", t, nil),
		queued:      prometheus.NewDesc("telguard_store_queue_length", "State changes waiting to be written.", nil, nil),
		written:     prometheus.NewDesc("telguard_store_changes_written_total", "State changes written to the store.", nil, nil),
		dropped:     prometheus.NewDesc("telguard_store_changes_dropped_total", "State changes the store could not take after retries.", nil, nil),
		shed:        prometheus.NewDesc("telguard_decisions_log_shed_total", "Decision-log records not written because the store fell behind.", nil, nil),
		writeErrors: prometheus.NewDesc("telguard_store_write_errors_total", "Failed store writes, retries included.", nil, nil),
	}
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inFlight, c.bans, c.suspended, c.quotaSecs, c.quotaMoney, c.queued, c.written, c.dropped, c.shed, c.writeErrors} {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.eng.Stats(c.clock.Now()) {
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(s.CallsInFlight), s.Tenant)
		ch <- prometheus.MustNewConstMetric(c.bans, prometheus.GaugeValue, float64(s.Bans), s.Tenant)
		ch <- prometheus.MustNewConstMetric(c.suspended, prometheus.GaugeValue, float64(s.Suspensions), s.Tenant)
		ch <- prometheus.MustNewConstMetric(c.quotaSecs, prometheus.GaugeValue, s.QuotaSeconds, s.Tenant)
		ch <- prometheus.MustNewConstMetric(c.quotaMoney, prometheus.GaugeValue, s.QuotaMoney, s.Tenant)
	}
	w := c.writer.Stats()
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(w.Queued))
	ch <- prometheus.MustNewConstMetric(c.written, prometheus.CounterValue, float64(w.Changes))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(w.Dropped))
	ch <- prometheus.MustNewConstMetric(c.shed, prometheus.CounterValue, float64(w.Shed))
	ch <- prometheus.MustNewConstMetric(c.writeErrors, prometheus.CounterValue, float64(w.Errors))
}
