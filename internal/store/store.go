// Package store owns telguard's durable state: the Store interface every
// backend implements (sqlite/ by default, others for scale-out), the checks
// every backend applies to incoming changes, the opaque decision cursors, and
// the batching Writer that keeps the decision path from ever waiting on disk.
// storetest/ holds the suite every backend must pass.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/telguard/telguard/internal/event"
)

// Store persists the engine's durable state and the decisions log. Every
// method takes the tenant; no query crosses tenants.
type Store interface {
	// Apply writes changes in one transaction, in order: put ops upsert by
	// key, delete ops remove by key (absent → no error). Decision changes are
	// appended to the decisions log and their Decision.ID is set (monotonic
	// int64) once the transaction has committed. All-or-nothing: on error
	// nothing of the batch is stored. A change that fails ValidateChange makes
	// Apply return an error wrapping ErrInvalidChange.
	Apply(ctx context.Context, changes []event.Change) error
	// Load returns a tenant's durable state: calls in flight, quota usage
	// (all days kept), bans not yet expired at now (Until after now), and
	// suspensions.
	Load(ctx context.Context, tenant string, now time.Time) (event.State, error)
	// Decisions lists a tenant's decisions newest first (by ID, the order
	// they were recorded), filtered, with an opaque cursor for the next page
	// ("" when there are no more).
	Decisions(ctx context.Context, tenant string, q DecisionQuery) ([]event.Decision, string, error)
	// Prune deletes decisions older than before and quota rows for days
	// before beforeDay, for all tenants, and returns the rows removed. A zero
	// before or an empty beforeDay leaves that table alone.
	Prune(ctx context.Context, before time.Time, beforeDay string) (int64, error)
	CallHistory
	Close() error
}

// CallHistory is a tenant's record of finished calls: what `telguard cdr
// import` loads and anomaly training reads. Calls are kept by (tenant, call
// id), so loading the same CDR file twice stores each call once.
type CallHistory interface {
	// PutHistory stores calls under tenant in one transaction and says
	// how many were new; a call whose id the tenant already has is left as
	// it is, and counted as Changed when the new record differs from it. A
	// record's Tenant must be empty or tenant (it is stored as tenant).
	// All-or-nothing: a record that fails ValidateRecord makes PutHistory
	// return an error wrapping ErrInvalidRecord and store nothing.
	PutHistory(ctx context.Context, tenant string, recs []event.CallRecord) (PutResult, error)
	// History calls fn with the tenant's calls that started in [from, to),
	// in start order (then call id); a zero from or to is unbounded. It
	// stops at fn's first error and returns it. fn may call the store.
	History(ctx context.Context, tenant string, from, to time.Time, fn func(event.CallRecord) error) error
	// DeleteHistory deletes a tenant's calls that started before before
	// (all of them when before is zero) and returns how many it deleted.
	// It is how an operator honours a deletion request or ends a tenant.
	DeleteHistory(ctx context.Context, tenant string, before time.Time) (int64, error)
	// PruneHistory deletes every tenant's calls that started before
	// before, and returns how many it deleted: call history holds phone
	// numbers in clear, so it is kept only as long as configured
	// (store.retain_history). A zero before deletes nothing.
	PruneHistory(ctx context.Context, before time.Time) (int64, error)
}

// PutResult is what PutHistory did with a batch. Calls neither New nor
// Changed were stored already, identical.
type PutResult struct {
	// New counts the calls stored.
	New int
	// Changed counts calls whose id the tenant already had but whose
	// fields differ from the stored call, which was kept: a re-exported
	// file with corrections, or two different calls given one id.
	Changed int
}

// ErrInvalidRecord is returned by PutHistory (and ValidateRecord) for a
// call record without a tenant or call id, of another tenant, or whose times
// are missing, out of order or beyond what Unix nanoseconds hold.
var ErrInvalidRecord = errors.New("invalid call record")

// ValidateRecord reports why a call record cannot be stored under tenant.
// The error wraps ErrInvalidRecord.
func ValidateRecord(tenant string, r *event.CallRecord) error {
	switch {
	case tenant == "":
		return fmt.Errorf("empty tenant: %w", ErrInvalidRecord)
	case r.Tenant != "" && r.Tenant != tenant:
		return fmt.Errorf("call %q is of tenant %q, not %q: %w", r.CallID, r.Tenant, tenant, ErrInvalidRecord)
	case r.CallID == "":
		return fmt.Errorf("call without call_id: %w", ErrInvalidRecord)
	case r.Start.IsZero() || r.End.IsZero():
		return fmt.Errorf("call %q without start or end: %w", r.CallID, ErrInvalidRecord)
	case r.End.Before(r.Start):
		return fmt.Errorf("call %q ends before it starts: %w", r.CallID, ErrInvalidRecord)
	case r.Billsec < 0:
		return fmt.Errorf("call %q has a negative billsec: %w", r.CallID, ErrInvalidRecord)
	case !nanosHold(r.Start) || !nanosHold(r.End) || !r.Answer.IsZero() && !nanosHold(r.Answer):
		// Stored clamped, such a call could never be read back by time.
		return fmt.Errorf("call %q has a time outside 1678..2262: %w", r.CallID, ErrInvalidRecord)
	}
	return nil
}

// Unix nanoseconds in an int64 reach from 1677-09-21 to 2262-04-11.
var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

// nanosHold reports whether t.UnixNano() is t.
func nanosHold(t time.Time) bool {
	return !t.Before(minNanoTime) && !t.After(maxNanoTime)
}

