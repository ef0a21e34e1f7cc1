package decisionapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/telguard/telguard/internal/audit"
	"github.com/telguard/telguard/internal/event"
)

// Field limits, in bytes.
const (
	maxCallIDLen    = 128
	maxAccountLen   = 128
	maxNumberLen    = 64
	maxUserAgentLen = 256
	// maxCallSeconds bounds duration_s: longer is a client bug, and far
	// larger values would overflow time.Duration.
	maxCallSeconds = 30 * 24 * 3600
)

// sensorAPI names this front-end in events.
const sensorAPI = "api"

// checkRequest is the body of POST /v1/calls/check.
type checkRequest struct {
	CallID    string `json:"call_id"`
	Account   string `json:"account"`
	From      string `json:"from"`
	To        string `json:"to"`
	SourceIP  string `json:"source_ip"`
	UserAgent string `json:"user_agent"`
	Time      string `json:"time"`      // RFC 3339, for replays; default now
	Direction string `json:"direction"` // outbound (default) or inbound
}

// answeredRequest is the optional body of POST /v1/calls/{call_id}/answered.
type answeredRequest struct {
	Time string `json:"time"`
}

// endedRequest is the optional body of POST /v1/calls/{call_id}/ended.
type endedRequest struct {
	DurationS float64 `json:"duration_s"` // billed seconds; 0 or absent: unknown
	Time      string  `json:"time"`
}

// check answers a call attempt with the engine's decision: always 200, the
// verdict is in the body.
func (s *Server) check(x *exchange, r *http.Request) error {
	q := &x.check
	*q = checkRequest{}
	if err := s.decodeBody(x, r, q, false); err != nil {
		return err
	}
	ev, err := s.checkEvent(x.tenant, q)
	if err != nil {
		return err
	}
	ctx := r.Context()
	start := time.Now()
	d := &x.decision // pooled: a Decision on the heap per call is the biggest allocation otherwise
	*d = s.eng.Decide(ctx, ev)
	s.metrics.decided(d, time.Since(start))
	if d.Reasons == nil {
		d.Reasons = []event.Reason{}
	}
	if s.logger.Enabled(ctx, slog.LevelDebug) {
		s.logger.LogAttrs(ctx, slog.LevelDebug, "call checked",
			slog.String("tenant", ev.Tenant), slog.String("account", ev.Account), slog.String("call_id", ev.CallID),
			slog.String("from", audit.MaskNumber(ev.From)), slog.String("to", audit.MaskNumber(ev.To)),
			slog.String("verdict", string(d.Verdict)), slog.Any("rules", d.Rules()))
	}
	x.json(http.StatusOK, d)
	return nil
}

// checkEvent validates q and turns it into a call attempt of tenant.
func (s *Server) checkEvent(tenant string, q *checkRequest) (event.Event, error) {
	ev := event.Event{
		Kind:      event.CallAttempt,
		Tenant:    tenant,
		Sensor:    sensorAPI,
		CallID:    q.CallID,
		Account:   q.Account,
		From:      q.From,
		To:        q.To,
		UserAgent: q.UserAgent,
	}
	if err := validCallID("call_id", q.CallID); err != nil {
		return ev, err
	}
	if err := validText("account", q.Account, maxAccountLen, true); err != nil {
		return ev, err
	}
	if err := validText("to", q.To, maxNumberLen, true); err != nil {
		return ev, err
	}
	if err := validText("from", q.From, maxNumberLen, false); err != nil {
		return ev, err
	}
	if err := validText("user_agent", q.UserAgent, maxUserAgentLen, false); err != nil {
		return ev, err
	}
	switch event.Direction(q.Direction) {
	case "", event.Outbound:
	case event.Inbound:
		// The caller's number is what inbound rules (Wangiri callbacks)
		// remember.
		if q.From == "" {
			return ev, badField("from", "required for an inbound call: the caller's number")
		}
		ev.Direction = event.Inbound
	default:
		return ev, badField("direction", "want inbound or outbound")
	}
	if q.SourceIP != "" {
		ip, err := netip.ParseAddr(q.SourceIP)
		if err != nil {
			return ev, badField("source_ip", "not an IP address")
		}
		// One spelling per address, so that bans and counters keyed by IP match.
		ev.SourceIP = ip.Unmap().WithZone("")
	}
	var err error
	ev.Time, err = s.eventTime(q.Time)
	return ev, err
}

