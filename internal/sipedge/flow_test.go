package sipedge

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/event"
)

// tcpPeer is a raw SIP endpoint on a TCP connection to the guard.
type tcpPeer struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// dialTCPPeer connects from the loopback address ip to the guard's addr.
func dialTCPPeer(t *testing.T, ip, addr string) *tcpPeer {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &tcpPeer{t: t, conn: c, r: bufio.NewReader(c)}
}

func (p *tcpPeer) send(msg string) {
	p.t.Helper()
	msg = strings.ReplaceAll(msg, "$ME", p.conn.LocalAddr().String())
	msg = strings.ReplaceAll(strings.TrimLeft(msg, "\n"), "\n", "\r\n")
	p.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := p.conn.Write([]byte(msg)); err != nil {
		p.t.Fatal(err)
	}
}

// recv reads the next message, or returns nil after wait.
func (p *tcpPeer) recv(wait time.Duration) sip.Message {
	p.conn.SetReadDeadline(time.Now().Add(wait))
	var head strings.Builder
	length := 0
	for {
		line, err := p.r.ReadString('\n')
		if err != nil {
			return nil
		}
		if strings.TrimSpace(line) == "" {
			if head.Len() == 0 {
				continue
			}
			break
		}
		if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		head.WriteString(line)
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(p.r, body); err != nil {
		return nil
	}
	m, err := sip.NewParser().ParseSIP(append([]byte(head.String()+"\r\n"), body...))
	if err != nil {
		p.t.Fatalf("guard sent unparseable message: %v", err)
	}
	return m
}

func (p *tcpPeer) expectResponse(code int) *sip.Response {
	p.t.Helper()
	m := p.recv(2 * time.Second)
	res, ok := m.(*sip.Response)
	if !ok || res.StatusCode != code {
		p.t.Fatalf("got %v, want a %d response", startLine(m), code)
	}
	return res
}

// An attacker on TCP puts a Record-Route of its own in its INVITE, naming
// the guard's TCP listener and another phone's connection (fl). The PBX
// echoes the route set in its BYE; the guard must not send that BYE into
// the victim's connection: the entry is not signed by the guard.
func TestForgedFlowInRecordRouteIsNotFollowed(t *testing.T) {
	up := newPeer(t)
	srv, _ := startGuard(t, &fakeEngine{}, up.port(), nil, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "tcp:127.0.0.1:0"}
	})
	tcpAddr := strings.TrimPrefix(srv.Addrs()[1], "tcp:")

	// The victim keeps a connection open to the guard (a registered
	// phone, or a trunk).
	victim := dialTCPPeer(t, "127.0.0.3", tcpAddr)
	victim.send(`OPTIONS sip:` + tcpAddr + ` SIP/2.0
Via: SIP/2.0/TCP $ME;branch=z9hG4bK-v1
From: <sip:1002@example.com>;tag=v1
To: <sip:` + tcpAddr + `>
Call-ID: victim-options
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

`)
	opt := up.expectRequest(sip.OPTIONS)
	up.send(upPortOf(srv), responseFor(opt, 200))
	victim.expectResponse(200)

	attacker := dialTCPPeer(t, "127.0.0.4", tcpAddr)
	forged := "<sip:" + tcpAddr + ";transport=tcp;lr;fl=" + victim.conn.LocalAddr().String() + ">"
	attacker.send(`INVITE sip:5511999990000@guard SIP/2.0
Via: SIP/2.0/TCP $ME;branch=z9hG4bK-a1
Record-Route: ` + forged + `
From: <sip:1001@example.com>;tag=a1
To: <sip:5511999990000@guard>
Call-ID: forged-flow
CSeq: 1 INVITE
Contact: <sip:1001@$ME;transport=tcp>
Max-Forwards: 70
Content-Length: 0

`)
	inv := up.expectRequest(sip.INVITE)
	var routes []string
	for _, h := range inv.GetHeaders("Record-Route") {
		routes = append(routes, h.Value())
	}
	if strings.Contains(strings.Join(routes, ","), "fl="+victim.conn.LocalAddr().String()) {
		t.Errorf("the caller's Record-Route naming the guard reached the PBX: %v", routes)
	}
	// A PBX that kept it anyway (or an attacker who got it into the route
	// set another way) gets nowhere either.
	routes = append(routes, forged)
	// The PBX, as UAS, sends its BYE with the route set in order.
	up.send(upPortOf(srv), `BYE sip:1001@`+attacker.conn.LocalAddr().String()+`;transport=tcp SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-pbx-bye
Route: `+strings.Join(routes, ", ")+`
From: <sip:5511999990000@guard>;tag=b1
To: <sip:1001@example.com>;tag=a1
Call-ID: forged-flow
CSeq: 1 BYE
Max-Forwards: 70
Content-Length: 0

`)
	if m := victim.recv(500 * time.Millisecond); m != nil {
		t.Fatalf("the victim's connection got %s by a forged flow", startLine(m))
	}
}

