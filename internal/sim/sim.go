package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/telguard/telguard/internal/clock"
	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/policy"
)

// Options describe a simulation run against the engine in process.
type Options struct {
	Seed uint64
	Days int
	// WarmUpDays of honest traffic run through the engine before the
	// measured days, so that baselines have history; left out of the
	// report.
	WarmUpDays int
	Tenants    int
	Accounts   int      // per tenant
	Scenarios  []string // nil means none; see ScenarioNames for all
	Policy     *policy.Policy
	Start      time.Time // zero means DefaultStart
	// Model trains the anomaly model (engine.Trainer, seeded with Seed)
	// on the warm-up days' calls and puts it in force for the measured
	// days, as `telguard anomaly train` on honest history would.
	Model bool
}

// Simulate builds the world from the policy, generates the traffic, runs
// it through a fresh engine whose clock follows event time, and reports.
func Simulate(ctx context.Context, o Options) (Report, error) {
	tenants, pol, err := World(o.Policy, o.Tenants, o.Accounts)
	if err != nil {
		return Report{}, err
	}
	calls, err := Generate(Config{Seed: o.Seed, Start: o.Start, Days: o.Days, WarmUpDays: o.WarmUpDays, Rings: true, Tenants: tenants, Scenarios: o.Scenarios})
	if err != nil {
		return Report{}, err
	}
	start := o.Start
	if start.IsZero() {
		start = DefaultStart
	}
	clk := clock.NewManual(start.AddDate(0, 0, -o.WarmUpDays))
	eng := engine.New(pol, engine.Options{Clock: clk})
	var res Result
	model := ""
	if o.Model {
		// Warm-up calls come first (they are all before Start): run them,
		// train on them, then run the measured days with the model.
		n := 0
		for n < len(calls) && calls[n].WarmUp {
			n++
		}
		if n == 0 {
			return Report{}, fmt.Errorf("simulate: %w: a model needs warm-up days to train on", ErrConfig)
		}
		warm, err := Run(ctx, eng, calls[:n], clk.Set)
		if err != nil {
			return Report{}, fmt.Errorf("simulate: %w", err)
		}
		tr := engine.NewTrainer(pol, engine.TrainOptions{Seed: int64(o.Seed)})
		for i := range calls[:n] {
			tr.Add(calls[i].Record())
		}
		m, err := tr.Forest()
		if err == nil {
			err = eng.SetModel(m)
		}
		if err != nil {
			return Report{}, fmt.Errorf("simulate: %w", err)
		}
		samples, _ := tr.Samples()
		model = fmt.Sprintf("isolation forest trained on the %d warm-up calls (%d windows, seed %d), in force for the measured days", n, samples, o.Seed)
		rest, err := Run(ctx, eng, calls[n:], clk.Set)
		if err != nil {
			return Report{}, fmt.Errorf("simulate: %w", err)
		}
		res = Result{Calls: calls, Outcomes: append(warm.Outcomes, rest.Outcomes...), ObserveErrors: warm.ObserveErrors + rest.ObserveErrors}
	} else {
		res, err = Run(ctx, eng, calls, clk.Set)
		if err != nil {
			return Report{}, fmt.Errorf("simulate: %w", err)
		}
	}
	rep := Summarise(res)
	rep.Model = model
	rep.Seed, rep.Policy, rep.Start = o.Seed, o.Policy.File, start
	rep.Days, rep.Tenants, rep.Accounts = o.Days, o.Tenants, o.Accounts
	rep.WarmUpDays = o.WarmUpDays
	return rep, nil
}
