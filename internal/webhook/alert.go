package webhook

import (
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Alert rules: the rule names alerts carry into the decisions log.
const (
	// RuleSignatureFailures fires on a spike of requests that failed
	// verification (missing, malformed or wrong signature, or a stale
	// timestamp) for one source: someone is forging or replaying.
	RuleSignatureFailures = "webhook.signature_failures"
	// RuleDuplicates fires on a spike of duplicates (event ids already
	// queued) for one source: a replay, or a provider stuck retrying.
	RuleDuplicates = "webhook.duplicates"
)

// AlertConfig sets when a spike raises an Alert: Threshold events of a
// kind from one source within Window. Zero values take the defaults
// noted; a negative threshold turns that alert off.
type AlertConfig struct {
	// SignatureFailures per source per window. → 20.
	SignatureFailures int
	// Duplicates per source per window. → 100 (providers retry, so
	// some duplicates are normal).
	Duplicates int
	// Window → 1 min.
	Window time.Duration
}

const (
	defaultAlertSignatureFailures = 20
	defaultAlertDuplicates        = 100
	defaultAlertWindow            = time.Minute
)

// Alert is a spike of refused or duplicate webhooks from one source. It
// carries counts and where the last one came from, never a payload.
type Alert struct {
	Rule      string // RuleSignatureFailures or RuleDuplicates
	Source    string
	Tenant    string
	Count     int // events counted in the window when it fired
	Window    time.Duration
	Time      time.Time
	LastAddr  netip.Addr // the client address of the request that crossed the threshold
	Threshold int
}

// Reason is the alert in words, for logs and the decisions log.
func (a Alert) Reason() string {
	what := "duplicate webhooks (event ids already queued)"
	if a.Rule == RuleSignatureFailures {
		what = "webhooks that failed verification (bad signature or stale timestamp)"
	}
	return strconv.Itoa(a.Count) + " " + what + " from source " + a.Source + " within " + a.Window.String()
}

// spike counts events in a fixed window that starts with the first event
// after the previous window ended, and fires once per window when the
// count reaches the threshold.
type spike struct {
	threshold int
	window    time.Duration

	mu    sync.Mutex
	start time.Time
	n     int
	fired bool
}

// add counts one event at now and reports the count when this event is
// the one that crosses the threshold (0 otherwise).
func (s *spike) add(now time.Time) int {
	if s == nil || s.threshold <= 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.start.IsZero() || now.Sub(s.start) >= s.window || now.Before(s.start) {
		s.start, s.n, s.fired = now, 0, false
	}
	s.n++
	if s.n >= s.threshold && !s.fired {
		s.fired = true
		return s.n
	}
	return 0
}

// alert counts one event of rule for src and raises an alert when it
// crosses the threshold: a warning log line, a metric and OnAlert.
func (s *Server) alert(src *source, rule string, sp *spike, addr netip.Addr, now time.Time) {
	n := sp.add(now)
	if n == 0 {
		return
	}
	a := Alert{Rule: rule, Source: src.name, Tenant: src.cfg.Tenant, Count: n, Window: sp.window,
		Time: now, LastAddr: addr, Threshold: sp.threshold}
	s.metrics.alerts.WithLabelValues(src.name, rule).Inc()
	s.logger.Warn("webhook alert", "rule", rule, "source", src.name, "tenant", src.cfg.Tenant,
		"count", n, "window", sp.window.String(), "last_remote", addr.String())
	if s.cfg.OnAlert != nil {
		s.cfg.OnAlert(a)
	}
}
