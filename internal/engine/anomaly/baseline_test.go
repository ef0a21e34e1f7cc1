package anomaly

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var cet = time.FixedZone("CET", 3600)

// monday is the first day of the learned history, a Monday.
var monday = time.Date(2026, 1, 5, 0, 0, 0, 0, cet)

// officeCalls returns weeks of office-hours calling: Monday to Friday,
// 09:00–17:00, four to eight calls an hour, mostly domestic (DE) with some
// calls to France.
func officeCalls(weeks int, seed uint64) []Call {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []Call
	for day := range weeks * 7 {
		d := monday.AddDate(0, 0, day)
		if d.Weekday() == time.Saturday || d.Weekday() == time.Sunday {
			continue
		}
		for h := 9; h < 17; h++ {
			var mins []int
			for range 4 + rng.IntN(5) {
				mins = append(mins, rng.IntN(60))
			}
			slices.Sort(mins)
			for _, m := range mins {
				c := Call{
					ID: fmt.Sprintf("c%d", len(out)), Time: d.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute),
					E164: fmt.Sprintf("+4930%07d", rng.IntN(40)), Country: "DE", RatePerMinute: 0.02,
					Ended: true, Answered: rng.IntN(10) < 8, Billed: time.Duration(60+rng.IntN(240)) * time.Second,
				}
				if rng.IntN(10) == 0 {
					c.E164, c.Country, c.International, c.RatePerMinute = fmt.Sprintf("+3314%07d", rng.IntN(5)), "FR", true, 0.05
				}
				if !c.Answered {
					c.Billed = 0
				}
				out = append(out, c)
			}
		}
	}
	return out
}

func officeBaseline(t testing.TB) *Baseline {
	t.Helper()
	b := NewBaseline(BaselineConfig{})
	for _, c := range officeCalls(4, 1) {
		b.Observe(c)
	}
	return b
}

func TestBaselineOfficeHours(t *testing.T) {
	b := officeBaseline(t)
	if !b.Warm() {
		t.Fatalf("not warm after four weeks and %d calls", b.Calls())
	}
	tuesday10 := time.Date(2026, 2, 3, 10, 0, 0, 0, cet)
	night := time.Date(2026, 2, 4, 3, 0, 0, 0, cet)
	b.Advance(tuesday10)

	e := b.Expected(tuesday10)
	if e.CallsPerHour < 4 || e.CallsPerHour > 8.5 {
		t.Errorf("Tuesday 10:00 expects %.2f calls; want 4–8", e.CallsPerHour)
	}
	if e.InternationalShare < 0.03 || e.InternationalShare > 0.2 {
		t.Errorf("international share %.3f; want about 0.1", e.InternationalShare)
	}
	if e.DurationMean < 60 || e.DurationMean > 300 {
		t.Errorf("mean duration %.0f s; want 60–300", e.DurationMean)
	}
	if n := b.Expected(night); n.CallsPerHour > 0.01 {
		t.Errorf("03:00 expects %.3f calls; want 0", n.CallsPerHour)
	}
	if !b.KnownCountry("DE", tuesday10) || !b.KnownCountry("FR", tuesday10) || b.KnownCountry("SL", tuesday10) {
		t.Error("country mix: want DE and FR known, SL new")
	}

	// A normal Tuesday morning: one or two calls in ten minutes.
	normal := NewRecent(0)
	normal.Start(Call{ID: "n1", Time: tuesday10.Add(2 * time.Minute), E164: "+49301234567", Country: "DE", RatePerMinute: 0.02})
	normal.Start(Call{ID: "n2", Time: tuesday10.Add(7 * time.Minute), E164: "+49301234568", Country: "DE", RatePerMinute: 0.02})
	fn := normal.Features(tuesday10.Add(9*time.Minute), FeatureConfig{}, b)
	if fn.BaselineDeviation > 2 || fn.NewCountry != 0 {
		t.Errorf("normal Tuesday: deviation %.2fσ, new country %v; want < 2σ and none", fn.BaselineDeviation, fn.NewCountry)
	}

	// 03:00: twenty calls in ten minutes to premium numbers in ten new
	// countries.
	burst := NewRecent(0)
	countries := []string{"SL", "GN", "LV", "CU", "SO", "TN", "ER", "NR", "TV", "KM"}
	for i := range 20 {
		burst.Start(Call{ID: fmt.Sprint("b", i), Time: night.Add(time.Duration(i*30) * time.Second),
			E164: fmt.Sprintf("+23276%06d", i), Country: countries[i%10], International: true, HighRisk: true, RatePerMinute: 1.5, Answered: true})
	}
	fb := burst.Features(night.Add(599*time.Second), FeatureConfig{}, b)
	if fb.BaselineDeviation < 10 {
		t.Errorf("03:00 burst deviates %.1fσ; want ≥ 10σ", fb.BaselineDeviation)
	}
	if fb.NewCountry != 1 || fb.NightShare != 1 || fb.HighRiskShare != 1 {
		t.Errorf("03:00 burst features %+v", fb)
	}
	if fb.CallsPerMin != 2 || fb.DistinctDest != 20 {
		t.Errorf("calls/min %v, distinct %v; want 2 and 20", fb.CallsPerMin, fb.DistinctDest)
	}
}

