// Package storetest is the suite every store backend must pass: round trips
// of every record, upserts and deletes, tenant isolation of every method,
// all-or-nothing batches, decision filters and paging, ban expiry and
// pruning, and the call history's idempotent import and ordered reads. A
// backend's test calls Run with a function that opens an empty store.
package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/store"
)

// base is the suite's reference time. Times are whole microseconds so that
// backends storing microseconds (PostgreSQL) round-trip them exactly.
var base = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

// Run runs the suite. open must return a new, empty store for each call;
// Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Upsert", testUpsert},
		{"Delete", testDelete},
		{"OrderWithinBatch", testOrderWithinBatch},
		{"EmptyApply", testEmptyApply},
		{"TenantIsolation", testTenantIsolation},
		{"Atomicity", testAtomicity},
		{"CanceledContext", testCanceledContext},
		{"DecisionIDs", testDecisionIDs},
		{"DecisionFilters", testDecisionFilters},
		{"DecisionPaging", testDecisionPaging},
		{"DecisionPageSize", testDecisionPageSize},
		{"BadCursor", testBadCursor},
		{"ExpiredBans", testExpiredBans},
		{"Prune", testPrune},
		{"HistoryRoundTrip", testHistoryRoundTrip},
		{"HistoryIdempotent", testHistoryIdempotent},
		{"HistoryTenantIsolation", testHistoryTenantIsolation},
		{"HistoryRangeAndOrder", testHistoryRangeAndOrder},
		{"HistoryInvalid", testHistoryInvalid},
		{"HistoryDelete", testHistoryDelete},
		{"HistoryFromApply", testHistoryFromApply},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// Change builders.

func putCall(c event.Call) event.Change { return event.Change{Op: event.OpPutCall, Call: &c} }
func deleteCall(tenant, callID string) event.Change {
	return event.Change{Op: event.OpDeleteCall, Call: &event.Call{Tenant: tenant, CallID: callID}}
}
func putQuota(q event.QuotaUsage) event.Change { return event.Change{Op: event.OpPutQuota, Quota: &q} }
func putBan(b event.IPBan) event.Change        { return event.Change{Op: event.OpPutBan, Ban: &b} }
func deleteBan(tenant, subject string) event.Change {
	return event.Change{Op: event.OpDeleteBan, Ban: &event.IPBan{Tenant: tenant, Subject: subject}}
}
func putSuspension(s event.Suspension) event.Change {
	return event.Change{Op: event.OpPutSuspension, Suspension: &s}
}
func deleteSuspension(tenant, account string) event.Change {
	return event.Change{Op: event.OpDeleteSuspension, Suspension: &event.Suspension{Tenant: tenant, Account: account}}
}
func decisionChange(d *event.Decision) event.Change {
	return event.Change{Op: event.OpDecision, Decision: d}
}

// Sample records, every field set.

func sampleCall(tenant, callID string) event.Call {
	return event.Call{
		Tenant: tenant, Account: "acct-1", CallID: callID, SourceIP: "192.0.2.10",
		E164: "+4420794601234", Country: "GB", International: true, RatePerMinute: 0.125,
		Started: base, Answered: base.Add(3 * time.Second),
		From: "1001", To: "00442079460123", Flagged: true, NewNetwork: true,
	}
}

func sampleQuota(tenant, account, day string) event.QuotaUsage {
	return event.QuotaUsage{Tenant: tenant, Account: account, Day: day, Seconds: 612.5, Money: 3.75}
}

func sampleBan(tenant, subject string) event.IPBan {
	return event.IPBan{Tenant: tenant, Subject: subject, Until: base.Add(time.Hour), Rule: "sip-bruteforce",
		Reason: "40 failed REGISTERs in 60s", Created: base}
}

func sampleSuspension(tenant, account string) event.Suspension {
	return event.Suspension{Tenant: tenant, Account: account, Rule: "intl-spend", Reason: "daily spend 120 > 100", Created: base}
}

