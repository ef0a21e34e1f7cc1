package engine

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/telguard/telguard/internal/engine/bucket"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

// sipState counts failed SIP authentication per source.
type sipState struct {
	cfg       policy.BruteForce
	failIP    *bucket.Log[netip.Addr]
	failUser  *bucket.Log[userKey]
	users     *bucket.Distinct[netip.Addr, string]
	slowIP    *bucket.Log[netip.Addr]
	lastSweep time.Time
}

type userKey struct {
	ip   netip.Addr
	user string
}

// sipCounters returns the tenant's brute-force counters, new ones when the
// policy's brute-force settings changed.
func (s *tenantState) sipCounters(bf policy.BruteForce) *sipState {
	if s.sip != nil && s.sip.cfg == bf {
		return s.sip
	}
	s.sip = &sipState{
		cfg:      bf,
		failIP:   bucket.NewLog[netip.Addr](bf.Window, bf.FailuresPerIP+1),
		failUser: bucket.NewLog[userKey](bf.Window, bf.FailuresPerUser+1),
		users:    bucket.NewDistinct[netip.Addr, string](bf.Window, bf.UsernamesPerIP+1),
		slowIP:   bucket.NewLog[netip.Addr](bf.SlowWindow, bf.SlowFailuresPerIP+1),
	}
	return s.sip
}

func (ss *sipState) sweep(now time.Time) {
	ss.failIP.Sweep(now)
	ss.failUser.Sweep(now)
	ss.users.Sweep(now)
	ss.slowIP.Sweep(now)
}

// decideSIP answers what a SIP sensor asks about besides call attempts: a
// request (banned source? source lists? scanner?) or the PBX's answer to
// one that needed credentials (enough failures ban the source).
func (e *Engine) decideSIP(b *verdictBuilder, t *policy.Tenant, ev event.Event, changes []event.Change) {
	s := e.state(ev.Tenant)
	s.mu.Lock()
	changes = s.expire(t, ev.Time, changes)
	switch ev.Kind {
	case event.SIPRequest:
		e.screenSIPSource(b, t, s, ev, &changes)
	case event.SIPAuthFailure:
		e.authFailure(b, t, s, ev, &changes)
	case event.SIPAuthSuccess:
		if ev.SourceIP.IsValid() {
			// A success eases the fast counters of its source; the slow
			// one and the username spread keep their memory.
			ss := s.sipCounters(t.SIP.BruteForce)
			ss.failIP.Forget(ev.SourceIP)
			ss.failUser.Forget(userKey{ev.SourceIP, sipUser(ev)})
		}
	}
	s.mu.Unlock()
	e.finish(b, t)
	// Only what was not a plain allow goes to the decisions log: REGISTER
	// refreshes and OPTIONS pings would drown it.
	if len(b.d.Reasons) > 0 {
		changes = append(changes, event.Change{Op: event.OpDecision, Decision: b.d})
	}
	if len(changes) > 0 {
		e.sink.Emit(changes...)
	}
}

// screenSIPSource applies the checks every SIP request gets, calls
// included: a banned source, the tenant's source lists, scanner
// fingerprints.
func (e *Engine) screenSIPSource(b *verdictBuilder, t *policy.Tenant, s *tenantState, ev event.Event, changes *[]event.Change) {
	if ban := s.banned(ev.SourceIP, ev.Time, changes); ban != nil {
		b.hit("source_ip.banned", t.ModeOf("source_ip.banned", event.Enforce), event.Ban, "", sipDecline,
			fmt.Sprintf("source banned until %s (%s)", ban.Until.UTC().Format(time.RFC3339), ban.Reason))
		if b.d.Verdict == event.Ban {
			b.d.BanSeconds = int64(ban.Until.Sub(ev.Time).Seconds() + 0.5)
			b.d.Silent = ev.SIP != nil
		}
	}
	if l := t.SourceIPs; !l.Empty() {
		ip := ev.SourceIP
		if ip.IsValid() && contains(l.Deny, ip) {
			b.hit("source_ip.denied", t.ModeOf("source_ip.denied", event.Enforce), event.Deny, "", sipForbidden, "source address is on a deny list")
		} else if len(l.Allow) > 0 && (!ip.IsValid() || !contains(l.Allow, ip)) {
			b.hit("source_ip.not_allowed", t.ModeOf("source_ip.not_allowed", event.Enforce), event.Deny, "", sipForbidden, "source address is not on the allow list")
		}
	}
	e.scanner(b, t, s, ev, changes)
}