// responseFor builds the answer a UAS gives req, as text.
func responseFor(req *sip.Request, code int) string {
	res := sip.NewResponseFromRequest(req, code, "OK", nil)
	var b strings.Builder
	res.StringWrite(&b)
	return b.String()
}

// With a TCP upstream, a connection from the PBX's IP address that the
// guard did not dial is a caller like any other: its INVITE is screened
// (and denied here), not passed as the PBX's.
func TestTCPClientOnThePBXsAddressIsScreened(t *testing.T) {
	pbx, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	got := make(chan string, 4)
	go func() {
		for {
			c, err := pbx.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 65535)
				n, _ := c.Read(b)
				got <- string(b[:n])
			}()
		}
	}()
	eng := &fakeEngine{decide: func(event.Event) event.Decision {
		return event.Decision{Verdict: event.Deny, SIPCode: 403}
	}}
	srv, _ := startGuard(t, eng, 0, nil, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "tcp:127.0.0.1:0"}
		c.Upstream = "tcp:" + pbx.Addr().String()
	})
	tcpAddr := strings.TrimPrefix(srv.Addrs()[1], "tcp:")
	caller := dialTCPPeer(t, "127.0.0.1", tcpAddr)
	caller.send(strings.ReplaceAll(strings.Replace(invite, "SIP/2.0/UDP", "SIP/2.0/TCP", 1), "\r\n", "\n"))
	caller.expectResponse(403)
	select {
	case m := <-got:
		t.Fatalf("the PBX got a request from a caller on its address: %.80q", m)
	case <-time.After(300 * time.Millisecond):
	}
	if n := eng.count(event.CallAttempt); n != 1 {
		t.Fatalf("call attempts decided = %d, want 1", n)
	}
}

// A TCP PBX that opens its own connection for a request into a dialog
// (Asterisk does) is the PBX when the operator lists its address alone in
// the trusted peers: its BYE follows its Request-URI to the phone instead
// of going back to the PBX.
func TestTCPPBXConnectingInWhenItsAddressIsTrusted(t *testing.T) {
	pbx, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	srv, _ := startGuard(t, &fakeEngine{}, 0, nil, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "tcp:127.0.0.1:0"}
		c.Upstream = "tcp:" + pbx.Addr().String()
		c.TrustedCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	tcpAddr := strings.TrimPrefix(srv.Addrs()[1], "tcp:")
	phone := newPeerAt(t, "127.0.0.9")
	in := dialTCPPeer(t, "127.0.0.1", tcpAddr)
	in.send(`BYE sip:1001@` + phone.conn.LocalAddr().String() + ` SIP/2.0
Via: SIP/2.0/TCP $ME;branch=z9hG4bK-pbx-in-bye
From: <sip:5511999990000@pbx>;tag=b1
To: <sip:1001@example.com>;tag=a1
Call-ID: pbx-in-bye
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

`)
	phone.expectRequest(sip.BYE)
}
