package sipedge

import (
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
