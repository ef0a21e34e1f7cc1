package sim

import (
	"math/rand/v2"
	"time"
)

// Calls per hour of the local day for an average office account on a
// weekday: a morning and an afternoon peak with a lunch dip between; about
// twelve calls a day.
var officeHours = [24]float64{
	7: 0.2, 8: 0.8, 9: 1.4, 10: 1.7, 11: 1.6, 12: 0.6, 13: 0.7,
	14: 1.5, 15: 1.6, 16: 1.3, 17: 0.8, 18: 0.3, 19: 0.1,
}

// Attempts per hour for an outbound contact-centre agent: a predictive
// dialler's pace, with a lunch rota that halves the floor at midday.
var callCentreHours = [24]float64{
	9: 9, 10: 10, 11: 10, 12: 5, 13: 5, 14: 10, 15: 10, 16: 10, 17: 9, 18: 7, 19: 4,
}

// How much of a weekday's calling happens on other days.
func weekdayFactor(role Role, wd time.Weekday) float64 {
	switch {
	case wd >= time.Monday && wd <= time.Friday:
		return 1
	case role == CallCentre && wd == time.Saturday:
		return 0.4
	case wd == time.Saturday:
		return 0.04
	}
	return 0.015
}

// honest generates an account's calls for every simulated day.
func (g *gen) honest(ti int, a *Account) {
	t := &g.cfg.Tenants[ti]
	r := g.rng("honest/" + t.ID + "/" + a.ID)
	activity := 0.4 + 1.2*r.Float64() // some people phone more than others
	hours := &officeHours
	if a.Role == CallCentre {
		hours = &callCentreHours
		activity = 0.85 + 0.3*r.Float64()
	}
	// People ring the same colleagues, clients and suppliers again and again.
	contacts := make([]string, 12+r.IntN(20))
	for i := range contacts {
		contacts[i] = g.domestic(r, t.Home)
	}
	ip := siteIP(ti, a.Site%t.Sites)
	for d := -g.cfg.WarmUpDays; d < g.cfg.Days; d++ {
		midnight := g.day(d, t.Location)
		f := weekdayFactor(a.Role, midnight.Weekday())
		for h, mean := range hours {
			n := poisson(r, mean*f*activity)
			for range n {
				at := midnight.Add(time.Duration(h)*time.Hour + between(r, 0, time.Hour))
				c := Call{Tenant: t.ID, Account: a.ID, SourceIP: ip, Attempt: at, WarmUp: d < 0,
					Label: Label{Scenario: string(a.Role)}}
				if a.Role == CallCentre {
					g.agentCall(r, t, &c)
				} else {
					g.officeCall(r, t, a, contacts, &c)
				}
				g.add(c)
			}
		}
	}
}

// domestic returns a home number: a little over half of calls go to mobiles.
func (g *gen) domestic(r *rand.Rand, home string) string {
	if r.Float64() < 0.55 {
		return g.nums.pick(r, home, mobile)
	}
	return g.nums.pick(r, home, fixed)
}

func (g *gen) officeCall(r *rand.Rand, t *Tenant, a *Account, contacts []string, c *Call) {
	intl := len(a.Countries) > 0 && r.Float64() < 0.15
	switch {
	case intl:
		country := a.Countries[r.IntN(len(a.Countries))]
		kind := fixed
		if r.Float64() < 0.4 {
			kind = mobile
		}
		c.To = g.nums.pick(r, country, kind)
	case r.Float64() < 0.6:
		c.To = contacts[r.IntN(len(contacts))]
	default:
		c.To = g.domestic(r, t.Home)
	}
	if r.Float64() < 0.72 {
		c.Answered = true
		c.Ring = between(r, 3*time.Second, 20*time.Second)
		median := 100 * time.Second
		if intl {
			median = 3 * time.Minute
		}
		c.Duration = lognormal(r, median, 1.0, 3*time.Second, 2*time.Hour)
	} else {
		c.Ring = between(r, 15*time.Second, 40*time.Second) // no answer; the caller gives up
	}
}

func (g *gen) agentCall(r *rand.Rand, t *Tenant, c *Call) {
	c.To = g.domestic(r, t.Home) // a fresh lead each time
	if r.Float64() < 0.38 {
		c.Answered = true
		c.Ring = between(r, 4*time.Second, 18*time.Second)
		c.Duration = lognormal(r, 75*time.Second, 0.9, 2*time.Second, 40*time.Minute)
	} else {
		c.Ring = between(r, 18*time.Second, 30*time.Second) // the dialler's no-answer timeout
	}
}
