// Package replay runs call history through a policy in event time — a fresh
// in-process engine whose clock is moved to each event's time — and reports
// what the policy would have done: the calls it would have blocked (and,
// for rules in monitor, would-block hits), by rule and account, when each
// account was first blocked, and the minutes and money saved or let
// through. It is the calibration report a fraud team reads before it
// switches a policy to enforce.
package replay

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"time"

	"github.com/telguard/telguard/internal/audit"
	"github.com/telguard/telguard/internal/clock"
	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

// Source yields call records; io.EOF ends it. *cdr.Reader is one.
type Source interface {
	Next() (event.CallRecord, error)
}

// Options configure a replay.
type Options struct {
	// Tenant is the policy tenant whose rules judge the calls; records of
	// another tenant are refused.
	Tenant string
	// Window is how far out of start order records may come: CDR files
	// are written as calls end, so a call shows up after calls that started
	// later, by up to its own length. 0 means DefaultWindow. A record
	// further out of order is counted as late and not replayed.
	Window time.Duration
	// MaxListed bounds the calls kept for the list of blocked calls; 0
	// means DefaultMaxListed.
	MaxListed int
	// Top is how many accounts and destinations the top lists hold; 0
	// means 10.
	Top int
	// Model, when set, is the anomaly model (from `telguard anomaly
	// train`) the engine scores calls with, as a daemon would.
	Model *anomaly.Forest
	// MaxPending bounds the calls held for reordering; 0 means
	// DefaultMaxPending. When it is reached the earliest is run, which
	// narrows the window: records then further out of order are late.
	MaxPending int
	// MaxAccounts bounds the accounts tracked for the first-block and
	// top-account lists; 0 means DefaultMaxAccounts. When it is reached
	// the accounts never blocked are forgotten (counted in
	// AccountsForgotten): a later first block of one of them counts only
	// the calls let through since.
	MaxAccounts int
}

// Defaults of Options.
const (
	DefaultWindow      = 4 * time.Hour
	DefaultMaxListed   = 10000
	DefaultMaxPending  = 200000
	DefaultMaxAccounts = 100000
)

// seenPerGeneration is how many call ids one generation of the duplicate
// set holds; two are kept, so the last 2^19 to 2^20 ids are remembered in
// a few tens of MB at most, whatever the file's size.
const seenPerGeneration = 1 << 19

// ErrTenant is returned for a tenant the policy does not have, or a record
// of another tenant.
var ErrTenant = errors.New("tenant not in policy")

// Report is the outcome of a replay. Money is in the tenant's currency,
// priced by the policy's rate deck per second of answered time; inbound
// calls cost nothing.
type Report struct {
	Tenant   string    `json:"tenant"`
	Currency string    `json:"currency"`
	Timezone string    `json:"timezone"`
	From     time.Time `json:"from"` // earliest call start
	To       time.Time `json:"to"`   // latest call start

	Calls      Totals `json:"calls"`      // every call replayed
	Blocked    Totals `json:"blocked"`    // blocked by an enforced rule: would have been saved
	Would      Totals `json:"would"`      // let through, but a rule in monitor would have blocked it
	Allowed    Totals `json:"allowed"`    // let through: what the policy would have cost
	Challenged int    `json:"challenged"` // let through with a challenge verdict

	BlockedByRule []RuleCount `json:"blocked_by_rule"`
	WouldByRule   []RuleCount `json:"would_by_rule"`
	// FirstBlocks lists, per account with a block, its first blocked call
	// and what got through from the account before it.
	FirstBlocks     []FirstBlock `json:"first_blocks"`
	TopAccounts     []Top        `json:"top_accounts"`
	TopDestinations []Top        `json:"top_destinations"` // by destination country
	// Listed are the blocked and would-block calls, numbers masked, in
	// event order; at most Options.MaxListed, Truncated when more.
	Listed    []Listed `json:"listed"`
	Truncated bool     `json:"truncated,omitempty"`

	// Late counts records further out of start order than the window,
	// and Duplicates records whose call id came already (a file
	// concatenated twice): neither is replayed. ObserveErrors counts
	// answers and ends the engine refused (a call it had already expired).
	Late          int `json:"late"`
	Duplicates    int `json:"duplicates"`
	ObserveErrors int `json:"observe_errors"`
	// AccountsForgotten counts accounts never blocked whose totals were
	// dropped at Options.MaxAccounts; AccountsUntracked counts blocked
	// calls of accounts past it, in the totals but in no account's line.
	AccountsForgotten int `json:"accounts_forgotten,omitempty"`
	AccountsUntracked int `json:"accounts_untracked,omitempty"`
}

