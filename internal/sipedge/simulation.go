package sipedge

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/event"
)

// Simulation mode (Config.Simulation) lets `telguard sim` drive the edge
// with weeks of traffic in minutes: the simulator says when each message
// happens, in event time, and reads back what the engine decided. Both
// headers come from whoever sends, so the mode is refused unless every
// listener and the upstream are loopback addresses, and outside it the
// headers are neither read nor written.
const (
	// hdrEventTime carries the event time of a request (INVITE, BYE,
	// CANCEL) or of the PBX's response: RFC 3339, fraction optional.
	hdrEventTime = "X-Telguard-Time"
	// hdrDecision carries the engine's decision on the edge's rejection
	// of an INVITE and on the INVITE it forwards to the PBX.
	hdrDecision = "X-Telguard-Decision"
)

// maxEventTimeLen bounds the header: "2026-03-02T09:15:00.123456789+03:00"
// is 35 bytes.
const maxEventTimeLen = 64

// parseEventTime parses an X-Telguard-Time value: RFC 3339 with an
// optional fraction of a second, in years 1970 to 9999 (the zero time
// would mean "now" to the engine).
func parseEventTime(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > maxEventTimeLen {
		return time.Time{}, fmt.Errorf("%w: %s: want an RFC 3339 time of at most %d bytes", ErrBadEventTime, hdrEventTime, maxEventTimeLen)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Year() < 1970 {
		return time.Time{}, fmt.Errorf("%w: %s: want an RFC 3339 time such as 2026-03-02T09:15:00.5Z, got %q", ErrBadEventTime, hdrEventTime, bound(v))
	}
	return t, nil
}

// eventTime returns the event time msg reports: its X-Telguard-Time in
// simulation mode, else (and when the header is absent) now. A malformed
// header is an error (ErrBadEventTime).
func (s *Server) eventTime(msg interface{ GetHeader(string) sip.Header }, now time.Time) (time.Time, error) {
	if !s.cfg.Simulation {
		return now, nil
	}
	h := msg.GetHeader(hdrEventTime)
	if h == nil {
		return now, nil
	}
	t, err := parseEventTime(h.Value())
	if err != nil {
		return now, err
	}
	return t, nil
}

// responseTime is eventTime for a response from the PBX: a malformed
// header cannot be refused there, so the response keeps wall time and is
// counted.
func (s *Server) responseTime(res *sip.Response, now time.Time) time.Time {
	t, err := s.eventTime(res, now)
	if err != nil {
		s.metrics.badEventTime.Inc()
		s.log.Debug("sip response with a bad event time", "err", err)
	}
	return t
}

// decisionHeader renders a decision for X-Telguard-Decision:
//
//	verdict=deny; rule=destination.number_type; risk=90; score=0.0000
//
// rule is the enforced rule that set the verdict (empty for allow), the
// one the Reason header of a rejection names; score is the anomaly score
// with four decimals.
func decisionHeader(d *event.Decision) sip.Header {
	rule := ""
	if d.Verdict != event.Allow {
		for _, r := range d.Reasons {
			if r.Mode == event.Enforce && r.Verdict == d.Verdict {
				rule = r.Rule
				break
			}
		}
		if rule == "" && d.Verdict.Blocks() && len(d.Reasons) > 0 {
			rule = d.Reasons[0].Rule
		}
	}
	var b strings.Builder
	b.WriteString("verdict=")
	b.WriteString(headerToken(verdictLabel(d.Verdict)))
	b.WriteString("; rule=")
	b.WriteString(headerToken(rule))
	b.WriteString("; risk=")
	b.WriteString(strconv.Itoa(min(max(d.Risk, 0), 100)))
	b.WriteString("; score=")
	b.WriteString(strconv.FormatFloat(d.AnomalyScore, 'f', 4, 64))
	return sip.NewHeader(hdrDecision, b.String())
}

// headerToken keeps the characters a rule id or verdict is made of, so
// nothing can break the header's "; key=value" form.
func headerToken(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-', r == ':':
			return r
		}
		return -1
	}, bound(s))
}

// removeHeaders removes every header called one of names, in any case:
// a caller's own X-Telguard-Decision must not reach the PBX as the
// engine's.
func removeHeaders(m *sip.Request, names ...string) {
	var found []string
	for _, h := range m.Headers() {
		for _, name := range names {
			if strings.EqualFold(h.Name(), name) {
				found = append(found, h.Name())
			}
		}
	}
	for _, n := range found { // RemoveHeader takes the first of that exact name
		m.RemoveHeader(n)
	}
}

// stripGuardHeaders removes the guard's own headers from a request it
// received, in every mode: the event time has been read (simulation mode
// only), and a decision header is the guard's to write, never a sender's.
func stripGuardHeaders(req *sip.Request) {
	removeHeaders(req, hdrEventTime, hdrDecision)
}

// checkSimulationAddrs refuses simulation mode unless every listener and
// the upstream are loopback addresses.
func checkSimulationAddrs(listen []string, upstream netip.AddrPort) error {
	for _, l := range listen {
		_, hostport, err := splitNetAddr(l)
		if err != nil {
			return err
		}
		ap, err := netip.ParseAddrPort(hostport)
		if err != nil || !ap.Addr().Unmap().IsLoopback() {
			return fmt.Errorf("listen %q: %w", l, ErrSimulationNotLoopback)
		}
	}
	if !upstream.Addr().Unmap().IsLoopback() {
		return fmt.Errorf("upstream %s: %w", upstream, ErrSimulationNotLoopback)
	}
	return nil
}
