package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/telguard/telguard/internal/event"
)

// ErrRemote is wrapped by errors of a daemon driven over its decision API.
var ErrRemote = errors.New("decision API")

// HTTPDecider drives a running daemon over its decision API at a chosen
// rate of checks per second, so a simulation measures the real service:
// HTTP, JSON, the store and the daemon's own load. Event times are sent as
// generated, so the daemon must accept them (api.any_event_time) and should
// be one dedicated to the run. Calls are sent one at a time, in event
// order, as the in-process run does: the verdicts depend on that order.
type HTTPDecider struct {
	base, key string
	rate      float64
	prefix    string // makes call ids unique per run against one daemon
	client    *http.Client

	mu        sync.Mutex
	started   time.Time
	checks    int
	latencies []time.Duration // HTTP round trips of checks, pacing excluded
	failures  int
	firstErr  error
}

// NewHTTPDecider returns a decider for the daemon at base (http://host:port)
// using the API key. rate is checks per second; 0 means as fast as the
// daemon answers. runID prefixes call ids, so a second run against the same
// daemon does not meet the first one's calls.
func NewHTTPDecider(base, key string, rate float64, runID string) (*HTTPDecider, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: target %q: want http://host:port", ErrConfig, base)
	}
	if rate < 0 {
		return nil, fmt.Errorf("%w: rate must not be negative", ErrConfig)
	}
	return &HTTPDecider{
		base: strings.TrimRight(base, "/"), key: key, rate: rate, prefix: runID,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}},
	}, nil
}

type checkRequest struct {
	CallID    string `json:"call_id"`
	Account   string `json:"account"`
	From      string `json:"from,omitempty"`
	To        string `json:"to"`
	SourceIP  string `json:"source_ip,omitempty"`
	Time      string `json:"time"`
	Direction string `json:"direction,omitempty"`
}

// Decide sends a check. A request that fails is counted (see Failures) and
// taken as an allow, as a softswitch failing open would.
func (h *HTTPDecider) Decide(ctx context.Context, ev event.Event) event.Decision {
	h.pace()
	req := checkRequest{CallID: h.prefix + ev.CallID, Account: ev.Account, From: ev.From, To: ev.To,
		Time: ev.Time.Format(time.RFC3339Nano), Direction: string(ev.Direction)}
	if ev.SourceIP.IsValid() {
		req.SourceIP = ev.SourceIP.String()
	}
	var dec event.Decision
	start := time.Now()
	err := h.post(ctx, "/v1/calls/check", req, http.StatusOK, &dec)
	lat := time.Since(start)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks++
	if err != nil {
		h.fail(err)
		return event.Decision{Time: ev.Time, Tenant: ev.Tenant, Verdict: event.Allow}
	}
	h.latencies = append(h.latencies, lat)
	if dec.Tenant != ev.Tenant {
		h.fail(fmt.Errorf("%w: the key acts for tenant %q, the simulation is of tenant %q", ErrRemote, dec.Tenant, ev.Tenant))
	}
	return dec
}

// Observe reports an answer or an end.
func (h *HTTPDecider) Observe(ctx context.Context, ev event.Event) error {
	body := map[string]any{"time": ev.Time.Format(time.RFC3339Nano)}
	var what string
	switch ev.Kind {
	case event.CallAnswered:
		what = "answered"
	case event.CallEnded:
		what = "ended"
		body["duration_s"] = ev.Duration.Seconds()
	default:
		return fmt.Errorf("%w: cannot report a %s", ErrRemote, ev.Kind)
	}
	err := h.post(ctx, "/v1/calls/"+url.PathEscape(h.prefix+ev.CallID)+"/"+what, body, http.StatusNoContent, nil)
	var st statusError
	if err != nil && !(errors.As(err, &st) && st.code == http.StatusNotFound) {
		// A 404 is the daemon's answer for a call it expired or never
		// allowed, which the in-process engine reports too; anything else
		// is a failure of the run.
		h.mu.Lock()
		h.fail(err)
		h.mu.Unlock()
	}
	return err
}

func (h *HTTPDecider) fail(err error) {
	h.failures++
	if h.firstErr == nil {
		h.firstErr = err
	}
}

// pace waits until the next check is due at the configured rate.
func (h *HTTPDecider) pace() {
	h.mu.Lock()
	if h.started.IsZero() {
		h.started = time.Now()
	}
	due := h.started
	if h.rate > 0 {
		due = h.started.Add(time.Duration(float64(h.checks) / h.rate * float64(time.Second)))
	}
	h.mu.Unlock()
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
}

type statusError struct {
	code int
	body string
}

