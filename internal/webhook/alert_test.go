package webhook

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// A spike of forged requests, or of duplicates, from one source raises one
// alert per window, however many requests follow; the next window raises
// another; below the threshold nothing is raised.
func TestAlertsOncePerWindow(t *testing.T) {
	var mu sync.Mutex
	var got []Alert
	f := newFixture(t, func(c *Config) {
		c.Alerts = AlertConfig{SignatureFailures: 3, Duplicates: 2, Window: time.Minute}
		c.OnAlert = func(a Alert) { mu.Lock(); got = append(got, a); mu.Unlock() }
	})
	alerts := func() []Alert { mu.Lock(); defer mu.Unlock(); return append([]Alert(nil), got...) }
	forged := func(id string) {
		t.Helper()
		if c := f.post(t, "telco", stdHeaders(id, f.clock, body, keyB), body).Code; c != http.StatusUnauthorized {
			t.Fatalf("forged: %d", c)
		}
	}
	forged("f1")
	forged("f2")
	if len(alerts()) != 0 {
		t.Fatal("alert below the threshold")
	}
	forged("f3")
	for i := range 10 {
		forged("f-more-" + string(rune('a'+i)))
	}
	// A stale replay counts as a verification failure too.
	if c := f.post(t, "telco", stdHeaders("old", f.clock.Add(-time.Hour), body, keyA), body).Code; c != http.StatusUnauthorized {
		t.Fatalf("stale: %d", c)
	}
	a := alerts()
	if len(a) != 1 || a[0].Rule != RuleSignatureFailures || a[0].Source != "telco" || a[0].Tenant != "acme" || a[0].Count != 3 {
		t.Fatalf("after 14 failures in one window: %+v, want one alert at 3", a)
	}
	if !strings.Contains(a[0].Reason(), "telco") || strings.Contains(a[0].Reason(), "call_id") {
		t.Fatalf("reason %q", a[0].Reason())
	}
	f.clock = f.clock.Add(61 * time.Second)
	for i := range 3 {
		forged("g" + string(rune('a'+i)))
	}
	if n := len(alerts()); n != 2 {
		t.Fatalf("next window: %d alerts, want 2", n)
	}

	// Duplicates: the first post is queued, the next two are duplicates.
	for range 4 {
		f.post(t, "telco", stdHeaders("dup-1", f.clock, body, keyA), body)
	}
	a = alerts()
	if len(a) != 3 || a[2].Rule != RuleDuplicates || a[2].Count != 2 {
		t.Fatalf("duplicates: %+v", a)
	}
	var m dto.Metric
	if err := f.srv.metrics.alerts.WithLabelValues("telco", RuleSignatureFailures).Write(&m); err != nil || m.GetCounter().GetValue() != 2 {
		t.Fatalf("alerts metric = %v, %v; want 2", m.GetCounter().GetValue(), err)
	}
}

// A negative threshold turns an alert off.
func TestAlertsOff(t *testing.T) {
	fired := false
	f := newFixture(t, func(c *Config) {
		c.Alerts = AlertConfig{SignatureFailures: -1, Duplicates: -1}
		c.OnAlert = func(Alert) { fired = true }
	})
	for i := range 30 {
		f.post(t, "telco", stdHeaders("x"+string(rune('a'+i)), f.clock, body, keyB), body)
	}
	if fired {
		t.Fatal("an alert that is off fired")
	}
}
