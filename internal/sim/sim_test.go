package sim

import (
	"context"
	"reflect"
	"testing"
)

// A short run of every scenario through the real engine and the example
// policy. The bounds are what the static rules must do, with room to
// spare, not the targets (docs/BENCHMARKS.md has those figures):
//   - the published burst is stopped at its first call (the example
//     policy's allowed-country list and high-risk list both deny it), so at
//     most the 3 calls may get through first;
//   - overall interception stays above 70%: slow pumping to UK 070 and the
//     UK 070 share of the stolen-key and distributed attacks go to an
//     allowed country and are only stopped by the daily money quota;
//   - false positives stay under 1% of honest calls: static rules block
//     honest calls only when an attack has got an account's international
//     calling suspended, and then that account's own international calls.
//     The run is short and small, so those few calls weigh more than in the
//     default run (0.1% is the target there).
func TestEndToEndWithExamplePolicy(t *testing.T) {
	o := Options{Seed: 1, Days: 3, Tenants: 4, Accounts: 20, Scenarios: ScenarioNames(), Policy: examplePolicy(t)}
	rep, err := Simulate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Attacks) != len(ScenarioNames()) {
		t.Fatalf("%d attacks reported", len(rep.Attacks))
	}
	if rep.Overall.Interception <= 0.7 {
		t.Errorf("interception %.3f", rep.Overall.Interception)
	}
	for _, a := range rep.Attacks {
		if a.Scenario == "compromised-extension" && (a.BeforeFirstBlock > 3 || a.TimeToFirstBlock == nil) {
			t.Errorf("published burst: %d through before the first block (first block %v)", a.BeforeFirstBlock, a.TimeToFirstBlock)
		}
		if a.MoneyLost > a.MoneyAtRisk+1e-9 {
			t.Errorf("%s: lost %.2f more than at risk %.2f", a.Scenario, a.MoneyLost, a.MoneyAtRisk)
		}
	}
	if rep.Honest.Attempts < 1000 || rep.Honest.FalsePositiveRate >= 0.01 {
		t.Errorf("honest: %+v", rep.Honest)
	}
	if rep.ObserveErrors != 0 {
		t.Errorf("%d observe errors", rep.ObserveErrors)
	}
	if rep.Latency.Decisions != rep.Honest.Attempts+rep.Overall.Attempts || rep.Latency.P99 <= 0 {
		t.Errorf("latency %+v", rep.Latency)
	}

	// The same seed gives the same report, latency aside.
	again, err := Simulate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	rep.Latency, again.Latency = LatencyStats{}, LatencyStats{}
	if !reflect.DeepEqual(rep, again) {
		t.Errorf("same seed, different reports:\n%+v\n%+v", rep, again)
	}
}
