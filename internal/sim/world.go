package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/telguard/telguard/internal/engine/policy"
)

// businessCountries are where an international account calls when its
// policy group allows any country: the usual trading partners.
var businessCountries = []string{"US", "GB", "DE", "FR", "ES", "IT", "PT", "AR", "MX", "CN"}

// World builds the simulated tenants from a policy and returns them with
// the policy the engine should run. Simulated tenant i runs the rules of
// the policy's tenant i mod N (tenants in name order); when the policy has
// fewer tenants than asked for, the extra ones are copies named
// "<tenant>-<i>", so one example tenant can stand for many customers.
//
// Each tenant gets accounts accounts. Every fourth tenant is a contact
// centre (nine in ten accounts are outbound agents "cc-NNN"); in the
// others about a fifth of the accounts are "intl-NNN" and the rest are
// plain extensions numbered from 2001. What each account may dial abroad
// comes from its policy group: the group's allowed countries less the
// high-risk list, or the usual trading partners when the group allows any
// country, or nothing when it may not call abroad. Honest traffic is thus
// traffic the policy was written for, as a calibrated policy is.
func World(p *policy.Policy, tenants, accounts int) ([]Tenant, *policy.Policy, error) {
	if tenants < 1 || accounts < 1 {
		return nil, nil, fmt.Errorf("build world: %w: need at least one tenant and one account", ErrConfig)
	}
	ids := make([]string, 0, len(p.Tenants))
	for id := range p.Tenants {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, nil, fmt.Errorf("build world: %w: the policy has no tenants", ErrConfig)
	}
	slices.Sort(ids)
	out := &policy.Policy{File: p.File, Tenants: map[string]*policy.Tenant{}}
	world := make([]Tenant, tenants)
	for i := range world {
		tpl := p.Tenants[ids[i%len(ids)]]
		id := tpl.ID
		if i >= len(ids) {
			id = fmt.Sprintf("%s-%d", tpl.ID, i)
		}
		if _, clash := p.Tenants[id]; clash && i >= len(ids) {
			return nil, nil, fmt.Errorf("build world: %w: tenant name %q is taken", ErrConfig, id)
		}
		pt := tpl
		if id != tpl.ID {
			c := *tpl // same compiled rules, own id
			c.ID = id
			pt = &c
		}
		out.Tenants[id] = pt
		loc := tpl.Location
		if loc == nil {
			loc = time.UTC
		}
		t := Tenant{ID: id, Home: tpl.HomeCountry, Location: loc, Sites: 1 + i%3}
		centre := i%4 == 3
		for a := range accounts {
			var acc Account
			switch {
			case centre && a%10 != 0:
				acc = Account{ID: fmt.Sprintf("cc-%03d", a), Role: CallCentre}
			case !centre && a%5 == 1:
				acc = Account{ID: fmt.Sprintf("intl-%03d", a), Role: Office}
			default:
				acc = Account{ID: fmt.Sprintf("%d", 2001+a), Role: Office}
			}
			acc.Site = a % t.Sites
			acc.Countries = abroad(pt, acc.ID)
			t.Accounts = append(t.Accounts, acc)
		}
		world[i] = t
	}
	return world, out, nil
}

// abroad returns the countries an account's group lets it call on
// business.
func abroad(t *policy.Tenant, account string) []string {
	g := t.GroupFor(account)
	if g == nil || !g.International {
		return nil
	}
	var list []string
	if len(g.AllowedCountries) > 0 {
		list = sortedCountries(g.AllowedCountries)
	} else {
		list = slices.Clone(businessCountries)
	}
	return slices.DeleteFunc(list, func(c string) bool {
		if c == t.HomeCountry {
			return true
		}
		ex := example(c, fixed)
		if ex == nil {
			return true
		}
		if t.HighRisk == nil || t.Numbers == nil {
			return false
		}
		n, err := t.Numbers.Normalize(phonenumbers.Format(ex, phonenumbers.E164))
		if err != nil {
			return true
		}
		_, risky := t.HighRisk.Match(n)
		return risky
	})
}