// Totals counts calls and what they cost.
type Totals struct {
	Calls    int     `json:"calls"`
	Answered int     `json:"answered"`
	Minutes  float64 `json:"minutes"`
	Money    float64 `json:"money"`
}

func (t *Totals) add(answered bool, minutes, money float64) {
	t.Calls++
	if answered {
		t.Answered++
	}
	t.Minutes += minutes
	t.Money += money
}

// RuleCount is how many calls a rule blocked (or would have).
type RuleCount struct {
	Rule    string  `json:"rule"`
	Calls   int     `json:"calls"`
	Minutes float64 `json:"minutes"`
	Money   float64 `json:"money"`
}

// FirstBlock is an account's first blocked call.
type FirstBlock struct {
	Account string    `json:"account"` // masked when it is a phone number
	Time    time.Time `json:"time"`
	Rule    string    `json:"rule"`
	To      string    `json:"to"` // masked
	// Before counts the account's calls let through before that block —
	// fraud that got through, when the block was right — and After those
	// let through after it.
	Before Totals `json:"before"`
	After  Totals `json:"after"`
}

// Top is one line of a top list: an account or a destination country.
type Top struct {
	Key     string  `json:"key"`
	Blocked int     `json:"blocked"`
	Minutes float64 `json:"minutes"`
	Money   float64 `json:"money"`
}

// Listed is one blocked or would-block call.
type Listed struct {
	Time    time.Time     `json:"time"`
	Account string        `json:"account"` // masked when it is a phone number
	CallID  string        `json:"call_id"`
	To      string        `json:"to"` // masked with audit.MaskNumber
	Country string        `json:"country,omitempty"`
	Type    string        `json:"type,omitempty"`
	Mode    event.Mode    `json:"mode"` // enforce: blocked; monitor: would have been
	Verdict event.Verdict `json:"verdict"`
	Rule    string        `json:"rule"`
	Reason  string        `json:"reason"`
	Billsec time.Duration `json:"billsec"`
	Money   float64       `json:"money"`
}

// item is a pending event: an attempt to decide, or the answer or end of
// an allowed call to observe.
type item struct {
	at      time.Time
	attempt bool
	seq     int64
	ev      event.Event
	rec     event.CallRecord // for an attempt
}

type queue []*item

func (q queue) Len() int { return len(q) }

// Less orders by time; at one instant answers and ends go before attempts
// (a call that ends as another starts frees its slot first), then in the
// order they were made.
func (q queue) Less(i, j int) bool {
	if c := q[i].at.Compare(q[j].at); c != 0 {
		return c < 0
	}
	if q[i].attempt != q[j].attempt {
		return !q[i].attempt
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*item)) }
func (q *queue) Pop() any {
	old := *q
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return x
}

type accountState struct {
	allowed Totals // let through so far
	first   *FirstBlock
	blocked Top
}

type run struct {
	o    Options
	pol  *policy.Policy
	ten  *policy.Tenant
	eng  *engine.Engine
	clk  *clock.Manual
	rep  *Report
	q    queue
	seq  int64
	last time.Time // event time of the latest event run
	seen *idSet
	// accounts holds per-account state, at most o.MaxAccounts entries.
	accounts map[string]*accountState
	dests    map[string]*Top
	blocked  map[string]*RuleCount
	would    map[string]*RuleCount
}

