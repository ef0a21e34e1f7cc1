package prefilter

import "github.com/prometheus/client_golang/prometheus"

// Collector reports a Filter's Stats at scrape time, so Check never touches
// a Prometheus metric. Register it with the edge's registry.
type Collector struct {
	f *Filter

	packets, tracked, capacity, evicted, bans, floodBans, floodRefused *prometheus.Desc
}

// NewCollector returns a Collector for f.
func NewCollector(f *Filter) *Collector {
	return &Collector{
		f:            f,
		packets:      prometheus.NewDesc("telguard_sip_prefilter_packets_total", "Packets checked by the SIP pre-filter, by verdict.", []string{"verdict"}, nil),
		tracked:      prometheus.NewDesc("telguard_sip_prefilter_tracked_sources", "Sources the flood detector holds state for.", nil, nil),
		capacity:     prometheus.NewDesc("telguard_sip_prefilter_source_capacity", "Most sources the flood detector can hold.", nil, nil),
		evicted:      prometheus.NewDesc("telguard_sip_prefilter_sources_evicted_total", "Sources forgotten for room while their flood window was open.", nil, nil),
		bans:         prometheus.NewDesc("telguard_sip_prefilter_bans", "Bans in force in the pre-filter (addresses and prefixes).", nil, nil),
		floodBans:    prometheus.NewDesc("telguard_sip_prefilter_flood_bans_total", "Sources banned by the flood detector.", nil, nil),
		floodRefused: prometheus.NewDesc("telguard_sip_prefilter_flood_bans_refused_total", "Floods throttled but not banned because the flood-ban table was full.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.tracked, c.capacity, c.evicted, c.bans, c.floodBans, c.floodRefused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.f.Stats()
	for v, n := range s.Packets {
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(n), Verdict(v).String())
	}
	ch <- prometheus.MustNewConstMetric(c.tracked, prometheus.GaugeValue, float64(s.Tracked))
	ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(s.Capacity))
	ch <- prometheus.MustNewConstMetric(c.evicted, prometheus.CounterValue, float64(s.Evicted))
	ch <- prometheus.MustNewConstMetric(c.bans, prometheus.GaugeValue, float64(s.Bans))
	ch <- prometheus.MustNewConstMetric(c.floodBans, prometheus.CounterValue, float64(s.FloodBans))
	ch <- prometheus.MustNewConstMetric(c.floodRefused, prometheus.CounterValue, float64(s.FloodBansRefused))
}