func TestBaselineWarmUp(t *testing.T) {
	b := NewBaseline(BaselineConfig{})
	calls := officeCalls(3, 2)
	for i, c := range calls {
		b.Observe(c)
		if c.Time.Sub(calls[0].Time) < 14*24*time.Hour && b.Warm() {
			t.Fatalf("warm after %d calls and %v", i+1, c.Time.Sub(calls[0].Time))
		}
	}
	if !b.Warm() {
		t.Error("not warm after three weeks")
	}
	few := NewBaseline(BaselineConfig{WarmUpCalls: 1000})
	for _, c := range calls {
		few.Observe(c)
	}
	if few.Warm() {
		t.Errorf("warm with %d calls; WarmUpCalls is 1000", few.Calls())
	}
}

func TestBaselineDecay(t *testing.T) {
	// An account that stopped calling forgets its office hours: after
	// eight quiet weeks (four half-lives) Tuesday 10:00 expects little.
	b := officeBaseline(t)
	later := time.Date(2026, 3, 31, 10, 0, 0, 0, cet) // a Tuesday, eight weeks on
	b.Advance(later)
	if e := b.Expected(later); e.CallsPerHour > 0.6 {
		t.Errorf("after eight quiet weeks Tuesday 10:00 expects %.2f calls; want < 0.6", e.CallsPerHour)
	}
}

func TestBaselineRoundTrip(t *testing.T) {
	b := officeBaseline(t)
	data, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var g Baseline
	if err := g.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	again, _ := g.MarshalBinary()
	if string(again) != string(data) {
		t.Fatal("re-encoding a decoded baseline changed the bytes")
	}
	// The restored baseline keeps learning exactly like the original.
	more := officeCalls(5, 1)[len(officeCalls(4, 1)):]
	for _, c := range more[:50] {
		b.Observe(c)
		g.Observe(c)
	}
	at := more[49].Time
	f := Features{CallsPerMin: 1, DistinctDest: 4, CostRate: 0.5}
	if b.Expected(at) != g.Expected(at) || b.Deviation(f, at) != g.Deviation(f, at) || b.Warm() != g.Warm() {
		t.Errorf("restored baseline differs: %+v vs %+v", b.Expected(at), g.Expected(at))
	}
	x, _ := b.MarshalBinary()
	y, _ := g.MarshalBinary()
	if string(x) != string(y) {
		t.Error("original and restored baselines diverged after the same calls")
	}
	for _, bad := range [][]byte{nil, data[:10], data[:len(data)-1], append(append([]byte{}, data...), 1)} {
		if err := new(Baseline).UnmarshalBinary(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("UnmarshalBinary(%d bytes) = %v; want ErrCorrupt", len(bad), err)
		}
	}
}

func FuzzBaselineUnmarshal(f *testing.F) {
	b := NewBaseline(BaselineConfig{})
	for _, c := range officeCalls(1, 3)[:20] {
		b.Observe(c)
	}
	seed, _ := b.MarshalBinary()
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var g Baseline
		if g.UnmarshalBinary(data) != nil {
			return
		}
		at := time.Unix(g.last, 0)
		g.Observe(Call{Time: at, E164: "+491", Country: "DE"})
		_ = g.Deviation(Features{CallsPerMin: 1}, at)
	})
}

func TestBaselineGroup(t *testing.T) {
	// Two office accounts make a group; a new account, not yet warm, is
	// judged by it.
	a, c := officeBaseline(t), NewBaseline(BaselineConfig{})
	for _, x := range officeCalls(4, 7) {
		c.Observe(x)
	}
	g := NewBaseline(BaselineConfig{})
	g.Merge(a)
	g.Merge(c)
	g.Merge(nil)
	tue := time.Date(2026, 2, 3, 10, 0, 0, 0, cet)
	ea, ec, eg := a.Expected(tue), c.Expected(tue), g.Expected(tue)
	if lo, hi := min(ea.CallsPerHour, ec.CallsPerHour), max(ea.CallsPerHour, ec.CallsPerHour); eg.CallsPerHour < lo-1e-9 || eg.CallsPerHour > hi+1e-9 {
		t.Errorf("group expects %.2f calls, outside its members' %.2f–%.2f", eg.CallsPerHour, lo, hi)
	}
	if !g.KnownCountry("DE", tue) || g.KnownCountry("SL", tue) {
		t.Error("group country mix: want DE known, SL new")
	}
	night := time.Date(2026, 2, 4, 3, 0, 0, 0, cet)
	burst := Features{CallsPerMin: 2, DistinctDest: 20, CostRate: 30, Window: 10 * time.Minute}
	if z := g.Deviation(burst, night); z < 10 {
		t.Errorf("group baseline: 03:00 burst deviates %.1fσ; want ≥ 10", z)
	}
	data, _ := g.MarshalBinary()
	var back Baseline
	if err := back.UnmarshalBinary(data); err != nil || back.members != 2 {
		t.Errorf("group round trip: err %v, members %d", err, back.members)
	}
}

