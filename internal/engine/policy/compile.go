package policy

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/numbering"
)

// DefaultDeniedTypes are the number types denied when a policy does not say:
// the ranges revenue-share fraud lives in, and numbers that are not numbers.
var DefaultDeniedTypes = []numbering.Type{
	numbering.PremiumRate, numbering.SharedCost, numbering.Satellite,
	numbering.InternationalNetwork, numbering.Invalid, numbering.Unknown,
}

// Defaults for fields a policy leaves out.
const (
	DefaultMaxCallDuration  = 4 * time.Hour
	DefaultEscalationWindow = 10 * time.Minute
	maxThreshold            = 100000
	maxLimits               = 256
	maxGroups               = 1024
	maxListEntries          = 100000
)

// Rules whose mode can be set in rule_modes (limits set theirs inline).
var builtinRules = []string{
	"source_ip.banned", "source_ip.denied", "source_ip.not_allowed",
	"destination.unparseable", "destination.number_type", "destination.denied_prefix",
	"destination.international", "destination.country", "destination.high_risk",
	"account.suspended", "schedule", "quota.minutes", "quota.money", "escalation",
	"call.duplicate_id", "sip.scanner", "sip.brute_force", "sip.enumeration",
}

var (
	idPattern       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	countryPattern  = regexp.MustCompile(`^[A-Z]{2}$`)
)

type compiler struct {
	file     string
	lines    map[string]int
	readFile ReadFileFunc
	err      *Error
}

// fail records the first error; later ones are dropped so the user fixes
// one thing at a time with an exact line.
func (c *compiler) fail(path, format string, args ...any) {
	if c.err != nil {
		return
	}
	line := c.lines[path]
	// A missing field has no line: use its parent's.
	for p := path; line == 0 && p != ""; {
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
		line = c.lines[p]
	}
	c.err = &Error{File: c.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)}
}

func (c *compiler) compile(f *fileYAML) (*Policy, error) {
	if f.Version != 0 && f.Version != 1 {
		c.fail("version", "unsupported version %d (this telguard reads version 1)", f.Version)
	}
	if len(f.Tenants) == 0 {
		c.fail("tenants", "no tenants: a policy needs at least one")
	}
	p := &Policy{File: c.file, Tenants: map[string]*Tenant{}}
	ids := make([]string, 0, len(f.Tenants))
	for id := range f.Tenants {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		path := "tenants." + id
		if !idPattern.MatchString(id) {
			c.fail(path, "tenant id %q: use letters, digits, '_', '-' or '.'", id)
		}
		ty := f.Tenants[id]
		if ty == nil {
			c.fail(path, "empty tenant: want at least home_country")
			break
		}
		t := c.tenant(path, id, ty)
		p.Tenants[id] = t
	}
	if c.err != nil {
		return nil, c.err
	}
	return p, nil
}

