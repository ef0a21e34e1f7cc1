package engine

import (
	"container/heap"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/engine/bucket"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

// tenantState is everything the engine remembers about one tenant. Guarded
// by mu; the durable parts (calls, quota, bans, suspensions) are mirrored to
// the Sink as they change.
type tenantState struct {
	mu        sync.Mutex
	id        string
	history   bool // emit finished calls (Options.History)
	calls     map[string]*flight
	byAccount map[string][]*flight // calls in flight per account (a few: a slice beats a map)
	inflight  map[policy.KeyKind]map[key]int
	// inflightIntl counts international calls only, for concurrency
	// limits that apply to international calls.
	inflightIntl map[policy.KeyKind]map[key]int
	expiry       expiryHeap
	quota        map[string]*event.QuotaUsage // account → usage on its latest day
	bans         map[netip.Addr]*event.IPBan
	// prefixBans holds bans of whole ranges (from operators or other
	// sensors); the engine itself bans single addresses.
	prefixBans map[netip.Prefix]*event.IPBan
	suspended  map[string]*event.Suspension
	limits     map[string]*limitState
	// slots caches limits by policy.Limit.Slot: a lookup by id for every
	// limit of every attempt was a measurable part of Decide. An entry is
	// used only for the very *Limit it was made for; the sweep clears it.
	slots      []*limitState
	escAccount *bucket.Log[string]
	escIP      *bucket.Log[netip.Addr]
	escWindow  time.Duration
	escCap     int
	swept      time.Time // event time of the last sweep
	sip        *sipState // SIP authentication counters, made on first use
	// recent holds each account's latest calls for the pattern detectors,
	// made on an account's first allowed call and forgotten once it is
	// idle for longer than the longest detector window.
	recent map[string]*recentCalls
	dets   []anomaly.Detection // scratch for the detectors' findings
	// behaviour is the learned baselines and networks (behaviour.go).
	behaviour behaviour
	// inbound holds inbound calls until they end; inboundOrder is their
	// call ids in arrival order (ended ones are skipped lazily), so that
	// forgetting the oldest at the bound costs O(1), not a scan.
	inbound      map[string]*inboundCall
	inboundOrder []string
	rangDropped  int64 // rings not remembered at maxRecentAccounts
	// rings are the numbers that rang the tenant (any account), for
	// wangiri.callbacks: tenant; at most maxTenantRings, oldest first out.
	rings     map[string]time.Time
	ringOrder []ringEntry
}

// recentCalls is what the pattern detectors see of one account.
type recentCalls struct {
	r    *anomaly.Recent
	last time.Time // event time of the latest attempt or end recorded
	keep time.Time // kept at least until then: a callback window is open
}

// recentCapacity is how many calls are kept per account: above every
// default detector level (robocalling's critical is 60), at about 20 KB an
// active account; a busier account's counts saturate, far past critical.
const recentCapacity = 128

// key identifies a counted subject without allocating: an address for
// source_ip keys, a string for the rest.
type key struct {
	s  string
	ip netip.Addr
}

type flight struct {
	event.Call
	ip       netip.Addr
	deadline time.Time
	index    int             // in the expiry heap
	answer   *event.Decision // the decision that let it in, when it was not a plain allow (shared, never changed)
	// put is the call as it started, for the sink: Call changes (its
	// answer) while the sink may still hold what it was handed.
	put event.Call
	// expired is set when max_call_duration ended the call, not an event.
	expired bool
	// prefixes has bit n set when the call is counted under its n-digit
	// destination prefix, so removal undoes exactly what adding did even
	// if a reload changed the prefix lengths in use meanwhile.
	prefixes uint16
}

func newTenantState(id string) *tenantState {
	return &tenantState{
		id:           id,
		calls:        map[string]*flight{},
		byAccount:    map[string][]*flight{},
		inflight:     map[policy.KeyKind]map[key]int{},
		inflightIntl: map[policy.KeyKind]map[key]int{},
		quota:        map[string]*event.QuotaUsage{},
		bans:         map[netip.Addr]*event.IPBan{},
		prefixBans:   map[netip.Prefix]*event.IPBan{},
		suspended:    map[string]*event.Suspension{},
		limits:       map[string]*limitState{},
		recent:       map[string]*recentCalls{},
	}
}

// sweepEvery is how much event time passes between sweeps of a tenant's
// counters on the decision path.
const sweepEvery = time.Minute

// flightKeys are the subjects whose concurrency is indexed as calls start
// and end; prefix concurrency is counted by scanning (it is rare).
var flightKeys = []policy.KeyKind{policy.KeyAccount, policy.KeySourceIP, policy.KeyTenant, policy.KeyCountry}

func (f *flight) key(k policy.KeyKind) (key, bool) {
	switch k {
	case policy.KeyAccount:
		return key{s: f.Account}, f.Account != ""
	case policy.KeySourceIP:
		return key{ip: f.ip}, f.ip.IsValid()
	case policy.KeyTenant:
		return key{s: f.Tenant}, true
	case policy.KeyCountry:
		return key{s: f.Country}, f.Country != ""
	}
	return key{}, false
}

// record is the finished call as the call history keeps it.
func (f *flight) record(end time.Time, billed time.Duration) *event.CallRecord {
	r := &event.CallRecord{
		Tenant: f.Tenant, Account: f.Account, CallID: f.CallID, From: f.From, To: f.To,
		Direction: event.Outbound, SourceIP: f.ip, Start: f.Started, Answer: f.Answered, End: end,
		Disposition: "NO ANSWER", Flagged: f.Flagged || f.NewNetwork,
	}
	if r.To == "" {
		r.To = f.E164
	}
	if r.End.Before(r.Start) {
		r.End = r.Start
	}
	if f.Answered.IsZero() && billed > 0 {
		// Ended with a duration and no answer event (an integration may
		// report only the end): it was answered that long before its end.
		r.Answer = r.End.Add(-billed)
		if r.Answer.Before(r.Start) {
			r.Answer = r.Start
		}
	}
	if !r.Answer.IsZero() {
		r.Billsec, r.Disposition = billed, "ANSWERED"
	}
	if f.expired {
		// No end was reported: it was billed to max_call_duration, and
		// training takes it as an attempt of unknown outcome.
		r.Disposition = event.DispositionExpired
	}
	return r
}

// addCall records a call in flight, indexing it under every subject a
// concurrency limit may ask about, so that no check has to scan.
func (s *tenantState) addCall(c *event.Call, maxDur time.Duration, prefixes uint16) *flight {
	f := &flight{Call: *c, put: *c, deadline: c.Started.Add(maxDur)}
	for n := 1; n <= 15 && n < len(c.E164); n++ {
		if prefixes&(1<<n) != 0 {
			f.prefixes |= 1 << n
		}
	}
	if a, err := netip.ParseAddr(c.SourceIP); err == nil {
		f.ip = a
	}
	s.calls[c.CallID] = f
	s.byAccount[c.Account] = append(s.byAccount[c.Account], f)
	for _, k := range flightKeys {
		if kv, ok := f.key(k); ok {
			countFlight(s.inflight, k, kv, +1)
			if f.International {
				countFlight(s.inflightIntl, k, kv, +1)
			}
		}
	}
	s.countPrefixes(f, +1)
	heap.Push(&s.expiry, f)
	return f
}

func (s *tenantState) removeCall(f *flight) {
	delete(s.calls, f.CallID)
	if m := s.byAccount[f.Account]; m != nil {
		if i := slices.Index(m, f); i >= 0 {
			m[i] = m[len(m)-1]
			m[len(m)-1] = nil
			m = m[:len(m)-1]
		}
		if len(m) == 0 {
			delete(s.byAccount, f.Account)
		} else {
			s.byAccount[f.Account] = m
		}
	}
	for _, k := range flightKeys {
		if kv, ok := f.key(k); ok {
			countFlight(s.inflight, k, kv, -1)
			if f.International {
				countFlight(s.inflightIntl, k, kv, -1)
			}
		}
	}
	s.countPrefixes(f, -1)
	if f.index >= 0 && f.index < len(s.expiry) && s.expiry[f.index] == f {
		heap.Remove(&s.expiry, f.index)
	}
}

func (s *tenantState) countPrefixes(f *flight, d int) {
	for n := 1; f.prefixes != 0 && n <= 15; n++ {
		if f.prefixes&(1<<n) == 0 {
			continue
		}
		kv := key{s: f.E164[:1+n]} // prefixes of different lengths never collide
		countFlight(s.inflight, policy.KeyPrefix, kv, d)
		if f.International {
			countFlight(s.inflightIntl, policy.KeyPrefix, kv, d)
		}
	}
}

// countFlight adds d to the count of subject kv in idx.
func countFlight(idx map[policy.KeyKind]map[key]int, k policy.KeyKind, kv key, d int) {
	m := idx[k]
	if m == nil {
		m = map[key]int{}
		idx[k] = m
	}
	if n := m[kv] + d; n > 0 {
		m[kv] = n
	} else {
		delete(m, kv)
	}
}

// concurrent counts calls in flight for a subject: international ones only
// when the limit applies to international calls.
//
// Fix: it used to count every call in flight whatever the limit's scope, so
// an "applies_to: international" cap (the example policy has one) denied
// international calls to an account that merely had domestic calls up.
func (s *tenantState) concurrent(l *policy.Limit, k key) int {
	if l.AppliesTo == policy.InternationalCalls {
		return s.inflightIntl[l.Key][k]
	}
	return s.inflight[l.Key][k]
}

// endCall finishes a call at t, billing duration (answered time), and
// returns the changes to persist.
func (s *tenantState) endCall(f *flight, t *policy.Tenant, at time.Time, billed time.Duration, changes []event.Change) []event.Change {
	s.removeCall(f)
	// Removed, the flight is never changed again: the sink can have its
	// call as it is.
	changes = append(changes, event.Change{Op: event.OpDeleteCall, Call: &f.Call})
	if billed < 0 {
		billed = 0
	}
	if rc := s.recent[f.Account]; rc != nil {
		rc.r.End(f.CallID, at, !f.Answered.IsZero(), billed)
		if at.After(rc.last) {
			rc.last = at
		}
	}
	s.learn(f, t, at, billed)
	if s.history {
		changes = append(changes, event.Change{Op: event.OpPutHistory, History: f.record(at, billed)})
	}
	if t != nil {
		// Fix: this walked t.Limits, every limit of every group, so a
		// group's short_calls limit keyed by tenant, source_ip, country or
		// prefix counted other groups' calls too. Like the other metrics,
		// a limit counts the calls of the accounts it applies to.
		for _, l := range t.GroupFor(f.Account).Limits {
			if l.Metric != policy.MetricShortCalls || billed >= l.ShortCall {
				continue
			}
			if l.AppliesTo == policy.InternationalCalls && !f.International {
				continue
			}
			if k, ok := f.limitKey(l); ok {
				s.limit(l).log.Add(k, at)
			}
		}
	}
	if f.International && billed > 0 && t != nil {
		q := s.usage(f.Account, localDay(at, t))
		q.Seconds += billed.Seconds()
		q.Money += billed.Seconds() / 60 * f.RatePerMinute
		qc := *q
		changes = append(changes, event.Change{Op: event.OpPutQuota, Quota: &qc})
	}
	return changes
}

func (f *flight) limitKey(l *policy.Limit) (key, bool) {
	if l.Key == policy.KeyPrefix {
		if len(f.E164) <= l.PrefixLen {
			return key{}, false
		}
		return key{s: f.E164[:1+l.PrefixLen]}, true
	}
	return f.key(l.Key)
}

// usage returns the account's usage record for day, starting a new one when
// the tenant's local day has turned.
func (s *tenantState) usage(account, day string) *event.QuotaUsage {
	q := s.quota[account]
	if q == nil || q.Day < day {
		q = &event.QuotaUsage{Tenant: s.id, Account: account, Day: day}
		s.quota[account] = q
	}
	return q
}

// used returns the account's international seconds and money on day,
// including calls still in progress at t, estimated by time since answer.
func (s *tenantState) used(account, day string, t time.Time) (secs, money float64) {
	if q := s.quota[account]; q != nil && q.Day == day {
		secs, money = q.Seconds, q.Money
	}
	for _, f := range s.byAccount[account] {
		if !f.International || f.Answered.IsZero() || !t.After(f.Answered) {
			continue
		}
		el := t.Sub(f.Answered).Seconds()
		secs += el
		money += el / 60 * f.RatePerMinute
	}
	return secs, money
}

// expire ends calls whose deadline passed by now, billing them as having
// lasted until the deadline.
func (s *tenantState) expire(t *policy.Tenant, now time.Time, changes []event.Change) []event.Change {
	for len(s.expiry) > 0 && !s.expiry[0].deadline.After(now) {
		f := s.expiry[0]
		var billed time.Duration
		if !f.Answered.IsZero() {
			billed = f.deadline.Sub(f.Answered)
		}
		f.expired = true
		changes = s.endCall(f, t, f.deadline, billed, changes)
	}
	return changes
}

func (s *tenantState) putBan(b *event.IPBan) {
	if p, err := netip.ParsePrefix(b.Subject); err == nil {
		if p.IsSingleIP() {
			s.bans[p.Addr()] = b
		} else {
			s.prefixBans[p.Masked()] = b
		}
		return
	}
	if a, err := netip.ParseAddr(b.Subject); err == nil {
		s.bans[a.Unmap()] = b
	}
}

// banned returns the ban in force on ip at t, if any. Expired bans found on
// the way are removed and reported in changes.
func (s *tenantState) banned(ip netip.Addr, t time.Time, changes *[]event.Change) *event.IPBan {
	if !ip.IsValid() {
		return nil
	}
	if b := s.bans[ip]; b != nil {
		if t.Before(b.Until) {
			return b
		}
		delete(s.bans, ip)
		*changes = append(*changes, event.Change{Op: event.OpDeleteBan, Ban: b})
	}
	for p, b := range s.prefixBans {
		if p.Contains(ip) && t.Before(b.Until) {
			return b
		}
	}
	return nil
}

// sweep forgets idle counters and expired bans, and drops counters of
// limits no longer in the policy.
func (s *tenantState) sweep(now time.Time, t *policy.Tenant, changes []event.Change) []event.Change {
	live := map[string]bool{}
	if t != nil {
		for _, l := range t.Limits {
			live[l.ID] = true
		}
	}
	clear(s.slots) // refilled from s.limits as limits are used
	for id, ls := range s.limits {
		if !live[id] {
			delete(s.limits, id)
			continue
		}
		ls.sweep(now)
	}
	horizon := recentHorizon(t)
	for account, rc := range s.recent {
		// An account with a call up keeps its recent calls: the call is
		// still counted as simultaneous.
		if now.Sub(rc.last) > horizon && len(s.byAccount[account]) == 0 && now.After(rc.keep) {
			delete(s.recent, account)
			continue
		}
		// Keep only the calls the windows read: without this a busy
		// account would hold its last recentCapacity calls for as long
		// as it keeps calling, however old.
		rc.r.Trim(now.Add(-horizon))
	}
	maxDur := policy.DefaultMaxCallDuration
	if t != nil {
		maxDur = t.MaxCallDuration
	}
	s.sweepInbound(now, maxDur)
	if t != nil {
		// A usage record of a day gone by counts for nothing (used and
		// usage look at today's only); kept, one would stay per account
		// that ever called abroad.
		day := localDay(now, t)
		for a, q := range s.quota {
			if q.Day < day {
				delete(s.quota, a)
			}
		}
	}
	if now.Sub(s.behaviour.forgotten) >= time.Hour {
		s.behaviour.forgotten = now
		s.behaviour.forget(now)
	}
	if s.escAccount != nil {
		s.escAccount.Sweep(now)
		s.escIP.Sweep(now)
	}
	for ip, b := range s.bans {
		if !now.Before(b.Until) {
			delete(s.bans, ip)
			changes = append(changes, event.Change{Op: event.OpDeleteBan, Ban: b})
		}
	}
	for p, b := range s.prefixBans {
		if !now.Before(b.Until) {
			delete(s.prefixBans, p)
			changes = append(changes, event.Change{Op: event.OpDeleteBan, Ban: b})
		}
	}
	return changes
}

// limitState holds one limit's counters.
type limitState struct {
	sig      string
	lim      *policy.Limit // the compiled limit sig was taken from
	log      *bucket.Log[key]
	distinct *bucket.Distinct[key, string]
	repeat   *bucket.Log[repeatKey]
	last     map[key]lastDialled
}

type repeatKey struct {
	k key
	n string
}

type lastDialled struct {
	n  uint64
	at time.Time
}

// limit returns the counters for l, new ones if l's meaning changed.
func (s *tenantState) limit(l *policy.Limit) *limitState {
	if l.Slot >= 0 && l.Slot < len(s.slots) {
		if ls := s.slots[l.Slot]; ls != nil && ls.lim == l {
			return ls
		}
	}
	ls := s.slowLimit(l)
	if l.Slot >= 0 && l.Slot < 4096 {
		if l.Slot >= len(s.slots) {
			s.slots = append(s.slots, make([]*limitState, l.Slot+1-len(s.slots))...)
		}
		s.slots[l.Slot] = ls
	}
	return ls
}

// slowLimit is limit by id, checking the limit's meaning.
func (s *tenantState) slowLimit(l *policy.Limit) *limitState {
	ls := s.limits[l.ID]
	// A compiled limit never changes, so the same *Limit needs no
	// signature check; building the signature string on every attempt
	// for every limit was the second hot spot of Decide.
	if ls != nil && ls.lim == l {
		return ls
	}
	sig := l.Signature()
	if ls != nil && ls.sig == sig {
		ls.lim = l // a reload kept the limit's meaning: keep its counters
		return ls
	}
	ls = &limitState{sig: sig, lim: l}
	switch l.Metric {
	case policy.MetricCalls, policy.MetricSequential, policy.MetricShortCalls:
		ls.log = bucket.NewLog[key](l.Window, l.Capacity())
	case policy.MetricDistinct:
		ls.distinct = bucket.NewDistinct[key, string](l.Window, l.Capacity())
	case policy.MetricRepeatNumber:
		ls.repeat = bucket.NewLog[repeatKey](l.Window, l.Capacity())
	}
	if l.Metric == policy.MetricSequential {
		ls.last = map[key]lastDialled{}
	}
	s.limits[l.ID] = ls
	return ls
}

func (ls *limitState) sweep(now time.Time) {
	if ls.log != nil {
		ls.log.Sweep(now)
	}
	if ls.distinct != nil {
		ls.distinct.Sweep(now)
	}
	if ls.repeat != nil {
		ls.repeat.Sweep(now)
	}
	for k, v := range ls.last {
		if now.Sub(v.at) > ls.log.Window() {
			delete(ls.last, k)
		}
	}
}

// expiryHeap orders calls in flight by deadline.
type expiryHeap []*flight

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *expiryHeap) Push(x any) {
	f := x.(*flight)
	f.index = len(*h)
	*h = append(*h, f)
}
func (h *expiryHeap) Pop() any {
	old := *h
	f := old[len(old)-1]
	old[len(old)-1] = nil
	f.index = -1
	*h = old[:len(old)-1]
	return f
}
