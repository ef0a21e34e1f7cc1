package sipedge

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telguard/telguard/internal/event"
)

// These tests drive the guard's TLS listener with a Go TLS client speaking
// hand-written SIP (Debian's SIPp is built without TLS); the upstream is a
// raw UDP peer, as in proxy_test.go.

// pki is a throw-away CA with a server certificate for the loopback
// addresses, a client certificate it issued, and a client certificate from
// another CA, all as PEM files in a temporary directory.
type pki struct {
	roots                  *x509.CertPool
	caFile                 string
	serverCert, serverKey  string
	client, otherClient    tls.Certificate
	clientCert, clientKeyF string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{roots: x509.NewCertPool()}
	ca, caKey := newCA(t, "telguard test CA")
	p.roots.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	p.serverCert, p.serverKey = issue(t, dir, "server", ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "guard"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	clientTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "trunk-1"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	p.clientCert, p.clientKeyF = issue(t, dir, "client", ca, caKey, clientTmpl)
	other, otherKey := newCA(t, "somebody else's CA")
	oc, ok := issue(t, dir, "other", other, otherKey, clientTmpl)
	var err error
	if p.client, err = tls.LoadX509KeyPair(p.clientCert, p.clientKeyF); err != nil {
		t.Fatal(err)
	}
	if p.otherClient, err = tls.LoadX509KeyPair(oc, ok); err != nil {
		t.Fatal(err)
	}
	return p
}

// serial returns a random certificate serial number.
func serial(t *testing.T) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// issue signs tmpl with the CA and writes name.crt and name.key.
func issue(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := *tmpl
	c.SerialNumber = serial(t)
	c.NotBefore, c.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	c.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, &c, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name+".crt", "CERTIFICATE", der), writePEM(t, dir, name+".key", "EC PRIVATE KEY", kder)
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// tlsPhone is a SIP client over TLS.
type tlsPhone struct {
	t    *testing.T
	conn *tls.Conn
	r    *bufio.Reader
}

func dialTLS(addr string, cfg *tls.Config) (*tlsPhone, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	return &tlsPhone{conn: c, r: bufio.NewReader(c)}, nil
}

func mustDialTLS(t *testing.T, addr string, cfg *tls.Config) *tlsPhone {
	t.Helper()
	p, err := dialTLS(addr, cfg)
	if err != nil {
		t.Fatalf("tls dial %s: %v", addr, err)
	}
	p.t = t
	t.Cleanup(func() { p.conn.Close() })
	return p
}

// send writes msg after replacing $ME with the phone's address.
func (p *tlsPhone) send(msg string) error {
	msg = strings.ReplaceAll(msg, "$ME", p.conn.LocalAddr().String())
	msg = strings.ReplaceAll(strings.TrimLeft(msg, "\n"), "\n", "\r\n")
	p.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, err := p.conn.Write([]byte(msg))
	return err
}

// recv reads the next message, skipping CRLF keep-alives.
func (p *tlsPhone) recv(wait time.Duration) (sip.Message, error) {
	p.conn.SetReadDeadline(time.Now().Add(wait))
	var head strings.Builder
	length := 0
	for {
		line, err := p.r.ReadString('\n')
		if err != nil {
			return nil, err
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
		return nil, err
	}
	return sip.NewParser().ParseSIP(append([]byte(head.String()+"\r\n"), body...))
}

func (p *tlsPhone) expectResponse(code int) *sip.Response {
	p.t.Helper()
	m, err := p.recv(2 * time.Second)
	res, ok := m.(*sip.Response)
	if err != nil || !ok || res.StatusCode != code {
		p.t.Fatalf("got %v (err %v), want a %d response", startLine(m), err, code)
	}
	return res
}

func (p *tlsPhone) expectRequest(method sip.RequestMethod) *sip.Request {
	p.t.Helper()
	m, err := p.recv(2 * time.Second)
	req, ok := m.(*sip.Request)
	if err != nil || !ok || req.Method != method {
		p.t.Fatalf("got %v (err %v), want a %s request", startLine(m), err, method)
	}
	return req
}

func (p *tlsPhone) mustSend(msg string) {
	p.t.Helper()
	if err := p.send(msg); err != nil {
		p.t.Fatal(err)
	}
}

// reply sends res, built by the caller from a request it got, back over
// the phone's connection.
func (p *tlsPhone) reply(res *sip.Response) {
	p.t.Helper()
	var b strings.Builder
	res.StringWrite(&b)
	if _, err := p.conn.Write([]byte(b.String())); err != nil {
		p.t.Fatal(err)
	}
}

// waitCount waits up to 2 s for eng to have seen want events of kind and
// returns how many it saw: the guard reports a call's end after it has
// forwarded the BYE, so the test may hear the answer first.
func waitCount(eng *fakeEngine, kind event.Kind, want int) int {
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := eng.count(kind)
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// answer makes the upstream peer send res to the guard's UDP port.
func (p *peer) answer(guardPort int, res *sip.Response) {
	p.t.Helper()
	var b strings.Builder
	res.StringWrite(&b)
	p.send(guardPort, b.String())
}

// startTLSGuard runs a guard with a UDP and a TLS listener on loopback in
// front of up and returns it with its UDP port and TLS address.
func startTLSGuard(t *testing.T, eng Engine, up *peer, p *pki, reg *prometheus.Registry, tweak func(*Config)) (*Server, int, string) {
	t.Helper()
	srv, port := startGuard(t, eng, up.port(), reg, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "tls:127.0.0.1:0"}
		c.TLSCert, c.TLSKey = p.serverCert, p.serverKey
		if tweak != nil {
			tweak(c)
		}
	})
	return srv, port, strings.TrimPrefix(srv.Addrs()[1], "tls:")
}

const tlsInvite = `
INVITE sip:1133334444@guard SIP/2.0
Via: SIP/2.0/TLS $ME;branch=z9hG4bK-$ID-inv;rport
From: <sip:1001@example.com>;tag=a1
To: <sip:1133334444@guard>
Call-ID: $ID@test
CSeq: 1 INVITE
Max-Forwards: 70
Contact: <sip:1001@$ME;transport=tls>
User-Agent: tls-phone
Content-Length: 0

`

// tlsCall sets up a call from phone over TLS to the upstream and returns
// the route set the phone uses in the dialog and the upstream's INVITE.
func tlsCall(t *testing.T, phone *tlsPhone, up *peer, guardPort int, id string) (routes string, inv *sip.Request) {
	t.Helper()
	phone.mustSend(strings.ReplaceAll(tlsInvite, "$ID", id))
	inv = up.expectRequest(sip.INVITE)
	res := sip.NewResponseFromRequest(inv, 200, "OK", nil)
	res.To().Params.Add("tag", "b2")
	res.AppendHeader(sip.NewHeader("Contact", "<sip:pbx@"+up.conn.LocalAddr().String()+">"))
	up.answer(guardPort, res)
	ok := phone.expectResponse(200)
	rrs := ok.GetHeaders("Record-Route")
	if len(rrs) != 2 {
		t.Fatalf("200 OK carries %d Record-Routes, want 2 (udp and tls)", len(rrs))
	}
	// The phone's route set is the Record-Route list reversed.
	for i := len(rrs) - 1; i >= 0; i-- {
		routes += "Route: " + rrs[i].Value() + "\n"
	}
	return routes, inv
}

func TestTLSCallReachesUDPUpstream(t *testing.T) {
	p := newPKI(t)
	eng := &fakeEngine{}
	up := newPeer(t)
	_, port, tlsAddr := startTLSGuard(t, eng, up, p, nil, nil)
	phone := mustDialTLS(t, tlsAddr, &tls.Config{RootCAs: p.roots})

	routes, inv := tlsCall(t, phone, up, port, "tls-1")
	vias := inv.GetHeaders("Via")
	if len(vias) != 2 || !strings.HasPrefix(vias[0].Value(), "SIP/2.0/UDP ") || !strings.HasPrefix(vias[1].Value(), "SIP/2.0/TLS ") {
		t.Errorf("upstream's Vias = %v, want the guard's UDP Via over the phone's TLS one", vias)
	}
	if pv := vias[1].(*sip.ViaHeader); pv.Params.GetOr("received", "") != "127.0.0.1" || pv.Params.GetOr("rport", "") == "" {
		t.Errorf("phone's Via = %v, want received and rport", pv)
	}
	rrs := inv.GetHeaders("Record-Route")
	if len(rrs) != 2 || !strings.Contains(rrs[0].Value(), ";transport=udp") ||
		!strings.Contains(rrs[1].Value(), ";transport=tls") || !strings.Contains(rrs[1].Value(), ";fl=") {
		t.Errorf("Record-Routes = %v, want the udp one, then the tls one naming the flow (RFC 5658)", rrs)
	}

	ack := `
ACK sip:pbx@UP SIP/2.0
Via: SIP/2.0/TLS $ME;branch=z9hG4bK-tls-1-ack;rport
` + routes + `From: <sip:1001@example.com>;tag=a1
To: <sip:1133334444@guard>;tag=b2
Call-ID: tls-1@test
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

`
	ack = strings.ReplaceAll(ack, "UP", up.conn.LocalAddr().String())
	phone.mustSend(ack)
	if got := up.expectRequest(sip.ACK); got.Route() != nil {
		t.Errorf("the guard's Routes were left on the ACK: %v", got.Route())
	}
	phone.mustSend(strings.NewReplacer("ACK sip", "BYE sip", "1 ACK", "2 BYE", "tls-1-ack", "tls-1-bye").Replace(ack))
	bye := up.expectRequest(sip.BYE)
	up.answer(port, sip.NewResponseFromRequest(bye, 200, "OK", nil))
	phone.expectResponse(200)

	for _, c := range []struct {
		kind event.Kind
		want int
	}{{event.CallAttempt, 1}, {event.CallAnswered, 1}, {event.CallEnded, 1}} {
		if got := waitCount(eng, c.kind, c.want); got != c.want {
			t.Errorf("%s events = %d, want %d", c.kind, got, c.want)
		}
	}
	eng.mu.Lock()
	ev := eng.events[0]
	eng.mu.Unlock()
	if ev.SIP == nil || ev.SIP.Transport != "tls" || ev.SourceIP != netip.MustParseAddr("127.0.0.1") || ev.To != "1133334444" {
		t.Errorf("call attempt = %+v (sip %+v), want transport tls from 127.0.0.1", ev, ev.SIP)
	}
}

func TestPBXHangsUpATLSCaller(t *testing.T) {
	p := newPKI(t)
	eng := &fakeEngine{}
	up := newPeer(t)
	_, port, tlsAddr := startTLSGuard(t, eng, up, p, nil, nil)
	phone := mustDialTLS(t, tlsAddr, &tls.Config{RootCAs: p.roots})
	_, inv := tlsCall(t, phone, up, port, "tls-2")

	// The PBX's BYE: to the phone's Contact, along the Record-Route set
	// as it received it.
	var routes string
	for _, rr := range inv.GetHeaders("Record-Route") {
		routes += "Route: " + rr.Value() + "\n"
	}
	up.send(port, `
BYE sip:1001@`+phone.conn.LocalAddr().String()+`;transport=tls SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-pbx-bye-2
`+routes+`From: <sip:1133334444@guard>;tag=b2
To: <sip:1001@example.com>;tag=a1
Call-ID: tls-2@test
CSeq: 1 BYE
Max-Forwards: 70
Content-Length: 0

`)
	bye := phone.expectRequest(sip.BYE)
	if bye.Route() != nil {
		t.Errorf("the guard's Routes were left on the BYE: %v", bye.Route())
	}
	if v := bye.Via(); v == nil || v.Transport != "TLS" {
		t.Errorf("top Via of the BYE = %v, want the guard's TLS Via", v)
	}
	phone.reply(sip.NewResponseFromRequest(bye, 200, "OK", nil))
	if res, ok := up.recv(2 * time.Second).(*sip.Response); !ok || res.StatusCode != 200 {
		t.Fatalf("the phone's 200 to BYE did not reach the PBX")
	}
	if got := waitCount(eng, event.CallEnded, 1); got != 1 {
		t.Errorf("call_ended events = %d, want 1", got)
	}
}

const tlsRegister = `
REGISTER sip:guard SIP/2.0
Via: SIP/2.0/TLS $ME;branch=z9hG4bK-reg-$ID;rport
From: <sip:trunk@guard>;tag=r1
To: <sip:trunk@guard>
Call-ID: reg-$ID@test
CSeq: 1 REGISTER
Contact: <sip:trunk@$ME;transport=tls>
Max-Forwards: 70
Content-Length: 0

`

func TestMutualTLSRefusesClientsWithoutTheRightCertificate(t *testing.T) {
	p := newPKI(t)
	up := newPeer(t)
	reg := prometheus.NewRegistry()
	_, port, tlsAddr := startTLSGuard(t, &fakeEngine{}, up, p, reg, func(c *Config) { c.TLSClientCAs = p.caFile })

	for _, c := range []struct {
		name  string
		certs []tls.Certificate
	}{
		{"no certificate", nil},
		{"a certificate from another CA", []tls.Certificate{p.otherClient}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// With TLS 1.3 the client finishes its side of the handshake
			// before the server has checked its certificate, so the refusal
			// may show on the first read rather than in Dial.
			ph, err := dialTLS(tlsAddr, &tls.Config{RootCAs: p.roots, Certificates: c.certs})
			if err != nil {
				return
			}
			defer ph.conn.Close()
			ph.send(strings.ReplaceAll(tlsRegister, "$ID", "x"))
			if m, err := ph.recv(2 * time.Second); err == nil {
				t.Fatalf("got %s, want the connection refused", startLine(m))
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("connection left open, want it refused")
			}
			up.expectNothing("upstream, from a client without the right certificate")
		})
	}
	if got := counterValue(t, reg, "telguard_sip_dropped_total", dropTLSHandshake); got != 2 {
		t.Errorf("tls_handshake drops = %v, want 2", got)
	}

	trunk := mustDialTLS(t, tlsAddr, &tls.Config{RootCAs: p.roots, Certificates: []tls.Certificate{p.client}})
	trunk.mustSend(strings.ReplaceAll(tlsRegister, "$ID", "ok"))
	req := up.expectRequest(sip.REGISTER)
	up.answer(port, sip.NewResponseFromRequest(req, 200, "OK", nil))
	trunk.expectResponse(200)
}

