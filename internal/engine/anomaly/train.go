package anomaly

import (
	"container/list"
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
	// MaxAccounts bounds the accounts whose recent calls and baseline are
	// kept while replaying (about 5.6 KB each); past it the least recently
	// active one is forgotten, as the engine forgets a baseline, and
	// starts over if it calls again. Default 50000.
	MaxAccounts int
	Forest      ForestConfig
}

// Trainer builds an isolation forest from call history: it replays each
// account's calls in time order, computes the feature vector of the recent
// window at every attempt exactly as the engine does when it scores a
// decision, and learns the account's baseline as it goes, so that
// deviation and new-country features mean what they mean live.
type Trainer struct {
	cfg      TrainConfig
	accounts map[string]*list.Element // of *trainAccount, most recent first in lru
	lru      list.List
	evicted  int
	samples  [][]float64
	seen     int
	rng      *rand.Rand
}

type trainAccount struct {
	key      string
	recent   *Recent
	baseline *Baseline
}

// NewTrainer returns an empty trainer.
func NewTrainer(cfg TrainConfig) *Trainer {
	if cfg.MaxSamples <= 0 {
		cfg.MaxSamples = 20000
	}
	if cfg.MaxAccounts <= 0 {
		cfg.MaxAccounts = 50000
	}
	seed := uint64(cfg.Forest.Seed)
	return &Trainer{cfg: cfg, accounts: map[string]*list.Element{}, rng: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))}
}

// Add replays one finished call of the account named key (tenant and
// account, say). Calls of one key must come in attempt order; c carries
// its outcome (Ended, Answered, Billed, End) and its Time in the tenant's
// zone.
func (t *Trainer) Add(key string, c Call) {
	var a *trainAccount
	if e := t.accounts[key]; e != nil {
		t.lru.MoveToFront(e)
		a = e.Value.(*trainAccount)
	} else {
		if len(t.accounts) >= t.cfg.MaxAccounts {
			// The least recently active account: deterministic, so the
			// same history still gives the same model.
			old := t.lru.Remove(t.lru.Back()).(*trainAccount)
			delete(t.accounts, old.key)
			t.evicted++
		}
		a = &trainAccount{key: key, recent: NewRecent(128), baseline: NewBaseline(t.cfg.Baseline)}
		t.accounts[key] = t.lru.PushFront(a)
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
	if c.NoLearn {
		return
	}
	c.Ended = true
	a.baseline.Observe(c)
}

// Evicted is how many times an account was forgotten for MaxAccounts.
func (t *Trainer) Evicted() int { return t.evicted }

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
