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
	if rep.Latency.Decisions != rep.Honest.Attempts+rep.Overall.Attempts+rep.Inbound || rep.Inbound != 15 || rep.Latency.P99 <= 0 {
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

// Warm-up days teach the baselines and count for nothing: the report's
// honest attempts are those of the measured days only, and with history
// the example policy's baseline rules stop what the static rules let
// through (the stolen key's calls to the victims' usual countries, from a
// network the tenant never used).
func TestWarmUpTeachesBaselines(t *testing.T) {
	o := Options{Seed: 3, Days: 2, Tenants: 4, Accounts: 20, Scenarios: []string{"stolen-api-key"}, Policy: examplePolicy(t)}
	cold, err := Simulate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	o.WarmUpDays = 16
	warm, err := Simulate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if warm.WarmUpDays != 16 || warm.WarmUpCalls < 5*cold.Honest.Attempts {
		t.Errorf("warm-up: %d days, %d calls (measured days: %d honest calls)", warm.WarmUpDays, warm.WarmUpCalls, cold.Honest.Attempts)
	}
	// The measured days' honest traffic is drawn after the warm-up's from
	// the same streams, so it differs, but not in size.
	if d := warm.Honest.Attempts - cold.Honest.Attempts; d*10 > cold.Honest.Attempts || -d*10 > cold.Honest.Attempts {
		t.Errorf("honest attempts: %d cold, %d warm", cold.Honest.Attempts, warm.Honest.Attempts)
	}
	if c := cold.Overall; c.Blocked == c.Attempts {
		t.Errorf("without history every stolen-key call is already stopped: the test shows nothing")
	}
	if w := warm.Overall; w.Interception < 0.99 || w.BlockedBy["baseline.new_network"] == 0 {
		t.Errorf("with history: interception %.3f, blocked by %v; want ≥ 0.99, some by baseline.new_network", w.Interception, w.BlockedBy)
	}
	if warm.Honest.FalsePositiveRate > 0.001 {
		t.Errorf("with history: false positives %.4f", warm.Honest.FalsePositiveRate)
	}
}

// With Model, the forest trained on the warm-up days scores the measured
// days: honest calls mostly ordinary (no honest call at the default
// critical level of 0.8), the report says what the model was trained on,
// and the run stays deterministic.
func TestModelScoresMeasuredDays(t *testing.T) {
	o := Options{Seed: 4, Days: 2, WarmUpDays: 14, Tenants: 2, Accounts: 20, Scenarios: []string{"compromised-extension"}, Policy: examplePolicy(t), Model: true}
	rep, err := Simulate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	sc := rep.Scores
	if rep.Model == "" || sc == nil || sc.Honest.Scored < rep.Honest.Attempts/2 {
		t.Fatalf("model %q, scores %+v for %d honest attempts", rep.Model, sc, rep.Honest.Attempts)
	}
	if sc.Honest.P50 <= 0 || sc.Honest.P50 >= 0.6 || sc.Honest.Over08 != 0 {
		t.Errorf("honest scores %+v: want a median under 0.6 and none at 0.8", sc.Honest)
	}
	again, err := Simulate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if *again.Scores != *sc {
		t.Errorf("same seed, different scores: %+v vs %+v", *again.Scores, *sc)
	}
	o.WarmUpDays = 0
	if _, err := Simulate(context.Background(), o); err == nil {
		t.Error("a model without warm-up days to train on was accepted")
	}
}
