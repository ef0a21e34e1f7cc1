package sipedge

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/sipedge/prefilter"
)

// needIPv6 skips when the loopback has no ::1 — except in CI, where the
// machines have it and a skip would hide the IPv6 tests.
func needIPv6(t *testing.T) {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no IPv6 loopback: %v", err)
		}
		t.Skipf("no IPv6 loopback: %v", err)
	}
	c.Close()
}

// freeUDP6Port returns a UDP port on ::1 that was free a moment ago.
func freeUDP6Port(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func listenerPort(t *testing.T, s *Server, i int) int {
	t.Helper()
	_, hostport, _ := strings.Cut(s.Addrs()[i], ":")
	return int(netip.MustParseAddrPort(hostport).Port())
}

// A call between address families: the guard takes it in on a listener of
// the caller's family and sends it on from one of the upstream's, with a
// Record-Route for each (RFC 5658), and the PBX's BYE finds its way back.
func TestCallAcrossAddressFamilies(t *testing.T) {
	needIPv6(t)
	for _, c := range []struct{ name, caller, upstream string }{
		{"ipv6 caller, ipv4 upstream", "::1", "127.0.0.1"},
		{"ipv4 caller, ipv6 upstream", "127.0.0.1", "::1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			eng := &fakeEngine{}
			up := newPeerAt(t, c.upstream)
			srv, _ := startGuard(t, eng, up.port(), nil, func(cfg *Config) {
				cfg.Listen = []string{"udp:127.0.0.1:0", "udp:[::1]:0"}
				cfg.Upstream = "udp:" + netip.AddrPortFrom(netip.MustParseAddr(c.upstream), uint16(up.port())).String()
			})
			v4, v6 := listenerPort(t, srv, 0), listenerPort(t, srv, 1)
			callerPort, upPort := v4, v6
			if netip.MustParseAddr(c.caller).Is6() {
				callerPort, upPort = v6, v4
			}
			caller := newPeerAt(t, c.caller)

			caller.send(callerPort, invite)
			inv := up.expectRequest(sip.INVITE)
			if rrs := inv.GetHeaders("Record-Route"); len(rrs) != 2 {
				t.Errorf("Record-Routes = %v, want one per address family", rrs)
			}
			res := sip.NewResponseFromRequest(inv, 200, "OK", nil)
			res.To().Params.Add("tag", "b2")
			up.answer(upPort, res)
			caller.expectResponse(200)

			var routes string
			for _, rr := range inv.GetHeaders("Record-Route") {
				routes += "Route: " + rr.Value() + "\n"
			}
			up.send(upPort, `
BYE sip:1001@`+caller.conn.LocalAddr().String()+` SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-pbx-bye-6
`+routes+`From: <sip:5511999990000@guard>;tag=b2
To: <sip:1001@example.com>;tag=a1
Call-ID: call-1@test
CSeq: 1 BYE
Max-Forwards: 70
Content-Length: 0

`)
			bye := caller.expectRequest(sip.BYE)
			var b strings.Builder
			sip.NewResponseFromRequest(bye, 200, "OK", nil).StringWrite(&b)
			caller.send(callerPort, b.String())
			if res, ok := up.recv(2 * time.Second).(*sip.Response); !ok || res.StatusCode != 200 {
				t.Fatal("the caller's 200 to BYE did not reach the PBX")
			}
			eng.mu.Lock()
			src := eng.events[0].SourceIP
			eng.mu.Unlock()
			if src != netip.MustParseAddr(c.caller) {
				t.Errorf("call attempt source = %s, want %s", src, c.caller)
			}
			if got := waitCount(eng, event.CallEnded, 1); got != 1 {
				t.Errorf("call_ended events = %d, want 1", got)
			}
		})
	}
}

