package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/engine/anomaly"
)

// A pattern's reason names the evidence an operator acts on — count,
// window, countries, money at risk — and never a whole number.
func TestPatternReason(t *testing.T) {
	d := &anomaly.Detection{Pattern: anomaly.FastPumping, Level: anomaly.Critical, MoneyAtRisk: 90,
		Evidence: anomaly.Evidence{Count: 6, Window: 5 * time.Minute, Countries: 5, Threshold: 6,
			Destinations: []string{"+5351234567"}}}
	got := patternReason(d, "USD")
	want := "fast pumping: 6 calls to high-risk or premium ranges in 5m to 5 countries (critical at 6); 90.00 USD at risk"
	if got != want {
		t.Errorf("reason\n got %s\nwant %s", got, want)
	}
	d = &anomaly.Detection{Pattern: anomaly.TargetedPumping, Level: anomaly.Warning,
		Evidence: anomaly.Evidence{Count: 6, Window: 30 * time.Minute, Range: "+8821300", Threshold: 6,
			Destinations: []string{"+8821300123"}}}
	if got := patternReason(d, "USD"); strings.Contains(got, "+8821300123") || !strings.Contains(got, "+8821300…") {
		t.Errorf("targeted reason %q", got)
	}
	for d, want := range map[time.Duration]string{time.Hour: "1h", 90 * time.Minute: "1h30m", 10 * time.Second: "10s", 4 * time.Hour: "4h"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %s; want %s", d, got, want)
		}
	}
}