func sampleDecision(tenant string) *event.Decision {
	return &event.Decision{
		Time: base, Tenant: tenant, Account: "acct-1", CallID: "call-1",
		From: "+5511987654334", To: "+8821612345678", SourceIP: "198.51.100.7",
		Destination: event.Destination{E164: "+8821612345678", Country: "001", Type: "unknown",
			International: true, HighRisk: true, RatePerMinute: 4.5},
		Verdict: event.Deny, WouldVerdict: event.Ban,
		Reasons: []event.Reason{
			{Rule: "high-risk-dest", Reason: "satellite range", Mode: event.Enforce, Verdict: event.Deny, Level: "high"},
			{Rule: "velocity", Reason: "12 calls in 60s", Mode: event.Monitor, Verdict: event.Ban},
		},
		Risk: 92, SIPCode: 403, HTTPCode: 403, BanSeconds: 3600, Escalation: "suspend",
	}
}

// Helpers.

func apply(t *testing.T, s store.Store, changes ...event.Change) {
	t.Helper()
	if err := s.Apply(t.Context(), changes); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// load returns a tenant's state with each list sorted by key and times in
// UTC, so states compare with reflect.DeepEqual.
func load(t *testing.T, s store.Store, tenant string, now time.Time) event.State {
	t.Helper()
	st, err := s.Load(t.Context(), tenant, now)
	if err != nil {
		t.Fatalf("Load(%q): %v", tenant, err)
	}
	return normState(st)
}

func normState(st event.State) event.State {
	for i := range st.Calls {
		c := &st.Calls[i]
		c.Started, c.Answered = c.Started.UTC(), c.Answered.UTC()
	}
	for i := range st.Bans {
		b := &st.Bans[i]
		b.Until, b.Created = b.Until.UTC(), b.Created.UTC()
	}
	for i := range st.Suspensions {
		st.Suspensions[i].Created = st.Suspensions[i].Created.UTC()
	}
	slices.SortFunc(st.Calls, func(a, b event.Call) int { return cmp.Compare(a.CallID, b.CallID) })
	slices.SortFunc(st.Quotas, func(a, b event.QuotaUsage) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Day, b.Day))
	})
	slices.SortFunc(st.Bans, func(a, b event.IPBan) int { return cmp.Compare(a.Subject, b.Subject) })
	slices.SortFunc(st.Suspensions, func(a, b event.Suspension) int { return cmp.Compare(a.Account, b.Account) })
	// nil and empty mean the same here.
	if len(st.Calls) == 0 {
		st.Calls = nil
	}
	if len(st.Quotas) == 0 {
		st.Quotas = nil
	}
	if len(st.Bans) == 0 {
		st.Bans = nil
	}
	if len(st.Suspensions) == 0 {
		st.Suspensions = nil
	}
	return st
}

func wantState(t *testing.T, got, want event.State) {
	t.Helper()
	want = normState(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("state:\n got %+v\nwant %+v", got, want)
	}
}

func list(t *testing.T, s store.Store, tenant string, q store.DecisionQuery) ([]event.Decision, string) {
	t.Helper()
	ds, next, err := s.Decisions(t.Context(), tenant, q)
	if err != nil {
		t.Fatalf("Decisions(%q, %+v): %v", tenant, q, err)
	}
	for i := range ds {
		ds[i].Time = ds[i].Time.UTC()
	}
	return ds, next
}

// listAll pages through every decision matching q and returns their ids.
func listAll(t *testing.T, s store.Store, tenant string, q store.DecisionQuery) []int64 {
	t.Helper()
	var ids []int64
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("Decisions: cursor never ends")
		}
		ds, next := list(t, s, tenant, q)
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		if next == "" {
			return ids
		}
		if len(ds) == 0 {
			t.Fatal("Decisions: empty page with a next cursor")
		}
		q.Cursor = next
	}
}

func ids(ds []event.Decision) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// Tests.

