package sipedge

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telguard/telguard/examples"
	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

// These tests put SIPp on both sides of the guard, on loopback: a UAS
// scenario plays the PBX, UAC scenarios play phones and scanners.

const sippTimeout = 30 * time.Second

// needSIPp returns the sipp binary, or skips (fails on CI) without it.
func needSIPp(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sipp not found: install sip-tester (scripts/deps.sh) to run the SIP end-to-end tests")
		}
		t.Skip("sipp not found: install sip-tester to run the SIP end-to-end tests")
	}
	return p
}

// freeUDPPort returns a loopback UDP port that was free a moment ago.
// issuedPorts are the ports freeUDPPort handed out in this process: a
// port is free when asked for but may be picked again before its user
// binds it, and two peers on one port make the guard see a loop.
var issuedPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

func freeUDPPort(t *testing.T) int { return freePort(t, "udp4") }

// freePort returns a loopback port the kernel had free for network
// ("udp4" or "tcp4") and that no other test of this package was handed,
// whichever network it asked for.
func freePort(t *testing.T, network string) int {
	t.Helper()
	for range 100 {
		var port int
		if network == "udp4" {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			port = c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
		} else {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port = ln.Addr().(*net.TCPAddr).Port
			ln.Close()
		}
		issuedPorts.Lock()
		taken := issuedPorts.m[port]
		issuedPorts.m[port] = true
		issuedPorts.Unlock()
		if !taken {
			return port
		}
	}
	t.Fatalf("no free %s port", network)
	return 0
}

// fakeEngine records what it is told and decides with decide (allow when
// nil).
type fakeEngine struct {
	mu       sync.Mutex
	events   []event.Event
	observed []event.Event
	decide   func(event.Event) event.Decision
}

func (f *fakeEngine) Decide(_ context.Context, ev event.Event) event.Decision {
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.mu.Unlock()
	if f.decide != nil {
		return f.decide(ev)
	}
	return event.Decision{Verdict: event.Allow}
}

func (f *fakeEngine) Observe(_ context.Context, ev event.Event) error {
	f.mu.Lock()
	f.observed = append(f.observed, ev)
	f.mu.Unlock()
	return nil
}

// count returns how many decided and observed events have kind k.
// countEventually waits (up to 5 s) for n events of kind k: events are
// reported after the message is forwarded, so a test that has seen the
// forwarded message may look a moment too early.
func (f *fakeEngine) countEventually(k event.Kind, n int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := f.count(k)
		if got == n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fakeEngine) count(k event.Kind) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ev := range append(append([]event.Event(nil), f.events...), f.observed...) {
		if ev.Kind == k {
			n++
		}
	}
	return n
}

// startGuard runs a guard on a free loopback port in front of upstreamPort
// and returns it with its port.
func startGuard(t *testing.T, eng Engine, upstreamPort int, reg *prometheus.Registry, tweak func(*Config)) (*Server, int) {
	t.Helper()
	cfg := Config{
		Listen:   []string{"udp:127.0.0.1:0"},
		Upstream: "udp:127.0.0.1:" + strconv.Itoa(upstreamPort),
		Tenant:   "demo",
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg, eng, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, runGuard(t, s)
}

// runGuard runs s (built by New) until the test ends and returns its
// first (UDP) listener's port.
func runGuard(t *testing.T, s *Server) int {
	t.Helper()
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	ap := netip.MustParseAddrPort(strings.TrimPrefix(s.Addrs()[0], "udp:"))
	return int(ap.Port())
}

// sipp is one SIPp process.
type sipp struct {
	name     string
	cmd      *exec.Cmd
	out      bytes.Buffer
	messages string // its -trace_msg file
	done     chan struct{}
	err      error
}

// startSIPp starts SIPp with a scenario from testdata on a loopback port.
// remote is "" for a UAS.
func startSIPp(t *testing.T, bin, scenario string, port int, remote string, args ...string) *sipp {
	t.Helper()
	dir := t.TempDir()
	p := &sipp{name: scenario, messages: filepath.Join(dir, "messages.log"), done: make(chan struct{})}
	argv := []string{
		"-sf", filepath.Join("testdata", scenario),
		"-i", "127.0.0.1", "-p", strconv.Itoa(port),
		"-timeout", "30s", "-timeout_error", "-nostdin",
		"-trace_msg", "-message_file", p.messages,
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
	}
	argv = append(argv, args...)
	if remote != "" {
		argv = append(argv, remote)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sippTimeout+10*time.Second)
	p.cmd = exec.CommandContext(ctx, bin, argv...)
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.out
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start sipp %s: %v", scenario, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("sipp %s output:\n%s", scenario, tail(p.out.String(), 3000))
			if b, err := os.ReadFile(filepath.Join(dir, "errors.log")); err == nil {
				t.Logf("sipp %s errors:\n%s", scenario, tail(string(b), 3000))
			}
			if b, err := os.ReadFile(p.messages); err == nil {
				t.Logf("sipp %s messages:\n%s", scenario, tail(string(b), 6000))
			}
		}
	})
	return p
}

