// Package policy turns a policy file (YAML, per tenant, with account groups
// that inherit the tenant's defaults) into a compiled, read-only rule set
// the engine evaluates. Validation names the file and line of every mistake;
// a policy that does not compile is never half-applied.
package policy

import (
	"net/netip"
	"path"
	"strconv"
	"time"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/numbering"
)

// Policy is a compiled policy: immutable once built, shared by concurrent
// decisions.
type Policy struct {
	File    string
	Tenants map[string]*Tenant
}

// Tenant is one tenant's compiled rules.
type Tenant struct {
	ID              string
	HomeCountry     string
	Location        *time.Location
	Currency        string
	Monitor         bool // the whole tenant is in monitor mode
	Numbers         *numbering.Normalizer
	Rates           *numbering.RateDeck
	HighRisk        *numbering.HighRisk
	SourceIPs       IPList
	Default         *Group
	Groups          map[string]*Group
	Limits          []*Limit // every limit of the tenant and its groups, by id
	Escalation      Escalation
	MaxCallDuration time.Duration
	// ConcurrentPrefixLens has bit n set when a concurrency limit counts
	// by n-digit destination prefix: calls in flight are indexed under
	// those prefixes.
	ConcurrentPrefixLens uint16
	SIP                  *SIP
	Patterns             *Patterns
	Baselines            *Baselines
	Score                *Score
	ruleModes            map[string]event.Mode
	exact                map[string]*Group
	patterns             []groupPattern
}

type groupPattern struct {
	pattern string
	group   *Group
}

// GroupFor returns the group an account belongs to: an exact account id
// first, then the first matching pattern in group-name order, then the
// tenant's defaults.
func (t *Tenant) GroupFor(account string) *Group {
	if g, ok := t.exact[account]; ok {
		return g
	}
	for _, p := range t.patterns {
		if ok, _ := path.Match(p.pattern, account); ok {
			return p.group
		}
	}
	return t.Default
}

// ModeOf returns the mode a rule runs in: monitor when the tenant is in
// monitor, else the rule's configured mode, else def.
func (t *Tenant) ModeOf(rule string, def event.Mode) event.Mode {
	if t.Monitor {
		return event.Monitor
	}
	if m, ok := t.ruleModes[rule]; ok {
		return m
	}
	if def == "" {
		return event.Enforce
	}
	return def
}

// Group is an account group with everything inherited from the tenant's
// defaults already filled in.
type Group struct {
	Name              string
	International     bool
	AllowedCountries  map[string]bool // empty: any country not otherwise denied
	DeniedPrefixes    *numbering.PrefixTable[string]
	DeniedNumberTypes map[numbering.Type]bool
	HighRisk          event.Verdict // what a high-risk destination gets: deny, challenge or allow
	SourceIPs         IPList
	Quota             Quota
	Schedule          *Schedule
	Limits            []*Limit // the tenant's limits followed by the group's own
}

// IPList is a source IP allow/deny list. An empty allow list allows any
// address not denied.
type IPList struct {
	Allow []netip.Prefix
	Deny  []netip.Prefix
}

// Empty reports whether the list has no entries.
func (l IPList) Empty() bool { return len(l.Allow) == 0 && len(l.Deny) == 0 }

// Quota is a daily international allowance per account. Zero means no limit.
type Quota struct {
	Minutes float64
	Money   float64
	Warning float64 // fraction of a quota at which calls are challenged; 0 = never
}

// Scope says which calls a rule applies to.
type Scope string

// Rule scopes.
const (
	AllCalls           Scope = "all"
	InternationalCalls Scope = "international"
)

// Schedule limits when calls may be made.
type Schedule struct {
	AppliesTo Scope
	Outside   event.Verdict
	Mode      event.Mode
	Windows   []Window
}

// Window is a weekly time window in the tenant's time zone. From and To are
// minutes after midnight; To < From wraps past midnight.
type Window struct {
	Days     [7]bool // indexed by time.Weekday
	From, To int
}

// Contains reports whether the local time t falls inside the window.
func (w Window) Contains(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	if w.From <= w.To {
		return w.Days[day] && m >= w.From && m < w.To
	}
	// Wraps midnight: the part after midnight belongs to the previous day.
	if m >= w.From {
		return w.Days[day]
	}
	return m < w.To && w.Days[(day+6)%7]
}

// Open reports whether local time t is inside any window.
func (s *Schedule) Open(t time.Time) bool {
	for _, w := range s.Windows {
		if w.Contains(t) {
			return true
		}
	}
	return false
}

// KeyKind is what a limit counts by.
type KeyKind string

// Limit keys.
const (
	KeyAccount  KeyKind = "account"
	KeySourceIP KeyKind = "source_ip"
	KeyTenant   KeyKind = "tenant"
	KeyCountry  KeyKind = "country"
	KeyPrefix   KeyKind = "prefix"
)

// Metric is what a limit measures.
type Metric string

// Limit metrics.
const (
	MetricCalls        Metric = "calls"                 // call attempts in the window
	MetricConcurrent   Metric = "concurrent"            // calls in flight
	MetricDistinct     Metric = "distinct_destinations" // distinct numbers dialled in the window
	MetricSequential   Metric = "sequential"            // attempts to numbers next to the previous one
	MetricRepeatNumber Metric = "repeat_number"         // attempts to the same number in the window
	MetricShortCalls   Metric = "short_calls"           // ended calls shorter than ShortCall in the window
)

// Limit is a velocity or concurrency limit with a warning and a critical
// threshold: a value above Warning gets WarningAction, above Critical gets
// CriticalAction. A threshold of 0 is off.
type Limit struct {
	ID             string
	Key            KeyKind
	PrefixLen      int
	Metric         Metric
	Window         time.Duration
	Warning        int
	Critical       int
	WarningAction  event.Verdict
	CriticalAction event.Verdict
	Mode           event.Mode
	AppliesTo      Scope
	MaxStep        int
	ShortCall      time.Duration
	// Slot is the limit's index in its tenant's Limits, so that the
	// engine finds its counters by index rather than by id.
	Slot int
}

// Rule returns the limit's rule id as it appears in decisions.
func (l *Limit) Rule() string { return "limit." + l.ID }

// Signature identifies what the limit's counters mean; counters survive a
// reload when the signature is unchanged.
func (l *Limit) Signature() string {
	return string(l.Key) + "/" + string(l.Metric) + "/" + l.Window.String() + "/" +
		itoa(l.PrefixLen) + "/" + itoa(l.MaxStep) + "/" + l.ShortCall.String() + "/" + itoa(l.Capacity())
}

// Capacity is the largest count the limit's window must be able to report.
func (l *Limit) Capacity() int { return max(l.Warning, l.Critical) + 1 }

// Escalation turns repeated blocked attempts by one subject into a ban of
// its source IP, then a suspension of the account's international calling.
type Escalation struct {
	Window time.Duration
	Mode   event.Mode
	Steps  []Step // by After, ascending
}

// Action is an escalation step.
type Action string

// Escalation actions.
const (
	ActionBanIP                Action = "ban_ip"
	ActionSuspendInternational Action = "suspend_international"
)

// Step fires when a subject's blocked attempts in the escalation window
// reach After.
type Step struct {
	After    int
	Action   Action
	Duration time.Duration // ban length for ban_ip
}

func itoa(i int) string { return strconv.Itoa(i) }

func validPattern(p string) error {
	_, err := path.Match(p, "")
	return err
}