func testRoundTrip(t *testing.T, s store.Store) {
	unanswered := sampleCall("t1", "call-2")
	unanswered.Answered = time.Time{}
	unanswered.International = false
	d := sampleDecision("t1")
	apply(t, s,
		putCall(sampleCall("t1", "call-1")),
		putCall(unanswered),
		putQuota(sampleQuota("t1", "acct-1", "2025-03-14")),
		putQuota(sampleQuota("t1", "acct-1", "2025-03-13")),
		putBan(sampleBan("t1", "192.0.2.10")),
		putBan(sampleBan("t1", "2001:db8::/48")),
		putSuspension(sampleSuspension("t1", "acct-1")),
		decisionChange(d),
	)
	wantState(t, load(t, s, "t1", base), event.State{
		Calls:       []event.Call{sampleCall("t1", "call-1"), unanswered},
		Quotas:      []event.QuotaUsage{sampleQuota("t1", "acct-1", "2025-03-13"), sampleQuota("t1", "acct-1", "2025-03-14")},
		Bans:        []event.IPBan{sampleBan("t1", "192.0.2.10"), sampleBan("t1", "2001:db8::/48")},
		Suspensions: []event.Suspension{sampleSuspension("t1", "acct-1")},
	})

	if d.ID <= 0 {
		t.Fatalf("Apply left Decision.ID = %d, want > 0", d.ID)
	}
	ds, next := list(t, s, "t1", store.DecisionQuery{})
	if len(ds) != 1 || next != "" {
		t.Fatalf("Decisions = %d decisions, cursor %q; want 1 and none", len(ds), next)
	}
	want := *sampleDecision("t1")
	want.ID = d.ID
	if !reflect.DeepEqual(ds[0], want) {
		t.Errorf("decision:\n got %+v\nwant %+v", ds[0], want)
	}
}

func testUpsert(t *testing.T, s store.Store) {
	apply(t, s,
		putCall(sampleCall("t1", "call-1")),
		putQuota(sampleQuota("t1", "acct-1", "2025-03-14")),
		putBan(sampleBan("t1", "192.0.2.10")),
		putSuspension(sampleSuspension("t1", "acct-1")),
	)
	call := sampleCall("t1", "call-1")
	call.Answered = base.Add(10 * time.Second)
	call.RatePerMinute = 0.5
	quota := sampleQuota("t1", "acct-1", "2025-03-14")
	quota.Seconds, quota.Money = 900, 6.5
	ban := sampleBan("t1", "192.0.2.10")
	ban.Until, ban.Rule, ban.Reason = base.Add(24*time.Hour), "scanner", "OPTIONS sweep"
	susp := sampleSuspension("t1", "acct-1")
	susp.Rule, susp.Reason = "irsf", "calls to premium range"
	apply(t, s, putCall(call), putQuota(quota), putBan(ban), putSuspension(susp))
	wantState(t, load(t, s, "t1", base), event.State{
		Calls: []event.Call{call}, Quotas: []event.QuotaUsage{quota},
		Bans: []event.IPBan{ban}, Suspensions: []event.Suspension{susp},
	})
}

func testDelete(t *testing.T, s store.Store) {
	apply(t, s,
		putCall(sampleCall("t1", "call-1")), putCall(sampleCall("t1", "call-2")),
		putBan(sampleBan("t1", "192.0.2.10")), putBan(sampleBan("t1", "192.0.2.11")),
		putSuspension(sampleSuspension("t1", "acct-1")), putSuspension(sampleSuspension("t1", "acct-2")),
	)
	apply(t, s, deleteCall("t1", "call-1"), deleteBan("t1", "192.0.2.10"), deleteSuspension("t1", "acct-1"))
	wantState(t, load(t, s, "t1", base), event.State{
		Calls:       []event.Call{sampleCall("t1", "call-2")},
		Bans:        []event.IPBan{sampleBan("t1", "192.0.2.11")},
		Suspensions: []event.Suspension{sampleSuspension("t1", "acct-2")},
	})
	// Deleting what is not there is not an error.
	apply(t, s, deleteCall("t1", "call-1"), deleteBan("t1", "203.0.113.1"), deleteSuspension("t1", "nobody"),
		deleteCall("t-none", "call-2"))
	if got := load(t, s, "t1", base); len(got.Calls) != 1 || len(got.Bans) != 1 || len(got.Suspensions) != 1 {
		t.Errorf("deleting absent keys changed the state: %+v", got)
	}
}

