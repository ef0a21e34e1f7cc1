package sipedge

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

// A carrier (a trusted peer) on 127.0.0.2, the PBX on 127.0.0.1, phones
// on other loopback addresses.
const carrierIP = "127.0.0.2"

// carrierInvite is a call from +18765550123 (Jamaica, on the high-risk
// list) to the tenant's extension 1001, as a carrier sends it.
const carrierInvite = `
INVITE sip:1001@guard SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-carrier-1;rport
From: <sip:+18765550123@carrier.example>;tag=c1
To: <sip:1001@guard>
Call-ID: ring-1@carrier
CSeq: 1 INVITE
Max-Forwards: 70
User-Agent: friendly-scanner
Contact: <sip:+18765550123@$ME>
Content-Length: 0

`

func trustCarrier(c *Config) {
	c.CarrierCIDRs = []netip.Prefix{netip.MustParsePrefix(carrierIP + "/32")}
}

func TestCarrierInboundCallIsReportedNeverBlocked(t *testing.T) {
	// The engine would deny everything: a trusted carrier's call still
	// goes through, and its decision is only recorded.
	eng := &fakeEngine{decide: func(event.Event) event.Decision {
		return event.Decision{Verdict: event.Deny, SIPCode: 403,
			Reasons: []event.Reason{{Rule: "source_ip.denied", Mode: event.Enforce, Verdict: event.Deny}}}
	}}
	r := newRig(t, eng, trustCarrier)
	carrier := newPeerAt(t, carrierIP)

	carrier.send(r.port, carrierInvite)
	inv := r.upstream.expectRequest(sip.INVITE)
	carrier.send(r.port, carrierInvite) // a retransmission: forwarded, not reported again
	r.upstream.expectRequest(sip.INVITE)
	if h := inv.GetHeader(hdrDecision); h != nil {
		t.Errorf("outside simulation mode the PBX gets %s", h.Value())
	}
	eng.mu.Lock()
	evs := append([]event.Event(nil), eng.events...)
	eng.mu.Unlock()
	if len(evs) != 1 {
		t.Fatalf("engine asked %d times, want once", len(evs))
	}
	ev := evs[0]
	if ev.Kind != event.CallAttempt || ev.Direction != event.Inbound || ev.Account != "1001" || ev.From != "+18765550123" ||
		ev.To != "1001" || ev.SourceIP != netip.MustParseAddr(carrierIP) || ev.CallID != "ring-1@carrier" || ev.Tenant != "demo" {
		t.Errorf("inbound event = %+v", ev)
	}
	if ev.UserAgent != "" || ev.SIP != nil {
		t.Errorf("inbound event carries the carrier's SIP details (User-Agent %q): a trusted peer is not fingerprinted", ev.UserAgent)
	}

	// Answered and hung up by the PBX: both reported, before they are relayed.
	r.upstream.answer(r.port, pbxAnswer(inv, 200, "OK", time.Time{}))
	carrier.expectResponse(200)
	if n := r.eng.count(event.CallAnswered); n != 1 {
		t.Errorf("call_answered events = %d when the 200 reached the carrier, want 1", n)
	}
	// A re-INVITE from the carrier inside the dialog is no new call.
	reinvite := strings.NewReplacer("carrier-1", "carrier-2", "To: <sip:1001@guard>", "To: <sip:1001@guard>;tag=pbx1",
		"CSeq: 1 INVITE", "CSeq: 2 INVITE", "Max-Forwards: 70", "Route: "+inv.RecordRoute().Value()+"\nMax-Forwards: 70").Replace(carrierInvite)
	carrier.send(r.port, reinvite)
	r.upstream.expectRequest(sip.INVITE)
	bye := strings.NewReplacer("$RR", inv.RecordRoute().Value(), "$CARRIER", carrierIP+":"+strconv.Itoa(carrier.port())).Replace(`
BYE sip:+18765550123@$CARRIER SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-pbx-bye-1
Route: $RR
From: <sip:1001@guard>;tag=pbx1
To: <sip:+18765550123@carrier.example>;tag=c1
Call-ID: ring-1@carrier
CSeq: 5 BYE
Max-Forwards: 70
Content-Length: 0

`)
	r.upstream.send(r.port, bye)
	carrier.expectRequest(sip.BYE)
	if n := r.eng.count(event.CallEnded); n != 1 {
		t.Errorf("call_ended events = %d when the BYE reached the carrier, want 1", n)
	}
	if n := r.decided(); n != 1 {
		t.Errorf("engine decided %d times, want 1: answers and in-dialog requests are not new calls", n)
	}
}

