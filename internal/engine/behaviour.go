package engine

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/numbering"
)

// behaviour is what the engine learns of a tenant's calling: a baseline per
// account, the group baselines accounts are judged by while they warm up,
// and the source networks the tenant calls from. All of it is learned in
// event time from calls that end, never from attempts: an attack that is
// blocked teaches nothing.
//
// Memory is bounded: at most max accounts (the least recently active goes
// first, counted in evicted), each a fixed-size baseline (see
// BaselineBytes), and at most anomaly.MaxNetworks networks.
type behaviour struct {
	accounts map[string]*learned
	// lru links the accounts, most recently learned from first.
	lru    learned                      // sentinel: lru.next is the newest, lru.prev the oldest
	max    int                          // accounts kept at most
	groups map[string]*anomaly.Baseline // rebuilt from the accounts at most hourly
	built  time.Time                    // event time the group baselines were built
	nets   *anomaly.Networks
	// forgotten is the event time silent accounts were last dropped.
	forgotten time.Time
	// evicted counts accounts dropped because max was reached.
	evicted int64
	// unjudged counts attempts baseline.new_network could not judge for
	// want of a source address.
	unjudged int64
}

// learned is one account's baseline, linked in its tenant's recency list.
type learned struct {
	b          *anomaly.Baseline
	name       string
	prev, next *learned
}

// DefaultMaxBaselines is how many account baselines a tenant keeps by
// default (Options.MaxBaselines): at about 5.5 KB each, some 280 MB.
const DefaultMaxBaselines = 50000

// BaselineBytes is the heap an account's baseline takes: the fixed part
// (168 hour-of-week statistics and running sums, 4,864 bytes with its
// allocation rounding), its recency links and map entry, and at most 64
// destination hashes (512 bytes) and 16 countries (640 bytes). What an
// account's recent calls take is counted apart (recentCallBytes).
const BaselineBytes = 4864 + 160 + 512 + 640

func (bh *behaviour) init() {
	if bh.accounts == nil {
		bh.accounts = map[string]*learned{}
		bh.lru.next, bh.lru.prev = &bh.lru, &bh.lru
	}
	if bh.nets == nil {
		bh.nets = anomaly.NewNetworks()
	}
	if bh.max <= 0 {
		bh.max = DefaultMaxBaselines
	}
}

func (bh *behaviour) unlink(l *learned) {
	l.prev.next, l.next.prev = l.next, l.prev
	l.prev, l.next = nil, nil
}

func (bh *behaviour) pushFront(l *learned) {
	l.prev, l.next = &bh.lru, bh.lru.next
	bh.lru.next.prev = l
	bh.lru.next = l
}

// drop forgets an account's baseline.
func (bh *behaviour) drop(l *learned) {
	bh.unlink(l)
	delete(bh.accounts, l.name)
}

// put adds (or replaces) an account's baseline as the most recent, making
// room by dropping the least recently active accounts.
func (bh *behaviour) put(account string, b *anomaly.Baseline) *learned {
	if l := bh.accounts[account]; l != nil {
		l.b = b
		bh.unlink(l)
		bh.pushFront(l)
		return l
	}
	for len(bh.accounts) >= bh.max && bh.lru.prev != &bh.lru {
		bh.drop(bh.lru.prev)
		bh.evicted++
	}
	l := &learned{b: b, name: account}
	bh.accounts[account] = l
	bh.pushFront(l)
	return l
}

// groupRebuild is how much event time passes between rebuilds of the
// group baselines.
const groupRebuild = time.Hour