func testOrderWithinBatch(t *testing.T, s store.Store) {
	first, last := sampleCall("t1", "call-3"), sampleCall("t1", "call-3")
	last.Answered = base.Add(time.Minute)
	apply(t, s,
		putCall(sampleCall("t1", "call-1")), deleteCall("t1", "call-1"), // put then delete: gone
		deleteCall("t1", "call-2"), putCall(sampleCall("t1", "call-2")), // delete then put: there
		putCall(first), putCall(last), // last put wins
		putBan(sampleBan("t1", "192.0.2.10")), deleteBan("t1", "192.0.2.10"),
		deleteSuspension("t1", "acct-1"), putSuspension(sampleSuspension("t1", "acct-1")),
	)
	wantState(t, load(t, s, "t1", base), event.State{
		Calls:       []event.Call{sampleCall("t1", "call-2"), last},
		Suspensions: []event.Suspension{sampleSuspension("t1", "acct-1")},
	})
}

func testEmptyApply(t *testing.T, s store.Store) {
	if err := s.Apply(t.Context(), nil); err != nil {
		t.Errorf("Apply(nil) = %v", err)
	}
	wantState(t, load(t, s, "t1", base), event.State{})
	if ds, next := list(t, s, "t1", store.DecisionQuery{}); len(ds) != 0 || next != "" {
		t.Errorf("empty store lists %d decisions, cursor %q", len(ds), next)
	}
}

