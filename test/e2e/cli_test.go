package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestCheckCommand(t *testing.T) {
	dir := workdir(t)
	out, _, code := run(t, dir, "check", "--policy", "examples/policy.yaml", "--tenant", "demo", "--account", "1001", "--to", "+449098790000", "--ip", "192.0.2.1", "--at", "2026-03-02T10:00:00-03:00")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var d decision
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("not one JSON object: %q", out)
	}
	if d.Verdict != "deny" || !d.has("destination.number_type") || d.SIPCode != 403 {
		t.Fatalf("check premium: %+v", d)
	}
	for _, args := range [][]string{
		{"check", "--tenant", "demo", "--account", "1001"},                          // no --to
		{"check", "--tenant", "demo", "--account", "1", "--to", "1", "--ip", "x.y"}, // bad ip
		{"check", "--tenant", "nope", "--account", "1", "--to", "+4420"},            // unknown tenant
		{"check", "--tenant", "demo", "--account", "1", "--to", "+4420", "--at", "yesterday"},
		{"check", "--policy", "missing.yaml", "--tenant", "demo", "--account", "1", "--to", "+4420"},
	} {
		if _, stderr, code := run(t, dir, args...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d stderr %q, want 2 and a message", args, code, stderr)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	dir := workdir(t)
	if out, _, code := run(t, dir, "policy", "validate", "examples/policy.yaml"); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("valid policy: exit %d %q", code, out)
	}
	// The load profile the benchmarks use must stay a valid policy.
	if out, _, code := run(t, "../..", "policy", "validate", "examples/bench/policy.yaml"); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("bench policy: exit %d %q", code, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("tenants:\n  demo:\n    home_country: BR\n    limits:\n      - id: x\n        key: source_ip\n        metric: calls\n        window: 1 minute\n        critical: 10\n"), 0o644)
	_, stderr, code := run(t, dir, "policy", "validate", bad)
	if code != 1 || !strings.Contains(stderr, "bad.yaml:8") {
		t.Fatalf("bad policy: exit %d stderr %q, want 1 and bad.yaml:8", code, stderr)
	}
}

func TestGeneratedKeyIsPrintedOnceAndKept(t *testing.T) {
	dir := workdir(t)
	d := start(t, dir, nil)
	out := d.stdout.String()
	if !strings.Contains(out, "tg_") {
		t.Fatalf("no generated key printed: %q", out)
	}
	d.stop()
	key, err := os.ReadFile(filepath.Join(dir, "data", "api-key"))
	if err != nil || !strings.Contains(out, strings.TrimSpace(string(key))) {
		t.Fatalf("kept key %q (%v) differs from printed %q", key, err, out)
	}
	if st, _ := os.Stat(filepath.Join(dir, "data", "api-key")); st.Mode().Perm() != 0o600 {
		t.Fatalf("api-key mode %v, want 0600", st.Mode().Perm())
	}
	d2 := start(t, dir, nil)
	if strings.Contains(d2.stdout.String(), "tg_") {
		t.Fatalf("key printed again on restart: %q", d2.stdout.String())
	}
}