// learn folds a call that ended into the account's baseline and, when it
// was answered, its source network into the tenant's. A call some rule
// flagged teaches nothing (see flagged).
func (s *tenantState) learn(f *flight, t *policy.Tenant, end time.Time, billed time.Duration) {
	if t == nil || t.Baselines == nil || !t.Baselines.Enabled || f.Account == "" {
		return
	}
	bh := &s.behaviour
	bh.init()
	hl := t.Baselines.Config.HalfLife
	if hl <= 0 {
		hl = 14 * 24 * time.Hour // anomaly.NewBaseline's default
	}
	if f.Flagged || f.expired || f.NewNetwork && !bh.nets.SeenSince(f.ip, f.Started.Add(-hl)) {
		// A flagged call teaches nothing, and neither does one whose end
		// never came (its billed time is max_call_duration, not what
		// happened). A call flagged only as from a new network is
		// forgiven when its network was seen on an unflagged call within
		// the half-life (the tenant's own site, used during the warm-up).
		return
	}
	l := bh.accounts[f.Account]
	if l == nil {
		l = bh.put(f.Account, anomaly.NewBaseline(t.Baselines.Config))
	} else if bh.lru.next != l {
		bh.unlink(l)
		bh.pushFront(l)
	}
	// A billed duration is an answer, even if the answer was not reported.
	answered := !f.Answered.IsZero() || billed > 0
	l.b.Observe(anomaly.Call{
		ID: f.CallID, Time: f.Started.In(t.Location), E164: f.E164, Country: f.Country,
		International: f.International, RatePerMinute: f.RatePerMinute,
		Ended: true, Answered: answered, Billed: billed, End: end,
	})
	if answered {
		bh.nets.Observe(f.ip, f.Started)
	}
}

// flagged reports whether a call's decision holds a hit that asked for a
// challenge or worse, enforced or in monitor. Such a call teaches the
// behaviour layer nothing, even if it went through and was answered: a
// challenge the front-end only alerts on, or a rule still in monitor,
// would otherwise let an attacker teach the baselines his own network and
// ramp the statistics his calls are judged by. A hit whose action is
// allow (a level an operator set to allow) flags nothing.
//
// One exception keeps a tenant's own sites learnable: baseline.new_network
// on a network already remembered from an unflagged call (one used during
// the warm-up, say, but not yet on learn_calls calls over learn_span) does
// not count. An attacker's network is never remembered that way, since
// every call from it after the warm-up is flagged.
// callFlags reads an allowed call's decision: flagged when a rule
// challenged it or would have blocked it, newNet when that rule was
// baseline.new_network. Capacity rules (pattern.simultaneous_calls, limits
// on concurrent calls) do not flag: they say how busy the account is, not
// who is calling, and a busy trunk would otherwise never learn.
func callFlags(d *event.Decision, g *policy.Group) (flagged, newNet bool) {
	for i := range d.Reasons {
		r := &d.Reasons[i]
		switch {
		case severity(r.Verdict) < severity(event.Challenge):
		case r.Rule == policy.RuleBaselineNewNetwork:
			newNet = true
		case r.Rule == simultaneousRule || concurrencyLimit(g, r.Rule):
		default:
			flagged = true
		}
	}
	return flagged, newNet
}

var simultaneousRule = policy.PatternRule(anomaly.SimultaneousCalls)

// concurrencyLimit reports whether rule is one of g's limits on calls up
// at once.
func concurrencyLimit(g *policy.Group, rule string) bool {
	id, ok := strings.CutPrefix(rule, "limit.")
	if !ok || g == nil {
		return false
	}
	for _, l := range g.Limits {
		if l.ID == id && l.Metric == policy.MetricConcurrent {
			return true
		}
	}
	return false
}

// forgetAfter is how many half-lives an account may be silent before its
// baseline is dropped: by then it weighs 1/256 of what it did, and a
// tenant's departed accounts would otherwise be kept for ever.
const forgetAfter = 8

// forget drops the baselines of accounts silent for forgetAfter
// half-lives. The sweep calls it.
func (bh *behaviour) forget(now time.Time) {
	for _, l := range bh.accounts {
		if now.Sub(l.b.Last()) > forgetAfter*l.b.HalfLife() {
			bh.drop(l)
		}
	}
}

