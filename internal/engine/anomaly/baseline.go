package anomaly

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// BaselineConfig sets how a baseline learns. Zero values take the defaults.
type BaselineConfig struct {
	// HalfLife is how fast old behaviour fades: an observation this old
	// weighs half as much as a new one. Default 14 days.
	HalfLife time.Duration
	// WarmUp is how long an account must have been observed, and
	// WarmUpCalls how many calls, before its own baseline is trusted.
	// Defaults 14 days and 50 calls.
	WarmUp      time.Duration
	WarmUpCalls int
	// TopCountries bounds the destination-country mix kept. Default 16.
	TopCountries int
	// MinCountryShare is the share below which a country counts as new.
	// Default 0.02.
	MinCountryShare float64
	// CostUnit is the smallest cost of one call assumed when judging cost
	// deviation, so an account that never spent anything is not infinitely
	// surprised by its first paid call. Tenant currency; default 0.1.
	CostUnit float64
}

func (c BaselineConfig) withDefaults() BaselineConfig {
	if c.HalfLife <= 0 {
		c.HalfLife = 14 * 24 * time.Hour
	}
	if c.WarmUp <= 0 {
		c.WarmUp = 14 * 24 * time.Hour
	}
	if c.WarmUpCalls <= 0 {
		c.WarmUpCalls = 50
	}
	if c.TopCountries <= 0 {
		c.TopCountries = 16
	}
	if c.MinCountryShare <= 0 {
		c.MinCountryShare = 0.02
	}
	if c.CostUnit <= 0 {
		c.CostUnit = 0.1
	}
	return c
}

// ewstat is a mean and variance with exponentially decaying weights:
// West's weighted incremental algorithm, with the old weight multiplied by
// the decay factor before each new sample. It is unbiased from the first
// sample, unlike a plain EWMA started at zero.
type ewstat struct{ W, M, S float64 }

func (e *ewstat) add(x, decay float64) {
	e.W = e.W*decay + 1
	d := x - e.M
	e.M += d / e.W
	e.S = e.S*decay + d*(x-e.M)
}

func (e ewstat) variance() float64 {
	if e.W <= 0 {
		return 0
	}
	return max(0, e.S/e.W)
}

// mix returns the mixture of e (weight a) and o (weight 1-a).
func (e ewstat) mix(o ewstat, a float64) ewstat {
	m := a*e.M + (1-a)*o.M
	e2 := a*(e.variance()+e.M*e.M) + (1-a)*(o.variance()+o.M*o.M)
	w := a*e.W + (1-a)*o.W
	return ewstat{W: w, M: m, S: max(0, e2-m*m) * w}
}

// decayed is a sum whose terms fade with the half-life, on event time.
type decayed struct {
	V  float64
	At int64 // unix seconds the value is current at
}

func decayFactor(seconds float64, halfLife time.Duration) float64 {
	return math.Exp2(-seconds / halfLife.Seconds())
}

func (d *decayed) add(x float64, at int64, hl time.Duration) {
	if at < d.At { // late: fade the sample instead of rewinding the sum
		d.V += x * decayFactor(float64(d.At-at), hl)
		return
	}
	d.V = d.V*decayFactor(float64(at-d.At), hl) + x
	d.At = at
}

func (d decayed) value(at int64, hl time.Duration) float64 {
	if at <= d.At {
		return d.V
	}
	return d.V * decayFactor(float64(at-d.At), hl)
}

type countryWeight struct {
	Code string
	W    decayed
}

// maxHourDests bounds the distinct destinations remembered per hour; a count
// above it saturates, which is already far outside any office pattern.
const maxHourDests = 64

// maxGapHours bounds the idle hours folded in one step: after sixteen weeks
// at the default half-life older behaviour weighs under 0.4%.
const maxGapHours = 16 * 168

