package engine

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/telguard/telguard/internal/engine/bucket"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/numbering"
)

// SIP and HTTP codes suggested to front-ends. 0 means "no rejection".
const (
	sipForbidden   = 403
	sipBusy        = 486
	sipUnavailable = 503
	sipDecline     = 603
)

// verdictBuilder collects the rules that fired and works out the verdict:
// the most severe enforced one; monitor hits only raise WouldVerdict.
type verdictBuilder struct {
	d      *event.Decision
	would  event.Verdict
	sevSIP int
}

func (b *verdictBuilder) hit(rule string, mode event.Mode, v event.Verdict, level string, sip int, reason string) {
	b.d.Reasons = append(b.d.Reasons, event.Reason{Rule: rule, Reason: reason, Mode: mode, Verdict: v, Level: level})
	sv := severity(v)
	if sv > severity(b.would) { // event.Max, without its map lookups
		b.would = v
	}
	if mode != event.Enforce {
		return
	}
	if sv > severity(b.d.Verdict) {
		b.d.Verdict = v
		b.sevSIP = sip
	}
}

// decisionBox is the one allocation a decision needs: the decision the
// sink is handed (and a call in flight keeps as its answer; nothing
// changes it once made), room for its first reasons, and for the changes
// it emits. Three to five allocations per decision were a good part of
// Decide's cost and most of its garbage.
type decisionBox struct {
	d  event.Decision
	r  [4]event.Reason
	ch [2]event.Change
}

// severity is event.Verdict.Severity without its map lookup: hit and the
// checks of whether a verdict blocks run several times a decision. An
// unknown verdict ranks as deny, as there.
func severity(v event.Verdict) int {
	switch v {
	case event.Allow:
		return 0
	case event.Challenge:
		return 1
	case event.Throttle:
		return 2
	case event.Deny:
		return 3
	case event.Ban:
		return 4
	}
	return 3
}

// blocks is event.Verdict.Blocks, by severity.
func blocks(v event.Verdict) bool { return severity(v) >= 2 }

