package policy_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telguard/telguard/examples"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/numbering"
)

var update = flag.Bool("update", false, "rewrite the expected errors in testdata/errors/*.txt")

const separator = "\n----------\n"

// TestErrors compiles each testdata/errors/*.txt (a policy, a line of
// dashes, then the exact error it must give) as a file named p.yaml.
func TestErrors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "errors", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no error cases")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(data), separator)
			if !ok {
				t.Fatalf("%s: no %q line", f, strings.TrimSpace(separator))
			}
			want = strings.TrimSpace(want)
			_, err = policy.Parse("p.yaml", []byte(input), nil)
			if err == nil {
				t.Fatalf("compiled; want error %q", want)
			}
			var pe *policy.Error
			if !errors.As(err, &pe) || pe.File != "p.yaml" {
				t.Errorf("error %v (%T) is not a *policy.Error naming p.yaml", err, err)
			}
			if !errors.Is(err, policy.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if *update {
				if err := os.WriteFile(f, []byte(input+separator+err.Error()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got := err.Error(); got != want {
				t.Errorf("error:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// The example policy ships with the binary; it must compile, and say what
// its comments say.
func TestExamplePolicy(t *testing.T) {
	p, err := policy.Parse("examples/policy.yaml", examples.Policy, nil)
	if err != nil {
		t.Fatal(err)
	}
	demo := p.Tenants["demo"]
	if demo == nil {
		t.Fatal("no demo tenant")
	}
	if demo.HomeCountry != "BR" || demo.Location.String() != "America/Sao_Paulo" || demo.Currency != "USD" || demo.Monitor {
		t.Errorf("demo: home %s, zone %s, currency %s, monitor %v", demo.HomeCountry, demo.Location, demo.Currency, demo.Monitor)
	}
	if g := demo.GroupFor("1001"); g.Name != "intl" || !g.International || !g.AllowedCountries["GB"] || g.Quota.Money != 10 {
		t.Errorf("1001 is in %+v; want the intl group", g)
	}
	if g := demo.GroupFor("intl-42"); g.Name != "intl" {
		t.Errorf("intl-42 is in group %s; want intl", g.Name)
	}
	if g := demo.GroupFor("2001"); g != demo.Default || g.International {
		t.Errorf("2001 is in group %s (international %v); want the defaults", g.Name, g.International)
	}
	if len(demo.Limits) != 8 {
		t.Errorf("%d limits; want 8", len(demo.Limits))
	}
	if n := len(demo.Escalation.Steps); n != 2 {
		t.Errorf("%d escalation steps; want 2", n)
	}
	// The example file on disk and the embedded copy are the same file.
	disk, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(disk) != string(examples.Policy) {
		t.Error("examples/policy.yaml differs from the embedded copy")
	}
	if _, err := policy.Load(filepath.Join("..", "..", "..", "examples", "policy.yaml")); err != nil {
		t.Errorf("Load: %v", err)
	}
}

const inheritance = `
version: 1
tenants:
  demo:
    home_country: BR
    timezone: America/Sao_Paulo
    source_ips:
      allow: ["198.51.100.0/24"]
    defaults:
      denied_prefixes: ["+55900"]
      denied_number_types: [premium_rate, satellite]
      high_risk: challenge
      source_ips:
        deny: ["198.51.100.66"]
      quota:
        international_minutes: 30
      schedule:
        windows:
          - days: [mon-fri]
            from: "08:00"
            to: "18:00"
      limits:
        - id: defaults-calls
          key: account
          metric: calls
          critical: 5
    limits:
      - id: tenant-calls
        key: tenant
        metric: calls
        window: 1s
        critical: 100
    groups:
      intl:
        accounts: ["1001", "intl-*"]
        international: true
      strict:
        accounts: ["strict-?"]
        international: true
        allowed_countries: [us, " gb "]
        denied_prefixes: []
        high_risk: deny
        quota:
          international_money: 5
        limits:
          - id: strict-distinct
            key: account
            metric: distinct_destinations
            critical: 10
`

// A group inherits every field it does not set from the tenant's defaults.
func TestGroupInheritance(t *testing.T) {
	p, err := policy.Parse("p.yaml", []byte(inheritance), nil)
	if err != nil {
		t.Fatal(err)
	}
	demo := p.Tenants["demo"]
	def, intl, strict := demo.Default, demo.Groups["intl"], demo.Groups["strict"]
	if def.International || !intl.International {
		t.Errorf("international: defaults %v, intl %v", def.International, intl.International)
	}
	for _, g := range []*policy.Group{def, intl} {
		if _, _, ok := g.DeniedPrefixes.Longest("+559001234567"); !ok {
			t.Errorf("%s: does not deny +55900", g.Name)
		}
		if !g.DeniedNumberTypes[numbering.PremiumRate] || !g.DeniedNumberTypes[numbering.Satellite] || g.DeniedNumberTypes[numbering.SharedCost] {
			t.Errorf("%s: denied types %v; want premium_rate and satellite only", g.Name, g.DeniedNumberTypes)
		}
		if g.HighRisk != event.Challenge {
			t.Errorf("%s: high_risk %s; want challenge", g.Name, g.HighRisk)
		}
		if len(g.SourceIPs.Deny) != 1 || g.Quota.Minutes != 30 || g.Schedule == nil || len(g.Schedule.Windows) != 1 {
			t.Errorf("%s: source ips %v, quota %+v, schedule %+v", g.Name, g.SourceIPs, g.Quota, g.Schedule)
		}
		if got := limitIDs(g); !slices.Equal(got, []string{"tenant-calls", "defaults-calls"}) {
			t.Errorf("%s: limits %v", g.Name, got)
		}
	}
	// What strict sets replaces the inherited value; the rest is inherited.
	if _, _, ok := strict.DeniedPrefixes.Longest("+559001234567"); ok {
		t.Error("strict: an empty denied_prefixes list should replace the defaults'")
	}
	if !strict.AllowedCountries["US"] || !strict.AllowedCountries["GB"] || len(strict.AllowedCountries) != 2 {
		t.Errorf("strict: allowed %v; want US and GB", strict.AllowedCountries)
	}
	if strict.HighRisk != event.Deny || strict.Quota.Money != 5 || strict.Quota.Minutes != 30 {
		t.Errorf("strict: high_risk %s, quota %+v", strict.HighRisk, strict.Quota)
	}
	if got := limitIDs(strict); !slices.Equal(got, []string{"tenant-calls", "defaults-calls", "strict-distinct"}) {
		t.Errorf("strict: limits %v", got)
	}
	if l := strict.Limits[2]; l.Window != time.Hour || l.CriticalAction != event.Deny || l.WarningAction != event.Challenge || l.Mode != event.Enforce || l.AppliesTo != policy.AllCalls {
		t.Errorf("strict-distinct defaults: %+v", l)
	}
	// Tenant.Limits lists each limit once.
	if got := len(demo.Limits); got != 3 {
		t.Errorf("tenant has %d limits; want 3", got)
	}
	// Group membership: exact ids, then patterns, then the defaults.
	for account, want := range map[string]string{
		"1001": "intl", "intl-x": "intl", "strict-1": "strict", "strict-12": "default", "2002": "default",
	} {
		if got := demo.GroupFor(account).Name; got != want {
			t.Errorf("GroupFor(%q) = %s; want %s", account, got, want)
		}
	}
	// The tenant's own source list is kept apart from the groups'.
	if len(demo.SourceIPs.Allow) != 1 || len(strict.SourceIPs.Allow) != 0 {
		t.Errorf("tenant source ips %v, strict %v", demo.SourceIPs, strict.SourceIPs)
	}
}

func limitIDs(g *policy.Group) []string {
	var ids []string
	for _, l := range g.Limits {
		ids = append(ids, l.ID)
	}
	return ids
}

func TestModes(t *testing.T) {
	p, err := policy.Parse("p.yaml", []byte(`
tenants:
  a:
    home_country: BR
    rule_modes:
      destination.high_risk: monitor
      schedule: enforce
  b:
    home_country: BR
    mode: monitor
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := p.Tenants["a"], p.Tenants["b"]
	for _, c := range []struct {
		t    *policy.Tenant
		rule string
		def  event.Mode
		want event.Mode
	}{
		{a, "destination.high_risk", event.Enforce, event.Monitor},
		{a, "schedule", event.Monitor, event.Enforce},
		{a, "limit.x", event.Monitor, event.Monitor},
		{a, "destination.country", "", event.Enforce},
		{b, "destination.country", event.Enforce, event.Monitor},
	} {
		if got := c.t.ModeOf(c.rule, c.def); got != c.want {
			t.Errorf("%s: ModeOf(%s, %q) = %s; want %s", c.t.ID, c.rule, c.def, got, c.want)
		}
	}
	// No escalation section: the built-in steps. An empty one: none.
	if n := len(a.Escalation.Steps); n != 2 {
		t.Errorf("built-in escalation has %d steps; want 2", n)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "1h30m": 90 * time.Minute, "7d": 7 * 24 * time.Hour, " 2d ": 48 * time.Hour} {
		if got, err := policy.ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "-1d", "-5s", "1w", "3651d", "1.5d"} {
		if _, err := policy.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q): no error", in)
		}
	}
}

func TestWindowWrapsMidnight(t *testing.T) {
	w := policy.Window{From: 22 * 60, To: 6 * 60}
	w.Days[time.Friday] = true
	at := func(day, hour int) time.Time { return time.Date(2026, 3, day, hour, 0, 0, 0, time.UTC) } // 2026-03-06 is a Friday
	for _, c := range []struct {
		t    time.Time
		want bool
	}{
		{at(6, 21), false}, {at(6, 22), true}, {at(7, 5), true}, {at(7, 6), false}, {at(7, 23), false}, {at(6, 3), false},
	} {
		if got := w.Contains(c.t); got != c.want {
			t.Errorf("%s: Contains = %v; want %v", c.t.Format("Mon 15:04"), got, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(examples.Policy)
	f.Add([]byte(inheritance))
	files, _ := filepath.Glob(filepath.Join("testdata", "errors", "*.txt"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		input, _, _ := strings.Cut(string(data), separator)
		f.Add([]byte(input))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := policy.Parse("fuzz.yaml", data, nil)
		if err != nil {
			var pe *policy.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is a %T, not a *policy.Error", err, err)
			}
			if pe.File != "fuzz.yaml" {
				t.Fatalf("error %v names file %q", err, pe.File)
			}
			return
		}
		if len(p.Tenants) == 0 {
			t.Fatal("compiled a policy with no tenants")
		}
		for id, ten := range p.Tenants {
			if ten.Default == nil || ten.Location == nil || ten.Numbers == nil || ten.HighRisk == nil || ten.Rates == nil {
				t.Fatalf("tenant %s compiled incomplete: %+v", id, ten)
			}
		}
	})
}

func TestRateDeckMustBeInTenantCurrency(t *testing.T) {
	files := map[string]string{"eur.csv": "44,0.05,EUR\n"}
	read := func(name string) ([]byte, error) { return []byte(files[name]), nil }
	src := "tenants:\n  demo:\n    home_country: BR\n    rate_deck: eur.csv\n"
	_, err := policy.Parse("p.yaml", []byte(src), read)
	if err == nil || !strings.Contains(err.Error(), "p.yaml:4") || !strings.Contains(err.Error(), "EUR") {
		t.Fatalf("EUR deck in a USD tenant: err = %v", err)
	}
	if _, err := policy.Parse("p.yaml", []byte(src+"    currency: eur\n"), read); err != nil {
		t.Fatalf("EUR deck in a EUR tenant: %v", err)
	}
}

func TestHighRiskCountriesIgnoreCase(t *testing.T) {
	src := "tenants:\n  demo:\n    home_country: BR\n    high_risk_list:\n      add_countries: [fr]\n"
	p, err := policy.Parse("p.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	num, err := p.Tenants["demo"].Numbers.Normalize("+33142685300")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Tenants["demo"].HighRisk.Match(num); !ok {
		t.Fatal("add_countries: [fr] did not add France")
	}
}