// DecisionQuery filters and pages Store.Decisions.
type DecisionQuery struct {
	Account, Verdict, Rule, CallID string    // exact-match filters; Rule matches any reason's rule id
	Since, Until                   time.Time // zero = unbounded; Since inclusive, Until exclusive
	Limit                          int       // 0 → DefaultLimit; capped at MaxLimit
	Cursor                         string    // from a previous page
}

// Page sizes of Store.Decisions.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// PageSize returns the number of decisions a page of q holds: Limit, or
// DefaultLimit when it is not positive, capped at MaxLimit.
func (q DecisionQuery) PageSize() int {
	switch {
	case q.Limit <= 0:
		return DefaultLimit
	case q.Limit > MaxLimit:
		return MaxLimit
	}
	return q.Limit
}

// ErrBadCursor is returned by Decisions for a cursor that does not parse or
// that was issued for another tenant.
var ErrBadCursor = errors.New("bad cursor")

// ErrInvalidChange is returned by Apply (and ValidateChange) for a change
// whose op is unknown, whose record does not match its op, or whose record
// lacks a key field. Retrying such a change can never succeed.
var ErrInvalidChange = errors.New("invalid change")

// cursorVersion is the first byte of every cursor, so the format can change
// without old cursors being misread.
const cursorVersion = 1

// EncodeCursor returns the opaque cursor that continues a tenant's listing
// after (below) decision id. The cursor carries a digest of the tenant, so a
// cursor issued to one tenant is refused for another.
func EncodeCursor(tenant string, id int64) string {
	var b [1 + 8 + 8]byte
	b[0] = cursorVersion
	sum := sha256.Sum256([]byte(tenant))
	copy(b[1:9], sum[:8])
	binary.BigEndian.PutUint64(b[9:], uint64(id))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// DecodeCursor returns the decision id a cursor continues after. It returns
// 0 for the empty cursor (start from the newest) and an error wrapping
// ErrBadCursor for a cursor that does not parse or belongs to another tenant.
func DecodeCursor(tenant, cursor string) (int64, error) {
	if cursor == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
	if err != nil || len(b) != 17 || b[0] != cursorVersion {
		return 0, ErrBadCursor
	}
	sum := sha256.Sum256([]byte(tenant))
	if string(b[1:9]) != string(sum[:8]) {
		return 0, fmt.Errorf("cursor of another tenant: %w", ErrBadCursor)
	}
	id := binary.BigEndian.Uint64(b[9:])
	if id == 0 || id > math.MaxInt64 {
		return 0, ErrBadCursor
	}
	return int64(id), nil
}

// ValidateChange reports why a change cannot be stored: an unknown op, a
// record missing for its op or set besides it, an empty tenant or key field,
// or a non-finite number. The error wraps ErrInvalidChange. Backends call it
// from Apply; the Writer calls it at Submit so that one bad change never
// fails a whole batch.
func ValidateChange(c event.Change) error {
	set := 0
	for _, p := range []bool{c.Call != nil, c.Quota != nil, c.Ban != nil, c.Suspension != nil, c.Decision != nil, c.History != nil} {
		if p {
			set++
		}
	}
	var (
		ok      bool
		missing string
	)
	switch c.Op {
	case event.OpPutCall, event.OpDeleteCall:
		if ok = c.Call != nil; ok {
			missing = firstEmpty("tenant", c.Call.Tenant, "call_id", c.Call.CallID)
			if c.Op == event.OpPutCall && !finite(c.Call.RatePerMinute) {
				missing = "finite rate_per_minute"
			}
		}
	case event.OpPutQuota:
		if ok = c.Quota != nil; ok {
			missing = firstEmpty("tenant", c.Quota.Tenant, "account", c.Quota.Account, "day", c.Quota.Day)
			if !finite(c.Quota.Seconds) || !finite(c.Quota.Money) {
				missing = "finite seconds and money"
			}
		}
	case event.OpPutBan, event.OpDeleteBan:
		if ok = c.Ban != nil; ok {
			missing = firstEmpty("tenant", c.Ban.Tenant, "subject", c.Ban.Subject)
		}
	case event.OpPutSuspension, event.OpDeleteSuspension:
		if ok = c.Suspension != nil; ok {
			missing = firstEmpty("tenant", c.Suspension.Tenant, "account", c.Suspension.Account)
		}
	case event.OpDecision:
		if ok = c.Decision != nil; ok {
			missing = firstEmpty("tenant", c.Decision.Tenant)
			if !finite(c.Decision.Destination.RatePerMinute) {
				missing = "finite destination rate_per_minute"
			}
		}
	case event.OpPutHistory:
		if ok = c.History != nil; ok {
			if err := ValidateRecord(c.History.Tenant, c.History); err != nil {
				missing = "a valid call: " + err.Error()
			}
		}
	default:
		return fmt.Errorf("op %q unknown: %w", c.Op, ErrInvalidChange)
	}
	switch {
	case !ok:
		return fmt.Errorf("op %q without its record: %w", c.Op, ErrInvalidChange)
	case set != 1:
		return fmt.Errorf("op %q with %d records set: %w", c.Op, set, ErrInvalidChange)
	case missing != "":
		return fmt.Errorf("op %q missing %s: %w", c.Op, missing, ErrInvalidChange)
	}
	return nil
}

// firstEmpty takes name, value pairs and returns the name of the first empty
// value, or "".
func firstEmpty(pairs ...string) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return pairs[i]
		}
	}
	return ""
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
