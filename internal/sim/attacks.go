package sim

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// Scenario is one built-in attack.
type Scenario struct {
	Name string
	Help string // a sentence or two for `telguard sim --help`
	gen  func(g *gen, r *rand.Rand, v victim)
}

// The published attack: 111 calls in 16 minutes to 37 countries.
const (
	BurstCalls     = 111
	BurstCountries = 37
	BurstSpan      = 955 * time.Second // under 16 minutes; mean gap 8.7 s
)

var scenarios = []Scenario{
	{"compromised-extension", "A cracked extension dials premium and IRSF numbers in many countries at night: " +
		"exactly 111 calls in under 16 minutes to 37 countries (3 each), mean gap about 9 s, from the attacker's address. " +
		"The published real attack; a commercial system let 14 calls through before it reacted.", compromisedExtension},
	{"fast-pumping", "80 calls in about 6 minutes from one account to a handful of numbers in one high-cost range " +
		"(Lithuanian mobile, Iridium, Cuba or Latvian premium), long calls piling up concurrently.", fastPumping},
	{"slow-pumping", "48 long calls, one every 4-7 minutes over about 4 hours of a working day, from the office's own " +
		"address to UK 070 personal numbers (a classic IRSF range in an ordinary, usually allowed country): " +
		"made to look like business traffic.", slowPumping},
	{"wangiri", "A compromised account sends a burst of 150 one-ring calls (hung up after 1-2 s, never answered) to mobiles " +
		"in 15 countries; then Caribbean premium numbers ring 15 users across the tenants once (inbound calls, " +
		"not counted as attempts) and the users call them back, and stay on hold for minutes.", wangiri},
	{"enumeration", "Enumeration then fraud: from one address an attacker probes a range with 60 short test calls to " +
		"sequential numbers, then, 20 minutes later, pumps 50 long calls to the six that answered.", enumeration},
	{"stolen-api-key", "A stolen API key places 90 calls over about 100 minutes at night from a network the tenant never " +
		"used, in the names of its international accounts: half to IRSF destinations, half to UK 070 and the " +
		"accounts' usual countries.", stolenAPIKey},
	{"distributed", "240 calls in 45 minutes spread over 120 source addresses (2 each) and up to 12 accounts of one " +
		"tenant, so that no address and few accounts stand out: 60% IRSF destinations, 40% UK 070 numbers.", distributed},
}

// Scenarios returns the built-in attack scenarios, in their default order.
func Scenarios() []Scenario { return slices.Clone(scenarios) }

// ScenarioNames returns the names of the built-in scenarios.
func ScenarioNames() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.Name
	}
	return out
}