func testTenantIsolation(t *testing.T, s store.Store) {
	// Both tenants use the same keys with different values.
	callA, callB := sampleCall("A", "call-1"), sampleCall("B", "call-1")
	callB.Account, callB.E164 = "acct-b", "+33140000000"
	quotaA, quotaB := sampleQuota("A", "acct-1", "2025-03-14"), sampleQuota("B", "acct-1", "2025-03-14")
	quotaB.Money = 99
	banA, banB := sampleBan("A", "192.0.2.10"), sampleBan("B", "192.0.2.10")
	banB.Rule = "b-rule"
	suspA, suspB := sampleSuspension("A", "acct-1"), sampleSuspension("B", "acct-1")
	suspB.Reason = "b reason"
	apply(t, s, putCall(callA), putQuota(quotaA), putBan(banA), putSuspension(suspA))
	apply(t, s, putCall(callB), putQuota(quotaB), putBan(banB), putSuspension(suspB))

	var decA, decB []*event.Decision
	for i := range 6 {
		a, b := sampleDecision("A"), sampleDecision("B")
		a.Time, b.Time = base.Add(time.Duration(i)*time.Minute), base.Add(time.Duration(i)*time.Minute)
		b.Account, b.CallID = "acct-b", "call-b"
		decA, decB = append(decA, a), append(decB, b)
		apply(t, s, decisionChange(a), decisionChange(b))
	}

	wantA := event.State{Calls: []event.Call{callA}, Quotas: []event.QuotaUsage{quotaA},
		Bans: []event.IPBan{banA}, Suspensions: []event.Suspension{suspA}}
	wantB := event.State{Calls: []event.Call{callB}, Quotas: []event.QuotaUsage{quotaB},
		Bans: []event.IPBan{banB}, Suspensions: []event.Suspension{suspB}}
	t.Run("Load", func(t *testing.T) {
		wantState(t, load(t, s, "A", base), wantA)
		wantState(t, load(t, s, "B", base), wantB)
		wantState(t, load(t, s, "C", base), event.State{})
	})

	t.Run("Decisions", func(t *testing.T) {
		for _, tc := range []struct {
			tenant string
			want   []*event.Decision
		}{{"A", decA}, {"B", decB}, {"C", nil}} {
			var want []int64
			for _, d := range slices.Backward(tc.want) {
				want = append(want, d.ID)
			}
			if got := listAll(t, s, tc.tenant, store.DecisionQuery{Limit: 4}); !slices.Equal(got, want) {
				t.Errorf("tenant %s decisions = %v, want %v", tc.tenant, got, want)
			}
		}
		// Filters naming the other tenant's values find nothing.
		for _, q := range []store.DecisionQuery{{Account: "acct-b"}, {CallID: "call-b"}} {
			if ds, _ := list(t, s, "A", q); len(ds) != 0 {
				t.Errorf("tenant A with %+v lists %v", q, ids(ds))
			}
		}
		// A rule both tenants use lists only the asking tenant's decisions.
		got := listAll(t, s, "B", store.DecisionQuery{Rule: "velocity"})
		for _, id := range got {
			if !slices.ContainsFunc(decB, func(d *event.Decision) bool { return d.ID == id }) {
				t.Errorf("tenant B rule filter lists decision %d of another tenant", id)
			}
		}
		if len(got) != len(decB) {
			t.Errorf("tenant B rule filter lists %d decisions, want %d", len(got), len(decB))
		}
	})

	t.Run("Cursor", func(t *testing.T) {
		_, next := list(t, s, "A", store.DecisionQuery{Limit: 2})
		if next == "" {
			t.Fatal("no cursor after a partial page")
		}
		if _, _, err := s.Decisions(t.Context(), "B", store.DecisionQuery{Limit: 2, Cursor: next}); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("tenant B with tenant A's cursor: err = %v, want ErrBadCursor", err)
		}
		if _, _, err := s.Decisions(t.Context(), "A", store.DecisionQuery{Limit: 2, Cursor: next}); err != nil {
			t.Errorf("tenant A with its own cursor: %v", err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		apply(t, s, deleteCall("B", "call-1"), deleteBan("B", "192.0.2.10"), deleteSuspension("B", "acct-1"))
		wantState(t, load(t, s, "A", base), wantA)
		wantState(t, load(t, s, "B", base), event.State{Quotas: []event.QuotaUsage{quotaB}})
	})

	t.Run("Prune", func(t *testing.T) {
		// Prune is the one method meant for all tenants.
		n, err := s.Prune(t.Context(), base.Add(time.Hour), "2025-03-15")
		if err != nil {
			t.Fatalf("Prune: %v", err)
		}
		if want := int64(len(decA) + len(decB) + 2); n != want {
			t.Errorf("Prune removed %d rows, want %d", n, want)
		}
		if got := load(t, s, "A", base); len(got.Quotas) != 0 {
			t.Errorf("tenant A quota survived Prune: %+v", got.Quotas)
		}
		if ds, _ := list(t, s, "B", store.DecisionQuery{}); len(ds) != 0 {
			t.Errorf("tenant B decisions survived Prune: %v", ids(ds))
		}
	})
}

func testAtomicity(t *testing.T, s store.Store) {
	call := sampleCall("t1", "call-1")
	bad := []struct {
		name string
		c    event.Change
	}{
		{"nil call", event.Change{Op: event.OpPutCall}},
		{"nil decision", event.Change{Op: event.OpDecision}},
		{"nil ban on delete", event.Change{Op: event.OpDeleteBan}},
		{"unknown op", event.Change{Op: "put_everything", Call: &call}},
		{"empty op", event.Change{Call: &call}},
		{"record of another op", event.Change{Op: event.OpPutBan, Call: &call}},
		{"two records", event.Change{Op: event.OpPutCall, Call: &call, Ban: &event.IPBan{Tenant: "t1", Subject: "x"}}},
		{"no tenant", putCall(sampleCall("", "call-9"))},
		{"no key", putQuota(sampleQuota("t1", "acct-1", ""))},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			d := sampleDecision("t1")
			batch := []event.Change{
				putCall(sampleCall("t1", "call-1")),
				decisionChange(d),
				putBan(sampleBan("t1", "192.0.2.10")),
				tc.c,
				putSuspension(sampleSuspension("t1", "acct-1")),
			}
			err := s.Apply(t.Context(), batch)
			if !errors.Is(err, store.ErrInvalidChange) {
				t.Fatalf("Apply with %s: err = %v, want ErrInvalidChange", tc.name, err)
			}
			wantState(t, load(t, s, "t1", base), event.State{})
			if ds, _ := list(t, s, "t1", store.DecisionQuery{}); len(ds) != 0 {
				t.Errorf("failed batch stored decisions %v", ids(ds))
			}
			if d.ID != 0 {
				t.Errorf("failed batch set Decision.ID = %d", d.ID)
			}
		})
	}
	// The store still works after failed batches.
	apply(t, s, putCall(call))
	wantState(t, load(t, s, "t1", base), event.State{Calls: []event.Call{call}})
}

func testCanceledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	d := sampleDecision("t1")
	if err := s.Apply(ctx, []event.Change{putCall(sampleCall("t1", "call-1")), decisionChange(d)}); err == nil {
		t.Fatal("Apply with a canceled context succeeded")
	}
	wantState(t, load(t, s, "t1", base), event.State{})
	if ds, _ := list(t, s, "t1", store.DecisionQuery{}); len(ds) != 0 {
		t.Errorf("canceled batch stored decisions %v", ids(ds))
	}
}

func testDecisionIDs(t *testing.T, s store.Store) {
	var all []*event.Decision
	for batch := range 5 {
		var changes []event.Change
		for range batch + 1 {
			d := sampleDecision([]string{"A", "B"}[batch%2])
			all = append(all, d)
			changes = append(changes, decisionChange(d))
		}
		apply(t, s, changes...)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Fatalf("decision %d got id %d after id %d: ids must grow in submission order", i, all[i].ID, all[i-1].ID)
		}
	}
}

// decisionSet records a spread of decisions for the filter and paging tests
// and returns them oldest first.
func decisionSet(t *testing.T, s store.Store, tenant string, n int) []*event.Decision {
	t.Helper()
	accounts := []string{"acct-1", "acct-2", "acct-3"}
	verdicts := []event.Verdict{event.Allow, event.Deny, event.Ban, event.Throttle}
	rules := []string{"velocity", "high-risk-dest", "night-intl", "wangiri"}
	var (
		out     []*event.Decision
		changes []event.Change
	)
	for i := range n {
		d := &event.Decision{
			Time:    base.Add(time.Duration(i) * time.Minute),
			Tenant:  tenant,
			Account: accounts[i%len(accounts)],
			CallID:  fmt.Sprintf("call-%d", i%7),
			Verdict: verdicts[i%len(verdicts)],
			Risk:    i % 100,
		}
		// 0, 1 or 2 reasons; the second reason's rule must match too, and a
		// rule named twice must not list the decision twice.
		for j := range i % 3 {
			d.Reasons = append(d.Reasons, event.Reason{Rule: rules[(i+j)%len(rules)], Mode: event.Enforce, Verdict: d.Verdict})
		}
		if i%5 == 0 && len(d.Reasons) > 0 {
			d.Reasons = append(d.Reasons, d.Reasons[0])
		}
		out = append(out, d)
		changes = append(changes, decisionChange(d))
		if len(changes) == 50 {
			apply(t, s, changes...)
			changes = changes[:0]
		}
	}
	apply(t, s, changes...)
	return out
}

