package sipedge

import (
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telguard/telguard/internal/prom"
)

// Verdict labels besides the engine's verdicts.
const (
	verdictBypass   = "bypass"    // trusted or upstream source: not screened
	verdictInDialog = "in_dialog" // in-dialog request: screened when the dialog began
	verdictRetrans  = "retransmission"
)

// Drop reasons: a message the guard discarded without forwarding it.
const (
	dropMalformed       = "malformed"      // unparseable, or missing mandatory headers
	dropOversized       = "oversized"      // larger than the read buffer
	dropSilent          = "silent"         // the engine asked for no reply
	dropStray           = "stray_response" // a response whose top Via is not the guard's
	dropSend            = "send_error"
	dropAbsorbed        = "absorbed_ack" // the ACK of the guard's own rejection
	dropPanic           = "internal_error"
	dropTCPLimit        = "tcp_connection_limit" // a connection past Config.MaxTCPConns
	dropLateProvisional = "late_provisional"     // a 1xx after its transaction's final response
	dropTLSHandshake    = "tls_handshake"        // a TLS handshake failed or timed out (no or a wrong client certificate)
	dropOverload        = "overload"             // the worker for its source was too far behind
	dropBadEventTime    = "bad_event_time"       // simulation mode: an ACK with a malformed X-Telguard-Time
)

var knownMethods = map[sip.RequestMethod]bool{
	sip.INVITE: true, sip.ACK: true, sip.CANCEL: true, sip.BYE: true, sip.REGISTER: true,
	sip.OPTIONS: true, sip.SUBSCRIBE: true, sip.NOTIFY: true, sip.REFER: true, sip.INFO: true,
	sip.MESSAGE: true, sip.PRACK: true, sip.UPDATE: true, sip.PUBLISH: true,
}

// metrics are the SIP edge's Prometheus collectors. Labels take values from
// fixed sets only (methods outside the known ones count as OTHER), so a
// scanner cannot mint series.
type metrics struct {
	requests *prometheus.CounterVec // method, verdict
	forward  prometheus.Histogram
	dropped  *prometheus.CounterVec // reason

	natContact   prometheus.Counter
	badEventTime prometheus.Counter   // simulation mode: PBX responses with a malformed X-Telguard-Time
	kernelBans   *prometheus.GaugeVec // listener

	kernelFilterErrors *prometheus.CounterVec // listener
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telguard_sip_requests_total",
			Help: "SIP requests from callers by method and verdict (bypass: trusted source; in_dialog: not screened again).",
		}, []string{"method", "verdict"}),
		forward: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "telguard_sip_forward_seconds",
			Help:    "Time from reading a SIP message to writing it on, decision included.",
			Buckets: []float64{1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1},
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telguard_sip_dropped_total",
			Help: "SIP messages dropped without being forwarded, by reason.",
		}, []string{"reason"}),
	}
	m.natContact = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "telguard_sip_nat_contacts_fixed_total",
		Help: "Messages from callers whose private (NATed) Contact was rewritten to their source address.",
	})
	m.badEventTime = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "telguard_sip_event_time_invalid_total",
		Help: "Simulation mode: responses from the PBX whose X-Telguard-Time was malformed; their events took wall time.",
	})
	m.kernelBans = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "telguard_sip_kernel_bans",
		Help: "Bans held in a UDP listener's kernel socket filter, whose datagrams the kernel drops before the guard reads them.",
	}, []string{"listener"})
	m.kernelFilterErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "telguard_sip_kernel_filter_errors_total",
		Help: "Socket filters the kernel refused for a UDP listener; the guard retried with fewer bans, down to none.",
	}, []string{"listener"})
	var err error
	if m.kernelFilterErrors, err = prom.Register(reg, m.kernelFilterErrors); err != nil {
		return nil, err
	}
	if m.kernelBans, err = prom.Register(reg, m.kernelBans); err != nil {
		return nil, err
	}
	if m.badEventTime, err = prom.Register(reg, m.badEventTime); err != nil {
		return nil, err
	}
	if m.natContact, err = prom.Register(reg, m.natContact); err != nil {
		return nil, err
	}
	if m.requests, err = prom.Register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.forward, err = prom.Register(reg, m.forward); err != nil {
		return nil, err
	}
	if m.dropped, err = prom.Register(reg, m.dropped); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) request(method sip.RequestMethod, verdict string) {
	label := string(method)
	if !knownMethods[method] {
		label = "OTHER"
	}
	m.requests.WithLabelValues(label, verdict).Inc()
}

func (m *metrics) drop(reason string) { m.dropped.WithLabelValues(reason).Inc() }

func (m *metrics) forwarded(start time.Time) { m.forward.Observe(time.Since(start).Seconds()) }