// baselineFor returns what an account is judged by: its own baseline once
// warm, else its group's once that is warm, else nil (nothing to judge by).
func (s *tenantState) baselineFor(t *policy.Tenant, g *policy.Group, account string, now time.Time) *anomaly.Baseline {
	bh := &s.behaviour
	if bh.accounts == nil {
		return nil
	}
	if l := bh.accounts[account]; l != nil && l.b.Warm() {
		l.b.Advance(now)
		return l.b
	}
	// Not on events older than the last rebuild: with clock skew and
	// parallel sensors they are routine, and a rebuild merges every warm
	// account under the tenant lock.
	if bh.groups == nil || now.Sub(bh.built) >= groupRebuild {
		bh.rebuildGroups(t)
		bh.built = now
	}
	if b := bh.groups[g.Name]; b != nil && b.Warm() {
		return b
	}
	return nil
}

// rebuildGroups merges the warm accounts of each group: the behaviour of an
// average member, which a new account is measured against.
func (bh *behaviour) rebuildGroups(t *policy.Tenant) {
	bh.groups = map[string]*anomaly.Baseline{}
	names := make([]string, 0, len(bh.accounts))
	for a, l := range bh.accounts {
		if l.b.Warm() {
			names = append(names, a)
		}
	}
	slices.Sort(names) // merge order changes the floating-point sums
	for _, a := range names {
		g := t.GroupFor(a)
		m := bh.groups[g.Name]
		if m == nil {
			m = anomaly.NewBaseline(t.Baselines.Config)
			bh.groups[g.Name] = m
		}
		m.Merge(bh.accounts[a].b)
	}
}

// newNetwork runs rule baseline.new_network on an outbound attempt.
func (e *Engine) newNetwork(b *verdictBuilder, t *policy.Tenant, g *policy.Group, s *tenantState, ev event.Event, num numbering.Number, numErr error) {
	bl := t.Baselines
	nets := s.behaviour.nets
	if bl == nil || !bl.Enabled || !bl.NewNetwork || nets == nil {
		return
	}
	if !ev.SourceIP.IsValid() {
		// No address, no network to judge: the rule stays open rather
		// than flag every call of a switch that does not send one (an
		// API-originated call has none). Counted, so an operator can see
		// how much traffic it does not cover.
		if nets.History(ev.Time) >= bl.Config.WarmUp {
			s.behaviour.unjudged++
		}
		return
	}
	if nets.History(ev.Time) < bl.Config.WarmUp || nets.Known(ev.SourceIP, bl.NetworkCalls, bl.NetworkSpan) || contains(bl.Trusted, ev.SourceIP) {
		return
	}
	now := ev.Time.In(t.Location)
	level, action, why := "warning", bl.NewNetworkActions.Warning, ""
	switch {
	case numErr == nil && num.International:
		level, action, why = "critical", bl.NewNetworkActions.Critical, ", calling abroad"
	default:
		if base := s.baselineFor(t, g, ev.Account, now); base != nil && base.Expected(now).CallsPerHour < quietHour {
			level, action, why = "critical", bl.NewNetworkActions.Critical, ", at an hour this account does not call"
		}
	}
	if action == event.Allow {
		return
	}
	rule := policy.RuleBaselineNewNetwork
	// Built in a stack buffer: one allocation for the reason, not three.
	var buf [112]byte
	r := append(buf[:0], "call from a network this tenant has not used before ("...)
	r = anomaly.NetworkOf(ev.SourceIP).AppendTo(r)
	r = append(append(r, ')'), why...)
	b.hit(rule, t.ModeOf(rule, bl.Mode), action, level, patternSIP(action), string(r))
}

// deviation is an attempt's measured deviation from its baseline: the
// features of the deviation window and their σ; z is NaN when not measured.
type deviation struct {
	f anomaly.Features
	z float64
}

// quietHour is the expected calls in an hour below which the account
// "does not call" at that hour.
const quietHour = 0.1

