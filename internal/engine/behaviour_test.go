package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

func TestSetModelRefusesOtherFeatures(t *testing.T) {
	e := engine.New(benchPolicy(t, 1), engine.Options{})
	good, _ := anomaly.NewForest([][]float64{make([]float64, anomaly.NumFeatures), {1, 1, 1, 1, 1, 1, 1, 1}}, anomaly.ForestConfig{Trees: 2})
	if err := e.SetModel(good); err != nil || e.Model() != good {
		t.Fatalf("SetModel(good) = %v", err)
	}
	bad, _ := anomaly.NewForest([][]float64{{1, 2}, {3, 4}}, anomaly.ForestConfig{Trees: 2})
	if err := e.SetModel(bad); !errors.Is(err, engine.ErrModel) || e.Model() != good {
		t.Errorf("SetModel(2 features) = %v, model in force changed: %v", err, e.Model() != good)
	}
	if err := e.SetModel(nil); err != nil || e.Model() != nil {
		t.Errorf("SetModel(nil) = %v", err)
	}
}

func TestImportBaselinesRefusesDamage(t *testing.T) {
	e := engine.New(benchPolicy(t, 1), engine.Options{})
	snap, err := e.ExportBaselines()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ImportBaselines(snap); err != nil {
		t.Errorf("importing an empty export: %v", err)
	}
	if err := e.ImportBaselines(append(snap, 7)); !errors.Is(err, anomaly.ErrCorrupt) {
		t.Errorf("a damaged snapshot: %v; want ErrCorrupt", err)
	}
}

