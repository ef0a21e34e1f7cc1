package engine_test

import (
	"errors"
	"testing"

	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/anomaly"
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
