package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/sim"
)

// telguard sim --target drives a running daemon over the decision API, and
// the daemon decides exactly as the engine in process does: same blocks,
// same leaks, same money, for the same seed, start and policy — warm-up
// (baselines learned through the API) and inbound rings included.
func TestSimOverTheAPIMatchesInProcess(t *testing.T) {
	dir := workdir(t)
	if err := os.WriteFile(filepath.Join(dir, "telguard.yaml"), []byte("api:\n  any_event_time: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, withKey(), "--config", "telguard.yaml")
	cmd := exec.Command(binary, "sim", "--target", d.base, "--key", apiKey, "--rate", "0",
		"--seed", "3", "--days", "2", "--warm-up", "3", "--accounts", "30", "--json")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sim --target: %v\n%s", err, stderrOf(err))
	}
	var remote struct {
		sim.Report
		Remote sim.RemoteStats `json:"remote"`
	}
	if err := json.Unmarshal(out, &remote); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	if remote.Remote.Failures != 0 || remote.Remote.Checks != remote.Honest.Attempts+remote.Overall.Attempts+remote.WarmUpCalls+remote.Inbound {
		t.Fatalf("remote run: %+v, want every attempt checked without failures", remote.Remote)
	}
	if remote.Overall.Attempts == 0 || remote.Overall.Blocked == 0 || remote.Honest.Attempts < 200 {
		t.Fatalf("remote run too small to compare: %+v", remote.Overall)
	}

	matchInProcess(t, dir, remote.Report, "over the API")
	if remote.Latency.P99 <= 0 {
		t.Errorf("no latency measured: %+v", remote.Latency)
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// matchInProcess runs the seed-3 simulation the e2e sim tests drive
// remotely in process, at the remote run's start, and requires the same
// report: every block, leak and figure (latency aside).
func matchInProcess(t *testing.T, dir string, remote sim.Report, via string) {
	t.Helper()
	pol, err := policy.Load(filepath.Join(dir, "examples", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	local, err := sim.Simulate(context.Background(), sim.Options{
		Seed: 3, Days: 2, WarmUpDays: 3, Tenants: 1, Accounts: 30, Scenarios: sim.ScenarioNames(), Policy: pol, Start: remote.Start,
	})
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, a, b any) {
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("%s differs:\n%s: %s\nin process: %s", what, via, ja, jb)
		}
	}
	same("honest traffic", remote.Honest, local.Honest)
	same("attacks", remote.Attacks, local.Attacks)
	same("overall", remote.Overall, local.Overall)
	if remote.WarmUpCalls == 0 || remote.WarmUpCalls != local.WarmUpCalls || remote.Inbound != local.Inbound {
		t.Errorf("warm-up %d / inbound %d %s, %d / %d in process", remote.WarmUpCalls, remote.Inbound, via, local.WarmUpCalls, local.Inbound)
	}
}
