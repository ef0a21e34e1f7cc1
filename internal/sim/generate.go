package sim

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/numbering"
)

// Role is what an account does all day.
type Role string

// The honest roles.
const (
	Office     Role = "office"      // a desk phone: business hours, mostly domestic
	CallCentre Role = "call_centre" // an outbound agent: many short domestic calls
)

// Account is one simulated account (extension or API user).
type Account struct {
	ID   string
	Role Role
	// Countries are the foreign countries the account calls on business;
	// empty means it calls only at home.
	Countries []string
	Site      int // which of the tenant's sites (public addresses) it calls from
}

// Tenant is one simulated customer.
type Tenant struct {
	ID       string
	Home     string // ISO 3166 alpha-2 home country
	Location *time.Location
	Sites    int // public source addresses its phones share (offices behind NAT)
	Accounts []Account
}

// Label names what produced a call: an honest role ("office",
// "call_centre") or an attack scenario. Fraud is true only for attacks.
type Label struct {
	Scenario string `json:"scenario"`
	Fraud    bool   `json:"fraud"`
}

// Call is one simulated call with its whole lifecycle decided in advance:
// whether and when it would be answered and how long it would last if
// allowed. What the decider does with it is the runner's business.
type Call struct {
	ID       string
	Tenant   string
	Account  string
	To       string // E.164 as dialled
	Country  string // region of To, as libphonenumber assigns it ("001" for satellite)
	SourceIP netip.Addr
	Attempt  time.Time     // call_attempt
	Ring     time.Duration // attempt to answer, or to giving up when unanswered
	Answered bool
	Duration time.Duration // billed duration when answered
	Rate     float64       // per minute, from the rate deck
	// WarmUp calls come before the measured days: they teach the engine's
	// baselines and are not in the report.
	WarmUp bool
	// Inbound calls ring the account (From is the caller, To is empty):
	// context for the engine, such as a Wangiri ring; never counted as
	// attempts in the report.
	Inbound bool
	From    string
	Label
}

// Record returns the call as the CDR of its outcome had it been allowed:
// what training on history reads.
func (c *Call) Record() event.CallRecord {
	r := event.CallRecord{Tenant: c.Tenant, Account: c.Account, CallID: c.ID, From: c.From, To: c.To,
		SourceIP: c.SourceIP, Start: c.Attempt, End: c.End()}
	if c.Inbound {
		r.Direction, r.To = event.Inbound, c.Account
	}
	if c.Answered {
		r.Answer, r.Billsec = c.Answer(), c.Duration
	}
	return r
}

// Answer returns when the call is answered (or abandoned).
func (c *Call) Answer() time.Time { return c.Attempt.Add(c.Ring) }

// End returns when the call ends.
func (c *Call) End() time.Time { return c.Attempt.Add(c.Ring + c.Duration) }

// Cost is what the call costs if it is allowed to connect.
func (c *Call) Cost() float64 {
	if !c.Answered {
		return 0
	}
	return c.Rate * c.Duration.Minutes()
}

// Config is what to generate.
type Config struct {
	Seed uint64
	// Start is the first simulated day, taken as a date in each tenant's
	// zone; zero means Monday 2 March 2026.
	Start time.Time
	Days  int
	// WarmUpDays of honest traffic only come before Start, so that the
	// engine's baselines have history before the first attack. Their
	// calls are marked WarmUp and left out of the report.
	WarmUpDays int
	// Rings adds the inbound calls of the scenarios that have them (the
	// Wangiri rings before the callbacks), for a decider that takes
	// inbound calls; without them the callbacks come out of the blue.
	Rings     bool
	Tenants   []Tenant
	Scenarios []string // attack scenarios, one instance each; nil means none
	// Rates prices calls; nil means numbering.DefaultRateDeck().
	Rates *numbering.RateDeck
}

// DefaultStart is the first day when Config.Start is zero: a Monday.
var DefaultStart = time.Date(2026, time.March, 2, 0, 0, 0, 0, time.UTC)

// ErrConfig is returned for a configuration the generator cannot use.
var ErrConfig = errors.New("bad simulation config")

