package anomaly

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 2, 3, 10, 0, 0, 0, cet) // a Tuesday, after officeBaseline's weeks

// seq builds n calls starting at start, gap apart, shaped by f.
func seq(n int, start time.Time, gap time.Duration, f func(i int, c *Call)) []Call {
	out := make([]Call, n)
	for i := range out {
		out[i] = Call{ID: fmt.Sprint("id", i), Time: start.Add(time.Duration(i) * gap),
			E164: fmt.Sprintf("+4930%07d", i), Country: "DE", RatePerMinute: 0.02}
		f(i, &out[i])
	}
	return out
}

func premium(i int, c *Call) {
	c.E164 = fmt.Sprintf("+%d%09d", 220+i%37, 700000000+i)
	c.Country = fmt.Sprintf("C%02d", i%37)
	c.International, c.HighRisk, c.RatePerMinute = true, true, 1.5
}

func TestDetectors(t *testing.T) {
	base := officeBaseline(t)
	night := time.Date(2026, 2, 4, 3, 0, 0, 0, cet)
	ended := func(answered bool, ring, billed time.Duration) func(int, *Call) {
		return func(_ int, c *Call) {
			c.Ended, c.Answered, c.Billed, c.End = true, answered, billed, c.Time.Add(ring+billed)
		}
	}
	cases := []struct {
		name      string
		pattern   Pattern
		calls     []Call
		missed    []string // numbers that rang the account once before the calls
		warnAt    int      // index of the call at which the pattern first warns; -1 never
		critAt    int      // … and turns critical; -1 never
		countries int      // evidence countries at the end, when > 0
	}{
		// The published attack: 111 calls in 16 minutes to 37 countries.
		{"fast pumping, 111 calls / 37 countries", FastPumping, seq(111, t0, 9*time.Second, premium), nil, 2, 5, 34},
		{"fast pumping, honest office", FastPumping, seq(40, t0, 2*time.Minute, func(int, *Call) {}), nil, -1, -1, 0},
		{"fast pumping, one premium call an hour", FastPumping, seq(5, t0, time.Hour, premium), nil, -1, -1, 0},
		{"slow pumping, a premium call every 3.5 minutes", SlowPumping, seq(20, t0, 210*time.Second, premium), nil, 7, 14, 0},
		{"slow pumping, not seen as fast", FastPumping, seq(20, t0, 210*time.Second, premium), nil, -1, -1, 0},
		{"targeted pumping, one range", TargetedPumping, seq(15, t0, time.Minute, func(i int, c *Call) {
			c.E164, c.Country, c.International = fmt.Sprintf("+882130001%03d", i), "001", true
		}), nil, 5, 11, 0},
		{"targeted pumping, international calls to many ranges", TargetedPumping, seq(30, t0, time.Minute, func(i int, c *Call) {
			c.E164, c.Country, c.International = fmt.Sprintf("+33%d4000000", 10+i), "FR", true
		}), nil, -1, -1, 0},
		{"wangiri, one-ring bursts", Wangiri, seq(30, t0, 10*time.Second, ended(false, 2*time.Second, 0)), nil, 9, 24, 0},
		{"wangiri, unanswered calls that rang out", Wangiri, seq(30, t0, 10*time.Second, ended(false, 30*time.Second, 0)), nil, -1, -1, 0},
		{"wangiri callback to a premium number", WangiriCallback, seq(1, t0, 0, premium), []string{"+220700000000"}, 0, 0, 0},
		{"wangiri, calling a number that never rang", WangiriCallback, seq(3, t0, time.Minute, premium), []string{"+4930000000"}, -1, -1, 0},
		{"theft of service, new countries at night", TheftOfService, seq(6, night, 2*time.Minute, func(i int, c *Call) {
			c.E164, c.Country, c.International, c.RatePerMinute = fmt.Sprintf("+5%d1234567", i), fmt.Sprint("N", i), true, 0.3
		}), nil, 1, 3, 6},
		{"theft of service, daytime burst to a known country", TheftOfService, seq(60, t0, 20*time.Second, func(i int, c *Call) {}), nil, 22, 40, 0},
		{"theft of service, ordinary Tuesday", TheftOfService, seq(6, t0, 8*time.Minute, func(int, *Call) {}), nil, -1, -1, 0},
		{"robocalling, few answered and short", Robocalling, seq(70, t0, 10*time.Second, func(i int, c *Call) {
			ended(i%10 == 0, 20*time.Second, 5*time.Second)(i, c)
		}), nil, 29, 59, 0},
		{"robocalling, contact centre with real conversations", Robocalling, seq(70, t0, 10*time.Second, func(i int, c *Call) {
			ended(i%2 == 0, 20*time.Second, 3*time.Minute)(i, c)
		}), nil, -1, -1, 0},
		{"simultaneous calls, none ending", SimultaneousCalls, seq(25, t0, 5*time.Second, func(int, *Call) {}), nil, 9, 19, 0},
		{"simultaneous calls, each ends before the next", SimultaneousCalls, seq(25, t0, 5*time.Minute, ended(true, time.Second, 2*time.Minute)), nil, -1, -1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := DefaultDetectors()
			r := NewRecent(0)
			for _, m := range tc.missed {
				r.MissedInbound(m, tc.calls[0].Time.Add(-time.Hour))
			}
			warnAt, critAt := -1, -1
			var last Detection
			for i, c := range tc.calls {
				r.Start(c)
				for _, det := range d.Check(nil, r, base, c.Time) {
					if det.Pattern != tc.pattern {
						continue
					}
					last = det
					if warnAt < 0 {
						warnAt = i
					}
					if critAt < 0 && det.Level == Critical {
						critAt = i
					}
				}
			}
			if warnAt != tc.warnAt || critAt != tc.critAt {
				t.Errorf("%s first fired at call %d, critical at %d; want %d and %d (last %+v)",
					tc.pattern, warnAt, critAt, tc.warnAt, tc.critAt, last)
			}
			if warnAt < 0 {
				return
			}
			ev := last.Evidence
			if ev.Count < 1 || ev.Window <= 0 || len(ev.Destinations) == 0 || len(ev.Destinations) > MaxEvidenceDestinations {
				t.Errorf("evidence %+v", ev)
			}
			if tc.countries > 0 && ev.Countries != tc.countries {
				t.Errorf("evidence names %d countries; want %d", ev.Countries, tc.countries)
			}
			if last.Level == Critical && ev.Value < ev.Threshold {
				t.Errorf("critical with value %v below threshold %v", ev.Value, ev.Threshold)
			}
		})
	}
}

