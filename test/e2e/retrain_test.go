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

// retrainPolicy lets the test's calls through: international allowed,
// every behaviour rule in its default monitor mode, the anomaly score too.
const retrainPolicy = `version: 1
tenants:
  demo:
    home_country: BR
    timezone: America/Sao_Paulo
    defaults:
      international: true
      high_risk: allow
`

// retrainConfig retrains every second (a test value: real use is hours)
// on as few as 40 windows, with 50 trees, and lets calls carry their own times so a few
// days of history can be sent in a second.
const retrainConfig = `api:
  any_event_time: true
anomaly:
  retrain_every: 1s
  min_windows: 40
  trees: 50
  seed: 3
`

// scoredCheck sends an attempt and returns its verdict and anomaly score.
func (d *daemon) scoredCheck(c call) (string, float64) {
	d.t.Helper()
	code, body := d.do("POST", "/v1/calls/check", c)
	if code != 200 {
		d.t.Fatalf("check %+v: %d %s", c, code, body)
	}
	var dec struct {
		Verdict      string  `json:"verdict"`
		AnomalyScore float64 `json:"anomaly_score"`
	}
	if err := json.Unmarshal(body, &dec); err != nil {
		d.t.Fatalf("decode decision %s: %v", body, err)
	}
	return dec.Verdict, dec.AnomalyScore
}

// The daemon records the calls it sees end and, with no one running
// telguard anomaly train, retrains the anomaly model on them by itself:
// decisions that carried no anomaly score before carry one after. A model
// trained by hand is replaced at the next retrain.
func TestDaemonRetrainsOnRecordedCalls(t *testing.T) {
	dir := workdir(t)
	if err := os.WriteFile(filepath.Join(dir, "examples", "policy.yaml"), []byte(retrainPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "telguard.yaml"), []byte(retrainConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, withKey(), "--config", "telguard.yaml")
	model := filepath.Join(dir, "data", "anomaly.model")

	// No model yet, and nothing to train on: the first retrain, at start,
	// keeps things as they are and says so.
	waitFor(t, func() bool { return strings.Contains(d.stderr.String(), "too little history") }, "the first retrain to find too little history")
	if _, err := os.Stat(model); err == nil {
		t.Fatal("a model file from an empty history")
	}
	if v, score := d.scoredCheck(call{"before", "1001", "+551130000000", "198.51.100.7", ""}); v != "allow" || score != 0 {
		t.Fatalf("before any model: %s with anomaly score %v, want allow and no score", v, score)
	}

	// Four days of office calls, 3 accounts, 5 calls a day each, through
	// the decision API: check, answered, ended, at their own times.
	const days, perDay = 4, 5
	accounts := []string{"1001", "1002", "1003"}
	base := time.Now().Add(-time.Duration(days) * 24 * time.Hour)
	n := 0
	for day := range days {
		for a, acct := range accounts {
			for k := range perDay {
				at := base.Add(time.Duration(day)*24*time.Hour + time.Duration(k)*47*time.Minute + time.Duration(a)*3*time.Minute)
				id := fmt.Sprintf("r-%d-%s-%d", day, acct, k)
				to := fmt.Sprintf("+5511300%02d%03d", day, a*100+k)
				if k == 3 {
					to = fmt.Sprintf("+1201555%02d%02d", day, a*10+k)
				}
				if v, _ := d.scoredCheck(call{id, acct, to, "198.51.100.7", at.Format(time.RFC3339)}); v != "allow" {
					t.Fatalf("history call %s: %s", id, v)
				}
				if code, body := d.do("POST", "/v1/calls/"+id+"/answered", map[string]any{"time": at.Add(4 * time.Second).Format(time.RFC3339)}); code != 204 {
					t.Fatalf("answered %s: %d %s", id, code, body)
				}
				if code, body := d.do("POST", "/v1/calls/"+id+"/ended", map[string]any{"time": at.Add(154 * time.Second).Format(time.RFC3339), "duration_s": 150}); code != 204 {
					t.Fatalf("ended %s: %d %s", id, code, body)
				}
				n++
			}
		}
	}

	// The daemon retrains on all of them by itself, within a few seconds.
	line := fmt.Sprintf(`msg="anomaly model retrained" calls=%d windows=%d`, n, n)
	waitFor(t, func() bool { return strings.Contains(d.stderr.String(), line) }, "a retrain on all "+fmt.Sprint(n)+" calls")
	if _, err := os.Stat(model); err != nil {
		t.Fatalf("no model file after the retrain: %v", err)
	}
	// It trained in a child process (anomaly train, nice 19), which left
	// no file of its own behind.
	if !strings.Contains(grepLines(d.stderr.String(), "anomaly model retrained"), `in="child process"`) {
		t.Errorf("the retrain did not run in a child process:\n%s", grepLines(d.stderr.String(), "anomaly model"))
	}
	if left, _ := filepath.Glob(model + ".retrain*"); len(left) > 0 {
		t.Errorf("the child's files were left behind: %v", left)
	}
	if v, score := d.scoredCheck(call{"after", "1002", "+551130009999", "198.51.100.7", ""}); v != "allow" || score <= 0 || score >= 1 {
		t.Fatalf("after the retrain: %s with anomaly score %v, want a score in (0, 1)", v, score)
	}
	// The daemon put its own model in force; its file poll did not load
	// it a second time.
	if strings.Contains(d.stderr.String(), "anomaly model loaded") {
		t.Errorf("the daemon reloaded the model it had written itself:\n%s", grepLines(d.stderr.String(), "anomaly model"))
	}
	metrics, err := httpGet(d.base + "/metrics")
	if err != nil || !strings.Contains(metrics, fmt.Sprintf("telguard_anomaly_retrain_calls %d", n)) || !strings.Contains(metrics, `telguard_anomaly_retrains_total{result="trained"}`) {
		t.Errorf("/metrics does not show the retrain (err %v):\n%s", err, grepLines(metrics, "retrain"))
	}

	// The calls are in the call history, for telguard anomaly train too,
	// which trains as the daemon does (the config's trees and seed).
	out, stderr, code := run(t, dir, "anomaly", "train", "--config", "telguard.yaml", "--json", "--out", filepath.Join(t.TempDir(), "check.model"))
	var sum struct{ Calls, Samples, Trees, Seed int }
	if code != 0 || json.Unmarshal([]byte(out), &sum) != nil || sum.Calls != n || sum.Samples != n || sum.Trees != 50 || sum.Seed != 3 {
		t.Fatalf("anomaly train on the stored history: exit %d, %+v, want %d calls, 50 trees, seed 3\n%s%s", code, sum, n, out, stderr)
	}

	// A model trained by hand is replaced by the next retrain
	// (retrain_every after it): the daemon's has 50 trees, not 10.
	out, stderr, code = run(t, dir, "anomaly", "train", "--config", "telguard.yaml", "--seed", "9", "--trees", "10", "--json")
	var hand struct{ Bytes int64 }
	if code != 0 || json.Unmarshal([]byte(out), &hand) != nil || hand.Bytes == 0 {
		t.Fatalf("anomaly train by hand: exit %d\n%s%s", code, out, stderr)
	}
	waitFor(t, func() bool {
		st, err := os.Stat(model)
		return err == nil && st.Size() != hand.Bytes
	}, "the next retrain to replace the hand-trained model")
}
