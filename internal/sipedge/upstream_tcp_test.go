package sipedge

import (
	"bytes"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/telguard/telguard/internal/event"
)

// freeTCPPort returns a loopback port free for TCP (and, as far as
// freeUDPPort knows, not handed out for UDP either).
func freeTCPPort(t *testing.T) int { return freePort(t, "tcp4") }

// A PBX that speaks SIP over TCP only: the guard dials it, callers over
// UDP and over TCP reach it, and its own BYE finds each caller.
func TestSIPpTCPUpstream(t *testing.T) {
	bin := needSIPp(t)
	t.Parallel()
	upPort := freeTCPPort(t)
	eng := &fakeEngine{}
	srv, _ := startGuard(t, eng, upPort, nil, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "tcp:127.0.0.1:0"}
		c.Upstream = "tcp:127.0.0.1:" + strconv.Itoa(upPort)
	})
	udpAddr := strings.TrimPrefix(srv.Addrs()[0], "udp:")
	tcpAddr := strings.TrimPrefix(srv.Addrs()[1], "tcp:")

	// UDP callers: two calls the caller hangs up.
	uas := startSIPp(t, bin, "uas_call.xml", upPort, "", "-t", "t1", "-m", "2")
	uac := startSIPp(t, bin, "uac_call.xml", freeUDPPort(t), udpAddr, "-m", "2", "-r", "10", "-s", "1133334444")
	if code := uac.wait(t); code != 0 {
		t.Fatalf("udp caller exited %d, want 0", code)
	}
	if code := uas.wait(t); code != 0 {
		t.Fatalf("tcp pbx exited %d, want 0", code)
	}
	b, err := os.ReadFile(uas.messages)
	if err != nil || !bytes.Contains(b, []byte("TCP message received")) ||
		!bytes.Contains(b, []byte("Record-Route: <sip:127.0.0.1:"+strconv.Itoa(tcpPort(srv))+";transport=tcp")) {
		t.Errorf("the PBX did not get the calls over TCP with the guard's tcp Record-Route first (err %v)", err)
	}
	if got := eng.countEventually(event.CallEnded, 2); got != 2 {
		t.Errorf("call_ended events = %d, want 2", got)
	}

	// The PBX hangs up: its BYE, on the guard's connection, reaches a
	// UDP caller and then a TCP caller (the same listener on both sides:
	// the guard's two Record-Route entries name the two connections).
	for _, tc := range []struct {
		name   string
		remote string
		args   []string
	}{
		{"udp caller", udpAddr, nil},
		// Not on the PBX's IP: over TCP, that is the PBX.
		{"tcp caller", tcpAddr, []string{"-t", "t1", "-i", "127.0.0.2"}},
	} {
		uas := startSIPp(t, bin, "uas_hangup.xml", upPort, "", "-t", "t1", "-m", "1")
		uac := startSIPp(t, bin, "uac_hangup.xml", freeUDPPort(t), tc.remote, append(tc.args, "-m", "1", "-s", "1133334444")...)
		if code := uac.wait(t); code != 0 {
			t.Fatalf("%s exited %d, want 0 (the PBX's BYE reached it)", tc.name, code)
		}
		if code := uas.wait(t); code != 0 {
			t.Fatalf("pbx hanging up on the %s exited %d, want 0", tc.name, code)
		}
	}
}

// tcpPort returns the guard's TCP port.
func tcpPort(s *Server) int {
	for _, a := range s.Addrs() {
		if rest, ok := strings.CutPrefix(a, "tcp:"); ok {
			p, _ := strconv.Atoi(rest[strings.LastIndex(rest, ":")+1:])
			return p
		}
	}
	return 0
}

func TestTCPUpstreamNeedsATCPListener(t *testing.T) {
	s, err := New(Config{Listen: []string{"udp:127.0.0.1:0"}, Upstream: "tcp:127.0.0.1:5070", Tenant: "demo"}, &fakeEngine{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err == nil || !strings.Contains(err.Error(), "no tcp listener") {
		t.Fatalf("listen = %v, want a missing tcp listener named", err)
	}
	if _, err := New(Config{Listen: []string{"udp:127.0.0.1:0"}, Upstream: "tls:127.0.0.1:5061", Tenant: "demo"}, &fakeEngine{}, nil, nil); err == nil {
		t.Fatal("a tls upstream was accepted")
	}
}

// blackhole returns the address of a TCP listener whose accept queue is
// full and never drained: connection attempts to it hang, as to a PBX
// that is down behind a firewall dropping SYNs.
func blackhole(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
	for range 8 { // fill the queue until a connection attempt hangs
		c, err := net.DialTimeout("tcp4", addr, 200*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("could not fill a listen queue here")
	return ""
}

// A TCP PBX that does not answer connection attempts: callers get 503 at
// once (one dial runs in the background), not a worker stuck 5 s per
// request.
func TestBlackholedTCPUpstreamFailsFast(t *testing.T) {
	up := blackhole(t)
	eng := &fakeEngine{}
	_, port := startGuard(t, eng, 0, nil, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "tcp:127.0.0.1:0"}
		c.Upstream = "tcp:" + up
	})
	start := time.Now()
	var callers []*peer
	for i := range 3 {
		c := newPeerAt(t, "127.0.0."+strconv.Itoa(20+i))
		c.send(port, strings.Replace(invite, "call-1@test", "call-bh-"+strconv.Itoa(i), 1))
		callers = append(callers, c)
	}
	for _, c := range callers {
		c.expectResponse(503)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("three callers answered after %v, want well under the 5 s dial timeout", d)
	}
	// None of them rang: the engine counts none as up.
	if n := eng.count(event.CallEnded); n != 3 {
		t.Errorf("call_ended = %d for three INVITEs answered 503, want 3", n)
	}
}
