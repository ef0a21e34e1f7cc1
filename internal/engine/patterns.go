package engine

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/numbering"
)

// recentHorizon is how long an account's recent calls matter: the longest
// window of a pattern detector, the baseline deviation window or the
// anomaly score's ten minutes, whichever is on and longest.
func recentHorizon(t *policy.Tenant) time.Duration {
	var h time.Duration
	if t == nil {
		return h
	}
	if t.Patterns != nil && t.Patterns.Enabled {
		h = t.Patterns.Horizon
	}
	if t.Baselines != nil && t.Baselines.Enabled {
		h = max(h, t.Baselines.DeviationWindow)
	}
	if t.Score != nil && t.Score.Enabled {
		h = max(h, scoreWindow)
	}
	return h
}

// scoreWindow is the window of the anomaly score's features
// (anomaly.FeatureConfig's default).
const scoreWindow = 10 * time.Minute

// patterns records an attempt no other rule blocks in its account's recent
// calls and runs the fraud-pattern detectors, the baseline deviation rule
// and the anomaly score over them: each detection is a hit of its rule.
// The attempt is recorded first because the rules judge it together with
// the calls before it (a callback, the range a targeted attack hammers).
// An attempt these rules block stays on record, so that an account that
// keeps dialling while flagged stays flagged, as a call that ended
// unanswered with nothing billed: never a call up, never money spent. Its
// end is put past the longest ring of a one-ring call, because a refused
// attempt never rang anyone; recorded as one, each refusal for another
// pattern would add up to Wangiri.
func (e *Engine) patterns(b *verdictBuilder, t *policy.Tenant, g *policy.Group, s *tenantState, ev event.Event, num numbering.Number) {
	p := t.Patterns
	pat := p != nil && p.Enabled
	bl := t.Baselines != nil && t.Baselines.Enabled
	score := t.Score != nil && t.Score.Enabled && e.model.Load() != nil
	if !pat && !bl && !score {
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
	now := ev.Time.In(t.Location)
	if pat && p.TenantCallbacks && num.E164 != "" && len(s.rings) > 0 {
		win := p.Detectors.Wangiri.CallbackWindow
		if win <= 0 {
			win = 72 * time.Hour
		}
		s.tenantRing(rc, num.E164, ev.Time, win)
	}
	_, highRisk := t.HighRisk.Match(num)
	rc.r.Start(anomaly.Call{
		ID: ev.CallID, Time: now, E164: num.E164, Country: num.Region,
		International: num.International, HighRisk: highRisk || num.Type == numbering.PremiumRate,
		RatePerMinute: b.d.Destination.RatePerMinute,
	})
	var base *anomaly.Baseline
	if bl {
		base = s.baselineFor(t, g, ev.Account, now)
	}
	// The deviation from the baseline is measured once, over the
	// deviation rule's window, and shared with theft of service when its
	// window is the same (the default): it is the costly part of both.
	dev := deviation{z: math.NaN()}
	if base != nil && t.Baselines.Deviation != (anomaly.Levels{}) {
		dev.f = rc.r.Features(now, anomaly.FeatureConfig{Window: t.Baselines.DeviationWindow}, nil)
		dev.z = base.Deviation(dev.f, now)
	}
	if pat {
		z := math.NaN()
		if p.Detectors.Theft.Window == t.Baselines.DeviationWindow {
			z = dev.z
		}
		s.dets = p.Detectors.CheckDeviation(s.dets[:0], rc.r, base, now, z)
		for i := range s.dets {
			det := &s.dets[i]
			rule := policy.PatternRule(det.Pattern)
			v := p.Action(det.Pattern, det.Level)
			b.hit(rule, t.ModeOf(rule, p.Mode), v, det.Level.String(), patternSIP(v), patternReason(det, t.Currency))
		}
		clear(s.dets) // the evidence holds numbers; do not keep them past the decision
	}
	e.behaviourRules(b, t, base, rc, now, &dev)
	if blocks(b.d.Verdict) {
		ring := oneRing
		if pat && p.Detectors.Wangiri.MaxRing > 0 {
			ring = p.Detectors.Wangiri.MaxRing
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
