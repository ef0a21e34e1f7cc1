package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A ban that runs out is written to the decisions log as rule ban.lifted,
// so an operator sees when a source got its access back and why it had lost
// it.
func TestBanExpiryIsLogged(t *testing.T) {
	dir := workdir(t)
	path := filepath.Join(dir, "examples", "policy.yaml")
	b, _ := os.ReadFile(path)
	short := strings.Replace(string(b), "action: ban_ip\n          duration: 1h", "action: ban_ip\n          duration: 2s", 1)
	if short == string(b) {
		t.Fatal("example policy has no 1h ban_ip step to shorten")
	}
	cfg := "engine:\n  sweep_interval: 200ms\n"
	if err := os.WriteFile(path, []byte(short), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "telguard.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, withKey(), "--config", "telguard.yaml")
	const src = "192.0.2.77"
	var last decision
	for i := 0; i < 10; i++ {
		last = d.check(call{fmt.Sprintf("u%d", i), "1001", "+449098790000", src, ""})
	}
	if !last.has("escalation.ban_ip") {
		t.Fatalf("10 blocked attempts did not ban the source: %v", last.rules())
	}
	type entry struct {
		SourceIP string `json:"source_ip"`
		Verdict  string `json:"verdict"`
		Reasons  []struct {
			Rule, Reason string
		} `json:"reasons"`
	}
	var lifted []entry
	waitFor(t, func() bool {
		code, body := d.do("GET", "/v1/decisions?rule=ban.lifted", nil)
		if code != 200 {
			t.Fatalf("decisions: %d %s", code, body)
		}
		var page struct{ Decisions []entry }
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		lifted = page.Decisions
		return len(lifted) > 0
	}, "the ban's expiry in the decisions log")
	e := lifted[0]
	if e.SourceIP != src || e.Verdict != "allow" || len(e.Reasons) != 1 || !strings.Contains(e.Reasons[0].Reason, "escalation.ban_ip") {
		t.Fatalf("unban record: %+v", e)
	}
	// And the source may call again.
	later := time.Now().Add(2 * time.Minute).Format(time.RFC3339)
	if dec := d.check(call{"u-after", "1002", "+5511987654321", src, later}); dec.Verdict != "allow" {
		t.Fatalf("after the ban: %s %v", dec.Verdict, dec.rules())
	}
}

// /metrics shows the engine's state tables next to the process's own
// memory, so an operator can tell what is growing.
func TestMetricsShowStateAndMemory(t *testing.T) {
	d := start(t, workdir(t), withKey())
	d.check(call{"mm1", "1001", "+5511987654321", "192.0.2.9", ""})
	d.end("mm1", 30) // an ended call teaches the account's baseline
	out, err := httpGet(d.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"telguard_decisions_total{verdict=\"allow\"} 1",
		"telguard_baseline_accounts{tenant=\"demo\"}",
		"telguard_baseline_recent_accounts{tenant=\"demo\"} 1",
		"telguard_baseline_calls_without_source_total{tenant=\"demo\"}",
		"telguard_anomaly_model_loaded 0",
		"process_resident_memory_bytes",
		"go_memstats_heap_inuse_bytes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
