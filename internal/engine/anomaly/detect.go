package anomaly

import (
	"math"
	"slices"
	"time"
)

// Pattern names a known fraud pattern.
type Pattern string

// The patterns the detectors recognise.
const (
	FastPumping       Pattern = "fast_pumping"       // many calls to high-risk ranges in minutes
	SlowPumping       Pattern = "slow_pumping"       // the same, spread over an hour
	TargetedPumping   Pattern = "targeted_pumping"   // one destination range hammered
	Wangiri           Pattern = "wangiri"            // bursts of one-ring outbound calls
	WangiriCallback   Pattern = "wangiri_callback"   // calling back a number that rang once
	TheftOfService    Pattern = "theft_of_service"   // new countries at night, or an unusual rate
	Robocalling       Pattern = "robocalling"        // many short calls, few answered
	SimultaneousCalls Pattern = "simultaneous_calls" // too many calls up at once
)

// Level is how sure a detection is.
type Level int

// Levels, least severe first.
const (
	None Level = iota
	Warning
	Critical
)

func (l Level) String() string {
	switch l {
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	}
	return "none"
}

// Levels are the values at which a detector warns and turns critical. A
// zero level is off.
type Levels struct{ Warning, Critical float64 }

func (l Levels) of(v float64) (Level, float64) {
	switch {
	case l.Critical > 0 && v >= l.Critical:
		return Critical, l.Critical
	case l.Warning > 0 && v >= l.Warning:
		return Warning, l.Warning
	}
	return None, 0
}

// MaxEvidenceDestinations bounds Evidence.Destinations.
const MaxEvidenceDestinations = 8

// Evidence is what a detection is based on.
type Evidence struct {
	Count  int           // calls that matched the pattern in the window
	Window time.Duration // the detector's window
	// Destinations are the distinct E.164 numbers matched, newest first, at
	// most MaxEvidenceDestinations. They are personal data: mask them
	// before they reach a log.
	Destinations []string
	Countries    int     // distinct destination countries among the matches
	Range        string  // the hammered range, for targeted pumping (a number prefix)
	Value        float64 // the measured value compared with the levels
	Threshold    float64 // the level it reached
}

// Detection is one pattern that fired.
type Detection struct {
	Pattern  Pattern
	Level    Level
	Evidence Evidence
	// MoneyAtRisk estimates what the matched calls cost: the billed cost of
	// ended calls plus, for calls still up or just attempted, the larger of
	// their cost so far and AssumedMinutes at their rate. Tenant currency.
	MoneyAtRisk float64
}

// match selects the calls of a detector.
type match func(c *Call) bool

// scan counts the calls of the window ending at now that match.
func (r *Recent) scan(now time.Time, window time.Duration, m match) int {
	cut, n := now.Add(-window), 0
	for i := range r.n {
		c := r.at(i)
		if !c.Time.After(cut) {
			break
		}
		if !c.Time.After(now) && m(c) {
			n++
		}
	}
	return n
}

// evidence fills a detection from the matching calls of the window. It is
// only called once a level is reached, so honest traffic allocates nothing.
func (r *Recent) evidence(p Pattern, l Level, value, threshold float64, now time.Time, window time.Duration, assumed float64, m match) Detection {
	d := Detection{Pattern: p, Level: l, Evidence: Evidence{Window: window, Value: value, Threshold: threshold}}
	var countries []string
	cut := now.Add(-window)
	for i := range r.n {
		c := r.at(i)
		if !c.Time.After(cut) {
			break
		}
		if c.Time.After(now) || !m(c) {
			continue
		}
		d.Evidence.Count++
		if c.E164 != "" && len(d.Evidence.Destinations) < MaxEvidenceDestinations && !slices.Contains(d.Evidence.Destinations, c.E164) {
			d.Evidence.Destinations = append(d.Evidence.Destinations, c.E164)
		}
		if c.Country != "" && !slices.Contains(countries, c.Country) {
			countries = append(countries, c.Country)
		}
		d.MoneyAtRisk += moneyAtRisk(c, now, assumed)
	}
	d.Evidence.Countries = len(countries)
	return d
}

func moneyAtRisk(c *Call, now time.Time, assumed float64) float64 {
	if c.Ended {
		return c.cost(now)
	}
	return max(c.cost(now), assumed*c.RatePerMinute)
}

