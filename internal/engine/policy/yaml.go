package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The YAML shape of a policy file. Pointer fields are "not set" when nil so a
// group can inherit them from the tenant's defaults. docs/policy.md documents
// every field; keep the two in step.

type fileYAML struct {
	Version int                    `yaml:"version"`
	Tenants map[string]*tenantYAML `yaml:"tenants"`
}

type tenantYAML struct {
	HomeCountry     string               `yaml:"home_country"`
	Timezone        string               `yaml:"timezone"`
	Currency        string               `yaml:"currency"`
	Mode            string               `yaml:"mode"`
	Dial            dialYAML             `yaml:"dial"`
	RateDeck        string               `yaml:"rate_deck"`
	HighRiskList    *highRiskYAML        `yaml:"high_risk_list"`
	SourceIPs       *ipListYAML          `yaml:"source_ips"`
	Defaults        groupYAML            `yaml:"defaults"`
	Groups          map[string]groupYAML `yaml:"groups"`
	Limits          []limitYAML          `yaml:"limits"`
	Escalation      *escalationYAML      `yaml:"escalation"`
	RuleModes       map[string]string    `yaml:"rule_modes"`
	MaxCallDuration *Duration            `yaml:"max_call_duration"`
	SIP             *sipYAML             `yaml:"sip"`
	Patterns        *patternsYAML        `yaml:"patterns"`
	Baselines       *baselinesYAML       `yaml:"baselines"`
	AnomalyScore    *scoreYAML           `yaml:"anomaly_score"`
}

type sipYAML struct {
	ScannerAction   string            `yaml:"scanner_action"`
	ScannerBan      *Duration         `yaml:"scanner_ban"`
	BuiltinScanners *bool             `yaml:"builtin_scanners"`
	Scanners        []fingerprintYAML `yaml:"scanners"`
	BruteForce      *bruteForceYAML   `yaml:"brute_force"`
}

type fingerprintYAML struct {
	Field    string `yaml:"field"`
	Contains string `yaml:"contains"`
	Name     string `yaml:"name"`
}

type bruteForceYAML struct {
	Window            *Duration `yaml:"window"`
	FailuresPerIP     *int      `yaml:"failures_per_ip"`
	FailuresPerUser   *int      `yaml:"failures_per_user"`
	UsernamesPerIP    *int      `yaml:"usernames_per_ip"`
	SlowWindow        *Duration `yaml:"slow_window"`
	SlowFailuresPerIP *int      `yaml:"slow_failures_per_ip"`
	Ban               *Duration `yaml:"ban"`
	EnumerationBan    *Duration `yaml:"enumeration_ban"`
}

type dialYAML struct {
	OutsideLine           []string `yaml:"outside_line"`
	InternationalPrefixes []string `yaml:"international_prefixes"`
	NationalPrefix        string   `yaml:"national_prefix"`
}

type highRiskYAML struct {
	UseBuiltin      *bool    `yaml:"use_builtin"`
	AddCountries    []string `yaml:"add_countries"`
	AddPrefixes     []string `yaml:"add_prefixes"`
	RemoveCountries []string `yaml:"remove_countries"`
	RemovePrefixes  []string `yaml:"remove_prefixes"`
}

type ipListYAML struct {
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
}

type groupYAML struct {
	Accounts          []string      `yaml:"accounts"`
	International     *bool         `yaml:"international"`
	AllowedCountries  *[]string     `yaml:"allowed_countries"`
	DeniedPrefixes    *[]string     `yaml:"denied_prefixes"`
	DeniedNumberTypes *[]string     `yaml:"denied_number_types"`
	HighRisk          *string       `yaml:"high_risk"`
	SourceIPs         *ipListYAML   `yaml:"source_ips"`
	Quota             *quotaYAML    `yaml:"quota"`
	Schedule          *scheduleYAML `yaml:"schedule"`
	Limits            []limitYAML   `yaml:"limits"`
}

type quotaYAML struct {
	InternationalMinutes *float64 `yaml:"international_minutes"`
	InternationalMoney   *float64 `yaml:"international_money"`
	Warning              *float64 `yaml:"warning"`
}

type scheduleYAML struct {
	AppliesTo string       `yaml:"applies_to"`
	Outside   string       `yaml:"outside"`
	Windows   []windowYAML `yaml:"windows"`
	Mode      string       `yaml:"mode"`
}

type windowYAML struct {
	Days []string `yaml:"days"`
	From string   `yaml:"from"`
	To   string   `yaml:"to"`
}

type limitYAML struct {
	ID             string    `yaml:"id"`
	Key            string    `yaml:"key"`
	PrefixLen      int       `yaml:"prefix_len"`
	Metric         string    `yaml:"metric"`
	Window         *Duration `yaml:"window"`
	Warning        int       `yaml:"warning"`
	Critical       int       `yaml:"critical"`
	WarningAction  string    `yaml:"warning_action"`
	CriticalAction string    `yaml:"critical_action"`
	Mode           string    `yaml:"mode"`
	AppliesTo      string    `yaml:"applies_to"`
	MaxStep        int       `yaml:"max_step"`
	ShortCall      *Duration `yaml:"short_call"`
}

type escalationYAML struct {
	Window *Duration  `yaml:"window"`
	Mode   string     `yaml:"mode"`
	Steps  []stepYAML `yaml:"steps"`
}

type stepYAML struct {
	After    int       `yaml:"after"`
	Action   string    `yaml:"action"`
	Duration *Duration `yaml:"duration"`
}

// Duration is a time.Duration written as Go durations ("90s", "1h30m") or
// whole days ("7d").
type Duration time.Duration

// UnmarshalYAML parses a duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := ParseDuration(s)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses "90s", "1h30m" or "7d".
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "d") {
		n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
		if err != nil || n < 0 || n > 3650 {
			return 0, fmt.Errorf("bad duration %q: want e.g. 30s, 5m, 2h or 7d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad duration %q: want e.g. 30s, 5m, 2h or 7d", s)
	}
	return v, nil
}
