package engine

import (
	"fmt"
	"strconv"
	"time"

	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/numbering"
)

// patterns records an attempt no other rule blocks in its account's recent
// calls and runs the fraud-pattern detectors over them: each detection is a
// hit of rule pattern.<name>. The attempt is recorded first because the
// detectors judge it together with the calls before it (a callback, the
// range a targeted attack hammers). An attempt the patterns block stays on
// record, so that an account that keeps dialling while flagged stays
// flagged, as a call that ended unanswered with nothing billed: never a
// call up, never money spent. Its end is put past the longest ring of a
// one-ring call, because a refused attempt never rang anyone; recorded as
// one, each refusal for another pattern would add up to Wangiri.
func (e *Engine) patterns(b *verdictBuilder, t *policy.Tenant, s *tenantState, ev event.Event, num numbering.Number) {
	p := t.Patterns
	if p == nil || !p.Enabled {
		return
	}
	rc := s.recent[ev.Account]
	if rc == nil {
		rc = &recentCalls{r: anomaly.NewRecent(recentCapacity)}
		s.recent[ev.Account] = rc
	}
	if ev.Time.After(rc.last) {
		rc.last = ev.Time
	}
	_, highRisk := t.HighRisk.Match(num)
	rc.r.Start(anomaly.Call{
		ID: ev.CallID, Time: ev.Time.In(t.Location), E164: num.E164, Country: num.Region,
		International: num.International, HighRisk: highRisk || num.Type == numbering.PremiumRate,
		RatePerMinute: b.d.Destination.RatePerMinute,
	})
	s.dets = p.Detectors.Check(s.dets[:0], rc.r, nil, ev.Time)
	if len(s.dets) == 0 {
		return
	}
	for i := range s.dets {
		det := &s.dets[i]
		rule := policy.PatternRule(det.Pattern)
		v := p.Action(det.Pattern, det.Level)
		b.hit(rule, t.ModeOf(rule, p.Mode), v, det.Level.String(), patternSIP(v), patternReason(det, t.Currency))
	}
	clear(s.dets) // the evidence holds numbers; do not keep them past the decision
	if b.d.Verdict.Blocks() {
		ring := p.Detectors.Wangiri.MaxRing
		if ring <= 0 {
			ring = 5 * time.Second // the detector's default
		}
		rc.r.End(ev.CallID, ev.Time.Add(ring+time.Second), false, 0)
	}
}

func patternSIP(v event.Verdict) int {
	switch v {
	case event.Challenge, event.Allow:
		return 0
	case event.Throttle:
		return sipUnavailable
	}
	return sipForbidden
}

// patternWhat says what each detector counts, for reasons.
var patternWhat = map[anomaly.Pattern]string{
	anomaly.FastPumping:       "calls to high-risk or premium ranges",
	anomaly.SlowPumping:       "calls to high-risk or premium ranges",
	anomaly.TargetedPumping:   "international calls to one range",
	anomaly.Wangiri:           "one-ring calls (unanswered, hung up within seconds)",
	anomaly.WangiriCallback:   "call back to a number that rang this account once",
	anomaly.TheftOfService:    "calls unlike this account's usual calling",
	anomaly.Robocalling:       "call attempts, few answered and those short",
	anomaly.SimultaneousCalls: "calls up at once",
}

// patternReason names the pattern and its evidence: the count, the window,
// the countries and the money at risk. Numbers are never named; a targeted
// range is shown without its last digits.
func patternReason(d *anomaly.Detection, currency string) string {
	ev := d.Evidence
	what := patternWhat[d.Pattern]
	if d.Pattern == anomaly.TargetedPumping && ev.Range != "" {
		what = "international calls to the range " + ev.Range + "…"
	}
	r := fmt.Sprintf("%s: %d %s", patternName(d.Pattern), ev.Count, what)
	if d.Pattern != anomaly.SimultaneousCalls {
		r += " in " + shortDuration(ev.Window)
	}
	if ev.Countries > 1 {
		r += " to " + strconv.Itoa(ev.Countries) + " countries"
	}
	r += fmt.Sprintf(" (%s at %s)", d.Level, strconv.FormatFloat(ev.Threshold, 'f', -1, 64))
	if d.MoneyAtRisk > 0 {
		r += fmt.Sprintf("; %.2f %s at risk", d.MoneyAtRisk, currency)
	}
	return r
}

func patternName(p anomaly.Pattern) string {
	switch p {
	case anomaly.FastPumping:
		return "fast pumping"
	case anomaly.SlowPumping:
		return "slow pumping"
	case anomaly.TargetedPumping:
		return "targeted pumping"
	case anomaly.Wangiri:
		return "Wangiri"
	case anomaly.WangiriCallback:
		return "Wangiri callback"
	case anomaly.TheftOfService:
		return "theft of service"
	case anomaly.Robocalling:
		return "robocalling"
	case anomaly.SimultaneousCalls:
		return "simultaneous calls"
	}
	return string(p)
}

// shortDuration writes 5m, 1h, 90s, 1h30m rather than 5m0s.
func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0 && d < time.Hour:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h" + strconv.FormatInt(int64(d%time.Hour/time.Minute), 10) + "m"
	}
	return d.String()
}
