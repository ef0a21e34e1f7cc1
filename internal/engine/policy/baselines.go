package policy

import (
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/event"
)

// Baselines is a tenant's behaviour learning and the rules judged against
// it. The engine learns a baseline per account from the calls it observes
// end; while an account's own history is shorter than WarmUp it is judged
// by its group's (the accounts of its policy group, averaged). Rules:
//
//   - baseline.deviation: calls, distinct destinations or cost in the
//     recent Window against what this account makes at this hour of the
//     week, in standard deviations (a dynamic threshold: k σ).
//   - baseline.new_network: a call from a source network (IPv4 /24, IPv6
//     /48) the tenant never used, once the tenant's history is WarmUp long.
type Baselines struct {
	Enabled bool
	Mode    event.Mode
	Config  anomaly.BaselineConfig
	// Deviation levels are in standard deviations; 0 is off.
	Deviation        anomaly.Levels
	DeviationWindow  time.Duration
	DeviationActions PatternActions
	// NewNetwork is on unless off. Its warning is a call from a new
	// network; its critical, one that is also international or at an hour
	// the account does not usually call.
	NewNetwork        bool
	NewNetworkActions PatternActions
	// A network becomes known once NetworkCalls answered calls from it
	// span NetworkSpan.
	NetworkCalls int
	NetworkSpan  time.Duration
	// Trusted are networks the operator vouches for: a call from one is
	// never judged new. Only calls no rule flagged teach a network, so a
	// site that starts calling after the tenant's warm-up (a new office,
	// a renumbered line) becomes known only through this list.
	Trusted []netip.Prefix
}

// Score is a tenant's use of the isolation-forest anomaly score: rule
// anomaly.score fires when the score of an attempt's account window
// reaches a level. It needs a model (`telguard anomaly train`); without one
// nothing is scored.
type Score struct {
	Enabled bool
	Mode    event.Mode
	Levels  anomaly.Levels // scores in (0, 1); 0 is off
	Actions PatternActions
}

// Baseline rule ids.
const (
	RuleBaselineDeviation  = "baseline.deviation"
	RuleBaselineNewNetwork = "baseline.new_network"
	RuleAnomalyScore       = "anomaly.score"
)

var behaviourRules = []string{RuleBaselineDeviation, RuleBaselineNewNetwork, RuleAnomalyScore}

type baselinesYAML struct {
	Enabled     *bool       `yaml:"enabled"`
	Mode        string      `yaml:"mode"`
	HalfLife    *Duration   `yaml:"half_life"`
	WarmUp      *Duration   `yaml:"warm_up"`
	WarmUpCalls *int        `yaml:"warm_up_calls"`
	Deviation   *levelsYAML `yaml:"deviation"`
	NewNetwork  *newNetYAML `yaml:"new_network"`
}

type levelsYAML struct {
	Window         *Duration `yaml:"window"`
	Warning        *float64  `yaml:"warning"`
	Critical       *float64  `yaml:"critical"`
	WarningAction  string    `yaml:"warning_action"`
	CriticalAction string    `yaml:"critical_action"`
}

type newNetYAML struct {
	Enabled        *bool     `yaml:"enabled"`
	WarningAction  string    `yaml:"warning_action"`
	CriticalAction string    `yaml:"critical_action"`
	LearnCalls     *int      `yaml:"learn_calls"`
	LearnSpan      *Duration `yaml:"learn_span"`
	Trusted        []string  `yaml:"trusted"`
}

type scoreYAML struct {
	Enabled        *bool    `yaml:"enabled"`
	Mode           string   `yaml:"mode"`
	Warning        *float64 `yaml:"warning"`
	Critical       *float64 `yaml:"critical"`
	WarningAction  string   `yaml:"warning_action"`
	CriticalAction string   `yaml:"critical_action"`
}

// Defaults of the baselines section.
const (
	DefaultWarmUp          = 14 * 24 * time.Hour
	DefaultHalfLife        = 14 * 24 * time.Hour
	DefaultWarmUpCalls     = 50
	DefaultDeviationWindow = time.Hour
	DefaultNetworkCalls    = 3
	DefaultNetworkSpan     = 24 * time.Hour
)

func (c *compiler) actions(path string, warning, critical string) PatternActions {
	return PatternActions{
		Warning:  c.verdict(path+".warning_action", warning, event.Challenge, event.Allow, event.Challenge, event.Throttle, event.Deny),
		Critical: c.verdict(path+".critical_action", critical, event.Deny, event.Allow, event.Challenge, event.Throttle, event.Deny),
	}
}

