// Package decisionapi is the HTTP API a softswitch calls on every call. It
// turns requests into event.Events, asks the engine, and answers with the
// engine's event.Decision; it holds no fraud logic of its own. It also serves
// the tenant's decisions log, policy reload, account unsuspend, and the
// health, readiness and metrics endpoints.
//
// Routes (every response body is JSON except /metrics):
//
//	POST /v1/calls/check                 call attempt → 200 with the whole event.Decision
//	POST /v1/calls/{call_id}/answered    body optional {"time"} → 204
//	POST /v1/calls/{call_id}/ended       body optional {"duration_s","time"} → 204
//	GET  /v1/decisions?account=&verdict=&rule=&call_id=&since=&until=&limit=&cursor=
//	                                     → 200 {"decisions":[…],"next_cursor":""}
//	POST /v1/policy/reload               → 200 {"status":"reloaded"} or 422 {"error":"file:line: …"}
//	POST /v1/accounts/{id}/unsuspend     → 204, or 404 when not suspended
//	GET  /healthz                        → 200 {"status":"ok"} while the process serves
//	GET  /readyz                         → 200 {"status":"ready"} or 503
//	GET  /metrics                        → Prometheus exposition of the given registry
//
// Everything under /v1 needs "Authorization: Bearer KEY". The key's tenant
// scopes the request: the engine and the decisions log are always asked with
// that tenant, so another tenant's calls, accounts and decisions are simply
// not found (404), never forbidden, and no request names a tenant itself.
//
// POST /v1/calls/check answers 200 for every verdict, deny and ban included:
// the verdict is in the body, and the decision's http_code and sip_code are
// advice for the front-end that applies it. A non-200 status always means the
// request itself failed; a softswitch should then apply its own fail-open or
// fail-closed setting.
//
// Errors are {"error":"…","field":"…"}, with field naming the JSON field,
// path value or query parameter to blame when there is one.
package decisionapi

import (
	"context"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/store"
)

// Engine is the part of the decision engine the API drives.
type Engine interface {
	// Decide answers a call attempt. It never fails: an engine in trouble
	// answers with a decision of its own choosing.
	Decide(ctx context.Context, ev event.Event) event.Decision
	// Observe takes the rest of a call's lifecycle. It returns
	// engine.ErrUnknownCall for a call it does not know in ev.Tenant and
	// engine.ErrBadEvent for an event missing what it needs.
	Observe(ctx context.Context, ev event.Event) error
	// Unsuspend lifts an account's suspension, recording actor as the one
	// who lifted it. It returns engine.ErrNotSuspended when there is none.
	Unsuspend(ctx context.Context, tenant, account, actor string) error
}

// DecisionLog reads a tenant's past decisions, newest first, a page at a
// time; the returned string is the cursor of the next page, "" at the end.
type DecisionLog interface {
	Decisions(ctx context.Context, tenant string, q store.DecisionQuery) ([]event.Decision, string, error)
}

// PolicyReloader reloads the policy from its files. On error the old policy
// stays in force, and the error text names the file and line to blame.
type PolicyReloader interface {
	Reload(ctx context.Context) error
}

// ReadyChecker reports whether the process is ready to take traffic; nil
// means ready.
type ReadyChecker func(ctx context.Context) error
