package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// needSIPp returns SIPp's path. CI must have it (make test installs
// sip-tester): there a missing SIPp fails the test instead of skipping it.
func needSIPp(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sipp not found: install Debian's sip-tester (make test does)")
		}
		t.Skip("sipp not found; install Debian's sip-tester to run the SIP edge tests")
	}
	return bin
}

// issued remembers the ports handed out: a free port may be picked again
// before its first user binds it.
var issued = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

func freeUDP(t *testing.T, ip string) int {
	t.Helper()
	for range 100 {
		c, err := net.ListenPacket("udp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		issued.Lock()
		key := fmt.Sprint(ip, ":", port)
		taken := issued.m[key]
		issued.m[key] = true
		issued.Unlock()
		if !taken {
			return port
		}
	}
	t.Fatal("no free UDP port")
	return 0
}

type sippRun struct {
	cmd      *exec.Cmd
	out      bytes.Buffer
	messages string
	done     chan error
}

// sipp starts SIPp on a loopback address with a scenario; remote "" makes
// it a UAS. Every run is bounded by -timeout.
func sipp(t *testing.T, bin, scenario, ip string, port int, remote string, args ...string) *sippRun {
	t.Helper()
	dir := t.TempDir()
	r := &sippRun{messages: filepath.Join(dir, "messages.log"), done: make(chan error, 1)}
	argv := append([]string{"-sf", scenario, "-i", ip, "-p", strconv.Itoa(port),
		"-timeout", "20s", "-timeout_error", "-nostdin", "-trace_msg", "-message_file", r.messages}, args...)
	if remote != "" {
		argv = append(argv, remote)
	}
	r.cmd = exec.Command(bin, argv...)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(r.messages)
			t.Logf("sipp %s (%s):\n%s\nmessages:\n%s", filepath.Base(scenario), ip, r.out.String(), tailOf(string(b), 4000))
		}
	})
	return r
}

func (r *sippRun) exit(t *testing.T) int {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(40 * time.Second):
		t.Fatal("sipp did not exit")
		return -1
	}
}