func TestTLSBelow12IsRefused(t *testing.T) {
	p := newPKI(t)
	_, _, tlsAddr := startTLSGuard(t, &fakeEngine{}, newPeer(t), p, nil, nil)
	if ph, err := dialTLS(tlsAddr, &tls.Config{RootCAs: p.roots, MaxVersion: tls.VersionTLS11}); err == nil {
		ph.conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

func TestTLSHandshakeTimesOutAndFreesItsSlot(t *testing.T) {
	p := newPKI(t)
	reg := prometheus.NewRegistry()
	_, _, tlsAddr := startTLSGuard(t, &fakeEngine{}, newPeer(t), p, reg, func(c *Config) {
		c.MaxTCPConns = 1
		c.TLSHandshakeTimeout = 300 * time.Millisecond
	})
	// A client that connects and never says hello holds the only slot…
	silent, err := net.Dial("tcp", tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// …so a second connection is turned away…
	if _, err := dialTLS(tlsAddr, &tls.Config{RootCAs: p.roots}); err == nil {
		t.Error("a connection past MaxTCPConns completed a handshake")
	}
	// …until the handshake deadline closes the silent one.
	silent.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	if _, err := silent.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a connection without a handshake was kept open")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("silent connection closed after %v, want about 300ms", d)
	}
	time.Sleep(50 * time.Millisecond)
	mustDialTLS(t, tlsAddr, &tls.Config{RootCAs: p.roots})
	if got := counterValue(t, reg, "telguard_sip_dropped_total", dropTLSHandshake); got < 1 {
		t.Errorf("tls_handshake drops = %v, want at least 1", got)
	}
	if got := counterValue(t, reg, "telguard_sip_dropped_total", dropTCPLimit); got < 1 {
		t.Errorf("connection limit drops = %v, want at least 1", got)
	}
}

func TestTLSListenerNeedsACertificate(t *testing.T) {
	_, err := New(Config{Listen: []string{"udp:127.0.0.1:0", "tls:127.0.0.1:0"}, Upstream: "udp:127.0.0.1:5070", Tenant: "demo"},
		&fakeEngine{}, nil, nil)
	if !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("err = %v, want ErrNoCertificate", err)
	}
	_, err = New(Config{Listen: []string{"udp:127.0.0.1:0", "tls:127.0.0.1:0"}, Upstream: "udp:127.0.0.1:5070", Tenant: "demo",
		TLSCert: "/nonexistent.crt", TLSKey: "/nonexistent.key"}, &fakeEngine{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "load tls certificate") {
		t.Fatalf("err = %v, want a load error", err)
	}
}