// Run replays src through pol for o.Tenant and returns the report. It stops
// at src's first error other than io.EOF, or when ctx is done.
func Run(ctx context.Context, pol *policy.Policy, src Source, o Options) (*Report, error) {
	ten := pol.Tenants[o.Tenant]
	if ten == nil {
		return nil, fmt.Errorf("replay: tenant %q: %w", o.Tenant, ErrTenant)
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MaxListed <= 0 {
		o.MaxListed = DefaultMaxListed
	}
	if o.Top <= 0 {
		o.Top = 10
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxAccounts <= 0 {
		o.MaxAccounts = DefaultMaxAccounts
	}
	clk := clock.NewManual(time.Time{})
	eng := engine.New(pol, engine.Options{Clock: clk})
	if o.Model != nil {
		if err := eng.SetModel(o.Model); err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
	}
	r := &run{
		o: o, pol: pol, ten: ten, clk: clk,
		eng: eng,
		rep: &Report{Tenant: o.Tenant, Currency: ten.Currency, Timezone: ten.Location.String(),
			BlockedByRule: []RuleCount{}, WouldByRule: []RuleCount{}, FirstBlocks: []FirstBlock{},
			TopAccounts: []Top{}, TopDestinations: []Top{}, Listed: []Listed{}},
		seen:     newIDSet(seenPerGeneration),
		accounts: map[string]*accountState{}, dests: map[string]*Top{},
		blocked: map[string]*RuleCount{}, would: map[string]*RuleCount{},
	}
	var maxStart time.Time
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rec, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if rec.Tenant == "" {
			rec.Tenant = o.Tenant
		}
		if rec.Tenant != o.Tenant {
			return nil, fmt.Errorf("replay: call %q is of tenant %q, not %q: %w", rec.CallID, rec.Tenant, o.Tenant, ErrTenant)
		}
		// A duplicate first: a file concatenated with itself repeats
		// calls long before the last one run, and they are duplicates,
		// not late records.
		if !r.seen.add(rec.CallID) {
			r.rep.Duplicates++
			continue
		}
		if !r.last.IsZero() && rec.Start.Before(r.last) {
			r.rep.Late++
			continue
		}
		for r.q.Len() >= o.MaxPending {
			r.runOne(ctx) // full: the window narrows
		}
		r.push(&item{at: rec.Start, attempt: true, rec: rec})
		if rec.Start.After(maxStart) {
			maxStart = rec.Start
		}
		r.drain(ctx, maxStart.Add(-o.Window))
	}
	r.drain(ctx, time.Time{})
	r.finish()
	return r.rep, nil
}

func (r *run) push(it *item) {
	it.seq = r.seq
	r.seq++
	heap.Push(&r.q, it)
}

// drain runs the pending events up to until (all of them when zero).
func (r *run) drain(ctx context.Context, until time.Time) {
	for r.q.Len() > 0 && (until.IsZero() || !r.q[0].at.After(until)) {
		r.runOne(ctx)
	}
}

// runOne runs the earliest pending event.
func (r *run) runOne(ctx context.Context) {
	it := heap.Pop(&r.q).(*item)
	r.last = it.at
	r.clk.Set(it.at)
	if !it.attempt {
		if err := r.eng.Observe(ctx, it.ev); err != nil {
			r.rep.ObserveErrors++
		}
		return
	}
	evs := it.rec.Events("cdr")
	d := r.eng.Decide(ctx, evs[0])
	r.count(&it.rec, &d)
	if d.Verdict.Blocks() {
		return // a blocked call never rings
	}
	for _, ev := range evs[1:] {
		// Switches round to the second: an answer written a second
		// before the start still comes after it.
		if ev.Time.Before(it.at) {
			ev.Time = it.at
		}
		r.push(&item{at: ev.Time, ev: ev})
	}
}

// account returns the state of an account, or nil when o.MaxAccounts
// accounts are tracked and none of them can be forgotten.
func (r *run) account(name string) *accountState {
	if acc := r.accounts[name]; acc != nil {
		return acc
	}
	if len(r.accounts) >= r.o.MaxAccounts {
		// Forget every account never blocked, all at once, so that the
		// report does not depend on map order.
		for k, a := range r.accounts {
			if a.first == nil {
				delete(r.accounts, k)
				r.rep.AccountsForgotten++
			}
		}
		if len(r.accounts) >= r.o.MaxAccounts {
			return nil
		}
	}
	acc := &accountState{blocked: Top{Key: maskAccount(name)}}
	r.accounts[name] = acc
	return acc
}

// count adds one decided call to the report.
func (r *run) count(rec *event.CallRecord, d *event.Decision) {
	rep := r.rep
	// Report times in the tenant's zone, whatever the source wrote.
	rec.Start = rec.Start.In(r.ten.Location)
	if rep.From.IsZero() || rec.Start.Before(rep.From) {
		rep.From = rec.Start
	}
	if rec.Start.After(rep.To) {
		rep.To = rec.Start
	}
	minutes := rec.Billsec.Seconds() / 60
	money := minutes * d.Destination.RatePerMinute
	if rec.Direction.IsInbound() {
		money = 0 // the tenant does not pay for calls it receives
	}
	ans := rec.Answered()
	rep.Calls.add(ans, minutes, money)
	acc := r.account(rec.Account)
	if d.Verdict.Blocks() {
		rep.Blocked.add(ans, minutes, money)
		rule, reason := blockingRule(d)
		addRule(r.blocked, rule, minutes, money)
		if acc == nil {
			rep.AccountsUntracked++
		} else {
			acc.blocked.Blocked++
			acc.blocked.Minutes += minutes
			acc.blocked.Money += money
			if acc.first == nil {
				acc.first = &FirstBlock{Account: maskAccount(rec.Account), Time: rec.Start, Rule: rule,
					To: audit.MaskNumber(rec.To), Before: acc.allowed}
			}
		}
		country := d.Destination.Country
		if country == "" {
			country = "unknown"
		}
		dt := r.dests[country]
		if dt == nil {
			dt = &Top{Key: country}
			r.dests[country] = dt
		}
		dt.Blocked++
		dt.Minutes += minutes
		dt.Money += money
		r.list(rec, d, event.Enforce, d.Verdict, rule, reason, money)
		return
	}
	rep.Allowed.add(ans, minutes, money)
	if acc != nil {
		acc.allowed.add(ans, minutes, money)
		if acc.first != nil {
			acc.first.After.add(ans, minutes, money)
		}
	}
	if d.Verdict == event.Challenge {
		rep.Challenged++
	}
	if d.WouldVerdict != "" && d.WouldVerdict.Blocks() {
		rep.Would.add(ans, minutes, money)
		first := ""
		reason := ""
		for _, rs := range d.Reasons {
			if rs.Mode == event.Monitor && rs.Verdict.Blocks() {
				addRule(r.would, rs.Rule, minutes, money)
				if first == "" {
					first, reason = rs.Rule, rs.Reason
				}
			}
		}
		r.list(rec, d, event.Monitor, d.WouldVerdict, first, reason, money)
	}
}

func addRule(m map[string]*RuleCount, rule string, minutes, money float64) {
	rc := m[rule]
	if rc == nil {
		rc = &RuleCount{Rule: rule}
		m[rule] = rc
	}
	rc.Calls++
	rc.Minutes += minutes
	rc.Money += money
}

func (r *run) list(rec *event.CallRecord, d *event.Decision, mode event.Mode, v event.Verdict, rule, reason string, money float64) {
	if len(r.rep.Listed) >= r.o.MaxListed {
		r.rep.Truncated = true
		return
	}
	r.rep.Listed = append(r.rep.Listed, Listed{
		Time: rec.Start, Account: maskAccount(rec.Account), CallID: rec.CallID, To: audit.MaskNumber(rec.To),
		Country: d.Destination.Country, Type: d.Destination.Type, Mode: mode, Verdict: v,
		Rule: rule, Reason: reason, Billsec: rec.Billsec, Money: money,
	})
}

// maskAccount masks an account that is a phone number — FreeSWITCH falls
// back to the caller id number, --account-from src takes the caller —
// with audit.MaskNumber, so that a report can be shared. An account of 7
// or more digits and nothing else but "+-() " is a number; extensions and
// names are not personal data and stay readable.
func maskAccount(a string) string {
	digits := 0
	for i := 0; i < len(a); i++ {
		switch c := a[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '+' || c == '-' || c == '(' || c == ')' || c == ' ':
		default:
			return a
		}
	}
	if digits < 7 {
		return a
	}
	return audit.MaskNumber(a)
}

// blockingRule returns the enforced rule whose verdict the decision took,
// and its reason.
func blockingRule(d *event.Decision) (string, string) {
	for _, r := range d.Reasons {
		if r.Mode == event.Enforce && r.Verdict == d.Verdict {
			return r.Rule, r.Reason
		}
	}
	return "", ""
}

// finish sorts the report's lists so that the same input always gives the
// same report.
func (r *run) finish() {
	rep := r.rep
	rep.BlockedByRule = sortRules(r.blocked)
	rep.WouldByRule = sortRules(r.would)
	for _, a := range r.accounts {
		if a.first != nil {
			rep.FirstBlocks = append(rep.FirstBlocks, *a.first)
			rep.TopAccounts = append(rep.TopAccounts, a.blocked)
		}
	}
	slices.SortFunc(rep.FirstBlocks, func(a, b FirstBlock) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Account, b.Account))
	})
	for _, d := range r.dests {
		rep.TopDestinations = append(rep.TopDestinations, *d)
	}
	rep.TopAccounts = topN(rep.TopAccounts, r.o.Top)
	rep.TopDestinations = topN(rep.TopDestinations, r.o.Top)
}

