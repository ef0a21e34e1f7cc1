package sim

import (
	"context"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/event"
)

// fakeDecider blocks the numbers it is told to, and records what it sees.
type fakeDecider struct {
	block    map[string]bool
	observed []event.Event
	decided  []time.Time
}

func (f *fakeDecider) Decide(_ context.Context, ev event.Event) event.Decision {
	f.decided = append(f.decided, ev.Time)
	if f.block[ev.To] {
		return event.Decision{Verdict: event.Deny, Reasons: []event.Reason{
			{Rule: "limit.x", Mode: event.Enforce, Verdict: event.Challenge},
			{Rule: "destination.test", Mode: event.Enforce, Verdict: event.Deny}}}
	}
	return event.Decision{Verdict: event.Allow}
}

func (f *fakeDecider) Observe(_ context.Context, ev event.Event) error {
	f.observed = append(f.observed, ev)
	return nil
}

var t0 = time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)

func call(id string, at time.Duration, to string, fraud bool, scenario string, answered bool, dur time.Duration, rate float64) Call {
	c := Call{ID: id, Tenant: "t", Account: "a", To: to, SourceIP: netip.MustParseAddr("192.0.2.1"),
		Attempt: t0.Add(at), Ring: 5 * time.Second, Answered: answered, Duration: dur, Rate: rate,
		Label: Label{Scenario: scenario, Fraud: fraud}}
	if !answered {
		c.Duration = 0
	}
	return c
}

func TestReportArithmetic(t *testing.T) {
	calls := []Call{
		// attack "x": two completed before the first block, one unanswered,
		// then a block, then one more completed after it.
		call("1", 0, "+1", true, "x", true, 2*time.Minute, 1.0),              // through: 2 min, 2.00
		call("2", 10*time.Second, "+2", true, "x", false, 0, 1.0),            // allowed, unanswered: costs nothing
		call("3", 20*time.Second, "+3", true, "x", true, time.Minute, 3),     // through: 1 min, 3.00
		call("4", 30*time.Second, "+B", true, "x", true, 4*time.Minute, 0.5), // blocked: at risk 2.00
		call("5", 40*time.Second, "+5", true, "x", true, 30*time.Second, 2),  // after the block: lost 1.00
		// attack "y": never blocked.
		call("6", time.Minute, "+6", true, "y", true, time.Minute, 0.1),
		// honest: four attempts, one blocked.
		call("7", 0, "+7", false, "office", true, time.Minute, 0.02),
		call("8", time.Second, "+B", false, "office", true, time.Minute, 0.02),
		call("9", 2*time.Second, "+9", false, "office", false, 0, 0.02),
		call("10", 3*time.Second, "+10", false, "call_centre", true, 3*time.Minute, 0.01),
	}
	slices.SortStableFunc(calls, func(a, b Call) int { return a.Attempt.Compare(b.Attempt) })
	f := &fakeDecider{block: map[string]bool{"+B": true}}
	res, err := Run(context.Background(), f, calls, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep := Summarise(res)
	if len(rep.Attacks) != 2 {
		t.Fatalf("attacks %+v", rep.Attacks)
	}
	x, y := rep.Attacks[0], rep.Attacks[1]
	if x.Scenario != "x" || x.Attempts != 5 || x.Blocked != 1 || x.Interception != 0.2 {
		t.Errorf("x counts: %+v", x)
	}
	if x.Completed != 3 || x.BeforeFirstBlock != 2 || !near(x.MinutesBeforeFirstBlock, 3) || !near(x.Minutes, 3.5) {
		t.Errorf("x completed: %+v", x)
	}
	if x.TimeToFirstBlock == nil || *x.TimeToFirstBlock != 30 || x.FirstBlockRule != "destination.test" {
		t.Errorf("x first block: %v %q", x.TimeToFirstBlock, x.FirstBlockRule)
	}
	if !near(x.MoneyLost, 6) || !near(x.MoneyAtRisk, 8) || !near(x.LostShare(), 0.75) {
		t.Errorf("x money: lost %v at risk %v", x.MoneyLost, x.MoneyAtRisk)
	}
	if y.TimeToFirstBlock != nil || y.BeforeFirstBlock != 1 || !near(y.MoneyLost, 0.1) || y.Interception != 0 {
		t.Errorf("y: %+v", y)
	}
	all := rep.Overall
	if all.Attempts != 6 || all.Blocked != 1 || all.BeforeFirstBlock != 3 || !near(all.MoneyLost, 6.1) ||
		!near(all.MoneyAtRisk, 8.1) || all.TimeToFirstBlock == nil || *all.TimeToFirstBlock != 30 || rep.NeverBlocked != 1 {
		t.Errorf("overall: %+v never %d", all, rep.NeverBlocked)
	}
	h := rep.Honest
	if h.Attempts != 4 || h.Blocked != 1 || h.FalsePositiveRate != 0.25 || h.BlockedBy["destination.test"] != 1 ||
		!near(h.Minutes, 4) || !near(h.Money, 0.05) {
		t.Errorf("honest: %+v", h)
	}
	if rep.Latency.Decisions != 10 {
		t.Errorf("latency over %d decisions", rep.Latency.Decisions)
	}
}

// Only allowed calls are observed: answered (when answered) and ended, at
// their own event times, in time order with the attempts around them.
func TestRunObservesAllowedCallsInEventTime(t *testing.T) {
	calls := []Call{
		call("1", 0, "+1", false, "office", true, time.Minute, 0),
		call("2", 10*time.Second, "+B", false, "office", true, time.Minute, 0),
		call("3", 2*time.Minute, "+3", false, "office", false, 0, 0),
	}
	f := &fakeDecider{block: map[string]bool{"+B": true}}
	var clock []time.Time
	if _, err := Run(context.Background(), f, calls, func(at time.Time) { clock = append(clock, at) }); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind event.Kind
		id   string
		at   time.Duration
		dur  time.Duration
	}{
		{event.CallAnswered, "1", 5 * time.Second, 0},
		{event.CallEnded, "1", 65 * time.Second, time.Minute},
		{event.CallEnded, "3", 2*time.Minute + 5*time.Second, 0},
	}
	if len(f.observed) != len(want) {
		t.Fatalf("observed %d events: %+v", len(f.observed), f.observed)
	}
	for i, w := range want {
		ev := f.observed[i]
		if ev.Kind != w.kind || ev.CallID != w.id || !ev.Time.Equal(t0.Add(w.at)) || ev.Duration != w.dur {
			t.Errorf("event %d: %s %s at %s dur %s, want %+v", i, ev.Kind, ev.CallID, ev.Time.Sub(t0), ev.Duration, w)
		}
	}
	for i := 1; i < len(clock); i++ {
		if clock[i].Before(clock[i-1]) {
			t.Fatalf("clock went back at step %d: %v", i, clock)
		}
	}
	if len(clock) != 6 { // 3 attempts + 3 lifecycle events
		t.Fatalf("clock set %d times", len(clock))
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