// baselines compiles a tenant's baselines section; nil gives the defaults.
func (c *compiler) baselines(path string, y *baselinesYAML) *Baselines {
	// Like the patterns, baseline rules run in monitor until a policy says
	// enforce: what they flag depends on the traffic they learned.
	b := &Baselines{
		Enabled: true, Mode: event.Monitor,
		Config:          anomaly.BaselineConfig{HalfLife: DefaultHalfLife, WarmUp: DefaultWarmUp, WarmUpCalls: DefaultWarmUpCalls},
		Deviation:       anomaly.Levels{Warning: 8, Critical: 16},
		DeviationWindow: DefaultDeviationWindow, DeviationActions: PatternActions{event.Challenge, event.Deny},
		NewNetwork: true, NewNetworkActions: PatternActions{event.Challenge, event.Deny},
		NetworkCalls: DefaultNetworkCalls, NetworkSpan: DefaultNetworkSpan,
	}
	if y == nil {
		return b
	}
	if y.Enabled != nil {
		b.Enabled = *y.Enabled
	}
	b.Mode = c.mode(path+".mode", y.Mode, event.Monitor)
	if y.HalfLife != nil {
		b.Config.HalfLife = time.Duration(*y.HalfLife)
		if b.Config.HalfLife < 24*time.Hour || b.Config.HalfLife > 365*24*time.Hour {
			c.fail(path+".half_life", "must be between 1d and 365d")
		}
	}
	if y.WarmUp != nil {
		b.Config.WarmUp = time.Duration(*y.WarmUp)
		if b.Config.WarmUp < time.Hour || b.Config.WarmUp > 365*24*time.Hour {
			c.fail(path+".warm_up", "must be between 1h and 365d")
		}
	}
	if y.WarmUpCalls != nil {
		b.Config.WarmUpCalls = *y.WarmUpCalls
		if *y.WarmUpCalls < 1 || *y.WarmUpCalls > maxThreshold {
			c.fail(path+".warm_up_calls", "must be between 1 and %d", maxThreshold)
		}
	}
	if d := y.Deviation; d != nil {
		p := path + ".deviation"
		if d.Window != nil {
			b.DeviationWindow = time.Duration(*d.Window)
			if b.DeviationWindow < 10*time.Minute || b.DeviationWindow > 24*time.Hour {
				c.fail(p+".window", "must be between 10m and 24h")
			}
		}
		if d.Warning != nil {
			b.Deviation.Warning = c.sigma(p+".warning", *d.Warning)
		}
		if d.Critical != nil {
			b.Deviation.Critical = c.sigma(p+".critical", *d.Critical)
		}
		if l := b.Deviation; l.Warning > 0 && l.Critical > 0 && l.Critical < l.Warning {
			c.fail(p+".critical", "critical (%v) is below warning (%v)", l.Critical, l.Warning)
		}
		b.DeviationActions = c.actions(p, d.WarningAction, d.CriticalAction)
	}
	if n := y.NewNetwork; n != nil {
		p := path + ".new_network"
		if n.Enabled != nil {
			b.NewNetwork = *n.Enabled
		}
		b.NewNetworkActions = c.actions(p, n.WarningAction, n.CriticalAction)
		if n.LearnCalls != nil {
			b.NetworkCalls = *n.LearnCalls
			if *n.LearnCalls < 1 || *n.LearnCalls > 1000 {
				c.fail(p+".learn_calls", "must be between 1 and 1000")
			}
		}
		if n.LearnSpan != nil {
			b.NetworkSpan = time.Duration(*n.LearnSpan)
			// A span of minutes would let a few calls in a row from a
			// stolen line make its network "known".
			if b.NetworkSpan < time.Hour || b.NetworkSpan > 30*24*time.Hour {
				c.fail(p+".learn_span", "must be between 1h and 30d")
			}
		}
		if len(n.Trusted) > maxListEntries {
			c.fail(p+".trusted", "%d entries; the limit is %d", len(n.Trusted), maxListEntries)
		}
		for i, s := range n.Trusted {
			pfx, err := parsePrefix(s)
			if err != nil {
				c.fail(fmt.Sprintf("%s.trusted[%d]", p, i), "%v", err)
				continue
			}
			b.Trusted = append(b.Trusted, pfx)
		}
	}
	return b
}

// sigma reads a level in standard deviations: 0 (off) or 1 to 1000.
func (c *compiler) sigma(path string, v float64) float64 {
	if math.IsNaN(v) || v != 0 && (v < 1 || v > 1000) {
		c.fail(path, "want a number of standard deviations between 1 and 1000, or 0 for off")
		return 0
	}
	return v
}

// score compiles a tenant's anomaly_score section; nil gives the defaults.
func (c *compiler) score(path string, y *scoreYAML) *Score {
	s := &Score{Enabled: true, Mode: event.Monitor, Levels: anomaly.Levels{Warning: 0.7, Critical: 0.8},
		Actions: PatternActions{event.Challenge, event.Deny}}
	if y == nil {
		return s
	}
	if y.Enabled != nil {
		s.Enabled = *y.Enabled
	}
	s.Mode = c.mode(path+".mode", y.Mode, event.Monitor)
	lvl := func(p string, v float64) float64 {
		if math.IsNaN(v) || v < 0 || v >= 1 {
			c.fail(p, "want a score between 0 (off) and 1, such as 0.7")
			return 0
		}
		return v
	}
	if y.Warning != nil {
		s.Levels.Warning = lvl(path+".warning", *y.Warning)
	}
	if y.Critical != nil {
		s.Levels.Critical = lvl(path+".critical", *y.Critical)
	}
	if l := s.Levels; l.Warning > 0 && l.Critical > 0 && l.Critical < l.Warning {
		c.fail(path+".critical", "critical (%v) is below warning (%v)", l.Critical, l.Warning)
	}
	s.Actions = c.actions(path, y.WarningAction, y.CriticalAction)
	return s
}
