package policy

import (
	"time"

	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/event"
)

// Patterns is a tenant's fraud-pattern detection: the detectors of package
// anomaly run over each account's recent calls, and what a warning or a
// critical detection gets. Each pattern is the rule "pattern.<name>".
type Patterns struct {
	Enabled   bool
	Mode      event.Mode
	Detectors anomaly.Detectors
	// Actions, indexed like PatternNames.
	Actions [numPatterns]PatternActions
	// Horizon is how long an account's recent calls matter: the longest
	// window of a detector that is on. An account idle for longer, with no
	// call up, has its recent calls forgotten.
	Horizon time.Duration
	// TenantCallbacks makes a Wangiri callback any call back to a number
	// that rang any account of the tenant, not only the account it rang
	// (wangiri.callbacks: tenant): where calls arrive for DIDs and leave
	// from extensions, the account rung is never the one calling back.
	TenantCallbacks bool
}

// PatternActions are what a pattern's two levels get.
type PatternActions struct{ Warning, Critical event.Verdict }

// PatternNames are the patterns a policy configures, in a fixed order. A
// Wangiri callback (an outbound call back to a number that rang the
// account once) is reported as pattern.wangiri and takes wangiri's actions.
var PatternNames = [numPatterns]anomaly.Pattern{
	anomaly.FastPumping, anomaly.SlowPumping, anomaly.TargetedPumping,
	anomaly.Wangiri, anomaly.Robocalling, anomaly.SimultaneousCalls,
	anomaly.TheftOfService,
}

const numPatterns = 7

// patternRules are the rule ids, built once so decisions do not build them.
var patternRules = func() map[anomaly.Pattern]string {
	m := map[anomaly.Pattern]string{
		anomaly.WangiriCallback: "pattern." + string(anomaly.Wangiri),
	}
	for _, p := range PatternNames {
		m[p] = "pattern." + string(p)
	}
	return m
}()

// PatternRule returns the rule id of pattern p: "pattern.<name>".
func PatternRule(p anomaly.Pattern) string {
	if r, ok := patternRules[p]; ok {
		return r
	}
	return "pattern." + string(p)
}

// isPatternRule reports whether rule is the id of a configurable pattern,
// for rule_modes.
func isPatternRule(rule string) bool {
	for _, p := range PatternNames {
		if rule == patternRules[p] {
			return true
		}
	}
	return false
}

// Action returns what a detection of p at level l gets.
func (p *Patterns) Action(pat anomaly.Pattern, l anomaly.Level) event.Verdict {
	a := PatternActions{event.Challenge, event.Deny}
	if pat == anomaly.WangiriCallback {
		pat = anomaly.Wangiri
	}
	for i, n := range PatternNames {
		if n == pat {
			a = p.Actions[i]
			break
		}
	}
	if l == anomaly.Critical {
		return a.Critical
	}
	return a.Warning
}

type patternsYAML struct {
	Enabled           *bool        `yaml:"enabled"`
	Mode              string       `yaml:"mode"`
	FastPumping       *patternYAML `yaml:"fast_pumping"`
	SlowPumping       *patternYAML `yaml:"slow_pumping"`
	TargetedPumping   *patternYAML `yaml:"targeted_pumping"`
	Wangiri           *patternYAML `yaml:"wangiri"`
	Robocalling       *patternYAML `yaml:"robocalling"`
	SimultaneousCalls *patternYAML `yaml:"simultaneous_calls"`
	TheftOfService    *patternYAML `yaml:"theft_of_service"`
}

type patternYAML struct {
	WarningAction  string    `yaml:"warning_action"`
	CriticalAction string    `yaml:"critical_action"`
	Window         *Duration `yaml:"window"`
	Warning        *float64  `yaml:"warning"`
	Critical       *float64  `yaml:"critical"`
	// Callbacks (wangiri only): account (default) or tenant.
	Callbacks string `yaml:"callbacks"`
}