// Honest traffic of every kind fires no detector at all.
func TestDetectorsQuietOnHonestTraffic(t *testing.T) {
	base := officeBaseline(t)
	d := DefaultDetectors()
	r := NewRecent(0)
	for _, c := range officeCalls(5, 1)[len(officeCalls(4, 1)):] {
		r.Start(c)
		if got := d.Check(nil, r, base, c.Time); len(got) > 0 {
			t.Fatalf("honest call at %v fired %+v", c.Time, got)
		}
		base.Observe(c)
	}
}

func TestFastPumpingMoneyAtRisk(t *testing.T) {
	r := NewRecent(0)
	for _, c := range seq(6, t0, 9*time.Second, premium) {
		r.Start(c)
	}
	cfg := DefaultDetectors().Fast
	det, ok := cfg.Check(r, t0.Add(45*time.Second))
	if !ok || det.Pattern != FastPumping || det.Level != Critical {
		t.Fatalf("got %+v, %v", det, ok)
	}
	// Six calls still up, 1.5 a minute, ten minutes assumed each.
	if det.MoneyAtRisk != 6*1.5*10 {
		t.Errorf("money at risk %v; want 90", det.MoneyAtRisk)
	}
	if det.Level.String() != "critical" || Warning.String() != "warning" || None.String() != "none" {
		t.Error("level names")
	}
}

