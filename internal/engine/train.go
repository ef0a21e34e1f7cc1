package engine

import (
	"fmt"

	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/numbering"
)

// Trainer builds the anomaly model (an isolation forest) from call history
// under a policy: each record's destination is read with its tenant's dial
// rules, high-risk list and rate deck, exactly as Decide reads an attempt,
// so the features it learns from are the features the engine scores.
type Trainer struct {
	pol     *policy.Policy
	t       *anomaly.Trainer
	skipped int
}

// TrainOptions configure a Trainer. The zero value trains 100 trees on up
// to 20000 samples with seed 0.
type TrainOptions struct {
	Seed       int64
	Trees      int
	MaxSamples int
}

// NewTrainer returns a trainer reading records under policy p.
func NewTrainer(p *policy.Policy, o TrainOptions) *Trainer {
	return &Trainer{pol: p, t: anomaly.NewTrainer(anomaly.TrainConfig{
		MaxSamples: o.MaxSamples,
		Forest:     anomaly.ForestConfig{Seed: o.Seed, Trees: o.Trees},
	})}
}

// Add replays one finished call. Records of one account must come in the
// order they started. Inbound calls, and records the policy cannot read
// (unknown tenant, unreadable destination), are skipped and counted.
func (tr *Trainer) Add(r event.CallRecord) {
	t := tr.pol.Tenants[r.Tenant]
	if t == nil || r.Direction.IsInbound() || r.Start.IsZero() {
		tr.skipped++
		return
	}
	num, err := t.Numbers.Normalize(r.To)
	if err != nil {
		tr.skipped++
		return
	}
	c := anomaly.Call{
		ID: r.CallID, Time: r.Start.In(t.Location), E164: num.E164, Country: num.Region,
		International: num.International, Ended: true, Answered: r.Answered(), Billed: r.Billsec, End: r.End,
	}
	if rate, ok := t.Rates.Lookup(num.E164); ok {
		c.RatePerMinute = rate.PerMinute
	}
	_, risky := t.HighRisk.Match(num)
	c.HighRisk = risky || num.Type == numbering.PremiumRate
	if !c.Answered || r.Disposition == event.DispositionExpired {
		// An expired call's duration is max_call_duration, not what
		// happened: it counts as an attempt of unknown outcome.
		c.Answered, c.Billed = false, 0
	}
	// Neither it nor a call a rule flagged teaches the baseline, as live.
	c.NoLearn = r.Flagged || r.Disposition == event.DispositionExpired
	tr.t.Add(r.Tenant+"\x00"+r.Account, c)
}

// Samples returns how many feature vectors the trainer saw, and how many
// records it skipped.
func (tr *Trainer) Samples() (samples, skipped int) { return tr.t.Samples(), tr.skipped }

// Forest trains the model.
func (tr *Trainer) Forest() (*anomaly.Forest, error) {
	f, err := tr.t.Forest()
	if err != nil {
		return nil, fmt.Errorf("train anomaly model: %w", err)
	}
	return f, nil
}