// wait waits for SIPp to exit and returns its exit code.
func (p *sipp) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(sippTimeout + 15*time.Second):
		t.Fatalf("sipp %s did not exit", p.name)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("sipp %s: %v", p.name, p.err)
	}
	return 0
}

// received counts the messages SIPp received whose first line starts with
// prefix ("INVITE ", "SIP/2.0 ").
func (p *sipp) received(t *testing.T, prefix string) int {
	t.Helper()
	b, err := os.ReadFile(p.messages)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0
		}
		t.Fatal(err)
	}
	n := 0
	blocks := strings.Split(string(b), "message received")
	for _, blk := range blocks[1:] {
		// "message received [N] bytes :\n\n<first line>"
		_, rest, _ := strings.Cut(blk, ":\n")
		if strings.HasPrefix(strings.TrimLeft(rest, "\r\n"), prefix) {
			n++
		}
	}
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func TestSIPpRegisterAndCallPass(t *testing.T) {
	bin := needSIPp(t)
	t.Parallel()
	upPort := freeUDPPort(t)
	eng := &fakeEngine{}
	_, guardPort := startGuard(t, eng, upPort, nil, nil)
	guard := "127.0.0.1:" + strconv.Itoa(guardPort)
	const n = 3

	uas := startSIPp(t, bin, "uas_register.xml", upPort, "", "-m", strconv.Itoa(n))
	uac := startSIPp(t, bin, "uac_register.xml", freeUDPPort(t), guard, "-m", strconv.Itoa(n), "-r", "10")
	if code := uac.wait(t); code != 0 {
		t.Fatalf("register uac exited %d, want 0 (every registration through)", code)
	}
	if code := uas.wait(t); code != 0 {
		t.Fatalf("register uas exited %d, want 0", code)
	}

	uas = startSIPp(t, bin, "uas_call.xml", upPort, "", "-m", strconv.Itoa(n))
	uac = startSIPp(t, bin, "uac_call.xml", freeUDPPort(t), guard, "-m", strconv.Itoa(n), "-r", "10", "-s", "1133334444")
	if code := uac.wait(t); code != 0 {
		t.Fatalf("call uac exited %d, want 0 (every call through)", code)
	}
	if code := uas.wait(t); code != 0 {
		t.Fatalf("call uas exited %d, want 0", code)
	}

	for _, c := range []struct {
		kind event.Kind
		want int
	}{
		{event.SIPRequest, 2 * n}, // the REGISTER and its authenticated retry
		{event.SIPAuthFailure, n}, // the 401 challenge
		{event.SIPAuthSuccess, n},
		{event.CallAttempt, n},
		{event.CallAnswered, n},
		{event.CallEnded, n},
	} {
		if got := eng.count(c.kind); got != c.want {
			t.Errorf("%s events = %d, want %d", c.kind, got, c.want)
		}
	}
	eng.mu.Lock()
	defer eng.mu.Unlock()
	for _, ev := range eng.events {
		if ev.Kind == event.SIPAuthFailure && (ev.SIP.Status != 401 || ev.SIP.User != "1001") {
			t.Errorf("auth failure event: status %d user %q, want 401 and 1001", ev.SIP.Status, ev.SIP.User)
		}
		if ev.Kind == event.CallAttempt {
			if ev.To != "1133334444" || ev.Account != "1001" || ev.Tenant != "demo" || ev.Sensor != "sip" ||
				ev.SourceIP != netip.MustParseAddr("127.0.0.1") || ev.UserAgent != "telguard-test-phone" || ev.CallID == "" {
				t.Errorf("call attempt event = %+v", ev)
			}
		}
	}
}

