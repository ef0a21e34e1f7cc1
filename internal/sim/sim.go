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
	res, err := Run(ctx, eng, calls, clk.Set)
	if err != nil {
		return Report{}, fmt.Errorf("simulate: %w", err)
	}
	rep := Summarise(res)
	rep.Seed, rep.Policy, rep.Start = o.Seed, o.Policy.File, start
	rep.Days, rep.Tenants, rep.Accounts = o.Days, o.Tenants, o.Accounts
	rep.WarmUpDays = o.WarmUpDays
	return rep, nil
}