// Decide answers a call attempt. It never fails: an event it cannot judge
// (unknown tenant, missing destination) is denied with a reason, because a
// fraud guard that fails open is not one.
func (e *Engine) Decide(_ context.Context, ev event.Event) event.Decision {
	if ev.Time.IsZero() {
		ev.Time = e.clock.Now()
	}
	box := &decisionBox{}
	d := &box.d
	*d = event.Decision{
		Time: ev.Time, Tenant: ev.Tenant, Account: ev.Account, CallID: ev.CallID,
		From: ev.From, To: ev.To, Verdict: event.Allow, Reasons: box.r[:0],
	}
	if ev.SourceIP.IsValid() {
		ev.SourceIP = ev.SourceIP.Unmap()
		d.SourceIP = ev.SourceIP.String()
	}
	b := verdictBuilder{d: d, would: event.Allow}
	t := e.pol.Load().Tenants[ev.Tenant]
	if t == nil {
		b.hit("tenant.unknown", event.Enforce, event.Deny, "", sipForbidden, "no policy for this tenant")
		e.finish(&b, nil)
		return *d
	}
	switch ev.Kind {
	case event.SIPRequest, event.SIPAuthFailure, event.SIPAuthSuccess:
		e.decideSIP(&b, t, ev, box.ch[:0])
		return *d
	}
	if ev.Direction.IsInbound() {
		if !tollDestination(t, ev.To) {
			e.decideInbound(&b, t, ev, box.ch[:0])
			return *d
		}
		// An inbound call names one of the tenant's own numbers. One "to"
		// a number abroad or in a premium or high-risk range costs money
		// whatever its sender calls it, so it is judged as outbound: a
		// label must not switch the toll rules off.
		ev.Direction = ""
	}
	// Number parsing is the slow part and needs no lock.
	num, numErr := t.Numbers.Normalize(ev.To)
	if numErr == nil {
		d.Destination = event.Destination{E164: num.E164, Country: num.Region, Type: string(num.Type), International: num.International}
		if r, ok := t.Rates.Lookup(num.E164); ok {
			d.Destination.RatePerMinute = r.PerMinute
		}
	}
	g := t.GroupFor(ev.Account)

	s := e.state(ev.Tenant)
	s.mu.Lock()
	changes := s.expire(t, ev.Time, box.ch[:0])
	// Forget idle counters once a minute of event time: often enough to
	// bound memory, rarely enough that a busy tenant does not pay for
	// walking every counter several times a second.
	if ev.Time.Sub(s.swept) >= sweepEvery {
		s.swept = ev.Time
		changes = s.sweep(ev.Time, t, changes)
	}

	// A retransmitted check of a call already allowed gets the same answer
	// and is not counted twice. The same call id with another destination
	// or account is not a retransmission.
	if f := s.calls[ev.CallID]; f != nil && ev.CallID != "" {
		if f.Account == ev.Account && numErr == nil && f.E164 == num.E164 {
			// Fix: the retransmission used to be answered "allow" whatever
			// the original answer was, so resending a challenged attempt
			// skipped the challenge. Calls restored at start-up have no
			// answer kept; they were not blocked, and allow stands.
			if a := f.answer; a != nil {
				d.Verdict, d.WouldVerdict = a.Verdict, a.WouldVerdict
				d.Reasons = append(d.Reasons, a.Reasons...)
				d.Destination.HighRisk = a.Destination.HighRisk
				b.would = a.Verdict
				if a.WouldVerdict != "" {
					b.would = a.WouldVerdict
				}
			}
			s.mu.Unlock()
			if len(changes) > 0 {
				e.sink.Emit(changes...)
			}
			clear(box.ch[:])
			e.finish(&b, t)
			return *d
		}
		b.hit("call.duplicate_id", t.ModeOf("call.duplicate_id", event.Enforce), event.Deny, "", sipForbidden, "call id already in use by a call to another destination")
	}

	e.screen(&b, t, g, s, ev, num, numErr, &changes)
	e.finish(&b, t)

	if !blocks(d.Verdict) && ev.CallID != "" && s.calls[ev.CallID] == nil {
		call := event.Call{
			Tenant: ev.Tenant, Account: ev.Account, CallID: ev.CallID, SourceIP: d.SourceIP,
			E164: num.E164, Country: num.Region, International: num.International,
			RatePerMinute: d.Destination.RatePerMinute, Started: ev.Time,
			From: ev.From, To: ev.To,
		}
		call.Flagged, call.NewNetwork = callFlags(d, g)
		f := s.addCall(&call, t.MaxCallDuration, t.ConcurrentPrefixLens)
		if len(d.Reasons) > 0 {
			// Kept so that a retransmission gets the same answer; a plain
			// allow needs nothing kept. The decision is final: it can be
			// shared, not copied.
			f.answer = d
		}
		changes = append(changes, event.Change{Op: event.OpPutCall, Call: &f.put})
	}
	s.mu.Unlock()
	changes = append(changes, event.Change{Op: event.OpDecision, Decision: d})
	e.sink.Emit(changes...)
	// The box may live on as the call's kept answer: its changes (an
	// expired call's record among them, which holds that call's own
	// answer, and so on back) must not live on with it.
	clear(box.ch[:])
	out := *d
	// The caller gets the reasons capped at their length, so appending to
	// them never writes into the answer kept for a retransmission.
	out.Reasons = out.Reasons[:len(out.Reasons):len(out.Reasons)]
	return out
}