// PumpingConfig detects many calls to high-risk ranges in a window: fast
// pumping with a window of minutes, slow pumping with an hour.
type PumpingConfig struct {
	Window time.Duration
	Levels Levels // calls to high-risk ranges in the window
	// MinRate, when above zero, also counts calls rated at least this much
	// per minute, for premium ranges the high-risk list does not name yet.
	MinRate        float64
	AssumedMinutes float64 // for money at risk; default 10
}

// TargetedConfig detects one destination range hammered.
type TargetedConfig struct {
	Window time.Duration
	Levels Levels // calls to the attempt's range in the window
	// RangeDigits is how many trailing digits vary inside a range: 3 means
	// a range is a block of 1000 numbers. Default 3.
	RangeDigits    int
	AssumedMinutes float64
}

// WangiriConfig detects bursts of one-ring outbound calls, and callbacks to
// numbers that rang the subject once.
type WangiriConfig struct {
	Window time.Duration
	Levels Levels // one-ring calls in the window
	// MaxRing is the longest an unanswered call may ring and still be a
	// one-ring call. Default 5 s.
	MaxRing time.Duration
	// CallbackWindow is how long after a missed inbound call a call back to
	// it counts as a callback. Default 72 h. A callback to a high-risk
	// number is critical; to another international number, a warning.
	CallbackWindow time.Duration
	AssumedMinutes float64
}

// TheftConfig detects an account that suddenly calls new countries at night
// or at a rate far from its baseline.
type TheftConfig struct {
	Window time.Duration
	// NewCountry levels count night-time calls to countries the baseline
	// does not know.
	NewCountry Levels
	// Deviation levels are in standard deviations from the baseline (see
	// Baseline.Deviation).
	Deviation      Levels
	Night          Night
	AssumedMinutes float64
}

// RobocallConfig detects a high rate of short calls with a low answer rate.
type RobocallConfig struct {
	Window        time.Duration
	Levels        Levels        // attempts in the window
	MinEnded      int           // ended calls needed to judge the answer rate; default 10
	MaxAnswerRate float64       // default 0.3
	ShortCall     time.Duration // answered calls billed under this are short; default 15 s
	MinShortShare float64       // of answered calls; default 0.6
}

// SimultaneousConfig detects too many calls up at once.
type SimultaneousConfig struct {
	Levels Levels // calls in progress
	// MaxCallDuration forgets calls whose end was never reported. Default 4 h.
	MaxCallDuration time.Duration
	AssumedMinutes  float64
}

// Detectors is the set of pattern detectors with their configuration. A
// detector whose Levels are both zero is off.
type Detectors struct {
	Fast         PumpingConfig
	Slow         PumpingConfig
	Targeted     TargetedConfig
	Wangiri      WangiriConfig
	Theft        TheftConfig
	Robocall     RobocallConfig
	Simultaneous SimultaneousConfig
}

// DefaultDetectors returns levels that honest office and contact-centre
// traffic stays well below.
func DefaultDetectors() Detectors {
	return Detectors{
		Fast:         PumpingConfig{Window: 5 * time.Minute, Levels: Levels{3, 6}},
		Slow:         PumpingConfig{Window: time.Hour, Levels: Levels{8, 15}},
		Targeted:     TargetedConfig{Window: 30 * time.Minute, Levels: Levels{6, 12}},
		Wangiri:      WangiriConfig{Window: 10 * time.Minute, Levels: Levels{10, 25}},
		Theft:        TheftConfig{Window: time.Hour, NewCountry: Levels{2, 4}, Deviation: Levels{6, 12}},
		Robocall:     RobocallConfig{Window: 10 * time.Minute, Levels: Levels{30, 60}},
		Simultaneous: SimultaneousConfig{Levels: Levels{10, 20}},
	}
}

func assumedOr(v float64) float64 {
	if v <= 0 {
		return 10
	}
	return v
}

// Check runs every detector over r at now and appends what fired to dst.
// Call it after recording the attempt (Recent.Start) and, for the patterns
// that need call outcomes, after recording an end. b is the account's
// baseline, or its group's while the account is not Warm; nil turns theft
// of service off. It allocates only when something fires.
func (d *Detectors) Check(dst []Detection, r *Recent, b *Baseline, now time.Time) []Detection {
	return d.CheckDeviation(dst, r, b, now, math.NaN())
}

