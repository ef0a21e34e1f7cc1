package daemon

import (
	"sync"
	"time"

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
	learned, warm, networks, evicted, netsEvicted    *prometheus.Desc
	model                                            *prometheus.Desc
	recentAccts, recentCalls, noSource, ringsDrop    *prometheus.Desc
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
		shed:        prometheus.NewDesc("telguard_decisions_log_shed_total", "Decision-log and call-history records not written because the store fell behind.", nil, nil),
		writeErrors: prometheus.NewDesc("telguard_store_write_errors_total", "Failed store writes, retries included.", nil, nil),
		learned:     prometheus.NewDesc("telguard_baseline_accounts", "Accounts with a learned behaviour baseline.", t, nil),
		warm:        prometheus.NewDesc("telguard_baseline_warm_accounts", "Accounts whose own baseline is warm (judges them).", t, nil),
		networks:    prometheus.NewDesc("telguard_baseline_networks", "Source networks the tenant's calls were learned from.", t, nil),
		evicted:     prometheus.NewDesc("telguard_baseline_accounts_evicted_total", "Account baselines dropped because the tenant reached its bound (least recently active first).", t, nil),
		netsEvicted: prometheus.NewDesc("telguard_baseline_networks_evicted_total", "Source networks dropped because the tenant reached its bound (least recently used first).", t, nil),
		model:       prometheus.NewDesc("telguard_anomaly_model_loaded", "1 when an anomaly model is in force, else 0.", nil, nil),
		recentAccts: prometheus.NewDesc("telguard_baseline_recent_accounts", "Accounts with recent calls held for the pattern detectors, the deviation rule and the score.", t, nil),
		recentCalls: prometheus.NewDesc("telguard_baseline_recent_calls", "Recent calls held for those accounts (at most 128 an account).", t, nil),
		noSource:    prometheus.NewDesc("telguard_baseline_calls_without_source_total", "Outbound attempts baseline.new_network could not judge because they carried no source address.", t, nil),
		ringsDrop:   prometheus.NewDesc("telguard_baseline_rings_dropped_total", "Risky inbound rings not remembered for Wangiri callbacks because too many accounts had recent calls.", t, nil),
	}
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inFlight, c.bans, c.suspended, c.quotaSecs, c.quotaMoney, c.queued, c.written, c.dropped, c.shed, c.writeErrors,
		c.learned, c.warm, c.networks, c.evicted, c.netsEvicted, c.model, c.recentAccts, c.recentCalls, c.noSource, c.ringsDrop} {
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
	for _, b := range c.eng.AllBaselines() {
		ch <- prometheus.MustNewConstMetric(c.learned, prometheus.GaugeValue, float64(b.Accounts), b.Tenant)
		ch <- prometheus.MustNewConstMetric(c.warm, prometheus.GaugeValue, float64(b.Warm), b.Tenant)
		ch <- prometheus.MustNewConstMetric(c.networks, prometheus.GaugeValue, float64(b.Networks), b.Tenant)
		ch <- prometheus.MustNewConstMetric(c.evicted, prometheus.CounterValue, float64(b.Evicted), b.Tenant)
		ch <- prometheus.MustNewConstMetric(c.netsEvicted, prometheus.CounterValue, float64(b.NetworksEvicted), b.Tenant)
		ch <- prometheus.MustNewConstMetric(c.recentAccts, prometheus.GaugeValue, float64(b.RecentAccounts), b.Tenant)
		ch <- prometheus.MustNewConstMetric(c.recentCalls, prometheus.GaugeValue, float64(b.RecentCalls), b.Tenant)
		ch <- prometheus.MustNewConstMetric(c.noSource, prometheus.CounterValue, float64(b.NoSourceIP), b.Tenant)
		ch <- prometheus.MustNewConstMetric(c.ringsDrop, prometheus.CounterValue, float64(b.RingsDropped), b.Tenant)
	}
	loaded := 0.0
	if c.eng.Model() != nil {
		loaded = 1
	}
	ch <- prometheus.MustNewConstMetric(c.model, prometheus.GaugeValue, loaded)
	w := c.writer.Stats()
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(w.Queued))
	ch <- prometheus.MustNewConstMetric(c.written, prometheus.CounterValue, float64(w.Changes))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(w.Dropped))
	ch <- prometheus.MustNewConstMetric(c.shed, prometheus.CounterValue, float64(w.Shed))
	ch <- prometheus.MustNewConstMetric(c.writeErrors, prometheus.CounterValue, float64(w.Errors))
}