// behaviourRules runs the baseline deviation rule and the anomaly score on
// an attempt recorded in rc.
func (e *Engine) behaviourRules(b *verdictBuilder, t *policy.Tenant, base *anomaly.Baseline, rc *recentCalls, now time.Time, dev *deviation) {
	if bl := t.Baselines; bl != nil && bl.Enabled && !math.IsNaN(dev.z) {
		f, z := dev.f, dev.z
		var level string
		var action event.Verdict
		var th float64
		switch {
		case bl.Deviation.Critical > 0 && z >= bl.Deviation.Critical:
			level, action, th = "critical", bl.DeviationActions.Critical, bl.Deviation.Critical
		case bl.Deviation.Warning > 0 && z >= bl.Deviation.Warning:
			level, action, th = "warning", bl.DeviationActions.Warning, bl.Deviation.Warning
		}
		if level != "" && action != event.Allow {
			rule := policy.RuleBaselineDeviation
			b.hit(rule, t.ModeOf(rule, bl.Mode), action, level, patternSIP(action), fmt.Sprintf(
				"%.0f calls, %.0f destinations, %.2f %s in the last %s: %.1fσ above this account's usual for the hour (%s at %gσ)",
				f.CallsPerMin*f.Window.Minutes(), f.DistinctDest, f.CostRate*f.Window.Minutes(), t.Currency,
				shortDuration(bl.DeviationWindow), z, level, th))
		}
	}
	sc := t.Score
	m := e.model.Load()
	if m == nil || sc == nil || !sc.Enabled {
		return
	}
	var buf [anomaly.NumFeatures]float64
	f := rc.r.Features(now, anomaly.FeatureConfig{}, base)
	score := m.Score(f.AppendVector(buf[:0]))
	b.d.AnomalyScore = score
	var level string
	var action event.Verdict
	var th float64
	switch {
	case sc.Levels.Critical > 0 && score >= sc.Levels.Critical:
		level, action, th = "critical", sc.Actions.Critical, sc.Levels.Critical
	case sc.Levels.Warning > 0 && score >= sc.Levels.Warning:
		level, action, th = "warning", sc.Actions.Warning, sc.Levels.Warning
	}
	if level == "" || action == event.Allow {
		return
	}
	rule := policy.RuleAnomalyScore
	b.hit(rule, t.ModeOf(rule, sc.Mode), action, level, patternSIP(action),
		"anomaly score "+strconv.FormatFloat(score, 'f', 2, 64)+" of this account's last 10 minutes ("+level+" at "+strconv.FormatFloat(th, 'f', -1, 64)+")")
}

// inboundCall is an inbound call the engine was asked about, kept until it
// ends so that a one-ring call can be told from a conversation.
type inboundCall struct {
	account string
	from    string // E.164; "" when the caller's number could not be read
	// rawFrom, to and ip are the attempt's, for the call history.
	rawFrom, to string
	ip          netip.Addr
	intl        bool // from abroad
	started     time.Time
	answer      time.Time
}

// maxRecentAccounts bounds the accounts whose recent calls a ring alone
// may create; past it rings to new accounts are counted, not remembered.
const maxRecentAccounts = 100_000

// maxInbound bounds the inbound calls kept per tenant; past it the oldest
// is forgotten (its end is then refused as an unknown call).
const maxInbound = 4096