// patterns compiles a tenant's patterns section; nil gives the defaults.
func (c *compiler) patterns(path string, y *patternsYAML) *Patterns {
	// Patterns run in monitor until a policy says enforce: they are new
	// evidence, and an operator should see what they would block on live
	// traffic before they block it.
	p := &Patterns{Enabled: true, Mode: event.Monitor, Detectors: anomaly.DefaultDetectors()}
	if y == nil {
		y = &patternsYAML{}
	}
	if y.Enabled != nil {
		p.Enabled = *y.Enabled
	}
	p.Mode = c.mode(path+".mode", y.Mode, event.Monitor)
	d := &p.Detectors
	// The detector's window (nil: it has none to set) and levels, per
	// pattern in PatternNames order.
	type knobs struct {
		y      *patternYAML
		window *time.Duration
		levels *anomaly.Levels
	}
	all := [numPatterns]knobs{
		{y.FastPumping, &d.Fast.Window, &d.Fast.Levels},
		{y.SlowPumping, &d.Slow.Window, &d.Slow.Levels},
		{y.TargetedPumping, &d.Targeted.Window, &d.Targeted.Levels},
		{y.Wangiri, &d.Wangiri.Window, &d.Wangiri.Levels},
		{y.Robocalling, &d.Robocall.Window, &d.Robocall.Levels},
		{y.SimultaneousCalls, nil, &d.Simultaneous.Levels},
		// Its levels count night-time international calls to countries
		// the account's baseline does not know; its rate part uses the
		// detector's deviation levels (6σ, 12σ).
		{y.TheftOfService, &d.Theft.Window, &d.Theft.NewCountry},
	}
	for i, k := range all {
		pp := path + "." + string(PatternNames[i])
		a := &p.Actions[i]
		*a = PatternActions{event.Challenge, event.Deny}
		if k.y == nil {
			continue
		}
		switch {
		case k.y.Callbacks == "" || k.y.Callbacks == "account":
		case PatternNames[i] != anomaly.Wangiri:
			c.fail(pp+".callbacks", "only wangiri has callbacks")
		case k.y.Callbacks == "tenant":
			p.TenantCallbacks = true
		default:
			c.fail(pp+".callbacks", "want account or tenant, not %q", k.y.Callbacks)
		}
		a.Warning = c.verdict(pp+".warning_action", k.y.WarningAction, event.Challenge, event.Challenge, event.Throttle, event.Deny)
		a.Critical = c.verdict(pp+".critical_action", k.y.CriticalAction, event.Deny, event.Challenge, event.Throttle, event.Deny)
		if k.y.Window != nil {
			w := time.Duration(*k.y.Window)
			switch {
			case k.window == nil:
				c.fail(pp+".window", "%s has no window: it counts the calls up now", PatternNames[i])
			case w < time.Minute || w > 24*time.Hour:
				c.fail(pp+".window", "must be between 1m and 24h")
			default:
				*k.window = w
			}
		}
		if k.y.Warning != nil {
			k.levels.Warning = c.level(pp+".warning", *k.y.Warning)
		}
		if k.y.Critical != nil {
			k.levels.Critical = c.level(pp+".critical", *k.y.Critical)
		}
		if l := *k.levels; l.Warning > 0 && l.Critical > 0 && l.Critical < l.Warning {
			c.fail(pp+".critical", "critical (%v) is below warning (%v)", l.Critical, l.Warning)
		}
	}
	for _, w := range []time.Duration{d.Fast.Window, d.Slow.Window, d.Targeted.Window, d.Wangiri.Window, d.Robocall.Window, d.Theft.Window} {
		p.Horizon = max(p.Horizon, w)
	}
	return p
}

// level reads a detector level: a count of calls, 0 for off.
func (c *compiler) level(path string, v float64) float64 {
	if v < 0 || v != v || v > maxThreshold || v != float64(int(v)) {
		c.fail(path, "want a whole number of calls between 0 (off) and %d", maxThreshold)
		return 0
	}
	return v
}
