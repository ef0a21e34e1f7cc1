package sipedge

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/event"
)

func parseRequest(t testing.TB, raw string) *sip.Request {
	t.Helper()
	raw = strings.ReplaceAll(strings.TrimLeft(raw, "\n"), "\n", "\r\n")
	m, err := sip.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return m.(*sip.Request)
}

const richInvite = `
INVITE sip:+449098790000@guard;user=phone SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1
From: "Bob" <sip:1002@example.com>;tag=1
To: <sip:+449098790000@guard>
Call-ID: abc@192.0.2.1
CSeq: 2 INVITE
Contact: <sip:1002@192.0.2.1:5060>
P-Asserted-Identity: "Main" <sip:5511333344444@example.com>
Proxy-Authorization: Digest realm="pbx", nonce="n", username="ext-1002", uri="sip:x", response="r"
User-Agent: Yealink SIP-T46S
Content-Type: application/sdp
Content-Length: 40

v=0
o=- 1 1 IN IP4 192.0.2.1
s=call me
`

func TestRequestEvent(t *testing.T) {
	src := netip.MustParseAddr("192.0.2.1")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		accountFrom string
		account     string
	}{
		{AccountFromUser, "1002"},
		{AccountAuthUser, "ext-1002"},
		{AccountPAI, "5511333344444"},
	} {
		ev := requestEvent(parseRequest(t, richInvite), event.CallAttempt, src, "demo", c.accountFrom, now)
		if ev.Account != c.account {
			t.Errorf("account_from %s: account %q, want %q", c.accountFrom, ev.Account, c.account)
		}
		if ev.Kind != event.CallAttempt || ev.Tenant != "demo" || ev.CallID != "abc@192.0.2.1" || ev.To != "+449098790000" ||
			ev.From != "1002" || ev.SourceIP != src || ev.UserAgent != "Yealink SIP-T46S" || ev.Sensor != "sip" || !ev.Time.Equal(now) {
			t.Errorf("event = %+v", ev)
		}
		if ev.SIP.Method != "INVITE" || ev.SIP.User != "ext-1002" || ev.SIP.SDPSession != "call me" ||
			ev.SIP.Transport != "" && ev.SIP.Transport != "udp" || !strings.Contains(ev.SIP.From, "Bob") {
			t.Errorf("sip info = %+v", *ev.SIP)
		}
	}
}

func TestDigestParam(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`Digest username="1001", realm="x"`, "1001"},
		{`Digest realm="x",username=bare,nonce="n"`, "bare"},
		{`Digest realm="username=evil", username="good"`, "good"},
		{`Digest nousername="x"`, ""},
		{`Digest username="unterminated`, "unterminated"},
		{``, ""},
	} {
		if got := digestParam(c.in, "username"); got != c.want {
			t.Errorf("digestParam(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestBound(t *testing.T) {
	long := strings.Repeat("é", maxField) // 2 bytes each: the cut splits a rune
	for _, in := range []string{long, "a\r\nInjected: x", "bad\xffutf8", strings.Repeat("x", 10*maxField)} {
		out := bound(in)
		if len(out) > maxField || !utf8.ValidString(out) || strings.ContainsAny(out, "\r\n") {
			t.Errorf("bound(%.20q…) = %.20q… (%d bytes)", in, out, len(out))
		}
	}
}

// FuzzToEvent feeds arbitrary bytes through sipgo's parser and, when they
// parse as a request, through everything the guard does with a request
// before it touches the network: validation, the event conversion, Via
// stamping, the branch, the route and the NAT Contact fix. None may panic, and every event string must
// come out bounded and printable.
func FuzzToEvent(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "torture", "*.dat"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(strings.ReplaceAll(strings.TrimLeft(richInvite, "\n"), "\n", "\r\n")))
	s := &Server{stampKey: []byte("fuzz")}
	src := netip.MustParseAddrPort("192.0.2.1:5060")
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := sip.NewParser().ParseSIP(data)
		if err != nil {
			return
		}
		req, ok := m.(*sip.Request)
		if !ok {
			return
		}
		req.SetTransport("UDP")
		for _, af := range []string{AccountFromUser, AccountAuthUser, AccountPAI} {
			ev := requestEvent(req, event.SIPRequest, src.Addr(), "t", af, time.Unix(0, 0))
			fields := []string{ev.Account, ev.CallID, ev.From, ev.To, ev.UserAgent,
				ev.SIP.Method, ev.SIP.User, ev.SIP.From, ev.SIP.To, ev.SIP.Contact, ev.SIP.SDPSession, ev.SIP.Transport}
			for i, v := range fields {
				if len(v) > maxField || !utf8.ValidString(v) || strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("field %d not bounded: %q", i, v)
				}
			}
		}
		if validate(req) != nil {
			return
		}
		stampReceived(req.Via(), src, false)
		viaDest(req.Via())
		hasToTag(req)
		if b := s.branchFor(req, src, 0); !strings.HasPrefix(b, branchPrefix) {
			t.Fatalf("branch %q", b)
		}
		s.popRoutes(req, string(*req.CallID()), src)
		if s.fixNATContact(req, src, "udp") {
			if _, err := sip.NewParser().ParseSIP([]byte(req.String())); err != nil {
				t.Fatalf("a fixed Contact does not parse: %v", err)
			}
		}
	})
}

// The caller of a carrier's call is the identity its network asserts: the
// number of the first sip:/sips:/tel: URI of P-Asserted-Identity.
func TestAssertedUser(t *testing.T) {
	for v, want := range map[string]string{
		`<sip:+18765550123@carrier.example;user=phone>`:               "+18765550123",
		`"Jamaica <1>" <sips:+18765550123@carrier.example>`:           "+18765550123",
		`<tel:+18765550123;npdi>, <sip:+18765550123@carrier.example>`: "+18765550123",
		`tel:+442079460000`:            "+442079460000",
		`sip:+442079460000@x, tel:+1`:  "+442079460000",
		`<mailto:someone@example.com>`: "",
		`<sip:carrier.example>`:        "",
		`"unterminated <sip:+1@x>`:     "",
		`<sip:+1@x`:                    "",
		``:                             "",
	} {
		if got := assertedUser(v); got != want {
			t.Errorf("assertedUser(%q) = %q, want %q", v, got, want)
		}
	}
}

func FuzzAssertedUser(f *testing.F) {
	for _, s := range []string{`<sip:+18765550123@carrier.example>`, `"a" <tel:+1;x>`, `sip:1@h, tel:2`, `"<`, `<>`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		u := assertedUser(v)
		if len(u) > maxField || !utf8.ValidString(u) || strings.ContainsAny(u, "\r\n\x00") {
			t.Fatalf("assertedUser(%q) = %q: unbounded or unsafe", v, u)
		}
	})
}

// A quoted display name may hold an escaped quote and a '<': the identity
// is the URI after it, not one hidden in the name.
func TestAssertedUserSkipsQuotedPairs(t *testing.T) {
	if got := assertedUser(`"a\"<sip:+447700900000@x>" <sip:+18765550123@c>`); got != "+18765550123" {
		t.Fatalf("assertedUser = %q, want +18765550123", got)
	}
}