// Baseline is one account's (or, merged, one group's) normal calling,
// learned online from observed calls with exponential decay. Memory is
// constant: 168 hour-of-week buckets, a few running statistics and a
// bounded country mix. Observations must come in roughly increasing event
// time; a late call is counted in the current hour.
type Baseline struct {
	// The two slices come first: the garbage collector scans an object
	// only up to its last pointer, so with them here it skips the 4 KB of
	// statistics below instead of walking them on every cycle.
	hourDests []uint64
	countries []countryWeight

	cfg     BaselineConfig
	first   int64 // unix seconds of the first observed call
	last    int64 // and of the latest
	calls   int64 // calls observed, not decayed (for warm-up)
	members int64 // accounts merged into a group baseline; 0 for an account

	hour      int64 // local hour serial of the open hour
	hourCalls float64
	hourCost  float64

	week        [168]ewstat // calls per hour, one sample per week per bucket
	active      ewstat      // calls per active hour (an hour with calls)
	cost        ewstat      // cost per active hour
	dests       ewstat      // distinct destinations per active hour
	activeAt    int64       // hour serial of the last active hour folded
	duration    ewstat      // billed seconds of answered calls
	durationAt  int64       // unix seconds of the last duration sample
	intl, total decayed     // international calls and all calls
	// answered is the sum of the country mix's weights: the answered
	// calls it holds. Country shares are of these, not of all calls.
	answered decayed
}

// NewBaseline returns an empty baseline.
func NewBaseline(cfg BaselineConfig) *Baseline {
	return &Baseline{cfg: cfg.withDefaults()}
}

// Observe learns from one call. Call it once per call, when it has ended
// (so its duration and cost are known); an unanswered call counts as an
// attempt with no duration.
func (b *Baseline) Observe(c Call) {
	at := c.Time.Unix()
	if b.calls == 0 {
		b.first, b.last, b.hour = at, at, localHour(c.Time)
	}
	b.Advance(c.Time)
	b.calls++
	b.last = max(b.last, at)
	b.hourCalls++
	b.hourCost += c.cost(c.Time)
	if len(b.hourDests) < maxHourDests && c.E164 != "" {
		h := hash64(c.E164)
		if !slices.Contains(b.hourDests, h) {
			b.hourDests = append(b.hourDests, h)
		}
	}
	hl := b.cfg.HalfLife
	b.total.add(1, at, hl)
	if c.International {
		b.intl.add(1, at, hl)
	}
	if c.Answered && c.Billed > 0 {
		f := 1.0
		if b.duration.W > 0 && at > b.durationAt {
			f = decayFactor(float64(at-b.durationAt), hl)
		}
		b.duration.add(c.Billed.Seconds(), f)
		b.durationAt = max(b.durationAt, at)
	}
	// Only an answered call builds the country mix: unanswered calls cost
	// nothing, so without this an attacker could make a country "known"
	// with a few free daytime calls that nobody picks up, and then call it
	// at night unnoticed.
	if c.Country != "" && c.Answered {
		b.addCountry(c.Country, 1, at)
	}
}

// Reconfigure puts cfg (defaults filled in) in force in place of the one
// the baseline was made or decoded with, keeping only the heaviest
// TopCountries of its country mix (ties: the first, for determinism). A
// restored baseline must follow today's policy, not the file's.
func (b *Baseline) Reconfigure(cfg BaselineConfig) {
	b.cfg = cfg.withDefaults()
	if len(b.countries) <= b.cfg.TopCountries {
		return
	}
	at, hl := b.last, b.cfg.HalfLife
	slices.SortStableFunc(b.countries, func(x, y countryWeight) int {
		return cmp.Compare(y.W.value(at, hl), x.W.value(at, hl))
	})
	b.countries = slices.Clip(b.countries[:b.cfg.TopCountries])
	b.recount()
}

// recount sets answered to the sum of the country mix, after the mix was
// changed wholesale (decoded, trimmed, merged).
func (b *Baseline) recount() {
	var at int64
	for _, c := range b.countries {
		at = max(at, c.W.At)
	}
	hl := b.cfg.HalfLife
	b.answered = decayed{At: at}
	for _, c := range b.countries {
		b.answered.V += c.W.value(at, hl)
	}
}