func scenarioByName(name string) (Scenario, bool) {
	for _, s := range scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// irsfRegions are where IRSF traffic ends: the built-in high-risk list's
// countries and NANP islands, plus Iridium (+881, region "001").
var irsfRegions = []string{
	"LT", "BA", "RS", "ME", "AL", "BY", "MD", "CU", "FK", "SH", "AC", "PM", "CV", "SO", "GN", "SL", "LR",
	"GM", "GW", "TN", "ST", "TD", "CG", "CD", "MG", "KM", "ZW", "IO", "MV", "PG", "SB", "NR", "TV", "CK",
	"NU", "TK", "KI", "VU", "JM", "DO", "AG", "GD", "KN", "TC", "MS", "AI", "VG", "881",
}

// wangiriTargets are the mobiles a one-ring burst rings.
var wangiriTargets = []string{"GB", "DE", "FR", "IT", "ES", "PT", "NL", "BE", "US", "MX", "AR", "CL", "CO", "PE", "BR"}

// victim is the tenant and account an attack uses.
type victim struct {
	ti int
	t  *Tenant
	a  *Account
}

// victim picks a tenant, and in it an account allowed to call abroad: the
// account an attacker is after, and the hard case for a policy (an account
// barred from international calls is stopped by that alone). Tenants with
// no such account are picked only when no tenant has one.
func (g *gen) victim(r *rand.Rand) victim {
	var tenants []int
	for ti := range g.cfg.Tenants {
		if len(intlAccounts(&g.cfg.Tenants[ti])) > 0 {
			tenants = append(tenants, ti)
		}
	}
	if len(tenants) == 0 {
		ti := r.IntN(len(g.cfg.Tenants))
		t := &g.cfg.Tenants[ti]
		return victim{ti, t, &t.Accounts[r.IntN(len(t.Accounts))]}
	}
	ti := tenants[r.IntN(len(tenants))]
	t := &g.cfg.Tenants[ti]
	intl := intlAccounts(t)
	return victim{ti, t, intl[r.IntN(len(intl))]}
}

// intlAccounts returns the tenant's accounts that call abroad.
func intlAccounts(t *Tenant) []*Account {
	var out []*Account
	for i := range t.Accounts {
		if len(t.Accounts[i].Countries) > 0 {
			out = append(out, &t.Accounts[i])
		}
	}
	return out
}

// night returns a time between 01:00 and 04:00 local on a random day.
func (g *gen) night(r *rand.Rand, v victim) time.Time {
	return g.day(r.IntN(g.cfg.Days), v.t.Location).Add(time.Hour + between(r, 0, 3*time.Hour))
}

// workday returns a time between 09:30 and 11:00 local on a random weekday
// (the first day when the run has none).
func (g *gen) workday(r *rand.Rand, v victim) time.Time {
	var days []int
	for d := range g.cfg.Days {
		if wd := g.day(d, v.t.Location).Weekday(); wd != time.Saturday && wd != time.Sunday {
			days = append(days, d)
		}
	}
	d := 0
	if len(days) > 0 {
		d = days[r.IntN(len(days))]
	}
	return g.day(d, v.t.Location).Add(9*time.Hour + 30*time.Minute + between(r, 0, 90*time.Minute))
}

// carrierIP is where inbound calls reach the tenants from: their carrier's
// trunk (TEST-NET-2).
var carrierIP = netip.AddrFrom4([4]byte{198, 51, 100, 1})

// attackerIP returns an address in 203.0.113.0/24 (TEST-NET-3).
func attackerIP(r *rand.Rand) netip.Addr {
	return netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + r.IntN(254))})
}

// fraud adds one attack call. answer is the chance it is answered; when it
// is, it lasts between minDur and maxDur.
func (g *gen) fraud(r *rand.Rand, scenario, tenant, account, to string, ip netip.Addr, at time.Time, answer float64, minDur, maxDur time.Duration) {
	c := Call{Tenant: tenant, Account: account, To: to, SourceIP: ip, Attempt: at,
		Label: Label{Scenario: scenario, Fraud: true}}
	if r.Float64() < answer {
		c.Answered = true
		c.Ring = between(r, time.Second, 4*time.Second) // revenue-share numbers pick up at once
		c.Duration = between(r, minDur, maxDur).Round(time.Second)
	} else {
		c.Ring = between(r, 10*time.Second, 30*time.Second)
	}
	g.add(c)
}

// irsfNumber returns a number in region: premium where the region has a
// premium range, else mobile.
func (g *gen) irsfNumber(r *rand.Rand, region string) string {
	if r.IntN(2) == 0 {
		return g.nums.pick(r, region, premium)
	}
	return g.nums.pick(r, region, mobile)
}

func compromisedExtension(g *gen, r *rand.Rand, v victim) {
	const name = "compromised-extension"
	regions := slices.Clone(irsfRegions)
	r.Shuffle(len(regions), func(i, j int) { regions[i], regions[j] = regions[j], regions[i] })
	regions = regions[:BurstCountries]
	order := make([]string, 0, BurstCalls)
	for len(order) < BurstCalls {
		order = append(order, regions...)
	}
	order = order[:BurstCalls]
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	gaps := spread(r, BurstCalls-1, 3*time.Second, 15*time.Second, BurstSpan)
	ip := attackerIP(r)
	at := g.night(r, v)
	for i, region := range order {
		if i > 0 {
			at = at.Add(gaps[i-1])
		}
		g.fraud(r, name, v.t.ID, v.a.ID, g.irsfNumber(r, region), ip, at, 0.95, 2*time.Minute, 15*time.Minute)
	}
}

