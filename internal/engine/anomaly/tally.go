package anomaly

import "time"

// tally is what one walk over the recent calls counts for every detector
// of a Detectors, newest call first. Each detector keeps the semantics of
// its own scan: it counts calls no later than now that match it, and
// stops at the first call (in ring order) not inside its window. One walk
// instead of one per detector was the point: the scans were the largest
// part of the detectors' cost.
type tally struct {
	fast, slow, targeted, wangiri, theft, simultaneous int
	// robocalling's counts
	attempts, ended, answered, shortAnswered int
}

// detectorWindow is one detector's part of the walk: on until its window
// ends, cut the start of its window.
type detectorWindow struct {
	on  bool
	cut time.Time
}

func (w *detectorWindow) open(on bool, now time.Time, window time.Duration) {
	w.on, w.cut = on, now.Add(-window)
}

// inside reports whether the walk is still in the window at t, turning
// the detector off at its first call outside it.
func (w *detectorWindow) inside(t time.Time) bool {
	if w.on && !t.After(w.cut) {
		w.on = false
	}
	return w.on
}

func (d *Detectors) tally(r *Recent, b *Baseline, now time.Time) tally {
	var t tally
	if r.n == 0 {
		return t
	}
	var fast, slow, targeted, wangiri, theft, robo, simul detectorWindow
	fast.open(d.Fast.Levels != (Levels{}) && d.Fast.Window > 0, now, d.Fast.Window)
	slow.open(d.Slow.Levels != (Levels{}) && d.Slow.Window > 0, now, d.Slow.Window)

	tg := &d.Targeted
	digits := tg.RangeDigits
	if digits <= 0 {
		digits = 3
	}
	last := r.at(0)
	var rng string
	onTargeted := tg.Levels != (Levels{}) && tg.Window > 0 && last.E164 != "" && (last.International || last.HighRisk)
	if onTargeted {
		rng = rangeOf(last.E164, digits)
	}
	targeted.open(onTargeted, now, tg.Window)

	wg := &d.Wangiri
	ring := wg.MaxRing
	if ring <= 0 {
		ring = 5 * time.Second
	}
	wangiri.open(wg.Levels != (Levels{}) && wg.Window > 0, now, wg.Window)

	th := &d.Theft
	theft.open(b != nil && th.Window > 0 && th.NewCountry != (Levels{}), now, th.Window)

	rc := &d.Robocall
	short := rc.ShortCall
	if short <= 0 {
		short = 15 * time.Second
	}
	robo.open(rc.Levels != (Levels{}) && rc.Window > 0, now, rc.Window)

	win := d.Simultaneous.MaxCallDuration
	if win <= 0 {
		win = 4 * time.Hour
	}
	simul.open(d.Simultaneous.Levels != (Levels{}), now, win)

	// KnownCountry walks the baseline's countries: ask once per country.
	var known [4]struct {
		code string
		yes  bool
	}
	nk := 0
	isKnown := func(country string) bool {
		for i := range nk {
			if known[i].code == country {
				return known[i].yes
			}
		}
		yes := b.KnownCountry(country, now)
		if nk < len(known) {
			known[nk].code, known[nk].yes = country, yes
			nk++
		}
		return yes
	}

	for i := range r.n {
		if !(fast.on || slow.on || targeted.on || wangiri.on || theft.on || robo.on || simul.on) {
			break
		}
		c := r.at(i)
		ct := c.Time
		past := !ct.After(now)
		if fast.inside(ct) && past && (c.HighRisk || d.Fast.MinRate > 0 && c.RatePerMinute >= d.Fast.MinRate) {
			t.fast++
		}
		if slow.inside(ct) && past && (c.HighRisk || d.Slow.MinRate > 0 && c.RatePerMinute >= d.Slow.MinRate) {
			t.slow++
		}
		if targeted.inside(ct) && past && (c.International || c.HighRisk) && len(c.E164) == len(last.E164) && rangeOf(c.E164, digits) == rng {
			t.targeted++
		}
		if wangiri.inside(ct) && past && c.Ended && !c.Answered {
			end := c.End
			if end.IsZero() {
				end = ct
			}
			if end.Sub(ct) <= ring {
				t.wangiri++
			}
		}
		if theft.inside(ct) && past && c.International && c.Country != "" && th.Night.hasHour(c.hourOfDay()) && !isKnown(c.Country) {
			t.theft++
		}
		if robo.inside(ct) && past {
			t.attempts++
			if c.Ended {
				t.ended++
				if c.Answered {
					t.answered++
					if c.Billed < short {
						t.shortAnswered++
					}
				}
			}
		}
		if simul.inside(ct) && past && !c.Ended {
			t.simultaneous++
		}
	}
	return t
}