func TestPBXCallsAreNotCarrierCalls(t *testing.T) {
	eng := &fakeEngine{}
	// The carrier's range holds the PBX's address too.
	r := newRig(t, eng, func(c *Config) { c.CarrierCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	carrier := newPeerAt(t, carrierIP)

	// The PBX calls out through the guard to the carrier.
	out := strings.NewReplacer("INVITE sip:1001@guard", "INVITE sip:+18765550123@"+carrierIP+":"+strconv.Itoa(carrier.port()),
		"ring-1@carrier", "out-1@pbx", "carrier-1", "pbx-out-1").Replace(carrierInvite)
	r.upstream.send(r.port, out)
	got := carrier.expectRequest(sip.INVITE)
	// The carrier answers: a response, not a call.
	carrier.answer(r.port, pbxAnswer(got, 200, "OK", time.Time{}))
	r.upstream.expectResponse(200)

	// Another of the PBX's ports (a second SIP profile) is the PBX too.
	other := newPeer(t)
	other.send(r.port, strings.ReplaceAll(carrierInvite, "carrier-1", "profile-2"))
	r.upstream.expectRequest(sip.INVITE)

	if n := r.decided(); n != 0 {
		t.Errorf("engine asked %d times about the PBX's own calls, want 0", n)
	}
}

// inboundPolicy is the engine's inbound scenario's policy
// (internal/engine/testdata/inbound): calls abroad allowed, the
// high-risk list challenged, fraud patterns enforced.
const inboundPolicy = `
version: 1
tenants:
  demo:
    home_country: BR
    timezone: America/Sao_Paulo
    defaults:
      international: true
      high_risk: challenge
    patterns:
      mode: enforce
`

// A Wangiri callback through the edge, in simulation mode: a Jamaican
// number rings extension 1001 through the carrier and hangs up after two
// seconds; five minutes later 1001 calls it back and is refused by the
// wangiri pattern, as the engine does in process.
func TestWangiriCallbackThroughTheEdge(t *testing.T) {
	pol, err := policy.Parse("inbound.yaml", []byte(inboundPolicy), nil)
	if err != nil {
		t.Fatal(err)
	}
	log := &changeLog{}
	eng := engine.New(pol, engine.Options{Sink: log})
	up := newPeer(t)
	_, port := startGuard(t, eng, up.port(), nil, func(c *Config) { trustCarrier(c); simulation(c) })
	carrier, phone := newPeerAt(t, carrierIP), newPeerAt(t, "127.0.0.3")
	ring := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)
	stamp := func(d time.Duration) string { return hdrEventTime + ": " + ring.Add(d).Format(time.RFC3339Nano) }

	carrier.send(port, withHeader(carrierInvite, stamp(0)))
	inv := up.expectRequest(sip.INVITE)
	if h := inv.GetHeader(hdrDecision); h == nil || !strings.HasPrefix(h.Value(), "verdict=allow; rule=;") {
		t.Errorf("forwarded carrier INVITE's %s = %v, want the engine's allow", hdrDecision, h)
	}
	up.answer(port, pbxAnswer(inv, 180, "Ringing", time.Time{}))
	carrier.expectResponse(180)
	cancel := strings.NewReplacer("INVITE sip", "CANCEL sip", "1 INVITE", "1 CANCEL").Replace(carrierInvite)
	carrier.send(port, withHeader(cancel, stamp(2*time.Second)))
	c := up.expectRequest(sip.CANCEL)
	up.answer(port, pbxAnswer(c, 200, "OK", time.Time{}))
	carrier.expectResponse(200)
	up.answer(port, pbxAnswer(inv, 487, "Request Terminated", ring.Add(2*time.Second)))
	carrier.expectResponse(487)

	callback := strings.NewReplacer("5511999990000", "+18765550123", "call-1@test", "callback-1@test").Replace(invite)
	phone.send(port, withHeader(callback, stamp(5*time.Minute)))
	res := phone.expectResponse(403)
	if h := res.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), `text="pattern.wangiri"`) {
		t.Errorf("callback refused with Reason %v, want pattern.wangiri", h)
	}
	if h := res.GetHeader(hdrDecision); h == nil || !strings.HasPrefix(h.Value(), "verdict=deny; rule=pattern.wangiri;") {
		t.Errorf("callback's %s = %v, want deny by pattern.wangiri", hdrDecision, h)
	}
	up.expectNothing("upstream, after the refused callback")

	decisions := log.find(event.OpDecision)
	if len(decisions) != 2 {
		t.Fatalf("decisions logged = %d, want 2 (the ring and the callback)", len(decisions))
	}
	if d := decisions[0].Decision; d.CallID != "ring-1@carrier" || !d.Time.Equal(ring) || d.Verdict != event.Allow {
		t.Errorf("ring's decision = %+v, want allow at %s", d, ring)
	}
	if d := decisions[1].Decision; d.CallID != "callback-1@test" || !d.Time.Equal(ring.Add(5*time.Minute)) {
		t.Errorf("callback's decision = %+v, want it at %s", d, ring.Add(5*time.Minute))
	}
}

