package anomaly

import (
	"fmt"
	"testing"
	"time"
)

// A forest trained on weeks of office calling scores an office-like window
// as ordinary and a night burst to premium ranges abroad as an outlier,
// and the same history and seed give the same forest.
func TestTrainerScoresFraudAboveHistory(t *testing.T) {
	train := func(seed int64) *Forest {
		tr := NewTrainer(TrainConfig{Forest: ForestConfig{Seed: seed}})
		for a := range 5 {
			for _, c := range officeCalls(4, uint64(a+1)) {
				tr.Add(fmt.Sprint("acct", a), c)
			}
		}
		if tr.Samples() < 1000 {
			t.Fatalf("%d samples from four weeks of five accounts", tr.Samples())
		}
		f, err := tr.Forest()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f := train(1)
	base := officeBaseline(t)
	tuesday := time.Date(2026, 2, 3, 10, 0, 0, 0, cet)
	office := NewRecent(0)
	office.Start(Call{ID: "o1", Time: tuesday, E164: "+49301234567", Country: "DE", RatePerMinute: 0.02})
	office.End("o1", tuesday.Add(3*time.Minute), true, 3*time.Minute)
	office.Start(Call{ID: "o2", Time: tuesday.Add(6 * time.Minute), E164: "+49301234568", Country: "DE", RatePerMinute: 0.02})
	ordinary := f.Score(office.Features(tuesday.Add(6*time.Minute), FeatureConfig{}, base).Vector())

	night := time.Date(2026, 2, 4, 3, 0, 0, 0, cet)
	burst := NewRecent(0)
	for i := range 12 {
		burst.Start(Call{ID: fmt.Sprint("b", i), Time: night.Add(time.Duration(i*20) * time.Second), E164: fmt.Sprintf("+5351234%03d", i),
			Country: "CU", International: true, HighRisk: true, RatePerMinute: 1.2, Answered: true})
	}
	fraud := f.Score(burst.Features(night.Add(4*time.Minute), FeatureConfig{}, base).Vector())
	if ordinary > 0.55 || fraud < 0.75 || fraud < ordinary+0.25 {
		t.Errorf("ordinary window scores %.3f, night burst %.3f; want ≤ 0.55 and ≥ 0.75", ordinary, fraud)
	}
	g := train(1)
	x := burst.Features(night.Add(4*time.Minute), FeatureConfig{}, base).Vector()
	if f.Score(x) != g.Score(x) {
		t.Error("the same history and seed gave different forests")
	}
}

// The trainer keeps at most MaxAccounts accounts' state however many
// accounts the history names, forgetting the least recently active one
// (deterministically: the same history and seed still give the same
// model), and every call still gives a sample.
func TestTrainerBoundsAccounts(t *testing.T) {
	train := func() (*Trainer, *Forest) {
		tr := NewTrainer(TrainConfig{MaxAccounts: 10, Forest: ForestConfig{Seed: 3}})
		calls := officeCalls(1, 7)
		for i, c := range calls {
			tr.Add(fmt.Sprint("acct", i%25), c) // 25 accounts in turn
		}
		if len(tr.accounts) != 10 || tr.lru.Len() != 10 {
			t.Fatalf("%d accounts kept (%d in the LRU), want 10", len(tr.accounts), tr.lru.Len())
		}
		if tr.Evicted() != len(calls)-10 || tr.Samples() != len(calls) {
			t.Fatalf("evicted %d, samples %d of %d calls", tr.Evicted(), tr.Samples(), len(calls))
		}
		f, err := tr.Forest()
		if err != nil {
			t.Fatal(err)
		}
		return tr, f
	}
	_, f := train()
	_, g := train()
	x := make([]float64, NumFeatures)
	x[0] = 3
	if f.Score(x) != g.Score(x) {
		t.Error("with evictions, the same history and seed gave different forests")
	}
}

// A call marked NoLearn (flagged by a rule, or expired) is an attempt the
// features see, but it teaches its account's baseline nothing.
func TestTrainerNoLearnKeepsCallsOutOfBaselines(t *testing.T) {
	calls := officeCalls(1, 5)
	learned := func(noLearn bool) int64 {
		tr := NewTrainer(TrainConfig{Forest: ForestConfig{Seed: 1}})
		for i, c := range calls {
			c.NoLearn = noLearn && i%2 == 0
			tr.Add("acct", c)
		}
		if tr.Samples() != len(calls) {
			t.Fatalf("%d samples of %d calls", tr.Samples(), len(calls))
		}
		return tr.accounts["acct"].Value.(*trainAccount).baseline.Calls()
	}
	all, half := learned(false), learned(true)
	if all != int64(len(calls)) || half != int64(len(calls)-(len(calls)+1)/2) {
		t.Fatalf("baseline learned %v calls of %d, and %v with every other call NoLearn", all, len(calls), half)
	}
}
