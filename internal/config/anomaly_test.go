package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAnomalySection(t *testing.T) {
	c, err := Parse("c.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Anomaly; got.Every() != 24*time.Hour || got.TrainWindow != 720*time.Hour || got.Trees != 100 || got.Seed != 1 || got.MinWindows != 1000 {
		t.Fatalf("anomaly defaults: every %v %+v", got.Every(), got)
	}
	// 0 turns retraining off; it is not replaced by the default.
	c, err = Parse("c.yaml", []byte("anomaly:\n  retrain_every: 0s\n"))
	if err != nil || c.Anomaly.Every() != 0 {
		t.Fatalf("retrain_every 0: %v, err %v", c.Anomaly.Every(), err)
	}
	c, err = Parse("c.yaml", []byte("anomaly:\n  retrain_every: 2s\n  train_window: 48h\n  trees: 10\n  seed: 7\n  min_windows: 1\n"))
	if err != nil || c.Anomaly.Every() != 2*time.Second || c.Anomaly.TrainWindow != 48*time.Hour || c.Anomaly.Trees != 10 || c.Anomaly.Seed != 7 || c.Anomaly.MinWindows != 1 {
		t.Fatalf("overrides: %+v err %v", c.Anomaly, err)
	}
	for in, field := range map[string]string{
		"anomaly:\n  retrain_every: 500ms\n": "anomaly.retrain_every",
		"anomaly:\n  retrain_every: -1h\n":   "anomaly.retrain_every",
		"anomaly:\n  train_window: 30m\n":    "anomaly.train_window",
		"anomaly:\n  trees: 5\n":             "anomaly.trees",
		"anomaly:\n  trees: 1001\n":          "anomaly.trees",
		"anomaly:\n  min_windows: -3\n":      "anomaly.min_windows",
		"anomaly:\n  retrain: 1h\n":          "retrain",
	} {
		if _, err := Parse("c.yaml", []byte(in)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: err = %v, want invalid naming %s", in, err, field)
		}
	}
}