func (b *Baseline) addCountry(code string, w float64, at int64) {
	hl := b.cfg.HalfLife
	b.answered.add(w, at, hl)
	for i := range b.countries {
		if b.countries[i].Code == code {
			b.countries[i].W.add(w, at, hl)
			return
		}
	}
	if len(b.countries) < b.cfg.TopCountries {
		b.countries = append(b.countries, countryWeight{Code: code, W: decayed{V: w, At: at}})
		return
	}
	// Full: the faintest country makes room (ties: the first, for
	// determinism).
	low := 0
	for i := range b.countries {
		if b.countries[i].W.value(at, hl) < b.countries[low].W.value(at, hl) {
			low = i
		}
	}
	b.answered.add(-b.countries[low].W.value(at, hl), at, hl)
	b.answered.V = max(0, b.answered.V)
	b.countries[low] = countryWeight{Code: code, W: decayed{V: w, At: at}}
}

// Advance closes the hours before t's hour, counting the idle ones as zero.
// Observe does this itself; call it before Deviation or Expected when the
// account has been quiet, so a silent week lowers its expectations.
func (b *Baseline) Advance(t time.Time) {
	if b.calls == 0 {
		return
	}
	s := localHour(t)
	if s <= b.hour {
		return
	}
	hlHours := b.cfg.HalfLife.Hours()
	weekly := math.Exp2(-168 / hlHours)
	b.week[hourOfWeek(b.hour)].add(b.hourCalls, weekly)
	if b.hourCalls > 0 {
		f := 1.0
		if b.active.W > 0 {
			f = math.Exp2(-float64(b.hour-b.activeAt) / hlHours)
		}
		b.active.add(b.hourCalls, f)
		b.cost.add(b.hourCost, f)
		b.dests.add(float64(len(b.hourDests)), f)
		b.activeAt = b.hour
	}
	gap := min(s-b.hour-1, maxGapHours)
	for h := s - gap; h < s; h++ {
		b.week[hourOfWeek(h)].add(0, weekly)
	}
	b.hour, b.hourCalls, b.hourCost, b.hourDests = s, 0, 0, b.hourDests[:0]
}

// Warm reports whether the baseline has seen enough (WarmUp of history and
// WarmUpCalls calls) to judge its account. Until then judge the account by
// its group's baseline.
func (b *Baseline) Warm() bool {
	return b.calls >= int64(b.cfg.WarmUpCalls) && time.Duration(b.last-b.first)*time.Second >= b.cfg.WarmUp
}

// Calls returns how many calls the baseline has observed.
func (b *Baseline) Calls() int64 { return b.calls }

// Expectation is what a baseline expects of its account in one hour of the
// week. Dynamic thresholds are mean + k·SD.
type Expectation struct {
	CallsPerHour, CallsPerHourSD float64 // in this hour of the week
	// Per active hour (an hour with at least one call).
	CostPerHour, CostPerHourSD          float64
	DistinctDestPerHour, DistinctDestSD float64
	InternationalShare                  float64 // 0..1, of all calls
	DurationMean, DurationSD            float64 // billed seconds of answered calls
}

// Expected returns what the baseline expects in the hour of week of t.
func (b *Baseline) Expected(t time.Time) Expectation {
	w := b.week[hourOfWeek(localHour(t))]
	e := Expectation{
		CallsPerHour: w.M, CallsPerHourSD: math.Sqrt(w.variance()),
		CostPerHour: b.cost.M, CostPerHourSD: math.Sqrt(b.cost.variance()),
		DistinctDestPerHour: b.dests.M, DistinctDestSD: math.Sqrt(b.dests.variance()),
		DurationMean: b.duration.M, DurationSD: math.Sqrt(b.duration.variance()),
	}
	at, hl := t.Unix(), b.cfg.HalfLife
	if tot := b.total.value(at, hl); tot > 0 {
		e.InternationalShare = b.intl.value(at, hl) / tot
	}
	return e
}

// CountryShare returns the decayed share (0..1) of answered calls to
// country.
func (b *Baseline) CountryShare(country string, t time.Time) float64 {
	at, hl := t.Unix(), b.cfg.HalfLife
	tot := b.answered.value(at, hl)
	if tot <= 0 {
		return 0
	}
	for _, c := range b.countries {
		if c.Code == country {
			return min(1, c.W.value(at, hl)/tot)
		}
	}
	return 0
}