func sortRules(m map[string]*RuleCount) []RuleCount {
	out := make([]RuleCount, 0, len(m))
	for _, rc := range m {
		out = append(out, *rc)
	}
	slices.SortFunc(out, func(a, b RuleCount) int {
		return cmp.Or(cmp.Compare(b.Calls, a.Calls), cmp.Compare(a.Rule, b.Rule))
	})
	return out
}

func topN(ts []Top, n int) []Top {
	slices.SortFunc(ts, func(a, b Top) int {
		return cmp.Or(cmp.Compare(b.Blocked, a.Blocked), cmp.Compare(b.Money, a.Money), cmp.Compare(a.Key, b.Key))
	})
	if len(ts) > n {
		ts = ts[:n]
	}
	return ts
}

// idSet remembers recent call ids as 64-bit digests in two generations:
// when the newer holds max ids it becomes the older and the older is
// dropped. Memory is bounded whatever the input; an id is remembered for
// at least the last max ids.
type idSet struct {
	seed     maphash.Seed
	cur, old map[uint64]struct{}
	max      int
}

func newIDSet(max int) *idSet {
	return &idSet{seed: maphash.MakeSeed(), cur: map[uint64]struct{}{}, max: max}
}

// add records id and reports whether it was new.
func (s *idSet) add(id string) bool {
	h := maphash.String(s.seed, id)
	if _, ok := s.cur[h]; ok {
		return false
	}
	if _, ok := s.old[h]; ok {
		return false
	}
	if len(s.cur) >= s.max {
		s.old, s.cur = s.cur, make(map[uint64]struct{}, s.max/4)
	}
	s.cur[h] = struct{}{}
	return true
}