// screen runs every rule against the attempt. Every rule is evaluated even
// after one has denied, so counters stay exact and the decision lists all
// the reasons.
func (e *Engine) screen(b *verdictBuilder, t *policy.Tenant, g *policy.Group, s *tenantState, ev event.Event, num numbering.Number, numErr error, changes *[]event.Change) {
	mode := func(rule string) event.Mode { return t.ModeOf(rule, event.Enforce) }
	ip := ev.SourceIP

	if ban := s.banned(ip, ev.Time, changes); ban != nil {
		left := ban.Until.Sub(ev.Time)
		b.hit("source_ip.banned", mode("source_ip.banned"), event.Ban, "", sipDecline,
			fmt.Sprintf("source banned until %s (%s)", ban.Until.UTC().Format(time.RFC3339), ban.Reason))
		if b.d.Verdict == event.Ban {
			b.d.BanSeconds = int64(left.Seconds() + 0.5)
			b.d.Silent = ev.SIP != nil // a banned source gets no SIP reply
		}
	}
	if ev.SIP != nil || ev.UserAgent != "" {
		e.scanner(b, t, s, ev, changes)
	}
	for _, list := range []policy.IPList{t.SourceIPs, g.SourceIPs} {
		if list.Empty() {
			continue
		}
		if ip.IsValid() && contains(list.Deny, ip) {
			b.hit("source_ip.denied", mode("source_ip.denied"), event.Deny, "", sipForbidden, "source address is on a deny list")
		} else if len(list.Allow) > 0 && (!ip.IsValid() || !contains(list.Allow, ip)) {
			b.hit("source_ip.not_allowed", mode("source_ip.not_allowed"), event.Deny, "", sipForbidden, "source address is not on the allow list")
		}
	}

	if numErr != nil {
		b.hit("destination.unparseable", mode("destination.unparseable"), event.Deny, "", sipForbidden,
			"destination cannot be read as a phone number: "+numErr.Error())
	} else {
		e.destination(b, t, g, s, num, ev)
	}

	if g.Schedule != nil && (g.Schedule.AppliesTo == policy.AllCalls || num.International) {
		if !g.Schedule.Open(ev.Time.In(t.Location)) {
			b.hit("schedule", t.ModeOf("schedule", g.Schedule.Mode), g.Schedule.Outside, "", sipForbidden,
				"outside the allowed calling hours for "+string(g.Schedule.AppliesTo)+" calls")
		}
	}

	if numErr == nil && num.International && (g.Quota.Minutes > 0 || g.Quota.Money > 0) {
		secs, money := s.used(ev.Account, localDay(ev.Time, t), ev.Time)
		quota(b, mode("quota.minutes"), "quota.minutes", secs/60, g.Quota.Minutes, g.Quota.Warning, "international minutes", "")
		quota(b, mode("quota.money"), "quota.money", money, g.Quota.Money, g.Quota.Warning, "international spend", t.Currency)
	}

	e.limits(b, t, g, s, ev, num, numErr)
	e.newNetwork(b, t, g, s, ev, num, numErr)
	// The detectors watch the calls that get through: an attempt another
	// rule already blocks is not recorded, so one rule's refusals (a rate
	// limit's, say) never turn into a pattern too.
	if numErr == nil && ev.Account != "" && ev.CallID != "" && !blocks(b.d.Verdict) {
		e.patterns(b, t, g, s, ev, num)
	}
	e.escalate(b, t, s, ev, changes)
}