// KnownCountry reports whether the account calls country often enough
// (MinCountryShare) for a call there not to be new.
func (b *Baseline) KnownCountry(country string, t time.Time) bool {
	return b.CountryShare(country, t) >= b.cfg.MinCountryShare
}

// Deviation returns how far a recent window (f, measured over f.Window,
// default ten minutes) is from what the baseline expects at t, in standard
// deviations: the largest of the deviations of calls (against this hour of
// the week), distinct destinations and cost (against an active hour).
// Negative means quieter than usual. Counts are treated as Poisson on top
// of the learned variance, so one call in a usually silent hour is about
// 1σ, not infinitely surprising.
func (b *Baseline) Deviation(f Features, t time.Time) float64 {
	win := f.Window
	if win <= 0 {
		win = 10 * time.Minute
	}
	w := win.Hours()
	mins := win.Minutes()
	hw := b.week[hourOfWeek(localHour(t))]
	if hw.W < 1 {
		// This hour of the week has not come round once yet (a baseline
		// younger than a week): judge the calls against an active hour
		// rather than against nothing.
		hw = b.active
	}
	z := zscore(f.CallsPerMin*mins, hw.M, hw.variance(), w, 1)
	z = max(z, zscore(f.DistinctDest, b.dests.M, b.dests.variance(), w, 1))
	unit := b.cfg.CostUnit
	if b.active.M > 0 {
		unit = max(unit, b.cost.M/b.active.M)
	}
	z = max(z, zscore(f.CostRate*mins, b.cost.M, b.cost.variance(), w, unit))
	return z
}

// zscore compares x, seen over a fraction w of an hour, with an hourly mean
// m and variance v of a quantity that comes in units of size u.
func zscore(x, m, v, w, u float64) float64 {
	mw := m * w
	return (x - mw) / math.Sqrt(v*w*w+mw*u+u*u)
}

// Merge folds o into b as members of one group baseline: b becomes the
// average account of everything merged into it, weighted by member count.
// Use a group baseline for accounts that are not yet Warm. Start a group
// from NewBaseline. The open hours are not merged.
func (b *Baseline) Merge(o *Baseline) {
	if o == nil || o.calls == 0 {
		return
	}
	on := max(o.members, 1)
	if b.calls == 0 {
		cfg := b.cfg
		*b = *o.clone()
		b.cfg, b.members = cfg, on
		b.hourCalls, b.hourCost, b.hourDests = 0, 0, nil
		return
	}
	bn := max(b.members, 1)
	a := float64(bn) / float64(bn+on)
	for i := range b.week {
		b.week[i] = b.week[i].mix(o.week[i], a)
	}
	b.active = b.active.mix(o.active, a)
	b.cost = b.cost.mix(o.cost, a)
	b.dests = b.dests.mix(o.dests, a)
	b.duration = b.duration.mix(o.duration, a)
	at, hl := max(b.last, o.last), b.cfg.HalfLife
	mixd := func(x, y decayed) decayed {
		return decayed{V: a*x.value(at, hl) + (1-a)*y.value(at, hl), At: at}
	}
	b.intl, b.total = mixd(b.intl, o.intl), mixd(b.total, o.total)
	for i := range b.countries {
		b.countries[i].W = decayed{V: a * b.countries[i].W.value(at, hl), At: at}
	}
	for _, c := range o.countries {
		b.addCountry(c.Code, (1-a)*c.W.value(at, hl), at)
	}
	b.recount()
	b.first, b.last = min(b.first, o.first), at
	b.activeAt, b.durationAt = max(b.activeAt, o.activeAt), max(b.durationAt, o.durationAt)
	b.calls += o.calls
	b.members = bn + on
}

func (b *Baseline) clone() *Baseline {
	c := *b
	c.hourDests = slices.Clone(b.hourDests)
	c.countries = slices.Clone(b.countries)
	return &c
}

const baselineMagic, baselineVersion = "TGBL", 1

// MarshalBinary encodes the baseline, its configuration included.
func (b *Baseline) MarshalBinary() ([]byte, error) {
	return b.AppendBinary(make([]byte, 0, b.binarySize())), nil
}