// decideInbound judges an inbound call attempt. The tenant pays no toll for
// a call it receives, so destination rules, quotas, schedules and limits do
// not apply: only the source (banned, scanner, allow and deny lists). A
// call from a premium or high-risk number is remembered against the
// account it rang, so that calling it back is caught as a Wangiri
// callback; so is any international call that ends unanswered within
// seconds.
func (e *Engine) decideInbound(b *verdictBuilder, t *policy.Tenant, ev event.Event, changes []event.Change) {
	mode := func(rule string) event.Mode { return t.ModeOf(rule, event.Enforce) }
	g := t.GroupFor(ev.Account)
	s := e.state(ev.Tenant)
	s.mu.Lock()
	changes = s.expire(t, ev.Time, changes)
	if ban := s.banned(ev.SourceIP, ev.Time, &changes); ban != nil {
		b.hit("source_ip.banned", mode("source_ip.banned"), event.Ban, "", sipDecline,
			fmt.Sprintf("source banned until %s (%s)", ban.Until.UTC().Format(time.RFC3339), ban.Reason))
		if b.d.Verdict == event.Ban {
			b.d.BanSeconds = int64(ban.Until.Sub(ev.Time).Seconds() + 0.5)
			b.d.Silent = ev.SIP != nil
		}
	}
	if ev.SIP != nil || ev.UserAgent != "" {
		e.scanner(b, t, s, ev, &changes)
	}
	for _, list := range []policy.IPList{t.SourceIPs, g.SourceIPs} {
		if list.Empty() {
			continue
		}
		ip := ev.SourceIP
		if ip.IsValid() && contains(list.Deny, ip) {
			b.hit("source_ip.denied", mode("source_ip.denied"), event.Deny, "", sipForbidden, "source address is on a deny list")
		} else if len(list.Allow) > 0 && (!ip.IsValid() || !contains(list.Allow, ip)) {
			b.hit("source_ip.not_allowed", mode("source_ip.not_allowed"), event.Deny, "", sipForbidden, "source address is not on the allow list")
		}
	}
	if ev.Account != "" && !blocks(b.d.Verdict) {
		// Every inbound call is kept until it ends, so that its answer and
		// end are taken (not refused as unknown); only one from abroad can
		// turn out to be a one-ring call.
		c := &inboundCall{account: ev.Account, started: ev.Time, rawFrom: ev.From, to: ev.To, ip: ev.SourceIP}
		if num, err := t.Numbers.Normalize(ev.From); err == nil {
			_, risky := t.HighRisk.Match(num)
			if risky || num.Type == numbering.PremiumRate {
				s.rang(t, ev.Account, num.E164, ev.Time)
			}
			c.from, c.intl = num.E164, num.International
		}
		if ev.CallID != "" {
			if s.inbound == nil {
				s.inbound = map[string]*inboundCall{}
			}
			if s.inbound[ev.CallID] == nil {
				if len(s.inbound) >= maxInbound {
					s.dropOldestInbound()
				}
				s.inboundOrder = append(s.inboundOrder, ev.CallID)
			}
			s.inbound[ev.CallID] = c
		}
	}
	s.mu.Unlock()
	e.finish(b, t)
	changes = append(changes, event.Change{Op: event.OpDecision, Decision: b.d})
	e.sink.Emit(changes...)
}

// rang records that number rang account at t.
func (s *tenantState) rang(t *policy.Tenant, account, number string, at time.Time) {
	if t.Patterns != nil && t.Patterns.TenantCallbacks {
		s.ringTenant(number, at)
	}
	rc := s.recent[account]
	if rc == nil {
		if len(s.recent) >= maxRecentAccounts {
			// Anyone can ring a tenant's numbers: a sweep across a number
			// range must not grow this map for the whole callback window.
			s.rangDropped++
			return
		}
		rc = &recentCalls{r: anomaly.NewRecent(recentCapacity)}
		s.recent[account] = rc
	}
	rc.r.MissedInbound(number, at)
	if at.After(rc.last) {
		rc.last = at
	}
	// Keep the account's recent calls as long as a callback counts.
	if t.Patterns != nil {
		win := t.Patterns.Detectors.Wangiri.CallbackWindow
		if win <= 0 {
			win = 72 * time.Hour
		}
		if k := at.Add(win); k.After(rc.keep) {
			rc.keep = k
		}
	}
}

// maxTenantRings bounds the numbers remembered as having rung a tenant:
// anyone can ring its numbers, so a sweep must not grow the map for the
// callback window.
const maxTenantRings = 10_000

// ringTenant records that number rang the tenant at t. The oldest ring
// goes first when the table is full; a number that rings again is moved
// to the back (its earlier place in the order is skipped as stale).
func (s *tenantState) ringTenant(number string, at time.Time) {
	if s.rings == nil {
		s.rings = map[string]time.Time{}
	}
	if prev, ok := s.rings[number]; ok {
		if !at.After(prev) {
			return
		}
	} else {
		for len(s.rings) >= maxTenantRings && len(s.ringOrder) > 0 {
			e := s.ringOrder[0]
			s.ringOrder = s.ringOrder[1:]
			if cur, ok := s.rings[e.number]; ok && cur.Equal(e.at) {
				delete(s.rings, e.number)
			}
		}
	}
	s.rings[number] = at
	s.ringOrder = append(s.ringOrder, ringEntry{number, at})
	if len(s.ringOrder) > 2*maxTenantRings {
		// Drop the stale entries re-rings left behind.
		live := s.ringOrder[:0]
		for _, e := range s.ringOrder {
			if cur, ok := s.rings[e.number]; ok && cur.Equal(e.at) {
				live = append(live, e)
			}
		}
		s.ringOrder = slices.Clip(live)
	}
}

