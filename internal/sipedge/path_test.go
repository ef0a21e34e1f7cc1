package sipedge

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Path (RFC 3327): a phone registers through the guard, which adds its
// Path; the PBX then calls the phone the way a registrar does, Route the
// stored Path, Request-URI the registered Contact. The phone registered a
// Contact nobody can reach (TEST-NET-2), so the call arrives only because
// the guard routes it to the flow the REGISTER came from.
func TestSIPpPathRoutesTheCallToTheRegisteredPhone(t *testing.T) {
	bin := needSIPp(t)
	t.Parallel()
	upPort := freeUDPPort(t)
	eng := &fakeEngine{}
	srv, guardPort := startGuard(t, eng, upPort, nil, nil)
	guard := "127.0.0.1:" + strconv.Itoa(guardPort)

	phonePort := freeUDPPort(t)
	pbx := startSIPp(t, bin, "uas_register_call.xml", upPort, "", "-m", "1")
	phone := startSIPp(t, bin, "uac_register_answer.xml", phonePort, guard, "-m", "1",
		"-key", "reg_contact", "198.51.100.10:5060", "-key", "dlg_contact", "127.0.0.1:"+strconv.Itoa(phonePort))
	if code := phone.wait(t); code != 0 {
		t.Fatalf("phone exited %d, want 0 (registered, then took the PBX's call)", code)
	}
	if code := pbx.wait(t); code != 0 {
		t.Fatalf("pbx exited %d, want 0 (the REGISTER had the guard's Path; the phone answered)", code)
	}
	b, err := os.ReadFile(phone.messages)
	if err != nil {
		t.Fatal(err)
	}
	// The INVITE came through the guard: its top Via is the guard's.
	if !strings.Contains(string(b), "INVITE sip:1001@198.51.100.10:5060 SIP/2.0\nVia: SIP/2.0/UDP "+guard+";branch=z9hG4bK-tg") &&
		!strings.Contains(string(b), "INVITE sip:1001@198.51.100.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP "+guard+";branch=z9hG4bK-tg") {
		t.Errorf("the phone's INVITE did not come through the guard:\n%s", tail(string(b), 3000))
	}
	b, err = os.ReadFile(pbx.messages)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Path: <sip:127.0.0.1:"+strconv.Itoa(upPortOf(srv))+";transport=udp;lr;tg=p") {
		t.Errorf("the PBX's REGISTER has no Path of the guard's:\n%s", tail(string(b), 3000))
	}
}

// A caller cannot plant a Path of its own, nor forge the guard's: the
// REGISTER reaches the PBX with the guard's Path only, and a Route naming
// a flow without a valid stamp is not followed.
func TestPathCannotBeForged(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	victim := newPeerAt(t, "127.0.0.9")
	guard := "127.0.0.1:" + strconv.Itoa(r.port)
	forged := "<sip:" + guard + ";transport=udp;lr;tg=p0000000000000000;fl=127.0.0.9:" + strconv.Itoa(victim.port()) + ">"
	r.caller.send(r.port, `REGISTER sip:`+guard+` SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-reg1;rport
path: `+forged+`
From: <sip:1001@`+guard+`>;tag=r1
To: <sip:1001@`+guard+`>
Call-ID: reg-forged-path
CSeq: 1 REGISTER
Contact: <sip:1001@$ME>
Max-Forwards: 70
Content-Length: 0

`)
	reg := r.upstream.expectRequest(sip.REGISTER)
	paths := reg.GetHeaders("Path")
	if len(paths) != 1 || strings.Contains(paths[0].Value(), "127.0.0.9") ||
		!strings.Contains(paths[0].Value(), ";fl="+r.caller.conn.LocalAddr().String()) {
		t.Fatalf("Path headers at the PBX: %v, want the guard's only, naming the caller's flow", paths)
	}

	// The PBX (trusted) sends to the forged route: the guard does not
	// take the unsigned entry for its own; it names the guard, so the
	// request would loop, and is refused.
	r.upstream.send(r.port, `INVITE sip:1001@`+r.caller.conn.LocalAddr().String()+` SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-pbx1
Route: `+forged+`
From: <sip:pbx@127.0.0.1>;tag=p1
To: <sip:1001@127.0.0.1>
Call-ID: pbx-call-forged
CSeq: 1 INVITE
Max-Forwards: 70
Content-Length: 0

`)
	r.upstream.expectResponse(482)
	victim.expectNothing("an INVITE by a forged Path flow")
}