func TestSIPpDeniedDestinationNeverReachesUpstream(t *testing.T) {
	bin := needSIPp(t)
	t.Parallel()
	pol, err := policy.Parse("examples/policy.yaml", examples.Policy, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(pol, engine.Options{})
	upPort := freeUDPPort(t)
	_, guardPort := startGuard(t, eng, upPort, nil, nil)
	guard := "127.0.0.1:" + strconv.Itoa(guardPort)

	// The UAS takes exactly one call: the allowed one that follows.
	uas := startSIPp(t, bin, "uas_call.xml", upPort, "", "-m", "1")
	denied := startSIPp(t, bin, "uac_denied.xml", freeUDPPort(t), guard, "-m", "2", "-r", "10", "-s", "+449098790000")
	if code := denied.wait(t); code != 0 {
		t.Fatalf("denied uac exited %d, want 0 (a 403 with a Reason for every call)", code)
	}
	allowed := startSIPp(t, bin, "uac_call.xml", freeUDPPort(t), guard, "-m", "1", "-s", "1133334444")
	if code := allowed.wait(t); code != 0 {
		t.Fatalf("allowed uac exited %d, want 0", code)
	}
	if code := uas.wait(t); code != 0 {
		t.Fatalf("uas exited %d, want 0", code)
	}
	if got := uas.received(t, "INVITE "); got != 1 {
		t.Errorf("upstream saw %d INVITEs, want 1 (the allowed call only)", got)
	}
	if got := uas.received(t, "ACK "); got != 1 {
		t.Errorf("upstream saw %d ACKs, want 1 (the denied calls' ACKs stay at the guard)", got)
	}
	if got := denied.received(t, "SIP/2.0 403"); got < 2 {
		t.Errorf("denied caller got %d 403s, want 2", got)
	}
}

func TestSIPpSilentDropGivesNoReply(t *testing.T) {
	bin := needSIPp(t)
	t.Parallel()
	eng := &fakeEngine{decide: func(ev event.Event) event.Decision {
		if ev.UserAgent == "friendly-scanner" {
			return event.Decision{Verdict: event.Ban, SIPCode: 403, Silent: true,
				Reasons: []event.Reason{{Rule: "sip.scanner", Mode: event.Enforce, Verdict: event.Ban}}}
		}
		return event.Decision{Verdict: event.Allow}
	}}
	upPort := freeUDPPort(t)
	reg := prometheus.NewRegistry()
	_, guardPort := startGuard(t, eng, upPort, reg, nil)
	guard := "127.0.0.1:" + strconv.Itoa(guardPort)

	uas := startSIPp(t, bin, "uas_call.xml", upPort, "", "-m", "1")
	scanner := startSIPp(t, bin, "uac_silent.xml", freeUDPPort(t), guard, "-m", "1", "-s", "100")
	phone := startSIPp(t, bin, "uac_call.xml", freeUDPPort(t), guard, "-m", "1", "-s", "1133334444")
	if code := phone.wait(t); code != 0 {
		t.Fatalf("phone uac exited %d, want 0: another source must keep working", code)
	}
	if code := scanner.wait(t); code != 1 {
		t.Fatalf("scanner uac exited %d, want 1 (its call failed)", code)
	}
	if got := scanner.received(t, ""); got != 0 {
		t.Errorf("scanner received %d messages, want none", got)
	}
	if code := uas.wait(t); code != 0 {
		t.Fatalf("uas exited %d, want 0", code)
	}
	if got := uas.received(t, "INVITE "); got != 1 {
		t.Errorf("upstream saw %d INVITEs, want 1 (the phone's)", got)
	}
	if got := counterValue(t, reg, "telguard_sip_dropped_total", "silent"); got < 1 {
		t.Errorf("silent drops = %v, want at least 1", got)
	}
}

// counterValue reads one series of a counter vector from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestSIPpCallOverTCPToUDPUpstream(t *testing.T) {
	bin := needSIPp(t)
	t.Parallel()
	upPort := freeUDPPort(t)
	eng := &fakeEngine{}
	srv, _ := startGuard(t, eng, upPort, nil, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "tcp:127.0.0.1:0"}
	})
	tcpAddr := strings.TrimPrefix(srv.Addrs()[1], "tcp:")

	uas := startSIPp(t, bin, "uas_call.xml", upPort, "", "-m", "2")
	uac := startSIPp(t, bin, "uac_call.xml", freeUDPPort(t), tcpAddr, "-t", "t1", "-m", "2", "-r", "10", "-s", "1133334444")
	if code := uac.wait(t); code != 0 {
		t.Fatalf("tcp uac exited %d, want 0", code)
	}
	if code := uas.wait(t); code != 0 {
		t.Fatalf("uas exited %d, want 0", code)
	}
	if got := eng.countEventually(event.CallEnded, 2); got != 2 {
		t.Errorf("call_ended events = %d, want 2", got)
	}
	if b, err := os.ReadFile(uac.messages); err != nil || !bytes.Contains(b, []byte("TCP message received")) {
		t.Errorf("the caller's messages did not come over TCP (err %v)", err)
	}
	if b, err := os.ReadFile(uas.messages); err != nil || !bytes.Contains(b, []byte("Record-Route: <sip:127.0.0.1:"+strconv.Itoa(upPortOf(srv))+";transport=udp")) {
		t.Errorf("the PBX did not get the guard's udp Record-Route first (err %v)", err)
	}
}