// CheckDeviation is Check with the baseline deviation of the theft
// window's calls (Baseline.Deviation of Recent.Features over Theft.Window)
// already measured, for a caller that needs it too; NaN measures it.
func (d *Detectors) CheckDeviation(dst []Detection, r *Recent, b *Baseline, now time.Time, z float64) []Detection {
	for _, p := range []struct {
		pat Pattern
		cfg *PumpingConfig
	}{{FastPumping, &d.Fast}, {SlowPumping, &d.Slow}} {
		if det, ok := p.cfg.check(p.pat, r, now); ok {
			dst = append(dst, det)
		}
	}
	if det, ok := d.Targeted.Check(r, now); ok {
		dst = append(dst, det)
	}
	dst = d.Wangiri.check(dst, r, now)
	if det, ok := d.Theft.check(r, b, now, z); ok {
		dst = append(dst, det)
	}
	if det, ok := d.Robocall.Check(r, now); ok {
		dst = append(dst, det)
	}
	if det, ok := d.Simultaneous.Check(r, now); ok {
		dst = append(dst, det)
	}
	return dst
}

// Check reports fast or slow pumping (by the configured window).
func (c *PumpingConfig) Check(r *Recent, now time.Time) (Detection, bool) {
	p := SlowPumping
	if c.Window < 15*time.Minute {
		p = FastPumping
	}
	return c.check(p, r, now)
}

func (c *PumpingConfig) check(p Pattern, r *Recent, now time.Time) (Detection, bool) {
	if c.Levels == (Levels{}) || c.Window <= 0 {
		return Detection{}, false
	}
	m := func(x *Call) bool { return x.HighRisk || c.MinRate > 0 && x.RatePerMinute >= c.MinRate }
	n := r.scan(now, c.Window, m)
	l, th := c.Levels.of(float64(n))
	if l == None {
		return Detection{}, false
	}
	return r.evidence(p, l, float64(n), th, now, c.Window, assumedOr(c.AssumedMinutes), m), true
}

// rangeOf returns the range of an E.164 number: the number without its last
// digits trailing digits.
func rangeOf(e164 string, digits int) string {
	if len(e164) <= digits+2 {
		return e164
	}
	return e164[:len(e164)-digits]
}

// Check reports whether the range of the newest attempt is being hammered.
// Only international or high-risk calls count.
func (c *TargetedConfig) Check(r *Recent, now time.Time) (Detection, bool) {
	if c.Levels == (Levels{}) || c.Window <= 0 || r.n == 0 {
		return Detection{}, false
	}
	digits := c.RangeDigits
	if digits <= 0 {
		digits = 3
	}
	last := r.at(0)
	if last.E164 == "" || !(last.International || last.HighRisk) {
		return Detection{}, false
	}
	rng := rangeOf(last.E164, digits)
	m := func(x *Call) bool {
		return (x.International || x.HighRisk) && len(x.E164) == len(last.E164) && rangeOf(x.E164, digits) == rng
	}
	n := r.scan(now, c.Window, m)
	l, th := c.Levels.of(float64(n))
	if l == None {
		return Detection{}, false
	}
	d := r.evidence(TargetedPumping, l, float64(n), th, now, c.Window, assumedOr(c.AssumedMinutes), m)
	d.Evidence.Range = rng
	return d, true
}

// Check reports Wangiri: a burst of one-ring calls, or a callback (the
// newest attempt) to a number that rang the subject once.
func (c *WangiriConfig) Check(r *Recent, now time.Time) []Detection {
	return c.check(nil, r, now)
}

func (c *WangiriConfig) check(dst []Detection, r *Recent, now time.Time) []Detection {
	if c.Levels != (Levels{}) && c.Window > 0 {
		ring := c.MaxRing
		if ring <= 0 {
			ring = 5 * time.Second
		}
		m := func(x *Call) bool {
			end := x.End
			if end.IsZero() {
				end = x.Time
			}
			return x.Ended && !x.Answered && end.Sub(x.Time) <= ring
		}
		n := r.scan(now, c.Window, m)
		if l, th := c.Levels.of(float64(n)); l != None {
			dst = append(dst, r.evidence(Wangiri, l, float64(n), th, now, c.Window, assumedOr(c.AssumedMinutes), m))
		}
	}
	if r.n == 0 || len(r.missed) == 0 {
		return dst
	}
	win := c.CallbackWindow
	if win <= 0 {
		win = 72 * time.Hour
	}
	last := r.at(0)
	if last.Ended || last.Time.After(now) || !(last.International || last.HighRisk) || !r.missedSince(last.E164, last.Time.Add(-win)) {
		return dst
	}
	l := Warning
	if last.HighRisk {
		l = Critical
	}
	d := Detection{Pattern: WangiriCallback, Level: l, MoneyAtRisk: moneyAtRisk(last, now, assumedOr(c.AssumedMinutes)),
		Evidence: Evidence{Count: 1, Window: win, Destinations: []string{last.E164}, Value: 1, Threshold: 1}}
	if last.Country != "" {
		d.Evidence.Countries = 1
	}
	return append(dst, d)
}

