package decisionapi

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/prom"
)

// metrics are the API's Prometheus collectors. Route labels are the mux
// pattern ("POST /v1/calls/{call_id}/ended"), never the raw path, so call ids
// cannot blow up the series count.
type metrics struct {
	requests       *prometheus.CounterVec   // route, code
	requestSeconds *prometheus.HistogramVec // route
	decisions      *prometheus.CounterVec   // verdict
	ruleHits       *prometheus.CounterVec   // rule, mode
	decideSeconds  prometheus.Histogram
	byVerdict      map[event.Verdict]prometheus.Counter // resolved once; read-only after newMetrics
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telguard_api_requests_total",
			Help: "Decision API requests by route pattern and HTTP status.",
		}, []string{"route", "code"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "telguard_api_request_seconds",
			Help:    "Decision API request handling time by route pattern.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telguard_decisions_total",
			Help: "Engine decisions by verdict.",
		}, []string{"verdict"}),
		ruleHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telguard_rule_hits_total",
			Help: "Rules that fired in decisions, by rule id and mode (monitor hits count too).",
		}, []string{"rule", "mode"}),
		decideSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "telguard_decision_seconds",
			Help: "Time the engine took to decide a call attempt.",
			Buckets: []float64{
				1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
				1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 1e-1,
			},
		}),
	}
	var err error
	if m.requests, err = prom.Register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.requestSeconds, err = prom.Register(reg, m.requestSeconds); err != nil {
		return nil, err
	}
	if m.decisions, err = prom.Register(reg, m.decisions); err != nil {
		return nil, err
	}
	if m.ruleHits, err = prom.Register(reg, m.ruleHits); err != nil {
		return nil, err
	}
	if m.decideSeconds, err = prom.Register(reg, m.decideSeconds); err != nil {
		return nil, err
	}
	m.byVerdict = make(map[event.Verdict]prometheus.Counter)
	for _, v := range []event.Verdict{event.Allow, event.Challenge, event.Throttle, event.Deny, event.Ban} {
		m.byVerdict[v] = m.decisions.WithLabelValues(string(v))
	}
	return m, nil
}

// decided counts a decision and the engine time it took.
func (m *metrics) decided(d *event.Decision, took time.Duration) {
	m.decideSeconds.Observe(took.Seconds())
	if c, ok := m.byVerdict[d.Verdict]; ok {
		c.Inc()
	} else {
		m.decisions.WithLabelValues("invalid").Inc() // an engine bug; don't let it mint labels
	}
	for i := range d.Reasons {
		m.ruleHits.WithLabelValues(d.Reasons[i].Rule, string(d.Reasons[i].Mode)).Inc()
	}
}

// routeMetrics are one route's collectors, resolved once at registration so
// that the common case (the route's usual status) needs no label lookup.
type routeMetrics struct {
	route       string
	successCode int
	success     prometheus.Counter
	seconds     prometheus.Observer
	requests    *prometheus.CounterVec
}

func (m *metrics) route(route string, successCode int) *routeMetrics {
	rm := &routeMetrics{
		route:       route,
		successCode: successCode,
		seconds:     m.requestSeconds.WithLabelValues(route),
		requests:    m.requests,
	}
	if successCode != 0 {
		rm.success = m.requests.WithLabelValues(route, strconv.Itoa(successCode))
	}
	return rm
}

// observe counts one request that ended with code (0: aborted).
func (rm *routeMetrics) observe(code int, took time.Duration) {
	if code == rm.successCode && rm.success != nil {
		rm.success.Inc()
	} else {
		rm.requests.WithLabelValues(rm.route, strconv.Itoa(code)).Inc()
	}
	rm.seconds.Observe(took.Seconds())
}
