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

// behaviourPolicy is a tenant whose baselines warm up in an hour and learn
// a network from one answered call, so a test can teach them in a few
// requests; the baseline rules are enforced, the anomaly score too.
const behaviourPolicy = `version: 1
tenants:
  demo:
    home_country: BR
    timezone: America/Sao_Paulo
    defaults:
      international: true
      high_risk: allow
    baselines:
      mode: enforce
      warm_up: 2h
      warm_up_calls: 3
      new_network:
        learn_calls: 1
        learn_span: 1h
    anomaly_score:
      mode: enforce
`

func behaviourDir(t *testing.T) string {
	t.Helper()
	dir := workdir(t)
	if err := os.WriteFile(filepath.Join(dir, "examples", "policy.yaml"), []byte(behaviourPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "telguard.yaml"), []byte("api:\n  any_event_time: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// history sends n finished calls of account from ip, one every 20 minutes
// ending before now, through the decision API with their own event times.
func (d *daemon) history(prefix, account, ip string, n int) {
	d.t.Helper()
	now := time.Now()
	for i := range n {
		at := now.Add(-time.Duration(n-i) * 20 * time.Minute)
		id := fmt.Sprintf("%s-%d", prefix, i)
		dec := d.check(call{id, account, fmt.Sprintf("+55113000%04d", i), ip, at.Format(time.RFC3339)})
		if dec.Verdict != "allow" {
			d.t.Fatalf("history call %s: %s %v", id, dec.Verdict, dec.rules())
		}
		if code, body := d.do("POST", "/v1/calls/"+id+"/answered", map[string]any{"time": at.Add(5 * time.Second).Format(time.RFC3339)}); code != 204 {
			d.t.Fatalf("answered %s: %d %s", id, code, body)
		}
		if code, body := d.do("POST", "/v1/calls/"+id+"/ended", map[string]any{"time": at.Add(125 * time.Second).Format(time.RFC3339), "duration_s": 120}); code != 204 {
			d.t.Fatalf("ended %s: %d %s", id, code, body)
		}
	}
}

// What the daemon learned survives a restart: after an operator's
// SIGTERM, the network the tenant calls from is still known and another is
// still new. A daemon started on an empty data directory has learned
// nothing and lets the same call through.
func TestBaselinesSurviveRestart(t *testing.T) {
	dir := behaviourDir(t)
	d := start(t, dir, withKey(), "--config", "telguard.yaml")
	d.history("h", "1001", "198.51.100.7", 8)
	fromNew := call{"new-1", "1001", "+551130999999", "203.0.113.5", ""}
	// Challenged, or denied when the account has never called at this
	// hour (its history is only a few hours long).
	if dec := d.check(fromNew); dec.Verdict == "allow" || !dec.has("baseline.new_network") {
		t.Fatalf("a call from a new network before the restart: %s %v", dec.Verdict, dec.rules())
	}
	d.stop()
	snap := filepath.Join(dir, "data", "baselines.snap")
	if st, err := os.Stat(snap); err != nil || st.Size() == 0 {
		t.Fatalf("no baselines snapshot after shutdown: %v", err)
	}

	d = start(t, dir, withKey(), "--config", "telguard.yaml")
	if !strings.Contains(d.stderr.String(), "baselines loaded") {
		t.Errorf("start-up log does not say the baselines were loaded:\n%s", d.stderr)
	}
	fromNew.CallID = "new-2"
	if dec := d.check(fromNew); dec.Verdict == "allow" || !dec.has("baseline.new_network") {
		t.Fatalf("a call from a new network after the restart: %s %v; the baselines were lost", dec.Verdict, dec.rules())
	}
	if dec := d.check(call{"known", "1001", "+551130999998", "198.51.100.7", ""}); dec.Verdict != "allow" {
		t.Fatalf("a call from the known network after the restart: %s %v", dec.Verdict, dec.rules())
	}
	d.stop()

	// A damaged snapshot is moved aside, never overwritten, and the daemon
	// starts learning afresh: the new network is no longer flagged.
	if err := os.WriteFile(snap, []byte("TGBS\x01garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	d = start(t, dir, withKey(), "--config", "telguard.yaml")
	fromNew.CallID = "new-3"
	if dec := d.check(fromNew); dec.Verdict != "allow" {
		t.Fatalf("after a damaged snapshot: %s %v, want allow (nothing learned)", dec.Verdict, dec.rules())
	}
	if b, err := os.ReadFile(snap + ".corrupt"); err != nil || string(b) != "TGBS\x01garbage" {
		t.Fatalf("damaged snapshot not kept aside: %v %q", err, b)
	}
	if !strings.Contains(d.stderr.String(), "baselines file unreadable") {
		t.Errorf("no log line about the damaged snapshot:\n%s", d.stderr)
	}
}

// telguard anomaly train builds a model from imported call history; a
// running daemon picks the file up without a restart and scores decisions
// with it.
func TestAnomalyTrainAndHotReload(t *testing.T) {
	dir := behaviourDir(t)
	var csv strings.Builder
	csv.WriteString("call id,extension,dialled,started_at,answered_at,ended_at,talk_time,direction,source ip,status\n")
	day := time.Date(2026, 2, 2, 9, 0, 0, 0, time.FixedZone("BRT", -3*3600))
	n := 0
	for d := range 21 {
		for _, acct := range []string{"1001", "1002", "1003"} {
			for k, hour := range []int{9, 10, 14, 16} {
				at := day.AddDate(0, 0, d).Add(time.Duration(hour-9)*time.Hour + time.Duration(k*7)*time.Minute)
				to := fmt.Sprintf("+5511300%02d%02d%d", d, k, acct[3]-'0')
				if k == 2 {
					to = fmt.Sprintf("+1201555%02d%02d", d, k)
				}
				n++
				fmt.Fprintf(&csv, "t-%d,%s,%s,%s,%s,%s,%d,outbound,198.51.100.7,ANSWERED\n", n, acct, to,
					at.Format(time.RFC3339), at.Add(5*time.Second).Format(time.RFC3339), at.Add(185*time.Second).Format(time.RFC3339), 180)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "calls.csv"), []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, withKey(), "--config", "telguard.yaml")
	if dec := d.check(call{"before", "1001", "+5351234567", "198.51.100.7", ""}); dec.Verdict != "allow" {
		t.Fatalf("before training: %s %v", dec.Verdict, dec.rules())
	}
	if out, stderr, code := run(t, dir, "cdr", "import", "--tenant", "demo", "--format", "csv", "calls.csv"); code != 0 {
		t.Fatalf("cdr import: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code := run(t, dir, "anomaly", "train", "--seed", "3")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("on %d calls", n)) || !strings.Contains(out, "anomaly.model") {
		t.Fatalf("anomaly train: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "anomaly.model")); err != nil {
		t.Fatal(err)
	}
	// The daemon checks the file every two seconds.
	waitFor(t, func() bool { return strings.Contains(d.stderr.String(), "anomaly model loaded") }, "the daemon to load the new model")
	var scored struct {
		AnomalyScore float64 `json:"anomaly_score"`
	}
	code2, body := d.do("POST", "/v1/calls/check", call{"scored-last", "1003", "+551130999999", "198.51.100.7", ""})
	if code2 != 200 {
		t.Fatalf("check: %d %s", code2, body)
	}
	if err := json.Unmarshal(body, &scored); err != nil || scored.AnomalyScore <= 0 || scored.AnomalyScore >= 1 {
		t.Fatalf("decision after the model loaded carries no score: %s", body)
	}

	// Bad flags and no history are refused with a message.
	for _, args := range [][]string{
		{"anomaly", "train", "--trees", "5"},
		{"anomaly", "train", "--tenant", "nobody"},
		{"anomaly", "train", "--from", "missing.csv"},
		{"anomaly", "frobnicate"},
	} {
		if _, stderr, code := run(t, dir, args...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d stderr %q, want 2 and a message", args, code, stderr)
		}
	}
	if _, stderr, code := run(t, dir, "anomaly", "train", "--data", t.TempDir()); code != 1 || !strings.Contains(stderr, "no usable training samples") {
		t.Errorf("training on an empty history: exit %d stderr %q, want 1 and a message", code, stderr)
	}
}
