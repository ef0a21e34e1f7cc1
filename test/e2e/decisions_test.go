package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The checks a new user runs against the example policy.
func TestExamplePolicyDecisions(t *testing.T) {
	d := start(t, workdir(t), withKey())
	cases := []struct {
		name    string
		c       call
		verdict string
		rule    string
	}{
		{"domestic mobile", call{"c1", "2001", "+5511987654321", "203.0.113.10", ""}, "allow", ""},
		{"domestic national format with outside line", call{"c2", "2001", "0 11 98765-4321", "203.0.113.10", ""}, "allow", ""},
		{"foreign number, international off", call{"c3", "2001", "+14155552671", "203.0.113.10", ""}, "deny", "destination.international"},
		{"UK premium rate", call{"c4", "1001", "+449098790000", "203.0.113.10", ""}, "deny", "destination.number_type"},
		{"+882 international network", call{"c5", "1001", "+88234567890", "203.0.113.10", ""}, "deny", "destination.number_type"},
		{"+883 international network", call{"c6", "1001", "+883510012345", "203.0.113.10", ""}, "deny", "destination.number_type"},
		{"allowed country for intl group", call{"c7", "1001", "0044 20 7946 0000", "203.0.113.10", ""}, "allow", ""},
		{"country outside the intl group's list", call{"c8", "1001", "+33142685300", "203.0.113.10", ""}, "deny", "destination.country"},
		{"an internal extension is not guessed", call{"c9", "1001", "2001", "203.0.113.10", ""}, "deny", "destination.unparseable"},
	}
	for _, tc := range cases {
		dec := d.check(tc.c)
		if dec.Verdict != tc.verdict {
			t.Errorf("%s: verdict %s, want %s (rules %v)", tc.name, dec.Verdict, tc.verdict, dec.rules())
			continue
		}
		if tc.rule != "" && !dec.has(tc.rule) {
			t.Errorf("%s: rules %v, want %s", tc.name, dec.rules(), tc.rule)
		}
		if tc.verdict == "deny" && dec.SIPCode != 403 {
			t.Errorf("%s: sip_code %d, want 403", tc.name, dec.SIPCode)
		}
		if tc.name == "UK premium rate" && !strings.Contains(dec.Reasons[0].Reason, "premium") {
			t.Errorf("premium reason %q does not say premium", dec.Reasons[0].Reason)
		}
	}
}

// More than 100 attempts in a minute from one source IP: the 101st is
// blocked, and another source is unaffected.
func TestSourceIPVelocity(t *testing.T) {
	d := start(t, workdir(t), withKey())
	for i := 1; i <= 100; i++ {
		dec := d.check(call{fmt.Sprintf("v%d", i), fmt.Sprintf("%d", 3000+i%7), fmt.Sprintf("+55119876%05d", i), "198.51.100.9", ""})
		if dec.Verdict != "allow" && dec.Verdict != "challenge" {
			t.Fatalf("attempt %d blocked early: %s %v", i, dec.Verdict, dec.rules())
		}
	}
	dec := d.check(call{"v101", "3001", "+5511987600101", "198.51.100.9", ""})
	if dec.Verdict != "deny" || !dec.has("limit.ip-calls-per-minute") {
		t.Fatalf("101st attempt: %s %v, want deny by limit.ip-calls-per-minute", dec.Verdict, dec.rules())
	}
	if other := d.check(call{"o1", "4001", "+5511987600102", "198.51.100.10", ""}); other.Verdict != "allow" {
		t.Fatalf("another source was hit: %s %v", other.Verdict, other.rules())
	}
}

// The intl group's daily money quota stops calls once spent, and the usage
// survives a restart.
func TestMoneyQuotaSurvivesRestart(t *testing.T) {
	dir := workdir(t)
	d := start(t, dir, withKey())
	first := d.check(call{CallID: "q1", Account: "1002", To: "+442079460000", SourceIP: "192.0.2.1"})
	if first.Verdict != "allow" {
		t.Fatalf("first international call: %s %v", first.Verdict, first.rules())
	}
	rate := first.Destination.Rate
	if rate <= 0 {
		t.Fatalf("no rate for the UK in %+v", first)
	}
	// Talk for long enough to spend the whole $10.
	d.end("q1", 10/rate*60+1)
	if dec := d.check(call{"q2", "1002", "+442079460001", "192.0.2.1", ""}); dec.Verdict != "deny" || !dec.has("quota.money") {
		t.Fatalf("after spending the quota: %s %v, want deny by quota.money", dec.Verdict, dec.rules())
	}
	// Another account's quota is its own.
	if dec := d.check(call{"q3", "1001", "+442079460002", "192.0.2.1", ""}); dec.Verdict != "allow" {
		t.Fatalf("account 1001 was hit by 1002's quota: %s %v", dec.Verdict, dec.rules())
	}
	d.stop()

	d2 := start(t, dir, withKey())
	if dec := d2.check(call{"q4", "1002", "+442079460003", "192.0.2.1", ""}); dec.Verdict != "deny" || !dec.has("quota.money") {
		t.Fatalf("after restart: %s %v, want deny by quota.money", dec.Verdict, dec.rules())
	}
	// The call in flight before the restart is still known.
	if code, body := d2.do("POST", "/v1/calls/q3/ended", map[string]any{"duration_s": 5}); code != 204 {
		t.Fatalf("call in flight across restart: %d %s", code, body)
	}
}

