package sipedge

import (
	"bufio"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/event"
)

// tlsPBX is a PBX that takes SIP over TLS only, with a certificate of the
// test PKI: the guard must dial it and check that certificate.
type tlsPBX struct {
	ln    net.Listener
	conns chan *tlsPhone
}

func newTLSPBX(t *testing.T, p *pki) *tlsPBX {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	x := &tlsPBX{ln: ln, conns: make(chan *tlsPhone, 4)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			tc.SetDeadline(time.Now().Add(3 * time.Second))
			if tc.Handshake() != nil { // a guard refusing the certificate
				tc.Close()
				continue
			}
			tc.SetDeadline(time.Time{})
			x.conns <- &tlsPhone{t: t, conn: tc, r: bufio.NewReader(c)}
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return x
}

func (x *tlsPBX) port() int { return x.ln.Addr().(*net.TCPAddr).Port }

func (x *tlsPBX) accept(t *testing.T) *tlsPhone {
	t.Helper()
	select {
	case c := <-x.conns:
		t.Cleanup(func() { c.conn.Close() })
		return c
	case <-time.After(3 * time.Second):
		t.Fatal("the guard did not connect to the TLS upstream")
		return nil
	}
}

// A PBX over TLS: the guard dials it, checks its certificate, and a UDP
// caller's call goes through both ways (INVITE/200, ACK and BYE from the
// caller, answered over the guard's connection).
func TestTLSUpstream(t *testing.T) {
	p := newPKI(t)
	pbx := newTLSPBX(t, p)
	eng := &fakeEngine{}
	_, port := startGuard(t, eng, 0, nil, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "tls:127.0.0.1:0"}
		c.TLSCert, c.TLSKey = p.serverCert, p.serverKey
		c.Upstream = "tls:127.0.0.1:" + strconv.Itoa(pbx.port())
		c.UpstreamTLSCAs = p.caFile
	})
	caller := newPeer(t)
	caller.send(port, invite)
	up := pbx.accept(t)
	inv := up.expectRequest(sip.INVITE)
	if v := inv.Via(); v == nil || v.Transport != "TLS" {
		t.Fatalf("the guard's Via = %v, want TLS", v)
	}
	if rr := inv.RecordRoute(); rr == nil || !strings.Contains(rr.Value(), ";transport=tls") {
		t.Fatalf("Record-Route = %v, want the guard's tls listener first", rr)
	}
	ok := sip.NewResponseFromRequest(inv, 200, "OK", nil)
	ok.To().Params.Add("tag", "b2")
	ok.AppendHeader(sip.NewHeader("Contact", "<sip:pbx@127.0.0.1:"+strconv.Itoa(pbx.port())+";transport=tls>"))
	up.reply(ok)
	got := caller.expectResponse(200)
	var routes string
	rrs := got.GetHeaders("Record-Route")
	for i := len(rrs) - 1; i >= 0; i-- {
		routes += "Route: " + rrs[i].Value() + "\n"
	}
	bye := strings.NewReplacer(
		"INVITE sip:5511999990000@guard", "BYE sip:pbx@127.0.0.1:"+strconv.Itoa(pbx.port())+";transport=tls",
		"CSeq: 1 INVITE", "CSeq: 2 BYE", "z9hG4bK-test-1", "z9hG4bK-test-bye",
		"To: <sip:5511999990000@guard>", "To: <sip:5511999990000@guard>;tag=b2",
		"Max-Forwards: 70", routes+"Max-Forwards: 70").Replace(invite)
	caller.send(port, bye)
	b := up.expectRequest(sip.BYE)
	up.reply(sip.NewResponseFromRequest(b, 200, "OK", nil))
	caller.expectResponse(200)
	if got := waitCount(eng, event.CallEnded, 1); got != 1 {
		t.Errorf("call_ended events = %d, want 1", got)
	}
}

// A TLS upstream whose certificate the guard cannot verify gets nothing;
// the caller gets 502.
func TestTLSUpstreamWithAnUnknownCertificate(t *testing.T) {
	p := newPKI(t)
	pbx := newTLSPBX(t, p)
	other := newPKI(t) // trusts another CA only
	_, port := startGuard(t, &fakeEngine{}, 0, nil, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "tls:127.0.0.1:0"}
		c.TLSCert, c.TLSKey = p.serverCert, p.serverKey
		c.Upstream = "tls:127.0.0.1:" + strconv.Itoa(pbx.port())
		c.UpstreamTLSCAs = other.caFile
	})
	caller := newPeer(t)
	caller.send(port, invite)
	caller.expectResponse(502)
}

func TestTLSUpstreamNeedsATLSListener(t *testing.T) {
	if _, err := New(Config{Listen: []string{"udp:127.0.0.1:0"}, Upstream: "tls:127.0.0.1:5061", Tenant: "demo"}, &fakeEngine{}, nil, nil); err == nil ||
		!strings.Contains(err.Error(), "needs a tls listener") {
		t.Fatalf("err = %v", err)
	}
}

// A TLS PBX may open its own connection to the guard: with the PBX's
// certificate it is the PBX (its INVITE to a phone is not screened and
// follows its Request-URI); a TLS client from the same address with
// another certificate is a caller, screened (denied here).
func TestTLSPBXConnectingInIsKnownByItsCertificate(t *testing.T) {
	p := newPKI(t)
	pbx := newTLSPBX(t, p)
	eng := &fakeEngine{decide: func(event.Event) event.Decision { return event.Decision{Verdict: event.Deny, SIPCode: 403} }}
	srv, _ := startGuard(t, eng, 0, nil, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "tls:127.0.0.1:0"}
		c.TLSCert, c.TLSKey = p.serverCert, p.serverKey
		c.Upstream = "tls:127.0.0.1:" + strconv.Itoa(pbx.port())
		c.UpstreamTLSCAs = p.caFile
	})
	tlsAddr := strings.TrimPrefix(srv.Addrs()[1], "tls:")
	pbxCert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	phone := newPeer(t)
	call := func(c *tlsPhone, id string) {
		c.mustSend(`INVITE sip:1001@` + phone.conn.LocalAddr().String() + ` SIP/2.0
Via: SIP/2.0/TLS $ME;branch=z9hG4bK-` + id + `
From: <sip:pbx@127.0.0.1>;tag=p1
To: <sip:1001@127.0.0.1>
Call-ID: ` + id + `
CSeq: 1 INVITE
Contact: <sip:pbx@$ME;transport=tls>
Max-Forwards: 70
Content-Length: 0

`)
	}
	asPBX := mustDialTLS(t, tlsAddr, &tls.Config{RootCAs: p.roots, Certificates: []tls.Certificate{pbxCert}})
	call(asPBX, "pbx-in")
	phone.expectRequest(sip.INVITE)
	if n := eng.count(event.CallAttempt); n != 0 {
		t.Fatalf("the PBX's INVITE was screened (%d decisions)", n)
	}

	other := mustDialTLS(t, tlsAddr, &tls.Config{RootCAs: p.roots, Certificates: []tls.Certificate{p.client}})
	call(other, "not-pbx")
	other.expectResponse(403)
	phone.expectNothing("an INVITE from a TLS client that is not the PBX")
}
