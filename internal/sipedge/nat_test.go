package sipedge

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// Phones behind NAT name their private address in Contact. The guard
// rewrites it to where the message came from, so the PBX's BYE (sent to
// the caller's Contact) and its call to a registered phone (to the
// registered Contact) and that call's ACK and BYE (to the phone's 200
// Contact) all reach the phone.
func TestSIPpNATedContactsAreReachable(t *testing.T) {
	bin := needSIPp(t)
	t.Parallel()
	upPort := freeUDPPort(t)
	_, guardPort := startGuard(t, &fakeEngine{}, upPort, nil, nil)
	guard := "127.0.0.1:" + strconv.Itoa(guardPort)
	const private = "192.168.1.10:5060"

	phonePort := freeUDPPort(t)
	uas := startSIPp(t, bin, "uas_hangup.xml", upPort, "", "-m", "1")
	uac := startSIPp(t, bin, "uac_hangup_nat.xml", phonePort, guard, "-m", "1", "-s", "1133334444", "-key", "contact", private)
	if code := uac.wait(t); code != 0 {
		t.Fatalf("caller behind NAT exited %d, want 0 (the PBX's BYE reached it)", code)
	}
	if code := uas.wait(t); code != 0 {
		t.Fatalf("pbx exited %d, want 0", code)
	}
	if b, _ := os.ReadFile(uas.messages); !strings.Contains(string(b), "Contact: <sip:1001@127.0.0.1:"+strconv.Itoa(phonePort)+">") {
		t.Errorf("the PBX did not get the caller's Contact fixed to its source:\n%s", tail(string(b), 2000))
	}

	phonePort = freeUDPPort(t)
	pbx := startSIPp(t, bin, "uas_register_call.xml", upPort, "", "-m", "1")
	phone := startSIPp(t, bin, "uac_register_answer.xml", phonePort, guard, "-m", "1",
		"-key", "reg_contact", private, "-key", "dlg_contact", private)
	if code := phone.wait(t); code != 0 {
		t.Fatalf("registered phone behind NAT exited %d, want 0 (took the PBX's call, got its ACK and BYE)", code)
	}
	if code := pbx.wait(t); code != 0 {
		t.Fatalf("pbx exited %d, want 0", code)
	}
}

// What is rewritten and what is not: only a private or CGNAT Contact
// other than the source, and nothing with KeepNATContact.
func TestFixNATContact(t *testing.T) {
	for _, tc := range []struct {
		name, contact, want string
		keep                bool
	}{
		{"rfc 1918", "<sip:1001@192.168.1.10:5060;ob>", "<sip:1001@$ME;ob>", false},
		{"cgnat, no port", "<sip:1001@100.64.3.4>", "<sip:1001@$ME>", false},
		{"ten", "\"Bob\" <sip:1001@10.1.2.3:5062;transport=udp>", "\"Bob\" <sip:1001@$ME;transport=udp>", false},
		{"public", "<sip:1001@198.51.100.10:5060>", "<sip:1001@198.51.100.10:5060>", false},
		{"a name", "<sip:1001@phone.example.com>", "<sip:1001@phone.example.com>", false},
		{"kept when asked", "<sip:1001@192.168.1.10:5060>", "<sip:1001@192.168.1.10:5060>", true},
		{"ipv6 ula", "<sip:1001@[fd12:3456::10]:5060>", "<sip:1001@$ME>", false},
		{"tcp contact over udp", "<sip:1001@192.168.1.10:5060;transport=tcp>", "<sip:1001@192.168.1.10:5060;transport=tcp>", false},
		{"sips contact over udp", "<sips:1001@192.168.1.10:5061>", "<sips:1001@192.168.1.10:5061>", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, &fakeEngine{}, func(c *Config) { c.KeepNATContact = tc.keep })
			r.caller.send(r.port, strings.Replace(invite, "Contact: <sip:1001@$ME>", "Contact: "+tc.contact, 1))
			got := r.upstream.expectRequest(sip.INVITE)
			want := strings.ReplaceAll(tc.want, "$ME", r.caller.conn.LocalAddr().String())
			if c := got.Contact(); c == nil || c.Value() != want {
				t.Fatalf("Contact at the PBX = %v, want %s", c, want)
			}
		})
	}
}

// A REGISTER's Contact is left as the phone sent it (the Path carries its
// real source): rewriting it to a NAT binding would leave the registrar a
// stale second binding when the binding moves.
func TestRegisterContactIsNotRewritten(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	guard := "127.0.0.1:" + strconv.Itoa(r.port)
	r.caller.send(r.port, `REGISTER sip:`+guard+` SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-natreg;rport
From: <sip:1001@`+guard+`>;tag=r1
To: <sip:1001@`+guard+`>
Call-ID: reg-nat
CSeq: 1 REGISTER
Contact: <sip:1001@192.168.1.10:5060;ob>
Max-Forwards: 70
Content-Length: 0

`)
	reg := r.upstream.expectRequest(sip.REGISTER)
	if c := reg.Contact(); c == nil || c.Value() != "<sip:1001@192.168.1.10:5060;ob>" {
		t.Fatalf("Contact at the PBX = %v, want the phone's own", c)
	}
}

// A trusted carrier's answer is left alone, NATed Contact or not.
func TestTrustedCarrierResponseIsNotRewritten(t *testing.T) {
	r := newRig(t, &fakeEngine{}, func(c *Config) { c.TrustedCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.5/32")} })
	carrier := newPeerAt(t, "127.0.0.5")
	r.upstream.send(r.port, `INVITE sip:5511999990000@`+carrier.conn.LocalAddr().String()+` SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-out1
From: <sip:1001@pbx>;tag=o1
To: <sip:5511999990000@carrier>
Call-ID: out-call-1
CSeq: 1 INVITE
Contact: <sip:pbx@$ME>
Max-Forwards: 70
Content-Length: 0

`)
	inv := carrier.expectRequest(sip.INVITE)
	res := sip.NewResponseFromRequest(inv, 200, "OK", nil)
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "gw", Host: "10.9.8.7", Port: 5060}})
	var b strings.Builder
	res.StringWrite(&b)
	carrier.send(r.port, b.String())
	got := r.upstream.expectResponse(200)
	if c := got.Contact(); c == nil || !strings.Contains(c.Value(), "10.9.8.7:5060") {
		t.Fatalf("Contact at the PBX = %v, want the carrier's own", c)
	}
}
