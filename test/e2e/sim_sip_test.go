package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/telguard/telguard/internal/sim"
)

// telguard sim --sip-target plays the simulated traffic as SIP calls
// through the real binary's SIP edge (in simulation mode), being the
// callers, the carrier and the PBX, and the edge decides exactly as the
// engine in process does: same blocks by the same rules, same leaks, same
// money, for the same seed, start and policy — warm-up (baselines learned
// from the edge's events), bans judged on event time and inbound rings
// from the trusted carrier included.
func TestSimThroughTheSIPEdgeMatchesInProcess(t *testing.T) {
	dir := workdir(t)
	guard, pbx := freeUDP(t, "127.0.0.1"), freeUDP(t, "127.0.0.1")
	const carrier = "127.0.0.2"
	// The daemon's config is the one telguard sim --help gives, on this
	// test's ports: the help's example is tested.
	cfg := helpSIPConfig(t)
	// docs/sip.md gives the same config: the docs' example is tested too.
	if docs := docsSIPConfig(t); docs != cfg {
		t.Fatalf("docs/sip.md's simulation config differs from sim --help's:\ndocs:\n%s\nhelp:\n%s", docs, cfg)
	}
	cfg = strings.ReplaceAll(cfg, "127.0.0.1:5060", "127.0.0.1:"+strconv.Itoa(guard))
	cfg = strings.ReplaceAll(cfg, "127.0.0.1:5070", "127.0.0.1:"+strconv.Itoa(pbx))
	if !strings.Contains(cfg, "simulation: true") || !strings.Contains(cfg, carrier+"/32") || strings.Contains(cfg, `:5060"`) || strings.Contains(cfg, `:5070"`) {
		t.Fatalf("sim --help's SIP config is not what this test runs:\n%s", cfg)
	}
	if err := os.WriteFile(filepath.Join(dir, "telguard.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, withKey(), "--config", "telguard.yaml")
	cmd := exec.Command(binary, "sim", "--sip-target", "udp:127.0.0.1:"+strconv.Itoa(guard), "--sip-pbx", "127.0.0.1:"+strconv.Itoa(pbx),
		"--sip-carrier", carrier, "--rate", "0", "--seed", "3", "--days", "2", "--warm-up", "3", "--accounts", "30", "--json")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sim --sip-target: %v\n%s\ndaemon:\n%s", err, stderrOf(err), tailOf(d.stderr.String(), 4000))
	}
	var remote struct {
		sim.Report
		Remote sim.RemoteStats `json:"remote"`
	}
	if err := json.Unmarshal(out, &remote); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	calls := remote.Honest.Attempts + remote.Overall.Attempts + remote.WarmUpCalls + remote.Inbound
	if remote.Remote.Failures != 0 || remote.Remote.Checks != calls {
		t.Fatalf("SIP run: %+v, want every call sent without failures", remote.Remote)
	}
	if remote.Overall.Attempts == 0 || remote.Overall.Blocked == 0 || remote.Honest.Attempts < 200 || remote.Inbound == 0 {
		t.Fatalf("SIP run too small to compare: %+v, %d inbound", remote.Overall, remote.Inbound)
	}

	matchInProcess(t, dir, remote.Report, "through SIP")
	if remote.Latency.Decisions != calls || remote.Latency.P99 <= 0 || !strings.HasPrefix(remote.Target, "udp:") {
		t.Errorf("latency %+v over %d calls, target %q", remote.Latency, calls, remote.Target)
	}

	// The calls really went through the edge: it counted an INVITE for
	// every call (more only if one was retransmitted), and blocked at
	// least as many as the report says.
	metrics, err := httpGet(d.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	invites, blocked := 0.0, 0.0
	for _, line := range strings.Split(grepLines(metrics, `telguard_sip_requests_total{method="INVITE"`), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		invites += v
		for _, verdict := range []string{"throttle", "deny", "ban"} {
			if strings.Contains(f[0], `verdict="`+verdict+`"`) {
				blocked += v
			}
		}
	}
	if invites < float64(calls) || blocked < float64(remote.Overall.Blocked+remote.Honest.Blocked) {
		t.Errorf("the edge counted %.0f INVITEs (%.0f blocked) for %d calls (%d blocked):\n%s", invites, blocked, calls,
			remote.Overall.Blocked+remote.Honest.Blocked, grepLines(metrics, "telguard_sip_requests_total"))
	}
}

// docsSIPConfig returns the sip: block of the sim.yaml example in
// docs/sip.md, dedented as helpSIPConfig returns the help's.
func docsSIPConfig(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../docs/sip.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "   # sim.yaml\n")
	if !ok {
		t.Fatal("no sim.yaml example in docs/sip.md")
	}
	var b strings.Builder
	in := false
	for _, line := range strings.Split(rest, "\n") {
		line = strings.TrimPrefix(line, "   ")
		switch {
		case line == "sip:":
			in = true
		case in && !strings.HasPrefix(line, "  "):
			return b.String()
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	t.Fatal("no sip: block in docs/sip.md's sim.yaml example")
	return ""
}

// helpSIPConfig returns the sip: example of telguard sim --help, dedented.
func helpSIPConfig(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(binary, "sim", "--help").Output()
	if err != nil {
		t.Fatalf("sim --help: %v", err)
	}
	var b strings.Builder
	in := false
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case line == "  sip:":
			in = true
		case in && strings.TrimSpace(line) == "":
			return b.String()
		}
		if in {
			b.WriteString(strings.TrimPrefix(line, "  ") + "\n")
		}
	}
	t.Fatalf("no sip: example in sim --help:\n%s", out)
	return ""
}