// Generate returns the calls of the whole run, in attempt order, with ids
// assigned in that order. The same Config always gives the same calls.
func Generate(cfg Config) ([]Call, error) {
	if cfg.Days < 1 {
		return nil, fmt.Errorf("generate: %w: days must be at least 1", ErrConfig)
	}
	if cfg.WarmUpDays < 0 {
		return nil, fmt.Errorf("generate: %w: warm-up days must not be negative", ErrConfig)
	}
	if len(cfg.Tenants) == 0 {
		return nil, fmt.Errorf("generate: %w: no tenants", ErrConfig)
	}
	if cfg.Start.IsZero() {
		cfg.Start = DefaultStart
	}
	if cfg.Rates == nil {
		cfg.Rates = numbering.DefaultRateDeck()
	}
	for _, name := range cfg.Scenarios {
		if _, ok := scenarioByName(name); !ok {
			return nil, fmt.Errorf("generate: %w: unknown scenario %q (known: %s)", ErrConfig, name, strings.Join(ScenarioNames(), ", "))
		}
	}
	g := &gen{cfg: cfg, nums: &numbers{}, regions: map[string]string{}}
	for ti := range cfg.Tenants {
		t := &cfg.Tenants[ti]
		if t.Location == nil {
			t.Location = time.UTC
		}
		t.Sites = max(t.Sites, 1)
		for ai := range t.Accounts {
			g.honest(ti, &t.Accounts[ai])
		}
	}
	for _, name := range cfg.Scenarios {
		sc, _ := scenarioByName(name)
		r := g.rng("attack/" + name)
		sc.gen(g, r, g.victim(r))
	}
	slices.SortStableFunc(g.calls, func(a, b Call) int { return a.Attempt.Compare(b.Attempt) })
	for i := range g.calls {
		c := &g.calls[i]
		c.ID = fmt.Sprintf("sim-%07d", i+1)
		if r, ok := cfg.Rates.Lookup(c.To); ok && !c.Inbound {
			c.Rate = r.PerMinute
		}
	}
	return g.calls, nil
}

type gen struct {
	cfg     Config
	nums    *numbers
	calls   []Call
	regions map[string]string // E.164 → region
}

// rng returns a generator for one stream (an account's day-to-day calling,
// one attack), so that adding a tenant or a scenario leaves the others'
// calls as they were.
func (g *gen) rng(stream string) *rand.Rand {
	return rand.New(rand.NewPCG(g.cfg.Seed, hashString(stream)))
}

// day returns local midnight of simulated day d in loc.
func (g *gen) day(d int, loc *time.Location) time.Time {
	s := g.cfg.Start
	return time.Date(s.Year(), s.Month(), s.Day()+d, 0, 0, 0, 0, loc)
}

func (g *gen) add(c Call) {
	num := c.To
	if c.Inbound {
		num = c.From
	}
	region, ok := g.regions[num]
	if !ok {
		region = regionOf(num) // libphonenumber parsing is slow; numbers repeat
		g.regions[num] = region
	}
	c.Country = region
	g.calls = append(g.calls, c)
}

func regionOf(e164 string) string {
	n, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return ""
	}
	return phonenumbers.GetRegionCodeForNumber(n)
}

// siteIP is the public address of a tenant's site: 198.18.0.0/15, the
// benchmarking range, so honest sources never collide with attack ones.
func siteIP(tenant, site int) netip.Addr {
	n := uint32(tenant)*8 + uint32(site%8)
	return netip.AddrFrom4([4]byte{198, 18 + byte(n>>16&1), byte(n >> 8), byte(n)})
}

// poisson draws from a Poisson distribution; means here are small.
func poisson(r *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	if mean > 50 {
		return max(0, int(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// lognormal draws a duration with the given median and spread, clamped.
func lognormal(r *rand.Rand, median time.Duration, sigma float64, lo, hi time.Duration) time.Duration {
	d := time.Duration(float64(median) * math.Exp(sigma*r.NormFloat64()))
	return min(max(d, lo), hi).Round(time.Second)
}

// between draws uniformly from [lo, hi), to the millisecond.
func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return (lo + time.Duration(r.Int64N(int64(hi-lo)))).Round(time.Millisecond)
}

func sortedCountries(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}