// expect returns the ids of ds matching q, newest first.
func expect(ds []*event.Decision, q store.DecisionQuery) []int64 {
	var out []int64
	for _, d := range slices.Backward(ds) {
		switch {
		case q.Account != "" && d.Account != q.Account,
			q.Verdict != "" && string(d.Verdict) != q.Verdict,
			q.CallID != "" && d.CallID != q.CallID,
			q.Rule != "" && !slices.Contains(d.Rules(), q.Rule),
			!q.Since.IsZero() && d.Time.Before(q.Since),
			!q.Until.IsZero() && !d.Time.Before(q.Until):
			continue
		}
		out = append(out, d.ID)
	}
	return out
}

func testDecisionFilters(t *testing.T, s store.Store) {
	ds := decisionSet(t, s, "t1", 120)
	decisionSet(t, s, "t2", 30) // noise in another tenant
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	queries := []store.DecisionQuery{
		{},
		{Account: "acct-2"},
		{Verdict: "ban"},
		{Rule: "velocity"},
		{Rule: "night-intl"},
		{CallID: "call-3"},
		{Since: at(100)}, // inclusive: decision 100 is listed
		{Until: at(10)},  // exclusive: decision 10 is not
		{Since: at(20), Until: at(40)},
		{Account: "acct-1", Verdict: "deny"},
		{Account: "acct-3", Rule: "wangiri", Since: at(30)},
		{Rule: "velocity", Verdict: "allow", CallID: "call-4"},
		{Account: "nobody"},
		{Rule: "no-such-rule"},
		{Since: at(50), Until: at(50)},
	}
	for _, q := range queries {
		t.Run(fmt.Sprintf("%+v", q), func(t *testing.T) {
			want := expect(ds, q)
			q.Limit = 1000
			got, next := list(t, s, "t1", q)
			if !slices.Equal(ids(got), want) {
				t.Errorf("ids = %v\nwant %v", ids(got), want)
			}
			if next != "" {
				t.Errorf("cursor %q after the last page", next)
			}
		})
	}
}

func testDecisionPaging(t *testing.T, s store.Store) {
	ds := decisionSet(t, s, "t1", 237)
	for _, q := range []store.DecisionQuery{
		{Limit: 10},
		{Limit: 1},
		{Limit: 7, Rule: "velocity"},
		{Limit: 9, Account: "acct-2", Verdict: "deny"},
		{Limit: 13, Since: base.Add(30 * time.Minute), Until: base.Add(200 * time.Minute)},
		{Limit: 237},
	} {
		t.Run(fmt.Sprintf("%+v", q), func(t *testing.T) {
			want := expect(ds, q)
			if got := listAll(t, s, "t1", q); !slices.Equal(got, want) {
				t.Errorf("pages = %v\nwant %v", got, want)
			}
		})
	}

	// Decisions recorded between pages appear on no later page: the cursor
	// pages through what existed when the listing began.
	t.Run("NewDecisionsBetweenPages", func(t *testing.T) {
		want := expect(ds, store.DecisionQuery{})
		var got []int64
		q := store.DecisionQuery{Limit: 25}
		for {
			page, next := list(t, s, "t1", q)
			got = append(got, ids(page)...)
			if next == "" {
				break
			}
			apply(t, s, decisionChange(sampleDecision("t1")))
			q.Cursor = next
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages = %v\nwant %v", got, want)
		}
	})
}

func testDecisionPageSize(t *testing.T, s store.Store) {
	decisionSet(t, s, "t1", store.MaxLimit+5)
	for _, tc := range []struct{ limit, want int }{
		{0, store.DefaultLimit},
		{-3, store.DefaultLimit},
		{1, 1},
		{store.MaxLimit, store.MaxLimit},
		{store.MaxLimit * 10, store.MaxLimit},
	} {
		ds, next := list(t, s, "t1", store.DecisionQuery{Limit: tc.limit})
		if len(ds) != tc.want || next == "" {
			t.Errorf("Limit %d: %d decisions, cursor %q; want %d and a cursor", tc.limit, len(ds), next, tc.want)
		}
	}
	// A page that ends exactly at the last decision has no cursor.
	if ds, next := list(t, s, "t1", store.DecisionQuery{Limit: 5, Since: base.Add(store.MaxLimit * time.Minute)}); len(ds) != 5 || next != "" {
		t.Errorf("exact last page: %d decisions, cursor %q; want 5 and none", len(ds), next)
	}
}