func quota(b *verdictBuilder, mode event.Mode, rule string, used, limit, warning float64, what, unit string) {
	if limit <= 0 {
		return
	}
	fmtv := func(v float64) string {
		if unit != "" {
			return strconv.FormatFloat(v, 'f', 2, 64) + " " + unit
		}
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	switch {
	case used >= limit:
		b.hit(rule, mode, event.Deny, "critical", sipForbidden,
			fmt.Sprintf("daily %s quota spent: %s of %s", what, fmtv(used), fmtv(limit)))
	case warning > 0 && used >= warning*limit:
		b.hit(rule, mode, event.Challenge, "warning", 0,
			fmt.Sprintf("daily %s quota nearly spent: %s of %s", what, fmtv(used), fmtv(limit)))
	}
}

func (e *Engine) destination(b *verdictBuilder, t *policy.Tenant, g *policy.Group, s *tenantState, num numbering.Number, ev event.Event) {
	mode := func(rule string) event.Mode { return t.ModeOf(rule, event.Enforce) }
	if g.DeniedNumberTypes[num.Type] {
		b.hit("destination.number_type", mode("destination.number_type"), event.Deny, "", sipForbidden,
			"calls to "+typeName(num.Type)+" numbers are not allowed")
	}
	if _, p, ok := g.DeniedPrefixes.Longest(num.E164); ok {
		b.hit("destination.denied_prefix", mode("destination.denied_prefix"), event.Deny, "", sipForbidden,
			"destination matches denied prefix +"+trimPlus(p))
	}
	explicit := g.AllowedCountries[num.Region]
	if num.International {
		switch {
		case !g.International:
			b.hit("destination.international", mode("destination.international"), event.Deny, "", sipForbidden,
				"international calls are not allowed for group "+g.Name+" (destination "+num.Region+")")
		case len(g.AllowedCountries) > 0 && !explicit:
			b.hit("destination.country", mode("destination.country"), event.Deny, "", sipForbidden,
				"destination country "+num.Region+" is not in the allowed countries of group "+g.Name)
		}
		if ev.Account != "" && s.suspended[ev.Account] != nil {
			sp := s.suspended[ev.Account]
			b.hit("account.suspended", mode("account.suspended"), event.Deny, "", sipForbidden,
				"international calling suspended: "+sp.Reason)
		}
	}
	if what, ok := t.HighRisk.Match(num); ok && g.HighRisk != event.Allow {
		// An explicitly allowed country lifts a country-wide entry, never a
		// narrower prefix entry.
		if !(explicit && what == num.Region) {
			b.d.Destination.HighRisk = true
			b.hit("destination.high_risk", mode("destination.high_risk"), g.HighRisk, "", sipForbidden,
				"destination is in a high-risk (IRSF) range: "+what)
		}
	}
}

func (e *Engine) limits(b *verdictBuilder, t *policy.Tenant, g *policy.Group, s *tenantState, ev event.Event, num numbering.Number, numErr error) {
	for _, l := range g.Limits {
		if l.AppliesTo == policy.InternationalCalls && (numErr != nil || !num.International) {
			continue
		}
		k, ok := attemptKey(l, ev, num, numErr)
		if !ok {
			continue
		}
		ls := s.limit(l)
		var v int
		switch l.Metric {
		case policy.MetricCalls:
			v = ls.log.Add(k, ev.Time)
		case policy.MetricConcurrent:
			v = s.concurrent(l, k) + 1
		case policy.MetricDistinct:
			if numErr != nil {
				continue
			}
			v = ls.distinct.Add(k, num.E164, ev.Time)
		case policy.MetricRepeatNumber:
			if numErr != nil {
				continue
			}
			v = ls.repeat.Add(repeatKey{k, num.E164}, ev.Time)
		case policy.MetricSequential:
			if numErr != nil {
				continue
			}
			n, _ := strconv.ParseUint(num.E164[1:], 10, 64)
			prev, seen := ls.last[k]
			ls.last[k] = lastDialled{n, ev.Time}
			if seen && n != prev.n && absDiff(n, prev.n) <= uint64(l.MaxStep) && ev.Time.Sub(prev.at) <= l.Window {
				v = ls.log.Add(k, ev.Time)
			} else {
				v = ls.log.Count(k, ev.Time)
			}
		case policy.MetricShortCalls:
			v = ls.log.Count(k, ev.Time)
		}
		// The rule id and mode are worked out only on a hit: building the
		// id for every limit of every attempt was a measurable share of
		// Decide.
		switch {
		case l.Critical > 0 && v > l.Critical:
			rule := l.Rule()
			b.hit(rule, t.ModeOf(rule, l.Mode), l.CriticalAction, "critical", limitSIP(l, l.CriticalAction), limitReason(l, v, l.Critical))
		case l.Warning > 0 && v > l.Warning:
			rule := l.Rule()
			b.hit(rule, t.ModeOf(rule, l.Mode), l.WarningAction, "warning", limitSIP(l, l.WarningAction), limitReason(l, v, l.Warning))
		}
	}
}

func limitSIP(l *policy.Limit, v event.Verdict) int {
	switch {
	case v == event.Challenge:
		return 0
	case l.Metric == policy.MetricConcurrent:
		return sipBusy
	case v == event.Throttle:
		return sipUnavailable
	}
	return sipForbidden
}

var metricText = map[policy.Metric]string{
	policy.MetricCalls:        "call attempts",
	policy.MetricConcurrent:   "concurrent calls",
	policy.MetricDistinct:     "distinct destinations",
	policy.MetricSequential:   "sequentially dialled numbers",
	policy.MetricRepeatNumber: "calls to the same number",
	policy.MetricShortCalls:   "short calls",
}

func limitReason(l *policy.Limit, v, threshold int) string {
	what := metricText[l.Metric]
	by := string(l.Key)
	if l.Key == policy.KeyPrefix {
		by = "destination prefix"
	}
	if l.Metric == policy.MetricConcurrent {
		return fmt.Sprintf("%d %s for this %s, above %d", v, what, by, threshold)
	}
	more := ""
	if v >= l.Capacity() {
		more = "over "
	}
	return fmt.Sprintf("%s%d %s in %s for this %s, above %d", more, v, what, l.Window, by, threshold)
}

// attemptKey returns the subject a limit counts this attempt under.
func attemptKey(l *policy.Limit, ev event.Event, num numbering.Number, numErr error) (key, bool) {
	switch l.Key {
	case policy.KeyAccount:
		return key{s: ev.Account}, ev.Account != ""
	case policy.KeySourceIP:
		return key{ip: ev.SourceIP}, ev.SourceIP.IsValid()
	case policy.KeyTenant:
		return key{s: ev.Tenant}, true
	case policy.KeyCountry:
		return key{s: num.Region}, numErr == nil
	case policy.KeyPrefix:
		if numErr != nil || len(num.E164) <= l.PrefixLen {
			return key{}, false
		}
		return key{s: num.E164[:1+l.PrefixLen]}, true
	}
	return key{}, false
}

// escalate counts blocked attempts per source and account and takes the
// policy's next step when a count reaches it.
func (e *Engine) escalate(b *verdictBuilder, t *policy.Tenant, s *tenantState, ev event.Event, changes *[]event.Change) {
	esc := t.Escalation
	if len(esc.Steps) == 0 || !blocks(b.d.Verdict) {
		return
	}
	capacity := esc.Steps[len(esc.Steps)-1].After + 1
	if s.escAccount == nil || s.escWindow != esc.Window || s.escCap != capacity {
		s.escAccount = bucket.NewLog[string](esc.Window, capacity)
		s.escIP = bucket.NewLog[netip.Addr](esc.Window, capacity)
		s.escWindow, s.escCap = esc.Window, capacity
	}
	var byAccount, byIP int
	if ev.Account != "" {
		byAccount = s.escAccount.Add(ev.Account, ev.Time)
	}
	if ev.SourceIP.IsValid() {
		byIP = s.escIP.Add(ev.SourceIP, ev.Time)
	}
	mode := t.ModeOf("escalation", esc.Mode)
	for _, st := range esc.Steps {
		switch st.Action {
		case policy.ActionBanIP:
			if byIP < st.After || !ev.SourceIP.IsValid() {
				continue
			}
			if s.bans[ev.SourceIP] != nil && ev.Time.Before(s.bans[ev.SourceIP].Until) {
				continue
			}
			reason := fmt.Sprintf("%d blocked attempts from this source in %s: banned for %s", byIP, esc.Window, st.Duration)
			b.hit("escalation.ban_ip", mode, event.Ban, "critical", sipDecline, reason)
			if mode != event.Enforce {
				continue
			}
			ban := &event.IPBan{Tenant: t.ID, Subject: ev.SourceIP.String(), Until: ev.Time.Add(st.Duration),
				Rule: "escalation.ban_ip", Reason: reason, Created: ev.Time}
			s.bans[ev.SourceIP] = ban
			*changes = append(*changes, event.Change{Op: event.OpPutBan, Ban: ban})
			b.d.BanSeconds = int64(st.Duration.Seconds())
			b.d.Escalation = "ban_ip"
			e.log.Warn("source banned", "tenant", t.ID, "ip", ev.SourceIP.String(), "for", st.Duration.String(), "reason", reason)
		case policy.ActionSuspendInternational:
			if byAccount < st.After || s.suspended[ev.Account] != nil {
				continue
			}
			reason := fmt.Sprintf("%d blocked attempts by this account in %s", byAccount, esc.Window)
			b.hit("escalation.suspend_international", mode, event.Deny, "critical", sipForbidden, reason+": international calling suspended until an operator lifts it")
			if mode != event.Enforce {
				continue
			}
			sp := &event.Suspension{Tenant: t.ID, Account: ev.Account, Rule: "escalation.suspend_international", Reason: reason, Created: ev.Time}
			s.suspended[ev.Account] = sp
			*changes = append(*changes, event.Change{Op: event.OpPutSuspension, Suspension: sp})
			b.d.Escalation = "suspend_international"
			e.log.Warn("account international calling suspended", "tenant", t.ID, "account", ev.Account, "reason", reason)
		}
	}
}

// finish fills in the codes, the would-have verdict and the risk score.
func (e *Engine) finish(b *verdictBuilder, t *policy.Tenant) {
	d := b.d
	if severity(b.would) > severity(d.Verdict) {
		d.WouldVerdict = b.would
	}
	switch d.Verdict {
	case event.Allow:
		d.SIPCode, d.HTTPCode = 0, 200
	case event.Challenge:
		d.SIPCode, d.HTTPCode = 0, 401
	case event.Throttle:
		d.SIPCode, d.HTTPCode = sipUnavailable, 429
	case event.Deny:
		d.SIPCode, d.HTTPCode = sipForbidden, 403
	case event.Ban:
		d.SIPCode, d.HTTPCode = sipDecline, 403
	}
	if b.sevSIP != 0 && blocks(d.Verdict) {
		d.SIPCode = b.sevSIP
	}
	if d.Verdict != event.Ban {
		d.BanSeconds = 0
	}
	d.Risk = risk(d)
}

// risk scores a decision 0..100 from what fired, monitor hits included:
// the most severe hit sets the base, each further hit adds a little, and an
// allowed call to a risky destination still carries some risk.
func risk(d *event.Decision) int {
	r := 0
	for i := range d.Reasons {
		r = max(r, riskBase(d.Reasons[i].Verdict))
	}
	if len(d.Reasons) > 1 {
		r += 3 * (len(d.Reasons) - 1)
	}
	if d.Destination.International {
		r += 10
	}
	if d.Destination.HighRisk {
		r += 20
	}
	// An anomaly score above the ordinary 0.5 carries risk of its own:
	// 0.75 is 50, 0.9 is 80.
	if a := d.AnomalyScore; a > 0.5 {
		r = max(r, int((a-0.5)*200+0.5))
	}
	return min(r, 100)
}

// riskBase is the risk a hit of verdict v sets at least (a map built on
// every decision before).
func riskBase(v event.Verdict) int {
	switch v {
	case event.Challenge:
		return 40
	case event.Throttle:
		return 60
	case event.Deny:
		return 80
	case event.Ban:
		return 95
	}
	return 0
}

func contains(list []netip.Prefix, ip netip.Addr) bool {
	for _, p := range list {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func absDiff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

func trimPlus(s string) string {
	if len(s) > 0 && s[0] == '+' {
		return s[1:]
	}
	return s
}

var typeNames = map[numbering.Type]string{
	numbering.PremiumRate: "premium-rate", numbering.SharedCost: "shared-cost", numbering.TollFree: "toll-free",
	numbering.PersonalNumber: "personal", numbering.UAN: "UAN", numbering.Satellite: "satellite",
	numbering.InternationalNetwork: "international network", numbering.Invalid: "invalid",
	numbering.Unknown: "unknown-type", numbering.VoIP: "VoIP", numbering.Pager: "pager",
	numbering.Voicemail: "voicemail", numbering.Mobile: "mobile", numbering.FixedLine: "fixed-line",
	numbering.FixedLineOrMobile: "fixed-line or mobile",
}

func typeName(t numbering.Type) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return string(t)
}

// tollDestination reports whether to is a number that costs the tenant
// money to reach: abroad, premium or shared-cost, or on the high-risk list.
// A string that is not a phone number (an extension, a name) is not.
func tollDestination(t *policy.Tenant, to string) bool {
	num, err := t.Numbers.Normalize(to)
	if err != nil {
		return false
	}
	if num.International || num.Type == numbering.PremiumRate || num.Type == numbering.SharedCost {
		return true
	}
	_, risky := t.HighRisk.Match(num)
	return risky
}