// spread returns n gaps drawn from [lo, hi) and scaled to add up to total
// (to the millisecond, never more).
func spread(r *rand.Rand, n int, lo, hi, total time.Duration) []time.Duration {
	gaps := make([]time.Duration, n)
	var sum time.Duration
	for i := range gaps {
		gaps[i] = between(r, lo, hi)
		sum += gaps[i]
	}
	for i := range gaps {
		gaps[i] = (time.Duration(float64(gaps[i]) * float64(total) / float64(sum))).Truncate(time.Millisecond)
	}
	return gaps
}

func fastPumping(g *gen, r *rand.Rand, v victim) {
	targets := []struct {
		region string
		kind   numberKind
	}{{"LT", mobile}, {"881", mobile}, {"CU", mobile}, {"LV", premium}}
	tg := targets[r.IntN(len(targets))]
	range_ := make([]string, 10)
	for i := range range_ {
		range_[i] = g.nums.pick(r, tg.region, tg.kind)
	}
	ip := attackerIP(r)
	at := g.night(r, v)
	for range 80 {
		g.fraud(r, "fast-pumping", v.t.ID, v.a.ID, range_[r.IntN(len(range_))], ip, at, 0.97, 8*time.Minute, 25*time.Minute)
		at = at.Add(between(r, 2*time.Second, 7*time.Second))
	}
}

func slowPumping(g *gen, r *rand.Rand, v victim) {
	range_ := make([]string, 8)
	for i := range range_ {
		range_[i] = g.nums.pick(r, "GB", personal)
	}
	ip := siteIP(v.ti, v.a.Site%v.t.Sites)
	at := g.workday(r, v)
	for range 48 {
		g.fraud(r, "slow-pumping", v.t.ID, v.a.ID, range_[r.IntN(len(range_))], ip, at, 0.95, 8*time.Minute, 20*time.Minute)
		at = at.Add(between(r, 4*time.Minute, 7*time.Minute))
	}
}

func wangiri(g *gen, r *rand.Rand, v victim) {
	const name = "wangiri"
	ip := attackerIP(r)
	at := g.workday(r, v)
	for range 150 {
		c := Call{Tenant: v.t.ID, Account: v.a.ID, SourceIP: ip, Attempt: at,
			To:    g.nums.pick(r, wangiriTargets[r.IntN(len(wangiriTargets))], mobile),
			Ring:  between(r, time.Second, 2*time.Second),
			Label: Label{Scenario: name, Fraud: true}}
		g.add(c)
		at = at.Add(between(r, 2*time.Second, 6*time.Second))
	}
	premiums := []string{g.nums.pick(r, "JM", mobile), g.nums.pick(r, "DO", mobile), g.nums.pick(r, "AG", mobile)}
	for range 15 {
		ti := r.IntN(len(g.cfg.Tenants))
		t := &g.cfg.Tenants[ti]
		a := &t.Accounts[r.IntN(len(t.Accounts))]
		to := premiums[r.IntN(len(premiums))]
		// The premium number rings the user once (an inbound call, hung
		// up after a second or two), then the user calls it back.
		ring := at.Add(between(r, 0, 5*time.Minute))
		rang := Call{Tenant: t.ID, Account: a.ID, From: to, Inbound: true, SourceIP: carrierIP,
			Attempt: ring, Ring: between(r, time.Second, 2*time.Second), Label: Label{Scenario: name, Fraud: true}}
		if g.cfg.Rings {
			g.add(rang)
		}
		cb := ring.Add(between(r, 5*time.Minute, 4*time.Hour))
		g.fraud(r, name, t.ID, a.ID, to, siteIP(ti, a.Site%t.Sites), cb, 0.98, time.Minute, 6*time.Minute)
	}
}