// A policy with a typo is refused with its line number and the old policy
// keeps deciding, on the API reload route and on SIGHUP.
func TestBadPolicyReloadKeepsOldPolicy(t *testing.T) {
	dir := workdir(t)
	d := start(t, dir, withKey())
	path := filepath.Join(dir, "examples", "policy.yaml")
	good, _ := os.ReadFile(path)
	bad := strings.Replace(string(good), "      international: false", "      internatonal: false", 1)
	if bad == string(good) {
		t.Fatal("test setup: typo not introduced")
	}
	line := 1 + strings.Count(bad[:strings.Index(bad, "internatonal")], "\n")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, body := d.do("POST", "/v1/policy/reload", nil)
	if code != 422 || !strings.Contains(string(body), fmt.Sprintf("policy.yaml:%d", line)) || !strings.Contains(string(body), "internatonal") {
		t.Fatalf("reload of bad policy: %d %s, want 422 naming line %d", code, body, line)
	}
	if dec := d.check(call{"r1", "2001", "+14155552671", "192.0.2.5", ""}); dec.Verdict != "deny" || !dec.has("destination.international") {
		t.Fatalf("old policy not in force after refused reload: %s %v", dec.Verdict, dec.rules())
	}
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(d.stderr.String(), "policy reload refused") }, "SIGHUP refusal logged")
	if !strings.Contains(d.stderr.String(), fmt.Sprintf("policy.yaml:%d", line)) {
		t.Fatalf("SIGHUP refusal does not name the line:\n%s", d.stderr)
	}

	// A good change takes effect on reload: allow international by default.
	fixed := strings.Replace(string(good), "      international: false", "      international: true", 1)
	if err := os.WriteFile(path, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := d.do("POST", "/v1/policy/reload", nil); code != 200 {
		t.Fatalf("reload of good policy: %d %s", code, body)
	}
	if dec := d.check(call{"r2", "2001", "+14155552671", "192.0.2.5", ""}); dec.Verdict != "allow" {
		t.Fatalf("new policy not in force: %s %v", dec.Verdict, dec.rules())
	}
}

// In monitor mode a decision says what would have been blocked and allows
// the call.
func TestMonitorMode(t *testing.T) {
	dir := workdir(t)
	path := filepath.Join(dir, "examples", "policy.yaml")
	b, _ := os.ReadFile(path)
	mon := strings.Replace(string(b), "mode: enforce", "mode: monitor", 1)
	if err := os.WriteFile(path, []byte(mon), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, withKey())
	dec := d.check(call{"m1", "1001", "+449098790000", "192.0.2.7", ""})
	if dec.Verdict != "allow" || dec.WouldVerdict != "deny" {
		t.Fatalf("monitor: verdict %s would %s, want allow / deny", dec.Verdict, dec.WouldVerdict)
	}
	if len(dec.Reasons) == 0 || dec.Reasons[0].Mode != "monitor" || dec.Reasons[0].Rule != "destination.number_type" {
		t.Fatalf("monitor reasons: %+v", dec.Reasons)
	}
}

// Escalation suspends an account's international calling; the operator
// lifts it with telguard accounts unsuspend.
func TestEscalationAndUnsuspend(t *testing.T) {
	d := start(t, workdir(t), withKey())
	// 20 blocked international attempts from many sources (so no single
	// source is banned first) suspend the account.
	var last decision
	for i := 0; i < 20; i++ {
		last = d.check(call{fmt.Sprintf("e%d", i), "1001", "+449098790000", fmt.Sprintf("192.0.2.%d", 100+i), ""})
	}
	if !last.has("escalation.suspend_international") {
		t.Fatalf("20th blocked attempt did not suspend: %v", last.rules())
	}
	if dec := d.check(call{"e-ok", "1001", "+442079460000", "192.0.2.200", ""}); dec.Verdict != "deny" || !dec.has("account.suspended") {
		t.Fatalf("suspended account called abroad: %s %v", dec.Verdict, dec.rules())
	}
	if dec := d.check(call{"e-dom", "1001", "+5511987654321", "192.0.2.200", ""}); dec.Verdict != "allow" {
		t.Fatalf("suspension blocked a domestic call: %s %v", dec.Verdict, dec.rules())
	}
	out, err := exec.Command(binary, "accounts", "unsuspend", "--url", d.base, "--key", apiKey, "1001").CombinedOutput()
	if err != nil {
		t.Fatalf("unsuspend: %v\n%s", err, out)
	}
	// Two minutes on, past the per-minute limit the attempts above also hit.
	later := time.Now().Add(2 * time.Minute).Format(time.RFC3339)
	if dec := d.check(call{"e-after", "1001", "+442079460000", "192.0.2.200", later}); dec.Verdict != "allow" {
		t.Fatalf("after unsuspend: %s %v", dec.Verdict, dec.rules())
	}
	out, err = exec.Command(binary, "accounts", "unsuspend", "--url", d.base, "--key", apiKey, "1001").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not suspended") {
		t.Fatalf("second unsuspend: %v %s, want an error saying not suspended", err, out)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