func (c *compiler) tenant(path, id string, ty *tenantYAML) *Tenant {
	t := &Tenant{ID: id, ruleModes: map[string]event.Mode{}, exact: map[string]*Group{}, Groups: map[string]*Group{}}
	t.HomeCountry = strings.ToUpper(ty.HomeCountry)
	if t.HomeCountry == "" {
		c.fail(path+".home_country", "missing: the tenant's home country (ISO 3166 code, e.g. BR)")
	}
	tz := ty.Timezone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		c.fail(path+".timezone", "unknown time zone %q (want an IANA name like America/Sao_Paulo)", tz)
		loc = time.UTC
	}
	t.Location = loc
	t.Currency = strings.ToUpper(ty.Currency)
	if t.Currency == "" {
		t.Currency = "USD"
	} else if !currencyPattern.MatchString(t.Currency) {
		c.fail(path+".currency", "want a 3-letter ISO 4217 code, got %q", ty.Currency)
	}
	t.Monitor = c.mode(path+".mode", ty.Mode, event.Enforce) == event.Monitor

	rules := numbering.DialRules{
		HomeCountry:           t.HomeCountry,
		OutsideLine:           ty.Dial.OutsideLine,
		InternationalPrefixes: ty.Dial.InternationalPrefixes,
		NationalPrefix:        ty.Dial.NationalPrefix,
	}
	if c.err == nil {
		if err := rules.Validate(); err != nil {
			// Fix: this tested for "dial" in the message, which every
			// DialRules error has ("check dial rules: …"), so a bad
			// home_country was reported at the dial section (or, without
			// one, at the tenant's line).
			p := path + ".dial"
			if t.HomeCountry != "" && strings.Contains(err.Error(), "home country") {
				p = path + ".home_country"
			}
			c.fail(p, "%v", err)
		} else if t.Numbers, err = numbering.NewNormalizer(rules, 0); err != nil {
			c.fail(path+".dial", "%v", err)
		}
	}

	t.Rates = numbering.DefaultRateDeck()
	if ty.RateDeck != "" {
		if c.readFile == nil {
			c.fail(path+".rate_deck", "rate decks cannot be read here")
		} else if data, err := c.readFile(ty.RateDeck); err != nil {
			c.fail(path+".rate_deck", "read rate deck: %v", err)
		} else if t.Rates, err = numbering.ParseRateDeck(bytes.NewReader(data), ty.RateDeck); err != nil {
			c.fail(path+".rate_deck", "%v", err)
		} else if cur := t.Rates.Currencies(); len(cur) != 1 || cur[0] != t.Currency {
			// Quotas add rates up; mixing currencies would make the sum
			// meaningless, so a deck must be in the tenant's currency.
			c.fail(path+".rate_deck", "rate deck %s is in %s; the tenant's currency is %s (set currency, or convert the deck)", ty.RateDeck, strings.Join(cur, ", "), t.Currency)
		}
	}

	t.HighRisk = numbering.DefaultHighRisk()
	if h := ty.HighRiskList; h != nil {
		var err error
		// Country codes are case-insensitive everywhere else in a policy.
		upper := func(in []string) []string {
			out := make([]string, len(in))
			for i, s := range in {
				out[i] = strings.ToUpper(strings.TrimSpace(s))
			}
			return out
		}
		h.AddCountries, h.RemoveCountries = upper(h.AddCountries), upper(h.RemoveCountries)
		if h.UseBuiltin != nil && !*h.UseBuiltin {
			t.HighRisk, err = numbering.NewHighRisk(h.AddCountries, h.AddPrefixes)
		} else {
			t.HighRisk, err = t.HighRisk.With(h.AddCountries, h.AddPrefixes, h.RemoveCountries, h.RemovePrefixes)
		}
		if err != nil {
			c.fail(path+".high_risk_list", "%v", err)
		}
	}

	if ty.SourceIPs != nil {
		t.SourceIPs = c.ipList(path+".source_ips", ty.SourceIPs)
	}
	t.MaxCallDuration = DefaultMaxCallDuration
	if ty.MaxCallDuration != nil {
		t.MaxCallDuration = time.Duration(*ty.MaxCallDuration)
		if t.MaxCallDuration < time.Minute || t.MaxCallDuration > 48*time.Hour {
			c.fail(path+".max_call_duration", "must be between 1m and 48h")
		}
	}
	// Sorted so that, of several mistakes, the same one is reported each
	// time (fail keeps the first).
	for _, rule := range sortedKeys(ty.RuleModes) {
		m := ty.RuleModes[rule]
		if !slices.Contains(builtinRules, rule) && !isPatternRule(rule) && !slices.Contains(behaviourRules, rule) {
			c.fail(path+".rule_modes."+rule, "unknown rule %q (limits set their mode inline; known: %s, %s and pattern.<name>)", rule, strings.Join(builtinRules, ", "), strings.Join(behaviourRules, ", "))
			continue
		}
		t.ruleModes[rule] = c.mode(path+".rule_modes."+rule, m, event.Enforce)
	}

	// Tenant-wide limits, then each group's.
	seen := map[string]string{}
	tenantLimits := c.limits(path+".limits", ty.Limits, seen)
	def := c.group(path+".defaults", "default", nil, &ty.Defaults, tenantLimits, seen)
	if len(ty.Defaults.Accounts) > 0 {
		c.fail(path+".defaults.accounts", "the defaults apply to every account not in a group; list accounts under groups")
	}
	t.Default = def
	if len(ty.Groups) > maxGroups {
		c.fail(path+".groups", "%d groups; the limit is %d", len(ty.Groups), maxGroups)
	}
	names := make([]string, 0, len(ty.Groups))
	for n := range ty.Groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		gp := path + ".groups." + n
		if !idPattern.MatchString(n) || n == "default" {
			c.fail(gp, "group name %q: use letters, digits, '_', '-' or '.' (and not \"default\")", n)
		}
		gy := ty.Groups[n]
		g := c.group(gp, n, def, &gy, tenantLimits, seen)
		t.Groups[n] = g
		if len(gy.Accounts) == 0 {
			c.fail(gp+".accounts", "a group needs accounts: exact ids or patterns like \"intl-*\"")
		}
		for i, a := range gy.Accounts {
			ap := fmt.Sprintf("%s.accounts[%d]", gp, i)
			if strings.ContainsAny(a, "*?[") {
				if err := validPattern(a); err != nil {
					c.fail(ap, "bad pattern %q: %v", a, err)
				}
				t.patterns = append(t.patterns, groupPattern{a, g})
				continue
			}
			if other, dup := t.exact[a]; dup {
				c.fail(ap, "account %q is already in group %q", a, other.Name)
			}
			t.exact[a] = g
		}
	}
	for _, g := range append([]*Group{def}, mapValues(t.Groups, names)...) {
		for _, l := range g.Limits {
			if !slices.Contains(t.Limits, l) {
				l.Slot = len(t.Limits)
				t.Limits = append(t.Limits, l)
			}
		}
	}
	for _, l := range t.Limits {
		if l.Metric == MetricConcurrent && l.Key == KeyPrefix {
			t.ConcurrentPrefixLens |= 1 << l.PrefixLen
		}
	}
	t.Escalation = c.escalation(path+".escalation", ty.Escalation)
	t.SIP = c.sip(path+".sip", ty.SIP)
	t.Patterns = c.patterns(path+".patterns", ty.Patterns)
	t.Baselines = c.baselines(path+".baselines", ty.Baselines)
	t.Score = c.score(path+".anomaly_score", ty.AnomalyScore)
	return t
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func mapValues(m map[string]*Group, keys []string) []*Group {
	out := make([]*Group, 0, len(keys))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

// group compiles a group, inheriting every unset field from parent (nil for
// the defaults, which inherit built-in defaults).
func (c *compiler) group(path, name string, parent *Group, gy *groupYAML, tenantLimits []*Limit, seen map[string]string) *Group {
	g := &Group{Name: name}
	if parent != nil {
		*g = *parent
		g.Name = name
	} else {
		g.HighRisk = event.Deny
		g.DeniedNumberTypes = map[numbering.Type]bool{}
		for _, ty := range DefaultDeniedTypes {
			g.DeniedNumberTypes[ty] = true
		}
		g.DeniedPrefixes = &numbering.PrefixTable[string]{}
		g.AllowedCountries = map[string]bool{}
	}
	if gy.International != nil {
		g.International = *gy.International
	}
	if gy.AllowedCountries != nil {
		g.AllowedCountries = map[string]bool{}
		for i, written := range *gy.AllowedCountries {
			cc := strings.ToUpper(strings.TrimSpace(written))
			if !countryPattern.MatchString(cc) && cc != "001" {
				c.fail(fmt.Sprintf("%s.allowed_countries[%d]", path, i), "want an ISO 3166 alpha-2 code like GB, got %q", written)
			}
			g.AllowedCountries[cc] = true
		}
	}
	if gy.DeniedPrefixes != nil {
		g.DeniedPrefixes = &numbering.PrefixTable[string]{}
		if len(*gy.DeniedPrefixes) > maxListEntries {
			c.fail(path+".denied_prefixes", "%d prefixes; the limit is %d", len(*gy.DeniedPrefixes), maxListEntries)
		}
		for i, p := range *gy.DeniedPrefixes {
			if err := g.DeniedPrefixes.Insert(p, "+"+strings.TrimPrefix(p, "+")); err != nil {
				c.fail(fmt.Sprintf("%s.denied_prefixes[%d]", path, i), "%v", err)
			}
		}
	}
	if gy.DeniedNumberTypes != nil {
		g.DeniedNumberTypes = map[numbering.Type]bool{}
		for i, s := range *gy.DeniedNumberTypes {
			ty, err := numbering.ParseType(s)
			if err != nil {
				c.fail(fmt.Sprintf("%s.denied_number_types[%d]", path, i), "%v", err)
			}
			g.DeniedNumberTypes[ty] = true
		}
	}
	if gy.HighRisk != nil {
		v := event.Verdict(*gy.HighRisk)
		switch v {
		case event.Allow, event.Challenge, event.Deny:
			g.HighRisk = v
		default:
			c.fail(path+".high_risk", "want deny, challenge or allow, got %q", *gy.HighRisk)
		}
	}
	if gy.SourceIPs != nil {
		g.SourceIPs = c.ipList(path+".source_ips", gy.SourceIPs)
	}
	if q := gy.Quota; q != nil {
		if q.InternationalMinutes != nil {
			g.Quota.Minutes = c.nonNegative(path+".quota.international_minutes", *q.InternationalMinutes)
		}
		if q.InternationalMoney != nil {
			g.Quota.Money = c.nonNegative(path+".quota.international_money", *q.InternationalMoney)
		}
		if q.Warning != nil {
			g.Quota.Warning = *q.Warning
			if g.Quota.Warning < 0 || g.Quota.Warning >= 1 {
				c.fail(path+".quota.warning", "want a fraction between 0 and 1 (e.g. 0.8), got %v", *q.Warning)
			}
		}
	}
	if gy.Schedule != nil {
		g.Schedule = c.schedule(path+".schedule", gy.Schedule)
	}
	if parent == nil {
		g.Limits = slices.Clone(tenantLimits)
	}
	own := c.limits(path+".limits", gy.Limits, seen)
	if len(own) > 0 {
		g.Limits = append(slices.Clone(g.Limits), own...)
	}
	return g
}

func (c *compiler) nonNegative(path string, v float64) float64 {
	if v < 0 || v != v || v > 1e12 {
		c.fail(path, "must be a number ≥ 0 (0 means no limit)")
		return 0
	}
	return v
}

func (c *compiler) mode(path, s string, def event.Mode) event.Mode {
	switch event.Mode(s) {
	case "":
		return def
	case event.Enforce, event.Monitor:
		return event.Mode(s)
	}
	c.fail(path, "want enforce or monitor, got %q", s)
	return def
}

func (c *compiler) verdict(path, s string, def event.Verdict, allowed ...event.Verdict) event.Verdict {
	if s == "" {
		return def
	}
	v := event.Verdict(s)
	if slices.Contains(allowed, v) {
		return v
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	c.fail(path, "want one of %s, got %q", strings.Join(names, ", "), s)
	return def
}

func (c *compiler) ipList(path string, y *ipListYAML) IPList {
	var l IPList
	parse := func(field string, in []string) []netip.Prefix {
		if len(in) > maxListEntries {
			c.fail(path+"."+field, "%d entries; the limit is %d", len(in), maxListEntries)
		}
		out := make([]netip.Prefix, 0, len(in))
		for i, s := range in {
			p, err := parsePrefix(s)
			if err != nil {
				c.fail(fmt.Sprintf("%s.%s[%d]", path, field, i), "%v", err)
				continue
			}
			out = append(out, p)
		}
		return out
	}
	l.Allow = parse("allow", y.Allow)
	l.Deny = parse("deny", y.Deny)
	return l
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("bad CIDR %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad IP address %q", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func (c *compiler) schedule(path string, y *scheduleYAML) *Schedule {
	s := &Schedule{
		AppliesTo: c.scope(path+".applies_to", y.AppliesTo, InternationalCalls),
		Outside:   c.verdict(path+".outside", y.Outside, event.Deny, event.Challenge, event.Deny),
		Mode:      c.mode(path+".mode", y.Mode, event.Enforce),
	}
	if len(y.Windows) == 0 {
		c.fail(path+".windows", "a schedule needs at least one window")
	}
	for i, wy := range y.Windows {
		wp := fmt.Sprintf("%s.windows[%d]", path, i)
		var w Window
		if len(wy.Days) == 0 {
			for d := range w.Days {
				w.Days[d] = true
			}
		}
		for j, d := range wy.Days {
			d = strings.ToLower(d)
			if a, b, ok := strings.Cut(d, "-"); ok {
				da, oka := dayNames[a]
				db, okb := dayNames[b]
				if !oka || !okb {
					c.fail(fmt.Sprintf("%s.days[%d]", wp, j), "bad day range %q (want e.g. mon-fri)", d)
					continue
				}
				for x := da; ; x = (x + 1) % 7 {
					w.Days[x] = true
					if x == db {
						break
					}
				}
				continue
			}
			wd, ok := dayNames[d]
			if !ok {
				c.fail(fmt.Sprintf("%s.days[%d]", wp, j), "bad day %q (want mon, tue, … or a range like mon-fri)", d)
				continue
			}
			w.Days[wd] = true
		}
		w.From = c.clock(wp+".from", wy.From, false)
		w.To = c.clock(wp+".to", wy.To, true)
		if w.From == w.To {
			c.fail(wp+".to", "empty window: from and to are equal")
		}
		s.Windows = append(s.Windows, w)
	}
	return s
}

// clock parses HH:MM; "24:00" (end of day) is accepted only as an end.
func (c *compiler) clock(path, s string, end bool) int {
	if s == "24:00" && end {
		return 24 * 60
	}
	t, err := time.Parse("15:04", s)
	if err != nil {
		c.fail(path, "want a time like 08:30, got %q", s)
		return 0
	}
	return t.Hour()*60 + t.Minute()
}

func (c *compiler) scope(path, s string, def Scope) Scope {
	switch Scope(s) {
	case "":
		return def
	case AllCalls, InternationalCalls:
		return Scope(s)
	}
	c.fail(path, "want all or international, got %q", s)
	return def
}

var metricDefaults = map[Metric]time.Duration{
	MetricCalls: time.Minute, MetricConcurrent: 0, MetricDistinct: time.Hour,
	MetricSequential: 10 * time.Minute, MetricRepeatNumber: 10 * time.Minute, MetricShortCalls: 10 * time.Minute,
}

func (c *compiler) limits(path string, ys []limitYAML, seen map[string]string) []*Limit {
	if len(ys) > maxLimits {
		c.fail(path, "%d limits; the limit is %d", len(ys), maxLimits)
	}
	var out []*Limit
	for i, y := range ys {
		lp := fmt.Sprintf("%s[%d]", path, i)
		l := &Limit{ID: y.ID, PrefixLen: y.PrefixLen, Warning: y.Warning, Critical: y.Critical, MaxStep: y.MaxStep}
		if !idPattern.MatchString(y.ID) {
			c.fail(lp+".id", "want an id of letters, digits, '_', '-' or '.', got %q", y.ID)
		}
		if where, dup := seen[y.ID]; dup {
			c.fail(lp+".id", "limit id %q is already used at %s", y.ID, where)
		}
		seen[y.ID] = lp
		switch KeyKind(y.Key) {
		case KeyAccount, KeySourceIP, KeyTenant, KeyCountry, KeyPrefix:
			l.Key = KeyKind(y.Key)
		default:
			c.fail(lp+".key", "want account, source_ip, tenant, country or prefix, got %q", y.Key)
		}
		if l.Key == KeyPrefix && (l.PrefixLen < 1 || l.PrefixLen > 15) {
			c.fail(lp+".prefix_len", "a prefix key needs prefix_len between 1 and 15 (digits of the E.164 number)")
		}
		m := Metric(y.Metric)
		win, ok := metricDefaults[m]
		if !ok {
			c.fail(lp+".metric", "want calls, concurrent, distinct_destinations, sequential, repeat_number or short_calls, got %q", y.Metric)
		}
		l.Metric = m
		if y.Window != nil {
			win = time.Duration(*y.Window)
			if m == MetricConcurrent {
				c.fail(lp+".window", "concurrent counts calls in flight and takes no window")
			} else if win < time.Second || win > 7*24*time.Hour {
				c.fail(lp+".window", "must be between 1s and 7d")
			}
		}
		l.Window = win
		if l.Warning < 0 || l.Critical < 0 || l.Warning > maxThreshold || l.Critical > maxThreshold {
			c.fail(lp, "thresholds must be between 0 and %d", maxThreshold)
		}
		if l.Warning == 0 && l.Critical == 0 {
			c.fail(lp+".critical", "a limit needs a warning or a critical threshold")
		}
		if l.Warning > 0 && l.Critical > 0 && l.Warning >= l.Critical {
			c.fail(lp+".warning", "warning (%d) must be below critical (%d)", l.Warning, l.Critical)
		}
		l.WarningAction = c.verdict(lp+".warning_action", y.WarningAction, event.Challenge, event.Challenge, event.Throttle, event.Deny)
		l.CriticalAction = c.verdict(lp+".critical_action", y.CriticalAction, event.Deny, event.Challenge, event.Throttle, event.Deny)
		l.Mode = c.mode(lp+".mode", y.Mode, event.Enforce)
		l.AppliesTo = c.scope(lp+".applies_to", y.AppliesTo, AllCalls)
		if m == MetricSequential && l.MaxStep == 0 {
			l.MaxStep = 10
		}
		if l.MaxStep < 0 || l.MaxStep > 1000000 {
			c.fail(lp+".max_step", "must be between 1 and 1000000 (default 10)")
		}
		if y.ShortCall != nil {
			l.ShortCall = time.Duration(*y.ShortCall)
		} else if m == MetricShortCalls {
			l.ShortCall = 10 * time.Second
		}
		out = append(out, l)
	}
	return out
}

func (c *compiler) escalation(path string, y *escalationYAML) Escalation {
	e := Escalation{Window: DefaultEscalationWindow, Mode: event.Enforce}
	if y == nil {
		// Built in: a source that keeps getting blocked is banned for an
		// hour; an account that keeps getting blocked loses international
		// calling until an operator looks.
		e.Steps = []Step{
			{After: 10, Action: ActionBanIP, Duration: time.Hour},
			{After: 20, Action: ActionSuspendInternational},
		}
		return e
	}
	if y.Window != nil {
		e.Window = time.Duration(*y.Window)
		if e.Window < time.Second || e.Window > 7*24*time.Hour {
			c.fail(path+".window", "must be between 1s and 7d")
		}
	}
	e.Mode = c.mode(path+".mode", y.Mode, event.Enforce)
	for i, sy := range y.Steps {
		sp := fmt.Sprintf("%s.steps[%d]", path, i)
		s := Step{After: sy.After, Action: Action(sy.Action)}
		if s.After < 1 || s.After > maxThreshold {
			c.fail(sp+".after", "want a count of blocked attempts ≥ 1")
		}
		switch s.Action {
		case ActionBanIP:
			s.Duration = time.Hour
			if sy.Duration != nil {
				s.Duration = time.Duration(*sy.Duration)
			}
			if s.Duration < time.Second || s.Duration > 365*24*time.Hour {
				c.fail(sp+".duration", "a ban lasts between 1s and 365d")
			}
		case ActionSuspendInternational:
			if sy.Duration != nil {
				c.fail(sp+".duration", "a suspension lasts until an operator lifts it and takes no duration")
			}
		default:
			c.fail(sp+".action", "want ban_ip or suspend_international, got %q", sy.Action)
		}
		if i > 0 && s.After <= e.Steps[i-1].After {
			c.fail(sp+".after", "steps must be in increasing order of after")
		}
		e.Steps = append(e.Steps, s)
	}
	return e
}