// scanner bans a source whose request carries a scanner's fingerprint.
func (e *Engine) scanner(b *verdictBuilder, t *policy.Tenant, s *tenantState, ev event.Event, changes *[]event.Change) {
	tool, ok := t.SIP.Match(ev.UserAgent, ev.SIP)
	if !ok {
		return
	}
	mode := t.ModeOf("sip.scanner", event.Enforce)
	reason := "request carries the fingerprint of " + tool
	b.hit("sip.scanner", mode, event.Ban, "critical", sipForbidden, reason)
	if mode != event.Enforce {
		return
	}
	b.d.Silent = t.SIP.ScannerAction == policy.ScannerDrop
	e.banIP(b, t, s, ev, t.SIP.ScannerBan, "sip.scanner", reason, changes)
}

// authFailure counts a refused authentication and bans the source when a
// brute-force or enumeration threshold is passed.
func (e *Engine) authFailure(b *verdictBuilder, t *policy.Tenant, s *tenantState, ev event.Event, changes *[]event.Change) {
	if ev.SIP != nil && (ev.SIP.Status == 401 || ev.SIP.Status == 407) && !ev.SIP.Credentials {
		return // the challenge of digest authentication, not a failure
	}
	ip := ev.SourceIP
	if !ip.IsValid() {
		return
	}
	bf := t.SIP.BruteForce
	ss := s.sipCounters(bf)
	if ev.Time.Sub(ss.lastSweep) >= sweepEvery {
		ss.lastSweep = ev.Time
		ss.sweep(ev.Time)
	}
	user := sipUser(ev)
	perIP := ss.failIP.Add(ip, ev.Time)
	perUser := 0
	if user != "" {
		perUser = ss.failUser.Add(userKey{ip, user}, ev.Time)
	}
	users := 0
	if user != "" {
		users = ss.users.Add(ip, user, ev.Time)
	}
	slow := ss.slowIP.Add(ip, ev.Time)

	var rule, reason string
	ban := bf.Ban
	switch {
	case bf.UsernamesPerIP > 0 && users > bf.UsernamesPerIP:
		rule, ban = "sip.enumeration", bf.EnumerationBan
		reason = fmt.Sprintf("%d different usernames failed authentication from this source in %s (enumeration)", users, bf.Window)
	case bf.FailuresPerUser > 0 && perUser > bf.FailuresPerUser:
		rule = "sip.brute_force"
		reason = fmt.Sprintf("%d failed authentications for one username from this source in %s", perUser, bf.Window)
	case bf.FailuresPerIP > 0 && perIP > bf.FailuresPerIP:
		rule = "sip.brute_force"
		reason = fmt.Sprintf("%d failed authentications from this source in %s", perIP, bf.Window)
	case bf.SlowFailuresPerIP > 0 && slow > bf.SlowFailuresPerIP:
		rule = "sip.brute_force"
		reason = fmt.Sprintf("%d failed authentications from this source in %s (slow brute force)", slow, bf.SlowWindow)
	default:
		return
	}
	mode := t.ModeOf(rule, event.Enforce)
	b.hit(rule, mode, event.Ban, "critical", sipForbidden, reason)
	if mode != event.Enforce {
		return
	}
	b.d.Silent = true
	e.banIP(b, t, s, ev, ban, rule, reason, changes)
}

// banIP bans the event's source for d, unless a longer ban is in force.
func (e *Engine) banIP(b *verdictBuilder, t *policy.Tenant, s *tenantState, ev event.Event, d time.Duration, rule, reason string, changes *[]event.Change) {
	ip := ev.SourceIP
	if !ip.IsValid() {
		return
	}
	until := ev.Time.Add(d)
	if cur := s.bans[ip]; cur != nil && !cur.Until.Before(until) {
		b.d.BanSeconds = int64(cur.Until.Sub(ev.Time).Seconds() + 0.5)
		return
	}
	ban := &event.IPBan{Tenant: t.ID, Subject: ip.String(), Until: until, Rule: rule, Reason: reason, Created: ev.Time}
	s.bans[ip] = ban
	*changes = append(*changes, event.Change{Op: event.OpPutBan, Ban: ban})
	b.d.BanSeconds = int64(d.Seconds())
	e.log.Warn("source banned", "tenant", t.ID, "ip", ip.String(), "for", d.String(), "rule", rule, "reason", reason)
}

// sipUser is the username a SIP event names.
func sipUser(ev event.Event) string {
	if ev.SIP != nil && ev.SIP.User != "" {
		return ev.SIP.User
	}
	return ev.Account
}
