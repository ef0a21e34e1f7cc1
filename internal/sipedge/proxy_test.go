package sipedge

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/sipedge/prefilter"
)

// These tests drive the guard with hand-written SIP over loopback UDP, for
// the cases SIPp scenarios do not reach easily.

// peer is a raw UDP SIP endpoint.
type peer struct {
	t     *testing.T
	conn  *net.UDPConn
	guard netip.Addr // the loopback address send writes to
}

func newPeer(t *testing.T) *peer { return newPeerAt(t, "127.0.0.1") }

// newPeerAt binds a peer to another loopback address (Linux routes all of
// 127/8 to lo), for tests that tell sources apart by IP, or to ::1, when it
// sends to the guard's IPv6 loopback listener.
func newPeerAt(t *testing.T, ip string) *peer {
	t.Helper()
	a := netip.MustParseAddr(ip)
	network, guard := "udp4", netip.MustParseAddr("127.0.0.1")
	if a.Is6() {
		network, guard = "udp6", netip.IPv6Loopback()
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t: t, conn: c, guard: guard}
}

func (p *peer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// send writes msg to the loopback port, after replacing $ME with the
// peer's own address.
func (p *peer) send(port int, msg string) {
	p.t.Helper()
	msg = strings.ReplaceAll(msg, "$ME", p.conn.LocalAddr().String())
	if !strings.Contains(msg, "\r\n") {
		msg = strings.ReplaceAll(strings.TrimLeft(msg, "\n"), "\n", "\r\n")
	}
	if _, err := p.conn.WriteToUDPAddrPort([]byte(msg), netip.AddrPortFrom(p.guard, uint16(port))); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next message, or nil after wait.
func (p *peer) recv(wait time.Duration) sip.Message {
	p.t.Helper()
	buf := make([]byte, 65535)
	p.conn.SetReadDeadline(time.Now().Add(wait))
	n, _, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil
	}
	m, err := sip.NewParser().ParseSIP(buf[:n])
	if err != nil {
		p.t.Fatalf("guard sent unparseable message: %v\n%s", err, buf[:n])
	}
	return m
}

func (p *peer) expectNothing(what string) {
	p.t.Helper()
	if m := p.recv(300 * time.Millisecond); m != nil {
		p.t.Errorf("%s: got %s, want nothing", what, startLine(m))
	}
}

func (p *peer) expectResponse(code int) *sip.Response {
	p.t.Helper()
	m := p.recv(2 * time.Second)
	res, ok := m.(*sip.Response)
	if !ok || res.StatusCode != code {
		p.t.Fatalf("got %v, want a %d response", startLine(m), code)
	}
	return res
}

func (p *peer) expectRequest(method sip.RequestMethod) *sip.Request {
	p.t.Helper()
	m := p.recv(2 * time.Second)
	req, ok := m.(*sip.Request)
	if !ok || req.Method != method {
		p.t.Fatalf("got %v, want a %s request", startLine(m), method)
	}
	return req
}

func startLine(m sip.Message) string {
	switch m := m.(type) {
	case *sip.Request:
		return m.StartLine()
	case *sip.Response:
		return m.StartLine()
	}
	return "nothing"
}

const invite = `
INVITE sip:5511999990000@guard SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-test-1;rport
From: <sip:1001@example.com>;tag=a1
To: <sip:5511999990000@guard>
Call-ID: call-1@test
CSeq: 1 INVITE
Max-Forwards: 70
Contact: <sip:1001@$ME>
Content-Length: 0

`

// proxyRig is a guard with a fake upstream and a caller.
type proxyRig struct {
	eng      *fakeEngine
	srv      *Server
	port     int
	upstream *peer
	caller   *peer
}

func newRig(t *testing.T, eng *fakeEngine, tweak func(*Config)) *proxyRig {
	t.Helper()
	up := newPeer(t)
	srv, port := startGuard(t, eng, up.port(), nil, tweak)
	return &proxyRig{eng: eng, srv: srv, port: port, upstream: up, caller: newPeer(t)}
}

func (r *proxyRig) decided() int {
	r.eng.mu.Lock()
	defer r.eng.mu.Unlock()
	return len(r.eng.events)
}

func TestRetransmissionIsDecidedOnceAndKeepsItsBranch(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	r.caller.send(r.port, invite)
	first := r.upstream.expectRequest(sip.INVITE)
	r.caller.send(r.port, invite)
	second := r.upstream.expectRequest(sip.INVITE)
	b1, _ := first.Via().Params.Get("branch")
	b2, _ := second.Via().Params.Get("branch")
	if b1 != b2 || !strings.HasPrefix(b1, branchPrefix) {
		t.Errorf("branches %q and %q: want the same guard branch", b1, b2)
	}
	if mf := first.MaxForwards(); mf == nil || mf.Val() != 69 {
		t.Errorf("Max-Forwards = %v, want 69", mf)
	}
	if rr := first.RecordRoute(); rr == nil || !strings.Contains(rr.Value(), ";lr") {
		t.Errorf("Record-Route = %v, want the guard's, loose-routing", rr)
	}
	if n := r.decided(); n != 1 {
		t.Errorf("engine asked %d times, want 1", n)
	}
}

func TestDeniedRetransmissionGetsTheSameAnswer(t *testing.T) {
	eng := &fakeEngine{decide: func(event.Event) event.Decision {
		return event.Decision{Verdict: event.Deny, SIPCode: 603,
			Reasons: []event.Reason{{Rule: "destination.country", Mode: event.Enforce, Verdict: event.Deny}}}
	}}
	r := newRig(t, eng, nil)
	r.caller.send(r.port, invite)
	res := r.caller.expectResponse(603)
	if h := res.GetHeader("Reason"); h == nil || h.Value() != `SIP;cause=603;text="destination.country"` {
		t.Errorf("Reason = %v", h)
	}
	if v := res.Via(); v == nil || v.Params.GetOr("received", "") != "127.0.0.1" || v.Params.GetOr("rport", "") != strconv.Itoa(r.caller.port()) {
		t.Errorf("Via = %v, want received and rport filled in", v)
	}
	r.caller.send(r.port, invite)
	r.caller.expectResponse(603)
	r.upstream.expectNothing("upstream after a denied INVITE")
	if n := r.decided(); n != 1 {
		t.Errorf("engine asked %d times, want 1", n)
	}
}

func TestMaxForwardsZeroGets483(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	r.caller.send(r.port, strings.Replace(invite, "Max-Forwards: 70", "Max-Forwards: 0", 1))
	r.caller.expectResponse(483)
	r.upstream.expectNothing("upstream after Max-Forwards 0")
}

func TestInDialogRequestNeedsTheGuardsStamp(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	bye := `
BYE sip:pbx@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-bye-1
From: <sip:1001@example.com>;tag=a1
To: <sip:5511999990000@guard>;tag=b2
Call-ID: forged@test
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

`
	r.caller.send(r.port, bye)
	r.caller.expectResponse(481)
	r.upstream.expectNothing("upstream after a forged BYE")

	// With a stamp from a dialog that passed the guard, it goes through.
	stamp := r.srv.stamp(stampScreened, 0, "", "forged@test")
	withRoute := strings.Replace(bye, "Max-Forwards: 70",
		"Route: <sip:127.0.0.1:"+strconv.Itoa(r.port)+";transport=udp;lr;tg="+stamp+">\nMax-Forwards: 70", 1)
	r.caller.send(r.port, withRoute)
	got := r.upstream.expectRequest(sip.BYE)
	if got.Route() != nil {
		t.Errorf("the guard's Route was not removed: %v", got.Route())
	}
	// The stamp vouches for a call this guard does not remember (a
	// restart): the PBX's 200 ends it.
	r.upstream.answer(r.port, pbxAnswer(got, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	if n := r.eng.count(event.CallEnded); n != 1 {
		t.Errorf("call_ended events = %d when the 200 reached the caller, want 1", n)
	}
	if n := r.decided(); n != 0 {
		t.Errorf("in-dialog requests were decided %d times, want 0", n)
	}
}

func TestCancelFollowsItsInviteAndEndsTheCall(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	r.caller.send(r.port, invite)
	inv := r.upstream.expectRequest(sip.INVITE)
	r.caller.send(r.port, strings.NewReplacer("INVITE sip", "CANCEL sip", "1 INVITE", "1 CANCEL").Replace(invite))
	cancel := r.upstream.expectRequest(sip.CANCEL)
	bi, _ := inv.Via().Params.Get("branch")
	bc, _ := cancel.Via().Params.Get("branch")
	if bi != bc {
		t.Errorf("CANCEL branch %q, want the INVITE's %q", bc, bi)
	}
	// The call ends with the INVITE's 487, not with the CANCEL.
	r.upstream.answer(r.port, pbxAnswer(cancel, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	r.upstream.answer(r.port, pbxAnswer(inv, 487, "Request Terminated", time.Time{}))
	r.caller.expectResponse(487)
	if n := r.eng.count(event.CallEnded); n != 1 {
		t.Errorf("call_ended events = %d when the 487 reached the caller, want 1", n)
	}

	// A CANCEL for nothing the guard forwarded is not relayed.
	r.caller.send(r.port, strings.NewReplacer("INVITE sip", "CANCEL sip", "1 INVITE", "1 CANCEL", "test-1", "test-9").Replace(invite))
	r.caller.expectResponse(481)
}

func TestUpstreamAnswersBecomeEvents(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	register := `
REGISTER sip:guard SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-reg-2;rport
From: <sip:1001@guard>;tag=r1
To: <sip:1001@guard>
Call-ID: reg-1@test
CSeq: 2 REGISTER
Authorization: Digest username="1001", realm="x", nonce="n", uri="sip:guard", response="00"
Max-Forwards: 70
Content-Length: 0

`
	r.caller.send(r.port, register)
	req := r.upstream.expectRequest(sip.REGISTER)
	if req.RecordRoute() != nil {
		t.Error("REGISTER got a Record-Route; it opens no dialog")
	}
	// The upstream answers 200 to the guard, as a PBX would.
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	var b strings.Builder
	res.StringWrite(&b)
	r.upstream.send(r.port, b.String())
	got := r.caller.expectResponse(200)
	if v := got.Via(); v == nil || strings.HasPrefix(v.Params.GetOr("branch", ""), branchPrefix) {
		t.Errorf("top Via of the relayed response = %v, want the caller's", v)
	}
	if n := r.eng.countEventually(event.SIPAuthSuccess, 1); n != 1 {
		t.Errorf("sip_auth_success events = %d, want 1", n)
	}
	// A response whose top Via is not the guard's is dropped.
	r.upstream.send(r.port, b.String())
	r.caller.expectResponse(200) // the retransmitted answer is relayed
	r.caller.send(r.port, "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-x\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
	r.upstream.expectNothing("a stray response")
	if n := r.eng.countEventually(event.SIPAuthSuccess, 1); n != 1 {
		t.Errorf("sip_auth_success events after a retransmitted 200 = %d, want 1", n)
	}
}

// A trusted source on the PBX's own address (another port) is the PBX's
// traffic: neither screened nor reported. A trusted carrier elsewhere is
// reported but never blocked (inbound_test.go).
func TestTrustedSourceBypassesScreening(t *testing.T) {
	eng := &fakeEngine{decide: func(event.Event) event.Decision { return event.Decision{Verdict: event.Deny} }}
	r := newRig(t, eng, func(c *Config) { c.TrustedCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	r.caller.send(r.port, invite)
	r.upstream.expectRequest(sip.INVITE)
	if n := r.decided(); n != 0 {
		t.Errorf("engine asked %d times for a trusted source, want 0", n)
	}
}

func TestUpstreamRequestsFollowTheirRoute(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	// The PBX hangs up: the BYE goes to the caller's Contact.
	bye := `
BYE sip:1001@$CALLER SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-pbx-bye
Route: <sip:127.0.0.1:$GUARD;lr;tg=$STAMP>
From: <sip:5511999990000@pbx>;tag=b2
To: <sip:1001@example.com>;tag=a1
Call-ID: call-9@test
CSeq: 7 BYE
Max-Forwards: 70
Content-Length: 0

`
	bye = strings.NewReplacer("$CALLER", "127.0.0.1:"+strconv.Itoa(r.caller.port()), "$GUARD", strconv.Itoa(r.port),
		"$STAMP", r.srv.stamp(stampScreened, 0, "", "call-9@test")).Replace(bye)
	r.upstream.send(r.port, bye)
	got := r.caller.expectRequest(sip.BYE)
	if got.Route() != nil {
		t.Errorf("Route left on the relayed BYE: %v", got.Route())
	}
	if vias := got.GetHeaders("Via"); len(vias) != 2 {
		t.Errorf("Vias = %d, want the guard's and the PBX's", len(vias))
	}
}

func TestLoopIsRefused(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	looped := strings.Replace(invite, "Via: SIP/2.0/UDP $ME;branch=z9hG4bK-test-1;rport",
		"Via: SIP/2.0/UDP 127.0.0.1:"+strconv.Itoa(r.port)+";branch="+branchPrefix+"0-abc\nVia: SIP/2.0/UDP $ME;branch=z9hG4bK-test-1;rport", 1)
	r.caller.send(r.port, looped)
	r.upstream.expectNothing("upstream after a looped request")
}

func TestTCPConnectionsAreCapped(t *testing.T) {
	srv, _ := startGuard(t, &fakeEngine{}, newPeer(t).port(), nil, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "tcp:127.0.0.1:0"}
		c.MaxTCPConns = 1
	})
	addr := strings.TrimPrefix(srv.Addrs()[1], "tcp:")
	closedSoon := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if !closedSoon(second) {
		t.Error("a connection past the cap was kept open")
	}
	first.Close()
	time.Sleep(100 * time.Millisecond)
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if closedSoon(third) {
		t.Error("a connection was refused after the first one closed")
	}
}

func TestForgedResponseIsNotReflected(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	victim := newPeer(t)
	forged := "SIP/2.0 200 OK\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:" + strconv.Itoa(r.port) + ";branch=" + branchPrefix + "0-0123456789abcdef0123\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:" + strconv.Itoa(victim.port()) + ";branch=z9hG4bK-v\n" +
		"From: <sip:a@b>;tag=1\nTo: <sip:a@b>;tag=2\nCall-ID: x@y\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
	r.caller.send(r.port, forged)
	victim.expectNothing("a victim named by a forged response")
}

func TestAuthFailureBanDropsTheSourceUnparsed(t *testing.T) {
	eng := &fakeEngine{decide: func(ev event.Event) event.Decision {
		if ev.Kind == event.SIPAuthFailure {
			return event.Decision{Verdict: event.Ban, SIPCode: 603, BanSeconds: 600,
				Reasons: []event.Reason{{Rule: "sip.auth_failures", Mode: event.Enforce, Verdict: event.Ban}}}
		}
		return event.Decision{Verdict: event.Allow}
	}}
	up := newPeer(t)
	filter, err := prefilter.New(prefilter.Config{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	_, port := startGuard(t, eng, up.port(), nil, func(c *Config) { c.Filter = filter })
	attacker, phone := newPeerAt(t, "127.0.0.2"), newPeerAt(t, "127.0.0.3")
	register := strings.ReplaceAll(strings.TrimLeft(`
REGISTER sip:guard SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-$B;rport
From: <sip:1001@guard>;tag=r1
To: <sip:1001@guard>
Call-ID: reg-$B@test
CSeq: 1 REGISTER
Authorization: Digest username="1001", realm="x", nonce="n", uri="sip:guard", response="wrong"
Max-Forwards: 70
Content-Length: 0

`, "\n"), "\n", "\r\n")

	attacker.send(port, strings.ReplaceAll(register, "$B", "a1"))
	req := up.expectRequest(sip.REGISTER)
	var b strings.Builder
	sip.NewResponseFromRequest(req, 401, "Unauthorized", nil).StringWrite(&b)
	up.send(port, b.String())
	attacker.expectResponse(401) // the challenge still reaches it
	if _, _, banned := filter.Banned(netip.MustParseAddr("127.0.0.2")); !banned {
		t.Fatal("the engine's ban did not reach the packet filter")
	}

	asked := eng.count(event.SIPRequest)
	attacker.send(port, strings.ReplaceAll(register, "$B", "a2"))
	attacker.expectNothing("a banned source")
	up.expectNothing("upstream, from a banned source")
	if n := eng.count(event.SIPRequest); n != asked {
		t.Errorf("the engine was asked about a banned source's packet")
	}

	phone.send(port, strings.ReplaceAll(register, "$B", "p1"))
	up.expectRequest(sip.REGISTER) // another source keeps working
}

func TestProvisionalAfterFinalIsNotRelayed(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	r.caller.send(r.port, invite)
	inv := r.upstream.expectRequest(sip.INVITE)
	ok := sip.NewResponseFromRequest(inv, 200, "OK", nil)
	ok.To().Params.Add("tag", "b2")
	ringing := sip.NewResponseFromRequest(inv, 180, "Ringing", nil)
	ringing.To().Params.Add("tag", "b2")
	r.upstream.answer(r.port, ok)
	r.caller.expectResponse(200)
	r.upstream.answer(r.port, ringing) // overtaken on the way, as UDP may
	r.caller.expectNothing("a 180 after the 200")
}