// upPortOf returns the guard's UDP port.
func upPortOf(s *Server) int {
	return int(netip.MustParseAddrPort(strings.TrimPrefix(s.Addrs()[0], "udp:")).Port())
}

func TestSIPpPBXHangsUpATCPCaller(t *testing.T) {
	bin := needSIPp(t)
	t.Parallel()
	upPort := freeUDPPort(t)
	eng := &fakeEngine{}
	srv, _ := startGuard(t, eng, upPort, nil, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "tcp:127.0.0.1:0"}
	})
	tcpAddr := strings.TrimPrefix(srv.Addrs()[1], "tcp:")

	uas := startSIPp(t, bin, "uas_hangup.xml", upPort, "", "-m", "1")
	uac := startSIPp(t, bin, "uac_hangup.xml", freeUDPPort(t), tcpAddr, "-t", "t1", "-m", "1", "-s", "1133334444")
	if code := uac.wait(t); code != 0 {
		t.Fatalf("tcp uac exited %d, want 0 (the PBX's BYE reached it)", code)
	}
	if code := uas.wait(t); code != 0 {
		t.Fatalf("uas exited %d, want 0 (the caller's 200 to BYE reached it)", code)
	}
	if got := eng.countEventually(event.CallEnded, 1); got != 1 {
		t.Errorf("call_ended events = %d, want 1", got)
	}
}
