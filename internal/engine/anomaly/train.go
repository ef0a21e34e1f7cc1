package anomaly

import (
	"math/rand/v2"
	"time"
)

// TrainConfig configures a Trainer.
type TrainConfig struct {
	Baseline BaselineConfig
	Features FeatureConfig
	// MaxSamples bounds the feature vectors kept (a seeded reservoir
	// sample of all of them); default 20000.
	MaxSamples int
	Forest     ForestConfig
}

// Trainer builds an isolation forest from call history: it replays each
// account's calls in time order, computes the feature vector of the recent
// window at every attempt exactly as the engine does when it scores a
// decision, and learns the account's baseline as it goes, so that
// deviation and new-country features mean what they mean live.
type Trainer struct {
	cfg      TrainConfig
	accounts map[string]*trainAccount
	samples  [][]float64
	seen     int
	rng      *rand.Rand
}

type trainAccount struct {
	recent   *Recent
	baseline *Baseline
}

// NewTrainer returns an empty trainer.
func NewTrainer(cfg TrainConfig) *Trainer {
	if cfg.MaxSamples <= 0 {
		cfg.MaxSamples = 20000
	}
	seed := uint64(cfg.Forest.Seed)
	return &Trainer{cfg: cfg, accounts: map[string]*trainAccount{}, rng: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))}
}

// Add replays one finished call of the account named key (tenant and
// account, say). Calls of one key must come in attempt order; c carries
// its outcome (Ended, Answered, Billed, End) and its Time in the tenant's
// zone.
func (t *Trainer) Add(key string, c Call) {
	a := t.accounts[key]
	if a == nil {
		a = &trainAccount{recent: NewRecent(128), baseline: NewBaseline(t.cfg.Baseline)}
		t.accounts[key] = a
	}
	a.baseline.Advance(c.Time)
	attempt := c
	attempt.Ended, attempt.Answered, attempt.Billed, attempt.End = false, false, 0, time.Time{}
	a.recent.Start(attempt)
	var b *Baseline
	if a.baseline.Warm() {
		b = a.baseline
	}
	t.sample(a.recent.Features(c.Time, t.cfg.Features, b).Vector())
	end := c.End
	if end.IsZero() {
		end = c.Time.Add(c.Billed)
	}
	a.recent.End(c.ID, end, c.Answered, c.Billed)
	c.Ended = true
	a.baseline.Observe(c)
}

// sample keeps v with reservoir sampling.
func (t *Trainer) sample(v []float64) {
	t.seen++
	if len(t.samples) < t.cfg.MaxSamples {
		t.samples = append(t.samples, v)
		return
	}
	if j := t.rng.IntN(t.seen); j < len(t.samples) {
		t.samples[j] = v
	}
}

// Samples returns how many feature vectors were seen.
func (t *Trainer) Samples() int { return t.seen }

// Forest trains the forest on the samples kept.
func (t *Trainer) Forest() (*Forest, error) { return NewForest(t.samples, t.cfg.Forest) }