// answered records that a call was answered.
func (s *Server) answered(x *exchange, r *http.Request) error {
	callID := r.PathValue("call_id")
	if err := validCallID("call_id", callID); err != nil {
		return err
	}
	q := &x.answered
	*q = answeredRequest{}
	if err := s.decodeBody(x, r, q, true); err != nil {
		return err
	}
	t, err := s.eventTime(q.Time)
	if err != nil {
		return err
	}
	ev := event.Event{Kind: event.CallAnswered, Time: t, Tenant: x.tenant, CallID: callID, Sensor: sensorAPI}
	if err := s.eng.Observe(r.Context(), ev); err != nil {
		return fmt.Errorf("observe answered call: %w", err)
	}
	x.noContent()
	return nil
}

// ended records that a call ended, with its billed duration when known.
func (s *Server) ended(x *exchange, r *http.Request) error {
	callID := r.PathValue("call_id")
	if err := validCallID("call_id", callID); err != nil {
		return err
	}
	q := &x.ended
	*q = endedRequest{}
	if err := s.decodeBody(x, r, q, true); err != nil {
		return err
	}
	if q.DurationS < 0 || q.DurationS > maxCallSeconds {
		return badField("duration_s", "must be between 0 and %d seconds", maxCallSeconds)
	}
	t, err := s.eventTime(q.Time)
	if err != nil {
		return err
	}
	ev := event.Event{
		Kind:     event.CallEnded,
		Time:     t,
		Tenant:   x.tenant,
		CallID:   callID,
		Duration: time.Duration(q.DurationS * float64(time.Second)),
		Sensor:   sensorAPI,
	}
	if err := s.eng.Observe(r.Context(), ev); err != nil {
		return fmt.Errorf("observe ended call: %w", err)
	}
	x.noContent()
	return nil
}

// maxClockSkew bounds how far a request's "time" may be from the server's
// clock. Windows and quotas run on event time, so a client free to pick any
// time could space its own attempts out of every window; history is
// replayed offline, not through the live API.
const maxClockSkew = 5 * time.Minute

// eventTime parses an optional RFC 3339 "time"; absent means now.
func (s *Server) eventTime(v string) (time.Time, error) {
	now := s.cfg.Clock()
	if v == "" {
		return now, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, badField("time", "not an RFC 3339 time")
	}
	if d := t.Sub(now); !s.cfg.AnyEventTime && (d > maxClockSkew || d < -maxClockSkew) {
		return time.Time{}, badField("time", "more than 5 minutes from the server's clock; omit it to use the server's")
	}
	return t, nil
}

// validCallID accepts 1 to 128 visible ASCII characters, what SIP allows in
// a Call-ID.
func validCallID(field, v string) error {
	if v == "" {
		return badField(field, "required")
	}
	if len(v) > maxCallIDLen {
		return badField(field, "longer than %d bytes", maxCallIDLen)
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f {
			return badField(field, "must be visible ASCII characters")
		}
	}
	return nil
}

// validText accepts UTF-8 text of at most limit bytes without control
// characters, which have no business in these fields and could forge log
// lines downstream.
func validText(field, v string, limit int, required bool) error {
	if v == "" {
		if required {
			return badField(field, "required")
		}
		return nil
	}
	if len(v) > limit {
		return badField(field, "longer than %d bytes", limit)
	}
	for _, c := range v {
		if c < ' ' || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return badField(field, "contains control characters")
		}
	}
	if !utf8.ValidString(v) {
		return badField(field, "not valid UTF-8")
	}
	return nil
}