func TestRecentEndAndEviction(t *testing.T) {
	r := NewRecent(4)
	for _, c := range seq(6, t0, time.Second, func(int, *Call) {}) {
		r.Start(c)
	}
	if r.Len() != 4 {
		t.Fatalf("Len %d; want 4", r.Len())
	}
	if r.End("id0", t0, true, time.Minute) {
		t.Error("ended an evicted call")
	}
	r.Answer("id5")
	if !r.End("id5", t0.Add(time.Minute), true, time.Minute) || !r.at(0).Ended || !r.at(0).Answered {
		t.Error("newest call not ended")
	}
	if r.at(3).ID != "id2" {
		t.Errorf("oldest kept is %s; want id2", r.at(3).ID)
	}
}

func BenchmarkCheck(b *testing.B) {
	base := officeBaseline(b)
	d := DefaultDetectors()
	r := NewRecent(0)
	calls := officeCalls(5, 1)[len(officeCalls(4, 1)):]
	for _, c := range calls[:200] {
		r.Start(c)
	}
	now := calls[199].Time
	dst := make([]Detection, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		dst = d.Check(dst[:0], r, base, now)
	}
}

// The ring starts small and grows to its capacity, keeping the calls in
// order across each growth and wrapping only once full.
func TestRecentGrowsToCapacity(t *testing.T) {
	r := NewRecent(10)
	for i, c := range seq(15, t0, time.Second, func(int, *Call) {}) {
		r.Start(c)
		if want := min(i+1, 10); r.Len() != want {
			t.Fatalf("after %d calls Len %d; want %d", i+1, r.Len(), want)
		}
		if r.at(0).ID != c.ID || r.at(r.Len()-1).ID != fmt.Sprint("id", max(0, i-9)) {
			t.Fatalf("after %d calls newest %s oldest %s", i+1, r.at(0).ID, r.at(r.Len()-1).ID)
		}
	}
	if len(r.calls) != 10 {
		t.Errorf("ring size %d; want 10", len(r.calls))
	}
}

// Trim forgets ended calls older than the cut, but not a call still up
// nor anything after it, and gives the room back once half is unused.
func TestRecentTrim(t *testing.T) {
	r := NewRecent(128)
	for i, c := range seq(100, t0, time.Minute, func(int, *Call) {}) {
		r.Start(c)
		if i != 10 {
			r.End(c.ID, c.Time.Add(30*time.Second), true, 20*time.Second)
		}
	}
	r.Trim(t0.Add(5 * time.Minute))
	if r.Len() != 95 || r.at(94).ID != "id5" {
		t.Fatalf("after trimming 5: Len %d, oldest %s", r.Len(), r.at(r.Len()-1).ID)
	}
	r.Trim(t0.Add(90 * time.Minute))
	if r.Len() != 90 || r.at(89).ID != "id10" {
		t.Fatalf("a call up stops the trim: Len %d, oldest %s", r.Len(), r.at(r.Len()-1).ID)
	}
	r.End("id10", t0.Add(95*time.Minute), true, time.Hour)
	r.Trim(t0.Add(90 * time.Minute))
	if r.Len() != 10 || r.at(9).ID != "id90" || r.at(0).ID != "id99" || len(r.calls) != 15 {
		t.Fatalf("after trimming to 10: Len %d, oldest %s, newest %s, ring %d", r.Len(), r.at(r.Len()-1).ID, r.at(0).ID, len(r.calls))
	}
	for i, c := range seq(200, t0.Add(2*time.Hour), time.Second, func(int, *Call) {}) {
		c.ID = fmt.Sprint("n", i)
		r.Start(c)
	}
	if r.Len() != 128 || r.at(0).ID != "n199" || r.at(127).ID != "n72" {
		t.Errorf("refilled: Len %d, newest %s, oldest %s", r.Len(), r.at(0).ID, r.at(127).ID)
	}
}