func enumeration(g *gen, r *rand.Rand, v victim) {
	const name = "enumeration"
	targets := []struct {
		region string
		kind   numberKind
	}{{"LT", mobile}, {"GB", personal}, {"LV", premium}}
	tg := targets[r.IntN(len(targets))]
	probe := g.nums.sequential(r, tg.region, tg.kind, 60)
	ip := attackerIP(r)
	at := g.night(r, v)
	for _, to := range probe {
		g.fraud(r, name, v.t.ID, v.a.ID, to, ip, at, 0.3, time.Second, 3*time.Second)
		at = at.Add(between(r, 3*time.Second, 8*time.Second))
	}
	picked := make([]string, 6)
	for i := range picked {
		picked[i] = probe[r.IntN(len(probe))]
	}
	at = at.Add(20 * time.Minute)
	for range 50 {
		g.fraud(r, name, v.t.ID, v.a.ID, picked[r.IntN(len(picked))], ip, at, 0.97, 5*time.Minute, 20*time.Minute)
		at = at.Add(between(r, 10*time.Second, 30*time.Second))
	}
}

// openNumber returns a number an attacker expects to get through: a UK 070
// number or a mobile in one of the account's usual countries.
func (g *gen) openNumber(r *rand.Rand, a *Account) string {
	if len(a.Countries) == 0 || r.IntN(2) == 0 {
		return g.nums.pick(r, "GB", personal)
	}
	return g.nums.pick(r, a.Countries[r.IntN(len(a.Countries))], mobile)
}

func stolenAPIKey(g *gen, r *rand.Rand, v victim) {
	accts := intlAccounts(v.t)
	if len(accts) == 0 {
		accts = []*Account{v.a}
	}
	ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + r.IntN(254))}) // TEST-NET-1: a network the tenant never used
	at := g.night(r, v)
	for range 90 {
		a := accts[r.IntN(len(accts))]
		to := g.openNumber(r, a)
		if r.IntN(2) == 0 {
			to = g.irsfNumber(r, irsfRegions[r.IntN(len(irsfRegions))])
		}
		g.fraud(r, "stolen-api-key", v.t.ID, a.ID, to, ip, at, 0.95, 3*time.Minute, 12*time.Minute)
		at = at.Add(between(r, 40*time.Second, 90*time.Second))
	}
}

func distributed(g *gen, r *rand.Rand, v victim) {
	idx := r.Perm(len(v.t.Accounts))
	// International accounts first: they are what the credential stuffing
	// was after; the rest are used too.
	slices.SortStableFunc(idx, func(a, b int) int {
		return boolRank(len(v.t.Accounts[b].Countries) > 0) - boolRank(len(v.t.Accounts[a].Countries) > 0)
	})
	idx = idx[:min(12, len(idx))]
	ips := make([]netip.Addr, 120)
	seen := map[netip.Addr]bool{}
	for i := range ips {
		for {
			ip := netip.AddrFrom4([4]byte{100, byte(64 + r.IntN(64)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
			if !seen[ip] {
				seen[ip] = true
				ips[i] = ip
				break
			}
		}
	}
	order := make([]netip.Addr, 0, 240)
	order = append(append(order, ips...), ips...)
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	gaps := spread(r, len(order)-1, 2*time.Second, 20*time.Second, 45*time.Minute)
	at := g.night(r, v)
	for i, ip := range order {
		if i > 0 {
			at = at.Add(gaps[i-1])
		}
		a := &v.t.Accounts[idx[r.IntN(len(idx))]]
		to := g.nums.pick(r, "GB", personal)
		if r.Float64() < 0.6 {
			to = g.irsfNumber(r, irsfRegions[r.IntN(len(irsfRegions))])
		}
		g.fraud(r, "distributed", v.t.ID, a.ID, to, ip, at, 0.95, 3*time.Minute, 15*time.Minute)
	}
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