// snapshotStats records the baselines snapshots the daemon writes.
type snapshotStats struct {
	mu       sync.Mutex
	last     time.Duration // how long the latest snapshot took
	bytes    int64         // and how large it was
	total    int64
	failures int64
}

// record notes one snapshot; safe on a nil receiver.
func (s *snapshotStats) record(took time.Duration, n int64, err error) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	if err != nil {
		s.failures++
		return
	}
	s.last, s.bytes = took, n
}

// snapshotCollector reports the baselines snapshots.
type snapshotCollector struct {
	st                              *snapshotStats
	duration, size, total, failures *prometheus.Desc
}

func newSnapshotCollector(st *snapshotStats) *snapshotCollector {
	return &snapshotCollector{
		st:       st,
		duration: prometheus.NewDesc("telguard_baselines_snapshot_seconds", "How long the latest successful baselines snapshot took to write.", nil, nil),
		size:     prometheus.NewDesc("telguard_baselines_snapshot_bytes", "Size of the latest successful baselines snapshot.", nil, nil),
		total:    prometheus.NewDesc("telguard_baselines_snapshots_total", "Baselines snapshots attempted.", nil, nil),
		failures: prometheus.NewDesc("telguard_baselines_snapshot_errors_total", "Baselines snapshots that failed (the previous file stays).", nil, nil),
	}
}

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.duration, c.size, c.total, c.failures} {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	c.st.mu.Lock()
	last, size, total, failures := c.st.last, c.st.bytes, c.st.total, c.st.failures
	c.st.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.duration, prometheus.GaugeValue, last.Seconds())
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(size))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.CounterValue, float64(total))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(failures))
}

// retrainStats records the daemon's retraining of the anomaly model.
type retrainStats struct {
	mu          sync.Mutex
	lastSuccess time.Time     // when the latest model was put in force
	took        time.Duration // how long that retrain took
	calls       int           // calls it read
	windows     int           // windows it measured
	results     map[retrainResult]int64
}

// record notes one retrain.
func (s *retrainStats) record(o retrainOutcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.results == nil {
		s.results = map[retrainResult]int64{}
	}
	s.results[o.result]++
	if o.result == retrained {
		s.lastSuccess, s.took, s.calls, s.windows = time.Now(), o.took, o.tr.Calls, o.tr.Windows
	}
}

// retrainCollector reports the anomaly model's retraining.
type retrainCollector struct {
	st                             *retrainStats
	last, took, calls, windows, rs *prometheus.Desc
}

func newRetrainCollector(st *retrainStats) *retrainCollector {
	return &retrainCollector{
		st:      st,
		last:    prometheus.NewDesc("telguard_anomaly_retrain_last_success_timestamp_seconds", "When the daemon last put a retrained anomaly model in force (Unix time); 0 when it has not yet.", nil, nil),
		took:    prometheus.NewDesc("telguard_anomaly_retrain_duration_seconds", "How long the latest successful retrain took (reading the history, training, writing the model).", nil, nil),
		calls:   prometheus.NewDesc("telguard_anomaly_retrain_calls", "Calls of history the latest successful retrain read.", nil, nil),
		windows: prometheus.NewDesc("telguard_anomaly_retrain_windows", "Windows the latest successful retrain measured (the model's training samples before sampling).", nil, nil),
		rs:      prometheus.NewDesc("telguard_anomaly_retrains_total", "Retrains by result: trained, too_little_history (fewer than anomaly.min_windows), failed, superseded (the model file was written meanwhile), cancelled (shutdown).", []string{"result"}, nil),
	}
}

func (c *retrainCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.last, c.took, c.calls, c.windows, c.rs} {
		ch <- d
	}
}

func (c *retrainCollector) Collect(ch chan<- prometheus.Metric) {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	last := 0.0
	if !c.st.lastSuccess.IsZero() {
		last = float64(c.st.lastSuccess.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(c.last, prometheus.GaugeValue, last)
	ch <- prometheus.MustNewConstMetric(c.took, prometheus.GaugeValue, c.st.took.Seconds())
	ch <- prometheus.MustNewConstMetric(c.calls, prometheus.GaugeValue, float64(c.st.calls))
	ch <- prometheus.MustNewConstMetric(c.windows, prometheus.GaugeValue, float64(c.st.windows))
	for _, r := range []retrainResult{retrained, retrainKept, retrainFailed, retrainChanged, retrainStopped} {
		ch <- prometheus.MustNewConstMetric(c.rs, prometheus.CounterValue, float64(c.st.results[r]), string(r))
	}
}
