package engine

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/telguard/telguard/internal/clock"
	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

// Sink receives the engine's durable state changes, in order per tenant.
// The daemon hands them to the store's batching writer; Emit must not keep
// the slice.
type Sink interface {
	Emit(changes ...event.Change)
}

// Options configure an Engine. The zero value works: wall clock, no sink,
// no logging.
type Options struct {
	Clock  clock.Clock
	Sink   Sink
	Logger *slog.Logger
	// MaxBaselines bounds the account baselines learned per tenant; past
	// it the least recently active account's is dropped (and counted).
	// Default DefaultMaxBaselines.
	MaxBaselines int
	// History makes the engine emit every finished call (allowed outbound
	// calls, and inbound calls it was told of) as an OpPutHistory change,
	// so the daemon keeps a call history to retrain the anomaly model on.
	History bool
}

// Engine decides call attempts and tracks the call lifecycle. Safe for
// concurrent use: tenants are independent and each is serialised by its own
// lock, so one tenant's storm does not queue another's calls.
type Engine struct {
	pol     atomic.Pointer[policy.Policy]
	model   atomic.Pointer[anomaly.Forest]
	clock   clock.Clock
	sink    Sink
	log     *slog.Logger
	mu      sync.Mutex
	tenants map[string]*tenantState
	maxBase int // Options.MaxBaselines
	history bool
}

type discardSink struct{}

func (discardSink) Emit(...event.Change) {}

// New returns an engine running policy p.
func New(p *policy.Policy, o Options) *Engine {
	e := &Engine{clock: o.Clock, sink: o.Sink, log: o.Logger, tenants: map[string]*tenantState{}, maxBase: o.MaxBaselines, history: o.History}
	if e.maxBase <= 0 {
		e.maxBase = DefaultMaxBaselines
	}
	if e.clock == nil {
		e.clock = clock.Real{}
	}
	if e.sink == nil {
		e.sink = discardSink{}
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.pol.Store(p)
	return e
}

// Policy returns the policy in force.
func (e *Engine) Policy() *policy.Policy { return e.pol.Load() }

// SetPolicy replaces the policy. Decisions already running finish on the old
// one; counters, calls in flight, quotas, bans and suspensions carry over. A
// limit's counters restart only when what they count changes: its key,
// metric, window, prefix_len, max_step, short_call, or its largest threshold
// (which sizes its window).
func (e *Engine) SetPolicy(p *policy.Policy) { e.pol.Store(p) }

// state returns the tenant's state, creating it on first use.
func (e *Engine) state(tenant string) *tenantState {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.tenants[tenant]
	if s == nil {
		s = newTenantState(tenant)
		s.behaviour.max = e.maxBase
		s.history = e.history
		e.tenants[tenant] = s
	}
	return s
}

// Restore loads a tenant's durable state, as saved through the Sink, at
// start-up, before the first decision.
func (e *Engine) Restore(tenant string, st event.State) {
	s := e.state(tenant)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := e.pol.Load().Tenants[tenant]
	maxDur := policy.DefaultMaxCallDuration
	var prefixLens uint16
	if t != nil {
		maxDur, prefixLens = t.MaxCallDuration, t.ConcurrentPrefixLens
	}
	for i := range st.Calls {
		c := st.Calls[i]
		s.addCall(&c, maxDur, prefixLens)
	}
	for _, q := range st.Quotas {
		cur := s.quota[q.Account]
		if cur == nil || q.Day > cur.Day {
			q := q
			s.quota[q.Account] = &q
		}
	}
	for i := range st.Bans {
		b := st.Bans[i]
		s.putBan(&b)
	}
	for i := range st.Suspensions {
		sp := st.Suspensions[i]
		s.suspended[sp.Account] = &sp
	}
}

// Sweep expires calls that outlived the maximum call duration and forgets
// idle counters, as of now. The daemon calls it every few seconds; events
// also sweep their own tenant as event time passes.
func (e *Engine) Sweep(now time.Time) {
	e.mu.Lock()
	states := make([]*tenantState, 0, len(e.tenants))
	for _, s := range e.tenants {
		states = append(states, s)
	}
	e.mu.Unlock()
	p := e.pol.Load()
	for _, s := range states {
		s.mu.Lock()
		var changes []event.Change
		if t := p.Tenants[s.id]; t != nil {
			changes = s.expire(t, now, changes)
		}
		changes = s.sweep(now, p.Tenants[s.id], changes)
		s.mu.Unlock()
		if len(changes) > 0 {
			e.sink.Emit(changes...)
		}
	}
}

// Unsuspend lifts an account's suspension and clears its escalation count so
// the next blocked call does not suspend it again at once.
func (e *Engine) Unsuspend(_ context.Context, tenant, account, actor string) error {
	if e.pol.Load().Tenants[tenant] == nil {
		return ErrUnknownTenant
	}
	s := e.state(tenant)
	s.mu.Lock()
	sp := s.suspended[account]
	if sp == nil {
		s.mu.Unlock()
		return ErrNotSuspended
	}
	delete(s.suspended, account)
	// The escalation counters are made on the first blocked attempt; a
	// suspension restored at start-up can be lifted before there is one.
	if s.escAccount != nil {
		s.escAccount.Forget(account)
	}
	s.mu.Unlock()
	e.sink.Emit(event.Change{Op: event.OpDeleteSuspension, Suspension: sp})
	e.log.Info("account unsuspended", "tenant", tenant, "account", account, "by", actor, "rule", sp.Rule)
	return nil
}

// Stats is a point-in-time view for metrics.
type Stats struct {
	Tenant        string
	CallsInFlight int
	Bans          int
	Suspensions   int
	QuotaSeconds  float64 // international seconds used today, summed over accounts
	QuotaMoney    float64
}

// Stats returns per-tenant figures, as of now.
func (e *Engine) Stats(now time.Time) []Stats {
	e.mu.Lock()
	states := make([]*tenantState, 0, len(e.tenants))
	for _, s := range e.tenants {
		states = append(states, s)
	}
	e.mu.Unlock()
	p := e.pol.Load()
	out := make([]Stats, 0, len(states))
	for _, s := range states {
		t := p.Tenants[s.id]
		s.mu.Lock()
		st := Stats{Tenant: s.id, CallsInFlight: len(s.calls), Bans: len(s.bans) + len(s.prefixBans), Suspensions: len(s.suspended)}
		if t != nil {
			day := localDay(now, t)
			for _, q := range s.quota {
				if q.Day == day {
					st.QuotaSeconds += q.Seconds
					st.QuotaMoney += q.Money
				}
			}
		}
		s.mu.Unlock()
		out = append(out, st)
	}
	return out
}

func localDay(t time.Time, ten *policy.Tenant) string {
	return t.In(ten.Location).Format(time.DateOnly)
}