// ringEntry is a number in the order it last rang.
type ringEntry struct {
	number string
	at     time.Time
}

// tenantRing makes a ring of number to any account of the tenant count as
// a ring of rc's account too (wangiri.callbacks: tenant), so the callback
// detector sees it; win is the callback window.
func (s *tenantState) tenantRing(rc *recentCalls, number string, now time.Time, win time.Duration) {
	at, ok := s.rings[number]
	if !ok || now.Sub(at) > win || rc.r.HasMissed(number, now.Add(-win)) {
		return
	}
	rc.r.MissedInbound(number, at)
}

func (s *tenantState) dropOldestInbound() {
	for len(s.inboundOrder) > 0 {
		id := s.inboundOrder[0]
		s.inboundOrder = s.inboundOrder[1:]
		if _, ok := s.inbound[id]; ok {
			delete(s.inbound, id)
			return
		}
	}
}

// compactInboundOrder drops the ids of ended calls from inboundOrder once
// they outnumber the live ones, so the queue stays within twice the bound.
func (s *tenantState) compactInboundOrder() {
	if len(s.inboundOrder) <= 2*len(s.inbound)+64 {
		return
	}
	live := s.inboundOrder[:0]
	for _, id := range s.inboundOrder {
		if _, ok := s.inbound[id]; ok {
			live = append(live, id)
		}
	}
	clear(s.inboundOrder[len(live):])
	s.inboundOrder = live
}

// observeInbound takes the answer or end of an inbound call; it reports
// false for a call that is not a known inbound one.
func (s *tenantState) observeInbound(t *policy.Tenant, ev event.Event, changes *[]event.Change) bool {
	c := s.inbound[ev.CallID]
	if c == nil {
		return false
	}
	switch ev.Kind {
	case event.CallAnswered:
		if c.answer.IsZero() {
			c.answer = ev.Time
		}
	case event.CallEnded:
		delete(s.inbound, ev.CallID)
		s.compactInboundOrder()
		billed := ev.Duration
		if billed == 0 && !c.answer.IsZero() {
			billed = ev.Time.Sub(c.answer)
		}
		ring := oneRing
		if t.Patterns != nil && t.Patterns.Detectors.Wangiri.MaxRing > 0 {
			ring = t.Patterns.Detectors.Wangiri.MaxRing
		}
		if c.intl && c.from != "" && (c.answer.IsZero() && ev.Time.Sub(c.started) <= ring+time.Second || !c.answer.IsZero() && billed < shortInbound) {
			s.rang(t, c.account, c.from, c.started)
		}
		if s.history {
			r := &event.CallRecord{
				Tenant: s.id, Account: c.account, CallID: ev.CallID, From: c.rawFrom, To: c.to,
				Direction: event.Inbound, SourceIP: c.ip, Start: c.started, Answer: c.answer, End: ev.Time,
				Disposition: "NO ANSWER",
			}
			if r.End.Before(r.Start) {
				r.End = r.Start
			}
			if r.Answer.IsZero() && billed > 0 {
				r.Answer = r.End.Add(-billed) // ended with a duration, no answer event
				if r.Answer.Before(r.Start) {
					r.Answer = r.Start
				}
			}
			if !r.Answer.IsZero() {
				r.Billsec, r.Disposition = billed, "ANSWERED"
			}
			*changes = append(*changes, event.Change{Op: event.OpPutHistory, History: r})
		}
	}
	return true
}