func TestBaselineLast(t *testing.T) {
	b := NewBaseline(BaselineConfig{HalfLife: 48 * time.Hour})
	if !b.Last().IsZero() {
		t.Error("an empty baseline has a last call")
	}
	calls := officeCalls(1, 3)
	for _, c := range calls {
		b.Observe(c)
	}
	if got, want := b.Last(), calls[len(calls)-1].Time; !got.Equal(want) {
		t.Errorf("Last %v, want %v", got, want)
	}
	if b.HalfLife() != 48*time.Hour {
		t.Errorf("HalfLife %v", b.HalfLife())
	}
}

// A baseline restored from a file follows the configuration in force, and
// keeps no more countries than it allows — the heaviest ones.
func TestReconfigureKeepsTheHeaviestCountries(t *testing.T) {
	b := NewBaseline(BaselineConfig{TopCountries: 4})
	at := int64(1_772_000_000)
	for i, code := range []string{"GB", "US", "FR", "DE"} {
		b.addCountry(code, float64(i+1), at) // DE heaviest, GB lightest
	}
	b.last = at
	b.Reconfigure(BaselineConfig{TopCountries: 2, HalfLife: 24 * time.Hour})
	if b.cfg.TopCountries != 2 || b.cfg.HalfLife != 24*time.Hour {
		t.Errorf("config %+v, want the new one", b.cfg)
	}
	var got []string
	for _, c := range b.countries {
		got = append(got, c.Code)
	}
	if !slices.Equal(got, []string{"DE", "FR"}) {
		t.Errorf("countries %v, want the two heaviest [DE FR]", got)
	}
}

// The country mix is built from answered calls only, and a country's share
// is of the answered calls: calls nobody picked up cost nothing, so they
// must not make a country known, nor dilute the countries really talked to.
func TestCountryMixIsAnsweredCalls(t *testing.T) {
	b := NewBaseline(BaselineConfig{})
	at := monday.Add(10 * time.Hour)
	call := func(country string, answered bool) {
		c := Call{ID: fmt.Sprint("c", b.Calls()), Time: at, E164: "+4930123", Country: country, Ended: true, Answered: answered}
		if answered {
			c.Billed = time.Minute
		}
		b.Observe(c)
		at = at.Add(10 * time.Minute)
	}
	for range 40 {
		call("DE", true)
	}
	call("US", true) // one answered call in 41: 2.4%
	for range 60 {
		call("DE", false) // unanswered: no weight, no dilution
		call("FR", false)
	}
	if b.KnownCountry("FR", at) || b.CountryShare("FR", at) != 0 {
		t.Errorf("60 unanswered calls to FR: share %.3f, known; want 0, unknown", b.CountryShare("FR", at))
	}
	if !b.KnownCountry("US", at) {
		t.Errorf("US, 1 of 41 answered calls, share %.3f: want known despite 120 unanswered calls", b.CountryShare("US", at))
	}
	// A snapshot brings the same shares back.
	data, _ := b.MarshalBinary()
	var r Baseline
	if err := r.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if got, want := r.CountryShare("US", at), b.CountryShare("US", at); got < want*0.999 || got > want*1.001 {
		t.Errorf("US share after a round trip %.5f, want %.5f", got, want)
	}
}

// A baseline's size is capped by count whatever its account does: 20,000
// answered calls in two hours to 20,000 numbers in 100 countries leave at
// most TopCountries countries and 64 destinations of the open hour, and
// an encoding no larger after the second hour than after the first.
func TestBaselineSizeCapped(t *testing.T) {
	b := NewBaseline(BaselineConfig{})
	at := monday.Add(9 * time.Hour)
	size := func() int {
		data, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return len(data)
	}
	var sizes []int
	for h := range 2 {
		for i := range 10000 {
			n := h*10000 + i
			b.Observe(Call{ID: fmt.Sprint("c", n), Time: at, E164: fmt.Sprintf("+%d%09d", 20+n%100, n), Country: fmt.Sprintf("C%02d", n%100),
				International: true, RatePerMinute: 0.1, Ended: true, Answered: true, Billed: time.Minute})
			at = at.Add(360 * time.Millisecond)
		}
		if len(b.countries) > b.cfg.TopCountries || len(b.hourDests) > maxHourDests {
			t.Errorf("hour %d: %d countries, %d destinations this hour; want at most %d and %d", h+1, len(b.countries), len(b.hourDests), b.cfg.TopCountries, maxHourDests)
		}
		sizes = append(sizes, size())
	}
	if sizes[1] > sizes[0]+16 || sizes[1] > b.binarySize() {
		t.Errorf("encoded %d bytes after an hour, %d after two; want no growth (bound %d)", sizes[0], sizes[1], b.binarySize())
	}
}