// The same over TCP: the phone registers over a TCP connection, and the
// PBX's call, routed by the Path, comes back to it over that connection.
func TestSIPpPathOverTCP(t *testing.T) {
	bin := needSIPp(t)
	t.Parallel()
	upPort := freeUDPPort(t)
	srv, _ := startGuard(t, &fakeEngine{}, upPort, nil, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "tcp:127.0.0.1:0"}
	})
	tcpAddr := strings.TrimPrefix(srv.Addrs()[1], "tcp:")
	pbx := startSIPp(t, bin, "uas_register_call.xml", upPort, "", "-m", "1")
	phonePort := freeTCPPort(t)
	phone := startSIPp(t, bin, "uac_register_answer.xml", phonePort, tcpAddr, "-t", "t1", "-i", "127.0.0.2", "-m", "1",
		"-key", "reg_contact", "198.51.100.10:5060;transport=tcp", "-key", "dlg_contact", "198.51.100.10:5060;transport=tcp")
	if code := phone.wait(t); code != 0 {
		t.Fatalf("tcp phone exited %d, want 0 (registered, then took the PBX's call over its connection)", code)
	}
	if code := pbx.wait(t); code != 0 {
		t.Fatalf("pbx exited %d, want 0", code)
	}
}

// A Path goes with "Supported: path" (RFC 3327 §5.1; Asterisk answers 420
// otherwise), merged into the phone's own Supported options.
func TestPathAddsSupportedPath(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	guard := "127.0.0.1:" + strconv.Itoa(r.port)
	for i, tc := range []struct{ hdr, want string }{
		{"", "path"},
		{"Supported: outbound, gruu\n", "outbound, gruu, path"},
		{"k: replaces\nSupported: timer\n", "replaces, timer, path"},
		{"Supported: Path\n", "Path"},
	} {
		r.caller.send(r.port, `REGISTER sip:`+guard+` SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-sup`+strconv.Itoa(i)+`;rport
From: <sip:1001@`+guard+`>;tag=r1
To: <sip:1001@`+guard+`>
Call-ID: reg-supported-`+strconv.Itoa(i)+`
CSeq: 1 REGISTER
Contact: <sip:1001@$ME>
`+tc.hdr+`Max-Forwards: 70
Content-Length: 0

`)
		reg := r.upstream.expectRequest(sip.REGISTER)
		var got []string
		for _, h := range reg.Headers() {
			if strings.EqualFold(h.Name(), "Supported") || strings.EqualFold(h.Name(), "k") {
				got = append(got, h.Value())
			}
		}
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("with %q: Supported headers at the PBX %q, want one %q", tc.hdr, got, tc.want)
		}
	}
}

// A Path is good for its registration's expiry plus a margin, and on the
// listener it names only: after that, or moved to another listener, the
// PBX's request through it is refused (482), never sent into the flow.
func TestPathExpiresAndStaysOnItsListener(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	r := newRig(t, &fakeEngine{}, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "udp:127.0.0.1:0"}
		c.Clock = func() time.Time { return time.Unix(0, now.Load()) }
	})
	guard := "127.0.0.1:" + strconv.Itoa(r.port)
	r.caller.send(r.port, `REGISTER sip:`+guard+` SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-exp1;rport
From: <sip:1001@`+guard+`>;tag=r1
To: <sip:1001@`+guard+`>
Call-ID: reg-expiry
CSeq: 1 REGISTER
Contact: <sip:1001@198.51.100.10:5060>
Expires: 60
Max-Forwards: 70
Content-Length: 0

`)
	path := r.upstream.expectRequest(sip.REGISTER).GetHeader("Path").Value()
	call := func(route, id string) {
		r.upstream.send(r.port, `INVITE sip:1001@198.51.100.10:5060 SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-`+id+`
Route: `+route+`
From: <sip:pbx@127.0.0.1>;tag=p1
To: <sip:1001@127.0.0.1>
Call-ID: `+id+`
CSeq: 1 INVITE
Max-Forwards: 70
Content-Length: 0

`)
	}
	call(path, "in-time")
	r.caller.expectRequest(sip.INVITE)

	other := ":" + strconv.Itoa(listenerPort(t, r.srv, 1)) + ";"
	call(strings.Replace(path, ":"+strconv.Itoa(r.port)+";", other, 1), "moved")
	r.upstream.expectResponse(482)
	r.caller.expectNothing("an INVITE by a Path moved to another listener")

	now.Add(int64(60*time.Second + pathMargin + time.Second))
	call(path, "expired")
	r.upstream.expectResponse(482)
	r.caller.expectNothing("an INVITE by an expired Path")
}
