package sim

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/telguard/telguard/examples"
	"github.com/telguard/telguard/internal/engine/policy"
)

func examplePolicy(t *testing.T) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("examples/policy.yaml", examples.Policy, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func generate(t *testing.T, seed uint64, days, tenants, accounts int, scenarios ...string) ([]Call, *policy.Policy) {
	t.Helper()
	world, pol, err := World(examplePolicy(t), tenants, accounts)
	if err != nil {
		t.Fatal(err)
	}
	calls, err := Generate(Config{Seed: seed, Days: days, Tenants: world, Scenarios: scenarios})
	if err != nil {
		t.Fatal(err)
	}
	return calls, pol
}

func fraudOf(calls []Call, scenario string) []Call {
	var out []Call
	for _, c := range calls {
		if c.Fraud && c.Scenario == scenario {
			out = append(out, c)
		}
	}
	return out
}

// The published attack, exactly: 111 attempts, 37 countries, under 16
// minutes, about 9 s apart, one tenant and account, and every country is
// the one the engine's own normaliser gives the number.
func TestCompromisedExtensionIsThePublishedAttack(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 99} {
		calls, pol := generate(t, seed, 7, 4, 20, "compromised-extension")
		burst := fraudOf(calls, "compromised-extension")
		if len(burst) != 111 {
			t.Fatalf("seed %d: %d attempts, want 111", seed, len(burst))
		}
		countries := map[string]int{}
		for _, c := range burst {
			if c.Tenant != burst[0].Tenant || c.Account != burst[0].Account || c.SourceIP != burst[0].SourceIP {
				t.Fatalf("seed %d: the burst changes tenant, account or address: %+v", seed, c)
			}
			n, err := pol.Tenants[c.Tenant].Numbers.Normalize(c.To)
			if err != nil {
				t.Fatalf("seed %d: %s: %v", seed, c.To, err)
			}
			if n.Region != c.Country || !n.International {
				t.Fatalf("seed %d: %s labelled %s, engine says %s (international %v)", seed, c.To, c.Country, n.Region, n.International)
			}
			countries[c.Country]++
		}
		if len(countries) != 37 {
			t.Fatalf("seed %d: %d countries, want 37: %v", seed, len(countries), countries)
		}
		span := burst[110].Attempt.Sub(burst[0].Attempt)
		if span > 16*time.Minute {
			t.Fatalf("seed %d: spans %s, want within 16 minutes", seed, span)
		}
		if gap := span / 110; gap < 8*time.Second || gap > 10*time.Second {
			t.Fatalf("seed %d: mean gap %s, want about 9 s", seed, gap)
		}
	}
}

func TestScenarioCountsAndLabels(t *testing.T) {
	want := map[string]int{"compromised-extension": 111, "fast-pumping": 80, "slow-pumping": 48, "wangiri": 165,
		"enumeration": 110, "stolen-api-key": 90, "distributed": 240}
	world, _, err := World(examplePolicy(t), 5, 20)
	if err != nil {
		t.Fatal(err)
	}
	calls, err := Generate(Config{Seed: 5, Days: 3, Tenants: world, Scenarios: ScenarioNames(), Rings: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	inbound := 0
	for _, c := range calls {
		if c.Inbound {
			inbound++
			if c.Scenario != "wangiri" || c.From == "" || c.To != "" || c.Answered {
				t.Fatalf("inbound call %+v; want only the Wangiri rings, unanswered", c)
			}
			continue
		}
		if c.Fraud {
			got[c.Scenario]++
		} else if c.Scenario != string(Office) && c.Scenario != string(CallCentre) {
			t.Fatalf("honest call labelled %q", c.Scenario)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("attempts per scenario %v, want %v", got, want)
	}
	if inbound != 15 {
		t.Fatalf("%d Wangiri rings, want one per callback (15)", inbound)
	}
	ips := map[netip.Addr]bool{}
	for _, c := range fraudOf(calls, "distributed") {
		ips[c.SourceIP] = true
	}
	if len(ips) != 120 {
		t.Fatalf("distributed attack from %d addresses, want 120", len(ips))
	}
	seen := map[string]bool{}
	for i, c := range calls {
		if seen[c.ID] {
			t.Fatalf("call id %s twice", c.ID)
		}
		seen[c.ID] = true
		if i > 0 && c.Attempt.Before(calls[i-1].Attempt) {
			t.Fatalf("calls out of order at %d", i)
		}
		if c.Answered != (c.Duration > 0) || (c.Rate <= 0 && c.Country != "" && !c.Inbound) {
			t.Fatalf("inconsistent call %+v", c)
		}
	}
}

// Honest traffic carries no fraud label and looks like an office: busy
// weekdays, quiet weekends, a lunch dip.
func TestHonestTraffic(t *testing.T) {
	calls, _ := generate(t, 1, 7, 4, 30) // Monday to Sunday
	var weekday, weekend, eleven, twelve, intl int
	loc := examplePolicy(t).Tenants["demo"].Location
	for _, c := range calls {
		if c.Fraud {
			t.Fatalf("fraud label on honest-only traffic: %+v", c)
		}
		if c.Scenario != string(Office) {
			continue
		}
		at := c.Attempt.In(loc)
		if wd := at.Weekday(); wd == time.Saturday || wd == time.Sunday {
			weekend++
		} else {
			weekday++
		}
		switch at.Hour() {
		case 11:
			eleven++
		case 12:
			twelve++
		}
		if c.Country != "BR" {
			intl++
		}
	}
	if weekday == 0 || weekend*20 > weekday {
		t.Fatalf("weekday %d, weekend %d office calls: weekends should be quiet", weekday, weekend)
	}
	if twelve*2 > eleven {
		t.Fatalf("11:00 %d calls, 12:00 %d: no lunch dip", eleven, twelve)
	}
	if share := float64(intl) / float64(weekday+weekend); share < 0.005 || share > 0.1 {
		t.Fatalf("international share of office calls %.3f", share)
	}
}

func TestSameSeedSameStream(t *testing.T) {
	a, _ := generate(t, 42, 2, 3, 10, ScenarioNames()...)
	b, _ := generate(t, 42, 2, 3, 10, ScenarioNames()...)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different calls")
	}
	c, _ := generate(t, 43, 2, 3, 10, ScenarioNames()...)
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds, same calls")
	}
}

func TestGenerateRejectsBadConfig(t *testing.T) {
	world, _, err := World(examplePolicy(t), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{{Days: 0, Tenants: world}, {Days: 1}, {Days: 1, Tenants: world, Scenarios: []string{"nope"}}} {
		if _, err := Generate(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}