// binarySize is an upper bound of the encoded size.
func (b *Baseline) binarySize() int {
	return 64 + 8*len(b.hourDests) + (len(b.week)+4)*24 + 64 + len(b.countries)*32 + 8*10
}

// AppendBinary appends the encoding MarshalBinary returns to out, so that
// a snapshot of many baselines is written into one reused buffer.
func (b *Baseline) AppendBinary(out []byte) []byte {
	out = append(out, baselineMagic...)
	out = append(out, baselineVersion)
	c := b.cfg
	for _, v := range []int64{int64(c.HalfLife), int64(c.WarmUp), int64(c.WarmUpCalls), int64(c.TopCountries)} {
		out = appendVarint(out, v)
	}
	out = appendF64(out, c.MinCountryShare)
	out = appendF64(out, c.CostUnit)
	for _, v := range []int64{b.first, b.last, b.calls, b.members, b.hour, b.activeAt, b.durationAt} {
		out = appendVarint(out, v)
	}
	out = appendF64(out, b.hourCalls)
	out = appendF64(out, b.hourCost)
	out = appendVarint(out, int64(len(b.hourDests)))
	for _, h := range b.hourDests {
		out = appendF64(out, math.Float64frombits(h))
	}
	stat := func(e ewstat) {
		out = appendF64(out, e.W)
		out = appendF64(out, e.M)
		out = appendF64(out, e.S)
	}
	for _, e := range b.week {
		stat(e)
	}
	for _, e := range []ewstat{b.active, b.cost, b.dests, b.duration} {
		stat(e)
	}
	for _, d := range []decayed{b.intl, b.total} {
		out = appendF64(out, d.V)
		out = appendVarint(out, d.At)
	}
	out = appendVarint(out, int64(len(b.countries)))
	for _, cw := range b.countries {
		out = appendString(out, cw.Code)
		out = appendF64(out, cw.W.V)
		out = appendVarint(out, cw.W.At)
	}
	return out
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (b *Baseline) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	r.header(baselineMagic, baselineVersion)
	var n Baseline
	n.cfg.HalfLife = time.Duration(r.varint())
	n.cfg.WarmUp = time.Duration(r.varint())
	n.cfg.WarmUpCalls = r.count(math.MaxInt32)
	n.cfg.TopCountries = r.count(1024)
	n.cfg.MinCountryShare = r.f64()
	n.cfg.CostUnit = r.f64()
	for _, p := range []*int64{&n.first, &n.last, &n.calls, &n.members, &n.hour, &n.activeAt, &n.durationAt} {
		*p = r.varint()
	}
	n.hourCalls = r.f64()
	n.hourCost = r.f64()
	if k := r.count(maxHourDests); k > 0 {
		n.hourDests = make([]uint64, k)
		for i := range n.hourDests {
			n.hourDests[i] = math.Float64bits(r.f64())
		}
	}
	stat := func(e *ewstat) { e.W, e.M, e.S = r.f64(), r.f64(), r.f64() }
	for i := range n.week {
		stat(&n.week[i])
	}
	for _, e := range []*ewstat{&n.active, &n.cost, &n.dests, &n.duration} {
		stat(e)
	}
	for _, d := range []*decayed{&n.intl, &n.total} {
		d.V, d.At = r.f64(), r.varint()
	}
	if k := r.count(n.cfg.TopCountries); k > 0 {
		n.countries = make([]countryWeight, k)
		for i := range n.countries {
			n.countries[i] = countryWeight{Code: r.string(16), W: decayed{V: r.f64(), At: r.varint()}}
		}
	}
	n.recount()
	if r.err || len(r.b) != 0 || n.cfg.HalfLife <= 0 || n.cfg.TopCountries <= 0 || n.calls < 0 {
		return ErrCorrupt
	}
	*b = n
	return nil
}

// Last returns the time of the latest call observed; zero before any.
func (b *Baseline) Last() time.Time {
	if b.calls == 0 {
		return time.Time{}
	}
	return time.Unix(b.last, 0)
}

// HalfLife returns the half-life the baseline decays with.
func (b *Baseline) HalfLife() time.Duration { return b.cfg.HalfLife }

// Clone returns a deep copy of b.
func (b *Baseline) Clone() *Baseline { return b.clone() }