// received counts the SIP messages SIPp received whose start line begins
// with prefix ("" counts them all). SIPp's message log has a line
// "UDP message received [N] bytes :", a blank line, then the message.
func (r *sippRun) received(prefix string) int {
	b, _ := os.ReadFile(r.messages)
	n := 0
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if !strings.Contains(l, "message received") {
			continue
		}
		for _, next := range lines[i+1:] {
			if next = strings.TrimSpace(next); next != "" {
				if strings.HasPrefix(next, prefix) {
					n++
				}
				break
			}
		}
	}
	return n
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// startWithSIP starts the daemon with the SIP edge in front of a PBX on
// 127.0.0.1:pbx and returns the guard's address.
func startWithSIP(t *testing.T, pbx int) (*daemon, string) {
	t.Helper()
	dir := workdir(t)
	guard := freeUDP(t, "127.0.0.1")
	cfg := fmt.Sprintf("sip:\n  listen: [\"udp:127.0.0.1:%d\"]\n  upstream: \"udp:127.0.0.1:%d\"\n  flood_requests: 64\n  flood_window: 2s\n", guard, pbx)
	if err := os.WriteFile(filepath.Join(dir, "telguard.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, withKey(), "--config", "telguard.yaml")
	return d, "127.0.0.1:" + strconv.Itoa(guard)
}

var sipData = "../../internal/sipedge/testdata/"

// Issue #3's test (c) through the real binary: wrong passwords from one
// source get it banned by the engine; its next REGISTER is dropped
// without a reply and never reaches the PBX, while a phone elsewhere
// still calls.
func TestSIPEdgeBansBruteForce(t *testing.T) {
	bin := needSIPp(t)
	pbx := freeUDP(t, "127.0.0.1")
	d, guard := startWithSIP(t, pbx)

	// The policy's default brute-force rule bans after 3 failures for one
	// username from one source: the 4th failure bans.
	uas := sipp(t, bin, "testdata/uas_register_reject.xml", "127.0.0.1", pbx, "", "-m", "4")
	attacker := sipp(t, bin, "testdata/uac_register_badpass.xml", "127.0.0.2", freeUDP(t, "127.0.0.2"), guard, "-m", "4", "-r", "5")
	if code := attacker.exit(t); code != 0 {
		t.Fatalf("the first 4 wrong passwords should each get the PBX's 403; sipp exited %d", code)
	}
	if code := uas.exit(t); code != 0 {
		t.Fatalf("pbx exited %d", code)
	}

	// Banned: no reply, and the PBX (now taking a call) sees only the phone.
	uas = sipp(t, bin, sipData+"uas_call.xml", "127.0.0.1", pbx, "", "-m", "1")
	again := sipp(t, bin, "testdata/uac_register_badpass.xml", "127.0.0.2", freeUDP(t, "127.0.0.2"), guard, "-m", "1", "-timeout", "6s")
	phone := sipp(t, bin, sipData+"uac_call.xml", "127.0.0.3", freeUDP(t, "127.0.0.3"), guard, "-m", "1", "-s", "1133334444")
	if code := phone.exit(t); code != 0 {
		t.Fatalf("a phone on another address could not call: sipp exited %d", code)
	}
	if code := uas.exit(t); code != 0 {
		t.Fatalf("pbx exited %d (did the banned source's REGISTER reach it?)", code)
	}
	if code := again.exit(t); code == 0 {
		t.Fatal("the banned source got an answer")
	}
	if n := again.received("SIP/2.0"); n != 0 {
		t.Fatalf("the banned source received %d responses, want none", n)
	}
	if n := uas.received("REGISTER"); n != 0 {
		t.Fatalf("the PBX received %d REGISTERs after the ban", n)
	}
	_, body := d.do("GET", "/v1/decisions?rule=sip.brute_force", nil)
	if !strings.Contains(string(body), "127.0.0.2") {
		t.Fatalf("the ban is not in the decisions log: %s", body)
	}
}

// Issue #3's test (e): a flood from one source does not stop a call from
// another. The flood is sent raw from the test (start line valid, message
// not), so the filter counts it and nothing of it reaches the PBX.
func TestSIPEdgeFloodDoesNotStopCalls(t *testing.T) {
	bin := needSIPp(t)
	pbx := freeUDP(t, "127.0.0.1")
	d, guard := startWithSIP(t, pbx)

	uas := sipp(t, bin, sipData+"uas_call.xml", "127.0.0.1", pbx, "", "-m", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	flooded := make(chan int, 1)
	go func() {
		conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.4")}, net.UDPAddrFromAddrPort(mustAddrPort(guard)))
		if err != nil {
			flooded <- -1
			return
		}
		defer conn.Close()
		pkt := []byte("OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: broken\r\n\r\n")
		sent := 0
		for ctx.Err() == nil && sent < 5000 {
			conn.Write(pkt)
			sent++
			if sent%100 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
		flooded <- sent
	}()
	phone := sipp(t, bin, sipData+"uac_call.xml", "127.0.0.3", freeUDP(t, "127.0.0.3"), guard, "-m", "1", "-s", "1133334444")
	if code := phone.exit(t); code != 0 {
		t.Fatalf("the phone's call failed during the flood: sipp exited %d", code)
	}
	if code := uas.exit(t); code != 0 {
		t.Fatalf("pbx exited %d", code)
	}
	if n := <-flooded; n < 1000 {
		t.Fatalf("flood sent only %d packets", n)
	}
	resp, err := httpGet(d.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp, "\ntelguard_sip_prefilter_flood_bans_total 1\n") {
		t.Fatalf("the flooding source was not banned:\n%s", grepLines(resp, "telguard_sip_prefilter"))
	}
	// The ban is on record in the decisions log, with its reason.
	waitFor(t, func() bool {
		_, body := d.do("GET", "/v1/decisions?rule=sip.flood", nil)
		return strings.Contains(string(body), `"source_ip":"127.0.0.4"`) && strings.Contains(string(body), "flooding")
	}, "the flood ban in the decisions log")
}