func testBadCursor(t *testing.T, s store.Store) {
	decisionSet(t, s, "t1", 5)
	for _, c := range []string{"x", "!!!!", "AAAA", "bm90IGEgY3Vyc29y", store.EncodeCursor("t2", 3), store.EncodeCursor("t1", 3) + "A"} {
		if _, _, err := s.Decisions(t.Context(), "t1", store.DecisionQuery{Cursor: c}); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("cursor %q: err = %v, want ErrBadCursor", c, err)
		}
	}
}

func testExpiredBans(t *testing.T, s store.Store) {
	ban := func(subject string, until time.Time) event.IPBan {
		b := sampleBan("t1", subject)
		b.Until = until
		return b
	}
	past, now, future := ban("192.0.2.1", base.Add(-time.Second)), ban("192.0.2.2", base), ban("192.0.2.3", base.Add(time.Second))
	never := ban("192.0.2.4", time.Time{})
	apply(t, s, putBan(past), putBan(now), putBan(future), putBan(never))
	wantState(t, load(t, s, "t1", base), event.State{Bans: []event.IPBan{future}})
	// Expired bans are not loaded, but they are not gone either.
	wantState(t, load(t, s, "t1", base.Add(-time.Minute)), event.State{Bans: []event.IPBan{past, now, future}})
}

func testPrune(t *testing.T, s store.Store) {
	ds := decisionSet(t, s, "t1", 20)
	days := []string{"2025-02-28", "2025-03-01", "2025-03-02", "2025-03-10"}
	for _, day := range days {
		apply(t, s, putQuota(sampleQuota("t1", "acct-1", day)), putQuota(sampleQuota("t1", "acct-2", day)))
	}
	apply(t, s, putCall(sampleCall("t1", "call-1")), putBan(sampleBan("t1", "192.0.2.1")))

	if n, err := s.Prune(t.Context(), time.Time{}, ""); err != nil || n != 0 {
		t.Errorf("Prune(zero, \"\") = %d, %v; want 0, nil", n, err)
	}
	before := base.Add(8 * time.Minute) // decisions 0..7 go; 8 stays
	n, err := s.Prune(t.Context(), before, "2025-03-02")
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if want := int64(8 + 2*2); n != want {
		t.Errorf("Prune removed %d rows, want %d", n, want)
	}
	st := load(t, s, "t1", base)
	var gotDays []string
	for _, q := range st.Quotas {
		gotDays = append(gotDays, q.Day)
	}
	if want := []string{"2025-03-02", "2025-03-10", "2025-03-02", "2025-03-10"}; !slices.Equal(gotDays, want) {
		t.Errorf("quota days after Prune = %v, want %v", gotDays, want)
	}
	if len(st.Calls) != 1 || len(st.Bans) != 1 {
		t.Errorf("Prune touched calls or bans: %+v", st)
	}
	remaining := ds[8:]
	for _, q := range []store.DecisionQuery{{}, {Rule: "velocity"}, {Account: "acct-1"}} {
		if got, want := listAll(t, s, "t1", q), expect(remaining, q); !slices.Equal(got, want) {
			t.Errorf("after Prune, %+v lists %v, want %v", q, got, want)
		}
	}
	// Ids keep growing after the newest decisions are pruned.
	last := ds[len(ds)-1].ID
	if _, err := s.Prune(t.Context(), base.Add(time.Hour), ""); err != nil {
		t.Fatalf("Prune: %v", err)
	}
	d := sampleDecision("t1")
	apply(t, s, decisionChange(d))
	if d.ID <= last {
		t.Errorf("decision after Prune got id %d, not above the pruned %d", d.ID, last)
	}
}