func (e statusError) Error() string { return fmt.Sprintf("status %d: %s", e.code, e.body) }

func (h *HTTPDecider) post(ctx context.Context, path string, body any, want int, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+h.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRemote, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: read answer: %v", ErrRemote, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%w: POST %s: %w", ErrRemote, path, statusError{resp.StatusCode, strings.TrimSpace(string(rb))})
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			return fmt.Errorf("%w: decode answer: %v", ErrRemote, err)
		}
	}
	return nil
}

// RemoteStats is what a run over the API measured besides the report.
type RemoteStats struct {
	Checks   int           `json:"checks"`
	Failures int           `json:"failures"` // requests that failed (not counting 404s for expired calls)
	FirstErr string        `json:"first_error,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Rate     float64       `json:"checks_per_second"` // achieved
	// Rejected is the latency of the calls a SIP edge rejected itself: its
	// decision without the PBX hop that the forwarded calls' ring adds.
	Rejected *LatencyStats `json:"rejected_latency,omitempty"`
}

// Stats returns what the decider has seen so far.
func (h *HTTPDecider) Stats() RemoteStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := RemoteStats{Checks: h.checks, Failures: h.failures}
	if h.firstErr != nil {
		st.FirstErr = h.firstErr.Error()
	}
	if !h.started.IsZero() {
		st.Elapsed = time.Since(h.started)
		if s := st.Elapsed.Seconds(); s > 0 {
			st.Rate = float64(h.checks) / s
		}
	}
	return st
}

// SimulateRemote is Simulate against a running daemon: the same world and
// traffic (warm-up days and inbound rings included), decided by h. A model
// is the daemon's own (telguard anomaly train), so o.Model is refused. The
// policy must be the daemon's, and the API key must act for the simulated
// tenant, so only one tenant is simulated. The report's latency is the
// HTTP round trip of each check.
func SimulateRemote(ctx context.Context, o Options, h *HTTPDecider) (Report, RemoteStats, error) {
	if o.Tenants != 1 {
		return Report{}, RemoteStats{}, fmt.Errorf("%w: a run over the API simulates one tenant, the API key's", ErrConfig)
	}
	if o.Model {
		return Report{}, RemoteStats{}, fmt.Errorf("%w: a run over the API uses the daemon's model; train it with telguard anomaly train", ErrConfig)
	}
	return simulateRemote(ctx, o, h)
}

// remoteDecider is a decider that drives a running daemon.
type remoteDecider interface {
	Decider
	Stats() RemoteStats
	decisionLatencies() []time.Duration // of the decisions, pacing excluded
	target() string                     // for the report
	prepare(calls []Call) error         // before the run
}

// simulateRemote generates the run's traffic and drives d through it.
func simulateRemote(ctx context.Context, o Options, d remoteDecider) (Report, RemoteStats, error) {
	tenants, _, err := World(o.Policy, o.Tenants, o.Accounts)
	if err != nil {
		return Report{}, RemoteStats{}, err
	}
	calls, err := Generate(Config{Seed: o.Seed, Start: o.Start, Days: o.Days, WarmUpDays: o.WarmUpDays, Rings: true, Tenants: tenants, Scenarios: o.Scenarios})
	if err != nil {
		return Report{}, RemoteStats{}, err
	}
	if err := d.prepare(calls); err != nil {
		return Report{}, RemoteStats{}, fmt.Errorf("simulate: %w", err)
	}
	res, err := Run(ctx, d, calls, nil)
	if err != nil {
		return Report{}, d.Stats(), fmt.Errorf("simulate: %w", err)
	}
	rep := Summarise(res)
	rep.Latency = latencyStats(d.decisionLatencies())
	rep.Seed, rep.Policy, rep.Start = o.Seed, o.Policy.File, o.Start
	rep.Days, rep.Tenants, rep.Accounts = o.Days, o.Tenants, o.Accounts
	rep.WarmUpDays = o.WarmUpDays
	rep.Target = d.target()
	return rep, d.Stats(), nil
}

func (h *HTTPDecider) decisionLatencies() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), h.latencies...)
}

func (h *HTTPDecider) target() string { return h.base }

func (h *HTTPDecider) prepare([]Call) error { return nil }

// FutureStart returns the first Monday 00:00 UTC at least a week plus
// warmUpDays after now: the simulated days, warm-up included, lie wholly in
// the daemon's future, so its own housekeeping (which runs on its clock)
// expires none of the simulated calls while the run lasts.
func FutureStart(now time.Time, warmUpDays int) time.Time {
	d := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 7+warmUpDays)
	for d.Weekday() != time.Monday {
		d = d.AddDate(0, 0, 1)
	}
	return d
}