// A baseline is learned from calls that end, and forgotten once its
// account has been silent for eight half-lives (16 weeks by default), so a
// tenant's departed accounts are not kept for ever.
func TestBaselinesLearnAndForget(t *testing.T) {
	e := engine.New(benchPolicy(t, 1), engine.Options{})
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)
	for i := range 5 {
		ev := event.Event{Kind: event.CallAttempt, Time: at.Add(time.Duration(i) * time.Hour), Tenant: "t0", Account: "office-1",
			CallID: fmt.Sprint("c", i), To: "011987654321", SourceIP: netip.MustParseAddr("198.51.100.7")}
		if d := e.Decide(ctx, ev); d.Verdict.Blocks() {
			t.Fatalf("call %d blocked: %v", i, d.Rules())
		}
		ev.Kind, ev.Time, ev.Duration = event.CallEnded, ev.Time.Add(2*time.Minute), time.Minute
		if err := e.Observe(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if st := e.Baselines("t0"); st.Accounts != 1 || st.Networks != 1 {
		t.Fatalf("after five calls: %+v, want one account and one network", st)
	}
	e.Sweep(at.Add(15 * 7 * 24 * time.Hour))
	if st := e.Baselines("t0"); st.Accounts != 1 {
		t.Errorf("forgotten after 15 weeks: %+v", st)
	}
	e.Sweep(at.Add(17 * 7 * 24 * time.Hour))
	if st := e.Baselines("t0"); st.Accounts != 0 {
		t.Errorf("kept after 17 weeks of silence: %+v", st)
	}
}

// learnCalls has each account make one call that ends, an hour apart per
// account, in the order given.
func learnCalls(t *testing.T, e *engine.Engine, at time.Time, accounts ...string) {
	t.Helper()
	ctx := context.Background()
	for i, a := range accounts {
		ev := event.Event{Kind: event.CallAttempt, Time: at.Add(time.Duration(i) * time.Minute), Tenant: "t0", Account: a,
			CallID: fmt.Sprint("c-", a, "-", i), To: "011987654321", SourceIP: netip.MustParseAddr("198.51.100.7")}
		if d := e.Decide(ctx, ev); d.Verdict.Blocks() {
			t.Fatalf("call by %s blocked: %v", a, d.Rules())
		}
		ev.Kind, ev.Time, ev.Duration = event.CallEnded, ev.Time.Add(30*time.Second), 20*time.Second
		if err := e.Observe(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshotAccounts lists the accounts a snapshot holds.
func snapshotAccounts(t *testing.T, e *engine.Engine) []string {
	t.Helper()
	snap, err := e.ExportBaselines()
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := anomaly.UnmarshalSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tb := range tenants {
		for _, a := range tb.Accounts {
			out = append(out, a.Account)
		}
	}
	return out
}

// A tenant keeps at most MaxBaselines account baselines: a new account
// pushes out the least recently active one, and the drop is counted.
func TestBaselinesBoundedLeastRecentFirst(t *testing.T) {
	e := engine.New(benchPolicy(t, 1), engine.Options{MaxBaselines: 3})
	at := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)
	learnCalls(t, e, at, "office-1", "office-2", "office-3", "office-1", "office-4")
	st := e.Baselines("t0")
	if st.Accounts != 3 || st.Evicted != 1 {
		t.Fatalf("stats %+v; want 3 accounts, 1 evicted", st)
	}
	if got := snapshotAccounts(t, e); !slices.Equal(got, []string{"office-1", "office-3", "office-4"}) {
		t.Errorf("kept %v; want office-2 (the least recently active) dropped", got)
	}
	// A snapshot loaded into a smaller engine keeps the most recent.
	snap, _ := e.ExportBaselines()
	small := engine.New(benchPolicy(t, 1), engine.Options{MaxBaselines: 2})
	if err := small.ImportBaselines(snap); err != nil {
		t.Fatal(err)
	}
	if got := snapshotAccounts(t, small); !slices.Equal(got, []string{"office-1", "office-4"}) {
		t.Errorf("import kept %v; want the two most recently active", got)
	}
	if st := small.Baselines("t0"); st.Evicted != 1 || st.Networks != 1 {
		t.Errorf("import stats %+v; want 1 evicted, the network kept", st)
	}
}

// A snapshot restores only the tenants today's policy has: a tenant
// removed from the policy gets no state back from an old file.
func TestImportBaselinesSkipsTenantsNotInThePolicy(t *testing.T) {
	two := engine.New(benchPolicy(t, 2), engine.Options{})
	at := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)
	ctx := context.Background()
	for _, tenant := range []string{"t0", "t1"} {
		ev := event.Event{Kind: event.CallAttempt, Time: at, Tenant: tenant, Account: "office-1",
			CallID: "c-" + tenant, To: "011987654321", SourceIP: netip.MustParseAddr("198.51.100.7")}
		if d := two.Decide(ctx, ev); d.Verdict.Blocks() {
			t.Fatalf("%s: blocked: %v", tenant, d.Rules())
		}
		ev.Kind, ev.Time, ev.Duration = event.CallEnded, at.Add(2*time.Minute), time.Minute
		if err := two.Observe(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := two.ExportBaselines()
	if err != nil {
		t.Fatal(err)
	}
	one := engine.New(benchPolicy(t, 1), engine.Options{})
	if err := one.ImportBaselines(snap); err != nil {
		t.Fatal(err)
	}
	if st := one.Baselines("t0"); st.Accounts != 1 {
		t.Errorf("t0 (in the policy): %+v, want its account back", st)
	}
	if st := one.Baselines("t1"); st.Accounts != 0 || st.Networks != 0 {
		t.Errorf("t1 (not in the policy): %+v, want nothing restored", st)
	}
}

// A flood of inbound calls that never end is bounded: the oldest are
// forgotten first (their end is then unknown), the newest are kept.
func TestInboundFloodForgetsTheOldest(t *testing.T) {
	e := engine.New(benchPolicy(t, 1), engine.Options{})
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)
	const n = 10_000
	for i := range n {
		ev := event.Event{Kind: event.CallAttempt, Time: at.Add(time.Duration(i) * time.Millisecond), Tenant: "t0",
			Direction: event.Inbound, Account: "office-1", CallID: fmt.Sprint("in-", i), From: "+5511987654321", To: "office-1",
			SourceIP: netip.MustParseAddr("198.51.100.7")}
		if d := e.Decide(ctx, ev); d.Verdict.Blocks() {
			t.Fatalf("inbound %d blocked: %v", i, d.Rules())
		}
	}
	end := func(id string) error {
		return e.Observe(ctx, event.Event{Kind: event.CallEnded, Time: at.Add(time.Hour), Tenant: "t0", CallID: id})
	}
	if err := end(fmt.Sprint("in-", n-1)); err != nil {
		t.Errorf("the newest inbound call's end: %v", err)
	}
	if err := end("in-0"); !errors.Is(err, engine.ErrUnknownCall) {
		t.Errorf("the oldest inbound call's end: %v; want it forgotten (ErrUnknownCall)", err)
	}
}

// baselineCalls returns how many calls the snapshot says account's
// baseline has learned from (0 when it has none).
func baselineCalls(t *testing.T, e *engine.Engine, account string) int64 {
	t.Helper()
	snap, err := e.ExportBaselines()
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := anomaly.UnmarshalSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tenants {
		for _, a := range tb.Accounts {
			if a.Account == account {
				return a.Baseline.Calls()
			}
		}
	}
	return 0
}

// A call a rule challenged teaches the behaviour layer nothing, even when
// the challenge let it through and it was answered: neither the account's
// baseline nor the tenant's networks. An unflagged call still teaches.
func TestFlaggedCallsTeachNothing(t *testing.T) {
	e := engine.New(benchPolicy(t, 1), engine.Options{})
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC) // Monday 10:00 in São Paulo
	learnCalls(t, e, at, "office-1")
	if n, st := baselineCalls(t, e, "office-1"), e.Baselines("t0"); n != 1 || st.Networks != 1 {
		t.Fatalf("after an ordinary call: %d calls learned, %+v; want 1 call, 1 network", n, st)
	}
	// 23:30 local, outside the office group's calling hours: challenged
	// (which does not stop the call), from another network, answered.
	ev := event.Event{Kind: event.CallAttempt, Time: time.Date(2026, 3, 3, 2, 30, 0, 0, time.UTC), Tenant: "t0",
		Account: "office-1", CallID: "late", To: "011987654322", SourceIP: netip.MustParseAddr("192.0.2.8")}
	if d := e.Decide(ctx, ev); d.Verdict != event.Challenge {
		t.Fatalf("late call: %s %v; want a challenge", d.Verdict, d.Rules())
	}
	ev.Kind, ev.Time = event.CallAnswered, ev.Time.Add(5*time.Second)
	if err := e.Observe(ctx, ev); err != nil {
		t.Fatal(err)
	}
	ev.Kind, ev.Time, ev.Duration = event.CallEnded, ev.Time.Add(10*time.Minute), 10*time.Minute
	if err := e.Observe(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if n, st := baselineCalls(t, e, "office-1"), e.Baselines("t0"); n != 1 || st.Networks != 1 {
		t.Errorf("after a challenged call: %d calls learned, %+v; want still 1 call, 1 network", n, st)
	}
	learnCalls(t, e, at.Add(24*time.Hour), "office-1")
	if n := baselineCalls(t, e, "office-1"); n != 2 {
		t.Errorf("after a second ordinary call: %d calls learned, want 2", n)
	}
}

// baseline.new_network cannot judge a call without a source address: it
// stays open (no hit), and counts the call so that an operator sees how
// much of the traffic the rule does not cover.
func TestNewNetworkWithoutSourceAddress(t *testing.T) {
	e := engine.New(benchPolicy(t, 1), engine.Options{})
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)
	learnCalls(t, e, at, "office-1") // the tenant's first network; warm_up is 1h
	later := at.Add(2 * time.Hour)
	from := func(id, ip string) event.Decision {
		ev := event.Event{Kind: event.CallAttempt, Time: later, Tenant: "t0", Account: "office-1", CallID: id, To: "011987654323"}
		if ip != "" {
			ev.SourceIP = netip.MustParseAddr(ip)
		}
		return e.Decide(ctx, ev)
	}
	if d := from("new-net", "192.0.2.8"); !slices.Contains(d.Rules(), "baseline.new_network") {
		t.Fatalf("a call from a new network: rules %v, want baseline.new_network", d.Rules())
	}
	if st := e.Baselines("t0"); st.NoSourceIP != 0 {
		t.Fatalf("NoSourceIP %d before any call without an address", st.NoSourceIP)
	}
	if d := from("no-address", ""); slices.Contains(d.Rules(), "baseline.new_network") {
		t.Errorf("a call without an address: rules %v, want no baseline.new_network", d.Rules())
	}
	if st := e.Baselines("t0"); st.NoSourceIP != 1 {
		t.Errorf("NoSourceIP %d after one call without an address, want 1", st.NoSourceIP)
	}
}

// Capacity rules do not stop a busy account from learning: calls that
// pattern.simultaneous_calls or a limit on concurrent calls flagged (here
// in monitor) say how busy the trunk is, not who is calling, and still
// teach its baseline; a call another rule flagged does not.
func TestCapacityHitsStillTeach(t *testing.T) {
	p, err := policy.Parse("busy.yaml", []byte(`version: 1
tenants:
  t0:
    home_country: BR
    timezone: America/Sao_Paulo
    defaults:
      international: true
    patterns:
      simultaneous_calls: {warning: 2, critical: 50}
    limits:
      - {id: lines, key: account, metric: concurrent, warning: 3, mode: monitor}
      - {id: burst, key: account, metric: calls, window: 1m, warning: 6, mode: monitor}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(p, engine.Options{})
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 6 { // six calls up at once: simultaneous_calls and limit.lines fire
		id := fmt.Sprint("busy-", i)
		ev := event.Event{Kind: event.CallAttempt, Time: at.Add(time.Duration(i) * time.Second), Tenant: "t0", Account: "trunk",
			CallID: id, To: "011987654321", SourceIP: netip.MustParseAddr("198.51.100.7")}
		d := e.Decide(ctx, ev)
		if d.Verdict.Blocks() {
			t.Fatalf("call %d blocked: %v", i, d.Rules())
		}
		if i == 5 && (!slices.Contains(d.Rules(), "pattern.simultaneous_calls") || !slices.Contains(d.Rules(), "limit.lines")) {
			t.Fatalf("the sixth call up: rules %v, want the capacity rules to fire", d.Rules())
		}
		ids = append(ids, id)
	}
	// A seventh call within the minute: limit.burst (a velocity rule) flags it.
	ev := event.Event{Kind: event.CallAttempt, Time: at.Add(10 * time.Second), Tenant: "t0", Account: "trunk",
		CallID: "busy-6", To: "011987654321", SourceIP: netip.MustParseAddr("198.51.100.7")}
	if d := e.Decide(ctx, ev); !slices.Contains(d.Rules(), "limit.burst") {
		t.Fatalf("the seventh call: rules %v, want limit.burst", d.Rules())
	}
	ids = append(ids, "busy-6")
	for i, id := range ids {
		end := event.Event{Kind: event.CallEnded, Time: at.Add(time.Duration(3+i) * time.Minute), Tenant: "t0", CallID: id, Duration: 2 * time.Minute}
		if err := e.Observe(ctx, end); err != nil {
			t.Fatal(err)
		}
	}
	if n := baselineCalls(t, e, "trunk"); n != 6 {
		t.Fatalf("%d calls learned, want 6: the calls only capacity rules flagged teach, the one limit.burst flagged does not", n)
	}
}