// Check reports theft of service against baseline b (the account's, or its
// group's while the account warms up). Without a baseline it reports
// nothing.
func (c *TheftConfig) Check(r *Recent, b *Baseline, now time.Time) (Detection, bool) {
	return c.check(r, b, now, math.NaN())
}

func (c *TheftConfig) check(r *Recent, b *Baseline, now time.Time, z float64) (Detection, bool) {
	if b == nil || c.Window <= 0 || r.n == 0 {
		return Detection{}, false
	}
	isNew := func(x *Call) bool {
		return x.International && x.Country != "" && c.Night.hasHour(x.hourOfDay()) && !b.KnownCountry(x.Country, now)
	}
	var best Detection
	if c.NewCountry != (Levels{}) {
		n := r.scan(now, c.Window, isNew)
		if l, th := c.NewCountry.of(float64(n)); l != None {
			best = r.evidence(TheftOfService, l, float64(n), th, now, c.Window, assumedOr(c.AssumedMinutes), isNew)
		}
	}
	if c.Deviation != (Levels{}) {
		if math.IsNaN(z) {
			z = b.Deviation(r.Features(now, FeatureConfig{Window: c.Window, Night: c.Night}, nil), now)
		}
		if l, th := c.Deviation.of(z); l > best.Level {
			all := func(*Call) bool { return true }
			best = r.evidence(TheftOfService, l, z, th, now, c.Window, assumedOr(c.AssumedMinutes), all)
		}
	}
	return best, best.Level != None
}

// Check reports robocalling: many attempts in the window, few answered,
// and the answered ones short.
func (c *RobocallConfig) Check(r *Recent, now time.Time) (Detection, bool) {
	if c.Levels == (Levels{}) || c.Window <= 0 {
		return Detection{}, false
	}
	minEnded, maxAnswer, short, minShort := c.MinEnded, c.MaxAnswerRate, c.ShortCall, c.MinShortShare
	if minEnded <= 0 {
		minEnded = 10
	}
	if maxAnswer <= 0 {
		maxAnswer = 0.3
	}
	if short <= 0 {
		short = 15 * time.Second
	}
	if minShort <= 0 {
		minShort = 0.6
	}
	var attempts, ended, answered, shortAnswered int
	cut := now.Add(-c.Window)
	for i := range r.n {
		x := r.at(i)
		if !x.Time.After(cut) {
			break
		}
		if x.Time.After(now) {
			continue
		}
		attempts++
		if x.Ended {
			ended++
			if x.Answered {
				answered++
				if x.Billed < short {
					shortAnswered++
				}
			}
		}
	}
	if ended < minEnded || float64(answered)/float64(ended) > maxAnswer {
		return Detection{}, false
	}
	if answered > 0 && float64(shortAnswered)/float64(answered) < minShort {
		return Detection{}, false
	}
	l, th := c.Levels.of(float64(attempts))
	if l == None {
		return Detection{}, false
	}
	all := func(*Call) bool { return true }
	return r.evidence(Robocalling, l, float64(attempts), th, now, c.Window, 0, all), true
}

// Check reports too many calls in progress at now.
func (c *SimultaneousConfig) Check(r *Recent, now time.Time) (Detection, bool) {
	if c.Levels == (Levels{}) {
		return Detection{}, false
	}
	win := c.MaxCallDuration
	if win <= 0 {
		win = 4 * time.Hour
	}
	open := func(x *Call) bool { return !x.Ended }
	n := r.scan(now, win, open)
	l, th := c.Levels.of(float64(n))
	if l == None {
		return Detection{}, false
	}
	return r.evidence(SimultaneousCalls, l, float64(n), th, now, win, assumedOr(c.AssumedMinutes), open), true
}