// oneRing is the Wangiri detector's default longest one-ring call; an
// answered inbound call shorter than shortInbound is a one-ring call too
// (voicemail or an auto-answer picked it up).
const (
	oneRing      = 5 * time.Second
	shortInbound = 5 * time.Second
)

// sweepInbound forgets inbound calls whose end never came.
func (s *tenantState) sweepInbound(now time.Time, maxDur time.Duration) {
	for id, c := range s.inbound {
		if now.Sub(c.started) > maxDur {
			delete(s.inbound, id)
		}
	}
}

// ExportBaselines returns a snapshot of every tenant's learned behaviour
// (account baselines and source networks); WriteBaselines streams the same
// bytes.
func (e *Engine) ExportBaselines() ([]byte, error) {
	var buf bytes.Buffer
	if _, err := e.WriteBaselines(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// exportChunk is how many accounts are encoded per hold of a tenant's
// lock: about 100 µs of encoding, so a decision waiting for the lock
// waits no longer than that, whatever the number of accounts.
const exportChunk = 32

// exportFlush is the size at which the encoded snapshot is handed to the
// writer: memory used while exporting stays about this, not the snapshot's
// size (some 4.3 KB an account).
const exportFlush = 256 << 10

// WriteBaselines writes a snapshot of every tenant's learned behaviour to
// w, for the daemon to persist; ImportBaselines loads it. It holds a
// tenant's lock only to list its accounts and then for exportChunk
// accounts at a time, so decisions run on while a large snapshot is
// written. Each baseline is written as it was at one instant; an account
// forgotten while the snapshot is written is written empty (and skipped
// on import), one first learned meanwhile waits for the next snapshot.
func (e *Engine) WriteBaselines(w io.Writer) (int64, error) {
	e.mu.Lock()
	ids := make([]string, 0, len(e.tenants))
	for id := range e.tenants {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	slices.Sort(ids)
	type section struct {
		s     *tenantState
		nets  *anomaly.Networks
		names []string
	}
	var secs []section
	for _, id := range ids {
		s := e.state(id)
		s.mu.Lock()
		bh := &s.behaviour
		if bh.accounts == nil {
			s.mu.Unlock()
			continue
		}
		sec := section{s: s, nets: bh.nets.Clone(), names: make([]string, 0, len(bh.accounts))}
		for a := range bh.accounts {
			sec.names = append(sec.names, a)
		}
		s.mu.Unlock()
		slices.Sort(sec.names)
		secs = append(secs, sec)
	}
	var total int64
	buf := anomaly.AppendSnapshotHeader(make([]byte, 0, exportFlush+64<<10), len(secs))
	flush := func(force bool) error {
		if len(buf) < exportFlush && !force {
			return nil
		}
		n, err := w.Write(buf)
		total += int64(n)
		buf = buf[:0]
		if err != nil {
			return fmt.Errorf("export baselines: %w", err)
		}
		return nil
	}
	for _, sec := range secs {
		buf = anomaly.AppendSnapshotTenant(buf, sec.s.id, sec.nets, len(sec.names))
		for i := 0; i < len(sec.names); i += exportChunk {
			sec.s.mu.Lock()
			for _, a := range sec.names[i:min(i+exportChunk, len(sec.names))] {
				var b *anomaly.Baseline
				if l := sec.s.behaviour.accounts[a]; l != nil {
					b = l.b
				}
				buf = anomaly.AppendSnapshotAccount(buf, a, b)
			}
			sec.s.mu.Unlock()
			if err := flush(false); err != nil {
				return total, err
			}
		}
	}
	return total, flush(true)
}

// ImportBaselines loads a snapshot ExportBaselines made, at start-up before
// the first decision. Baselines in the snapshot replace what the engine
// has for the same accounts; past the tenant's bound the least recently
// active are dropped. A damaged snapshot changes nothing and is an error
// wrapping anomaly.ErrCorrupt.
func (e *Engine) ImportBaselines(data []byte) error {
	tenants, err := anomaly.UnmarshalSnapshot(data)
	if err != nil {
		return fmt.Errorf("import baselines: %w", err)
	}
	pol := e.pol.Load()
	for _, tb := range tenants {
		t := pol.Tenants[tb.Tenant]
		if t == nil || t.Baselines == nil {
			continue // no longer in the policy, or it learns no baselines
		}
		s := e.state(tb.Tenant)
		s.mu.Lock()
		bh := &s.behaviour
		bh.init()
		if tb.Networks != nil {
			bh.nets = tb.Networks
		}
		// The oldest first, so that the newest end up most recent.
		slices.SortStableFunc(tb.Accounts, func(x, y anomaly.AccountBaseline) int {
			return x.Baseline.Last().Compare(y.Baseline.Last())
		})
		for _, a := range tb.Accounts {
			if a.Baseline.Calls() == 0 {
				continue // forgotten while the snapshot was written
			}
			a.Baseline.Reconfigure(t.Baselines.Config)
			bh.put(a.Account, a.Baseline)
		}
		bh.groups = nil
		s.mu.Unlock()
	}
	return nil
}

// SetModel puts an anomaly model (an isolation forest trained by
// `telguard anomaly train`) in force; nil stops scoring. Decisions running
// finish on the model they started with. A model over other features than
// the engine computes is ErrModel, and the old model stays.
func (e *Engine) SetModel(m *anomaly.Forest) error {
	if m != nil && m.Dims() != anomaly.NumFeatures {
		return fmt.Errorf("%w: it reads %d features, the engine computes %d", ErrModel, m.Dims(), anomaly.NumFeatures)
	}
	e.model.Store(m)
	return nil
}

// Model returns the anomaly model in force, or nil.
func (e *Engine) Model() *anomaly.Forest { return e.model.Load() }

// BaselineStats counts what the engine has learned of a tenant.
type BaselineStats struct {
	Tenant                   string
	Accounts, Warm, Networks int
	// Evicted counts accounts dropped because the tenant reached
	// Options.MaxBaselines, NetworksEvicted networks dropped because it
	// reached anomaly.MaxNetworks; both since start.
	Evicted, NetworksEvicted int64
	// RingsDropped counts risky rings to accounts with no recent calls
	// that were not remembered because too many accounts had some.
	RingsDropped int64
	// RecentAccounts is how many accounts have recent calls held for the
	// pattern detectors, the deviation rule and the score, RecentCalls how
	// many calls they hold in all (at most 128 an account).
	RecentAccounts, RecentCalls int
	// NoSourceIP counts outbound attempts, since start, that
	// baseline.new_network did not judge because they carried no source
	// address (once the tenant's networks were warm).
	NoSourceIP int64
}

// Baselines reports what the engine has learned of tenant.
func (e *Engine) Baselines(tenant string) BaselineStats {
	s := e.state(tenant)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baselineStats()
}

func (s *tenantState) baselineStats() BaselineStats {
	bh := &s.behaviour
	st := BaselineStats{Tenant: s.id, Accounts: len(bh.accounts), Evicted: bh.evicted, RingsDropped: s.rangDropped, NoSourceIP: bh.unjudged}
	for _, l := range bh.accounts {
		if l.b.Warm() {
			st.Warm++
		}
	}
	st.RecentAccounts = len(s.recent)
	for _, rc := range s.recent {
		st.RecentCalls += rc.r.Len()
	}
	if bh.nets != nil {
		st.Networks = bh.nets.Len()
		st.NetworksEvicted = bh.nets.Evicted()
	}
	return st
}

// AllBaselines reports what the engine has learned of every tenant that
// has learned something, in tenant order, for metrics.
func (e *Engine) AllBaselines() []BaselineStats {
	e.mu.Lock()
	states := make([]*tenantState, 0, len(e.tenants))
	for _, s := range e.tenants {
		states = append(states, s)
	}
	e.mu.Unlock()
	slices.SortFunc(states, func(a, b *tenantState) int { return strings.Compare(a.id, b.id) })
	var out []BaselineStats
	for _, s := range states {
		s.mu.Lock()
		if s.behaviour.accounts != nil {
			out = append(out, s.baselineStats())
		}
		s.mu.Unlock()
	}
	return out
}