// The same Wangiri callback with SIPp on every side: SIPp as the carrier
// (on its own loopback address), as the PBX (which checks the engine's
// decision on the carrier's INVITE) and as the phone that calls back.
func TestSIPpWangiriCallbackThroughTheEdge(t *testing.T) {
	bin := needSIPp(t)
	t.Parallel()
	pol, err := policy.Parse("inbound.yaml", []byte(inboundPolicy), nil)
	if err != nil {
		t.Fatal(err)
	}
	log := &changeLog{}
	eng := engine.New(pol, engine.Options{Sink: log})
	upPort := freeUDPPort(t)
	_, guardPort := startGuard(t, eng, upPort, nil, func(c *Config) { trustCarrier(c); simulation(c) })
	guard := "127.0.0.1:" + strconv.Itoa(guardPort)

	pbx := startSIPp(t, bin, "uas_sim_ring.xml", upPort, "", "-m", "1")
	carrier := startSIPp(t, bin, "uac_sim_ring.xml", freeUDPPort(t), guard, "-i", carrierIP, "-m", "1", "-s", "1001")
	if code := carrier.wait(t); code != 0 {
		t.Fatalf("carrier exited %d, want 0 (rang, cancelled, 487)", code)
	}
	if code := pbx.wait(t); code != 0 {
		t.Fatalf("pbx exited %d, want 0 (the INVITE carried an allow decision)", code)
	}
	phone := startSIPp(t, bin, "uac_sim_callback.xml", freeUDPPort(t), guard, "-i", "127.0.0.3", "-m", "1", "-s", "+18765550123")
	if code := phone.wait(t); code != 0 {
		t.Fatalf("phone exited %d, want 0 (the callback refused as pattern.wangiri)", code)
	}
	decisions := log.find(event.OpDecision)
	if len(decisions) != 2 || decisions[0].Decision.SourceIP != carrierIP || decisions[1].Decision.Verdict != event.Deny {
		t.Errorf("decisions = %+v, want the carrier's ring, then the callback denied", decisions)
	}
}

// Trusted peers (an office subnet, an SBC, a second PBX) only bypass
// screening: their INVITEs are no carrier's inbound calls unless the peer
// is listed among the carriers.
func TestTrustedPeersAreNotCarriers(t *testing.T) {
	eng := &fakeEngine{}
	r := newRig(t, eng, func(c *Config) { c.TrustedCIDRs = []netip.Prefix{netip.MustParsePrefix(carrierIP + "/32")} })
	office := newPeerAt(t, carrierIP)
	office.send(r.port, carrierInvite)
	r.upstream.expectRequest(sip.INVITE)
	settle()
	if n := r.decided(); n != 0 {
		t.Errorf("engine asked %d times about a trusted peer's INVITE, want 0: it is no carrier", n)
	}
}

// The caller of a carrier's call is the identity the carrier asserts
// (P-Asserted-Identity), not the From the caller wrote, so a forged From
// cannot plant a ring under someone else's number.
func TestCarrierCallerIsTheAssertedIdentity(t *testing.T) {
	eng := &fakeEngine{}
	r := newRig(t, eng, trustCarrier)
	carrier := newPeerAt(t, carrierIP)
	inv := strings.NewReplacer("From: <sip:+18765550123@carrier.example>;tag=c1",
		"From: <sip:+447911123456@carrier.example>;tag=c1\nP-Asserted-Identity: <sip:+18765550123@carrier.example;user=phone>").Replace(carrierInvite)
	carrier.send(r.port, inv)
	r.upstream.expectRequest(sip.INVITE)
	eng.mu.Lock()
	defer eng.mu.Unlock()
	if len(eng.events) != 1 || eng.events[0].From != "+18765550123" {
		t.Fatalf("inbound events %+v; want one from the asserted +18765550123", eng.events)
	}
}

// A caller's own asserted identity never reaches the PBX (the edge of the
// trust domain removes it, RFC 3325 §5); a carrier's does.
func TestCallersAssertedIdentityIsRemoved(t *testing.T) {
	r := newRig(t, &fakeEngine{}, trustCarrier)
	withPAI := strings.Replace(invite, "Max-Forwards: 70", "P-Asserted-Identity: <sip:+18005550100@bank.example>\nP-Preferred-Identity: <tel:+18005550100>\nMax-Forwards: 70", 1)
	r.caller.send(r.port, withPAI)
	got := r.upstream.expectRequest(sip.INVITE)
	if h := got.GetHeader("P-Asserted-Identity"); h != nil {
		t.Errorf("a caller's P-Asserted-Identity reached the PBX: %s", h.Value())
	}
	if h := got.GetHeader("P-Preferred-Identity"); h != nil {
		t.Errorf("a caller's P-Preferred-Identity reached the PBX: %s", h.Value())
	}
	carrier := newPeerAt(t, carrierIP)
	carrier.send(r.port, strings.Replace(carrierInvite, "Max-Forwards: 70", "P-Asserted-Identity: <sip:+18765550123@carrier.example>\nMax-Forwards: 70", 1))
	if h := r.upstream.expectRequest(sip.INVITE).GetHeader("P-Asserted-Identity"); h == nil {
		t.Error("a carrier's P-Asserted-Identity was removed")
	}
}