// A ban of an IPv6 source reaches the packet filter: its next datagrams
// and connections are dropped before parsing, while IPv4 callers go on.
func TestIPv6SourceBanDropsItsPackets(t *testing.T) {
	needIPv6(t)
	eng := &fakeEngine{decide: func(ev event.Event) event.Decision {
		if ev.SourceIP.Is6() {
			return event.Decision{Verdict: event.Ban, SIPCode: 403, BanSeconds: 600,
				Reasons: []event.Reason{{Rule: "sip.scanner", Mode: event.Enforce, Verdict: event.Ban}}}
		}
		return event.Decision{Verdict: event.Allow}
	}}
	filter, err := prefilter.New(prefilter.Config{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	up := newPeer(t)
	srv, v4 := startGuard(t, eng, up.port(), nil, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "udp:[::1]:0", "tcp:[::1]:0"}
		c.Filter = filter
	})
	v6 := listenerPort(t, srv, 1)
	attacker := newPeerAt(t, "::1")

	attacker.send(v6, invite)
	attacker.expectResponse(403)
	if _, reason, banned := filter.Banned(netip.IPv6Loopback()); !banned || reason != "sip.scanner" {
		t.Fatalf("::1 banned = %v (%q), want banned by sip.scanner", banned, reason)
	}
	decided := func() int { eng.mu.Lock(); defer eng.mu.Unlock(); return len(eng.events) }
	asked := decided()
	attacker.send(v6, strings.ReplaceAll(invite, "test-1", "test-2"))
	attacker.expectNothing("a banned IPv6 source")
	up.expectNothing("upstream, from a banned IPv6 source")
	if decided() != asked {
		t.Error("the engine was asked about a banned source's packet")
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.Addrs()[2], "tcp:"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("a banned IPv6 source's TCP connection was kept open (err %v)", err)
	}

	newPeer(t).send(v4, invite)
	up.expectRequest(sip.INVITE) // IPv4 callers keep working
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// SIPp over [::1], UDP and TCP, on both sides of the guard.
func TestSIPpCallsOverIPv6(t *testing.T) {
	bin := needSIPp(t)
	needIPv6(t)
	t.Parallel()
	upPort := freeUDP6Port(t)
	eng := &fakeEngine{}
	srv, _ := startGuard(t, eng, upPort, nil, func(c *Config) {
		c.Listen = []string{"udp:[::1]:0", "tcp:[::1]:0"}
		c.Upstream = "udp:[::1]:" + strconv.Itoa(upPort)
	})
	udpAddr := "[::1]:" + strconv.Itoa(listenerPort(t, srv, 0))
	tcpAddr := "[::1]:" + strconv.Itoa(listenerPort(t, srv, 1))

	uas := startSIPp(t, bin, "uas_call.xml", upPort, "", "-i", "::1", "-m", "4")
	for _, c := range []struct{ addr, transport string }{{udpAddr, "u1"}, {tcpAddr, "t1"}} {
		uac := startSIPp(t, bin, "uac_call.xml", freeUDP6Port(t), c.addr, "-i", "::1", "-t", c.transport,
			"-m", "2", "-r", "10", "-s", "1133334444")
		if code := uac.wait(t); code != 0 {
			t.Fatalf("ipv6 %s uac exited %d, want 0", c.transport, code)
		}
	}
	if code := uas.wait(t); code != 0 {
		t.Fatalf("uas exited %d, want 0", code)
	}
	if got := eng.countEventually(event.CallEnded, 4); got != 4 {
		t.Errorf("call_ended events = %d, want 4", got)
	}
	eng.mu.Lock()
	defer eng.mu.Unlock()
	transports := map[string]int{}
	for _, ev := range eng.events {
		if ev.Kind == event.CallAttempt {
			if ev.SourceIP != netip.IPv6Loopback() {
				t.Errorf("call attempt source = %s, want ::1", ev.SourceIP)
			}
			transports[ev.SIP.Transport]++
		}
	}
	if transports["udp"] != 2 || transports["tcp"] != 2 {
		t.Errorf("call attempts by transport = %v, want 2 udp and 2 tcp", transports)
	}
}
