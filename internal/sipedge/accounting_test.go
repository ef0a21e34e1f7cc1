package sipedge

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/event"
)

// The engine's concurrency limits and minute and money quotas count what
// the edge reports: an end the PBX never saw frees a slot the call still
// holds, and an answer never reported is never billed. These tests drive
// the ways a caller could make the two disagree.

// answeredCall has the caller place invite (call-1@test) and the PBX
// answer it; it returns the INVITE as the PBX got it.
func answeredCall(t *testing.T, r *proxyRig) *sip.Request {
	t.Helper()
	r.caller.send(r.port, invite)
	inv := r.upstream.expectRequest(sip.INVITE)
	r.upstream.answer(r.port, pbxAnswer(inv, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	if n := r.eng.count(event.CallAnswered); n != 1 {
		t.Fatalf("call_answered = %d when the 200 reached the caller, want 1", n)
	}
	return inv
}

// cancelOf is the caller's CANCEL of invite.
func cancelOf(inv string) string {
	return strings.NewReplacer("INVITE sip", "CANCEL sip", "1 INVITE", "1 CANCEL").Replace(inv)
}

// settle gives the guard's workers time to handle what was last sent, for
// tests that assert something did not happen.
func settle() { time.Sleep(100 * time.Millisecond) }

func TestByeThatCannotBeForwardedDoesNotEndTheCall(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	inv := answeredCall(t, r)
	bye := byeFor(inv, "z9hG4bK-bye-1")
	r.caller.send(r.port, strings.Replace(bye, "Max-Forwards: 70", "Max-Forwards: 0", 1))
	r.caller.expectResponse(483)
	r.upstream.expectNothing("upstream, after a BYE with Max-Forwards 0")
	if n := r.eng.count(event.CallEnded); n != 0 {
		t.Fatalf("call_ended = %d for a BYE the PBX never saw, want 0: the call goes on", n)
	}
	// The real hang-up ends it, before its 200 reaches the caller.
	r.caller.send(r.port, strings.ReplaceAll(bye, "bye-1", "bye-2"))
	got := r.upstream.expectRequest(sip.BYE)
	r.upstream.answer(r.port, pbxAnswer(got, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	if n := r.eng.count(event.CallEnded); n != 1 {
		t.Errorf("call_ended = %d when the 200 to the BYE reached the caller, want 1", n)
	}
}

func TestCancelThatCannotBeForwardedDoesNotEndTheCall(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	r.caller.send(r.port, invite)
	inv := r.upstream.expectRequest(sip.INVITE)
	r.caller.send(r.port, strings.Replace(cancelOf(invite), "Max-Forwards: 70", "Max-Forwards: 0", 1))
	r.caller.expectResponse(483)
	r.upstream.expectNothing("upstream, after a CANCEL with Max-Forwards 0")
	// The PBX never saw the CANCEL and answers: the call is up.
	r.upstream.answer(r.port, pbxAnswer(inv, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	settle()
	if a, e := r.eng.count(event.CallAnswered), r.eng.count(event.CallEnded); a != 1 || e != 0 {
		t.Errorf("answered %d, ended %d; want 1 and 0: the call is up and must be counted", a, e)
	}
}

func TestCancelAfterTheAnswerDoesNotEndTheCall(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	answeredCall(t, r)
	r.caller.send(r.port, cancelOf(invite))
	c := r.upstream.expectRequest(sip.CANCEL)
	r.upstream.answer(r.port, pbxAnswer(c, 200, "OK", time.Time{})) // the PBX keeps the call
	r.caller.expectResponse(200)
	settle()
	if n := r.eng.count(event.CallEnded); n != 0 {
		t.Errorf("call_ended = %d after a CANCEL of an answered call, want 0", n)
	}
}

// A CANCEL ends a call through the INVITE's 487, told to the engine
// before the 487 is relayed.
func TestCancelledCallEndsWithIts487(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	r.caller.send(r.port, invite)
	inv := r.upstream.expectRequest(sip.INVITE)
	r.caller.send(r.port, cancelOf(invite))
	c := r.upstream.expectRequest(sip.CANCEL)
	r.upstream.answer(r.port, pbxAnswer(c, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	if n := r.eng.count(event.CallEnded); n != 0 {
		t.Errorf("call_ended = %d on the 200 to the CANCEL, want 0: the INVITE may still be answered", n)
	}
	r.upstream.answer(r.port, pbxAnswer(inv, 487, "Request Terminated", time.Time{}))
	r.caller.expectResponse(487)
	if n := r.eng.count(event.CallEnded); n != 1 {
		t.Errorf("call_ended = %d when the 487 reached the caller, want 1", n)
	}
}

// The PBX answered just before the CANCEL reached it: the call is up, and
// ends with the caller's BYE (RFC 3261 §9.1).
func TestCancelCrossingTheAnswer(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	r.caller.send(r.port, invite)
	inv := r.upstream.expectRequest(sip.INVITE)
	r.caller.send(r.port, cancelOf(invite))
	c := r.upstream.expectRequest(sip.CANCEL)
	r.upstream.answer(r.port, pbxAnswer(inv, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	r.upstream.answer(r.port, pbxAnswer(c, 481, "Call/Transaction Does Not Exist", time.Time{}))
	r.caller.expectResponse(481)
	settle()
	if a, e := r.eng.count(event.CallAnswered), r.eng.count(event.CallEnded); a != 1 || e != 0 {
		t.Fatalf("answered %d, ended %d; want 1 and 0", a, e)
	}
	r.caller.send(r.port, byeFor(inv, "z9hG4bK-bye-1"))
	bye := r.upstream.expectRequest(sip.BYE)
	r.upstream.answer(r.port, pbxAnswer(bye, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	if n := r.eng.count(event.CallEnded); n != 1 {
		t.Errorf("call_ended = %d after the BYE's 200, want 1", n)
	}
}

// A BYE carrying the call's valid stamp but tags the PBX does not know:
// the PBX answers 481 and the call goes on.
func TestByeThePBXRefusesDoesNotEndTheCall(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	inv := answeredCall(t, r)
	wrongTags := strings.NewReplacer(";tag=pbx1", ";tag=nope", ";tag=a1", ";tag=x9").Replace(byeFor(inv, "z9hG4bK-bye-1"))
	r.caller.send(r.port, wrongTags)
	bye := r.upstream.expectRequest(sip.BYE)
	r.upstream.answer(r.port, pbxAnswer(bye, 481, "Call/Transaction Does Not Exist", time.Time{}))
	r.caller.expectResponse(481)
	if n := r.eng.count(event.CallEnded); n != 0 {
		t.Errorf("call_ended = %d after the PBX refused the BYE, want 0", n)
	}
}

// Retransmitted BYEs and 200s end the call once.
func TestRetransmittedByeEndsTheCallOnce(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	inv := answeredCall(t, r)
	bye := byeFor(inv, "z9hG4bK-bye-1")
	r.caller.send(r.port, bye)
	got := r.upstream.expectRequest(sip.BYE)
	r.caller.send(r.port, bye)
	again := r.upstream.expectRequest(sip.BYE)
	if b1, b2 := got.Via().Params.GetOr("branch", ""), again.Via().Params.GetOr("branch", ""); b1 != b2 {
		t.Errorf("retransmitted BYE on branch %q, want the first's %q", b2, b1)
	}
	for range 2 {
		r.upstream.answer(r.port, pbxAnswer(got, 200, "OK", time.Time{}))
		r.caller.expectResponse(200)
	}
	settle()
	if n := r.eng.count(event.CallEnded); n != 1 {
		t.Errorf("call_ended = %d, want 1", n)
	}
}

// The PBX hangs up: the call ends as the PBX sends its BYE (RFC 3261
// §15.1.1: the sender of a BYE ends the session at once), even if the
// phone never answers it.
func TestPBXByeEndsTheCallWithoutThePhonesAnswer(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	inv := answeredCall(t, r)
	bye := strings.NewReplacer("$RR", inv.RecordRoute().Value(), "$CALLER", "127.0.0.1:"+strconv.Itoa(r.caller.port())).Replace(`
BYE sip:1001@$CALLER SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-pbx-bye
Route: $RR
From: <sip:5511999990000@guard>;tag=pbx1
To: <sip:1001@example.com>;tag=a1
Call-ID: call-1@test
CSeq: 9 BYE
Max-Forwards: 70
Content-Length: 0

`)
	r.upstream.send(r.port, bye)
	r.caller.expectRequest(sip.BYE) // and never answers
	if n := r.eng.count(event.CallEnded); n != 1 {
		t.Errorf("call_ended = %d when the PBX's BYE reached the phone, want 1", n)
	}
}

// A caller spoofing the carrier's address (UDP) sends an unstamped BYE
// with made-up tags for its own call: the PBX refuses it, the call goes
// on, and so does its accounting.
func TestSpoofedCarrierByeDoesNotEndACall(t *testing.T) {
	r := newRig(t, &fakeEngine{}, trustCarrier)
	answeredCall(t, r)
	spoofer := newPeerAt(t, carrierIP)
	spoofer.send(r.port, `
BYE sip:pbx@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-spoof-1
From: <sip:x@example.com>;tag=zz
To: <sip:y@guard>;tag=yy
Call-ID: call-1@test
CSeq: 9 BYE
Max-Forwards: 70
Content-Length: 0

`)
	bye := r.upstream.expectRequest(sip.BYE)
	r.upstream.answer(r.port, pbxAnswer(bye, 481, "Call/Transaction Does Not Exist", time.Time{}))
	spoofer.expectResponse(481)
	if n := r.eng.count(event.CallEnded); n != 0 {
		t.Errorf("call_ended = %d after a spoofed BYE the PBX refused, want 0", n)
	}
}

// A Call-ID longer than the engine's field bound (RFC 3261 sets no
// limit) is one call everywhere: its answer and end reach the engine
// under the id it was decided with.
func TestLongCallIDIsOneCall(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	long := strings.Repeat("x", 300) + "@test"
	r.caller.send(r.port, strings.ReplaceAll(invite, "call-1@test", long))
	inv := r.upstream.expectRequest(sip.INVITE)
	r.upstream.answer(r.port, pbxAnswer(inv, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	r.caller.send(r.port, strings.ReplaceAll(byeFor(inv, "z9hG4bK-bye-1"), "call-1@test", long))
	bye := r.upstream.expectRequest(sip.BYE)
	r.upstream.answer(r.port, pbxAnswer(bye, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)

	r.eng.mu.Lock()
	defer r.eng.mu.Unlock()
	decided := r.eng.events[0].CallID
	var kinds []event.Kind
	for _, ev := range r.eng.observed {
		if ev.CallID != decided {
			t.Errorf("%s under a Call-ID of %d bytes, want the decided one's %d", ev.Kind, len(ev.CallID), len(decided))
		}
		kinds = append(kinds, ev.Kind)
	}
	if len(kinds) != 2 || kinds[0] != event.CallAnswered || kinds[1] != event.CallEnded {
		t.Errorf("observed %v, want the answer and the end", kinds)
	}
}

// secondInvite is a new INVITE (no To tag, its own branch) reusing
// call-1@test's Call-ID.
var secondInvite = strings.NewReplacer("test-1", "test-2", "CSeq: 1 INVITE", "CSeq: 3 INVITE").Replace(invite)

// A new INVITE reusing a live call's Call-ID is refused by the guard
// itself (482, a merged request), never forwarded nor decided: the engine
// would take it for a retransmission and count nothing, and its BYE would
// end the live call.
func TestReusedCallIDDoesNotEndTheLiveCall(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	inv := answeredCall(t, r)
	r.caller.send(r.port, secondInvite)
	r.caller.expectResponse(482)
	r.upstream.expectNothing("upstream, a second INVITE with a live call's Call-ID")
	settle()
	if n, e := r.decided(), r.eng.count(event.CallEnded); n != 1 || e != 0 {
		t.Fatalf("decided %d, call_ended %d after a second INVITE with the live call's Call-ID; want 1 and 0", n, e)
	}
	r.caller.send(r.port, byeFor(inv, "z9hG4bK-bye-1"))
	bye := r.upstream.expectRequest(sip.BYE)
	r.upstream.answer(r.port, pbxAnswer(bye, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	if n := r.eng.count(event.CallEnded); n != 1 {
		t.Errorf("call_ended = %d after the live call's BYE, want 1", n)
	}
}

// A call of the PBX's out through a carrier that loops back in (the
// carrier sends it to the edge with the same Call-ID) is no call of its
// own: its failure does not end the outbound call.
func TestCarrierInviteWithALiveCallIDDoesNotEndIt(t *testing.T) {
	r := newRig(t, &fakeEngine{}, trustCarrier)
	answeredCall(t, r)
	carrier := newPeerAt(t, carrierIP)
	carrier.send(r.port, strings.ReplaceAll(carrierInvite, "ring-1@carrier", "call-1@test"))
	inv := r.upstream.expectRequest(sip.INVITE)
	r.upstream.answer(r.port, pbxAnswer(inv, 486, "Busy Here", time.Time{}))
	carrier.expectResponse(486)
	settle()
	if n := r.eng.count(event.CallEnded); n != 0 {
		t.Errorf("call_ended = %d after a carrier INVITE sharing the call's Call-ID failed, want 0", n)
	}
}

// An INVITE challenged for credentials comes back with the same Call-ID
// (RFC 3261 §22.2) on a new branch: a new attempt, answered and ended
// like any.
func TestChallengedInviteRetriedWithItsCallID(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	r.caller.send(r.port, invite)
	inv := r.upstream.expectRequest(sip.INVITE)
	r.upstream.answer(r.port, pbxAnswer(inv, 407, "Proxy Authentication Required", time.Time{}))
	r.caller.expectResponse(407)
	r.caller.send(r.port, withHeader(secondInvite, `Proxy-Authorization: Digest username="1001", realm="x", nonce="n", uri="sip:x", response="00"`))
	inv2 := r.upstream.expectRequest(sip.INVITE)
	r.upstream.answer(r.port, pbxAnswer(inv2, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	if a, e := r.eng.count(event.CallAnswered), r.eng.count(event.CallEnded); a != 1 || e != 1 {
		t.Errorf("answered %d, ended %d; want the challenged attempt ended and the retry answered", a, e)
	}
}

// Carriers' calls have a table of their own: however many a carrier
// sends, a caller's call stays, and its answer is reported.
func TestCarrierCallsCannotPushOutCallersCalls(t *testing.T) {
	r := newRig(t, &fakeEngine{}, func(c *Config) { trustCarrier(c); c.MaxCalls = 4 })
	r.caller.send(r.port, invite)
	inv := r.upstream.expectRequest(sip.INVITE)
	carrier := newPeerAt(t, carrierIP)
	for i := range 8 {
		id := "flood-" + strconv.Itoa(i)
		carrier.send(r.port, strings.NewReplacer("ring-1@carrier", id, "carrier-1", id).Replace(carrierInvite))
		r.upstream.expectRequest(sip.INVITE)
	}
	r.upstream.answer(r.port, pbxAnswer(inv, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	if n := r.eng.count(event.CallAnswered); n != 1 {
		t.Errorf("call_answered = %d after carriers' INVITEs, want 1: the caller's call must be billed", n)
	}
}

// A full table forgets its oldest call, but the engine still holds it:
// its answer and its failure are still reported (the engine ignores a
// second answer), once.
func TestForgottenCallsAreStillReported(t *testing.T) {
	r := newRig(t, &fakeEngine{}, func(c *Config) { c.MaxCalls = 1 })
	call := func(n int) (string, *sip.Request) {
		msg := strings.NewReplacer("call-1@test", "call-"+strconv.Itoa(n)+"@test", "test-1", "test-"+strconv.Itoa(n)).Replace(invite)
		r.caller.send(r.port, msg)
		return msg, r.upstream.expectRequest(sip.INVITE)
	}
	_, first := call(1)
	_, second := call(2)
	_, third := call(3) // pushes out the first two
	for range 2 {       // the 200 and its retransmission
		r.upstream.answer(r.port, pbxAnswer(first, 200, "OK", time.Time{}))
		r.caller.expectResponse(200)
	}
	if n := r.eng.count(event.CallAnswered); n != 1 {
		t.Errorf("call_answered = %d for a call pushed out of the table, want 1", n)
	}
	r.upstream.answer(r.port, pbxAnswer(second, 486, "Busy Here", time.Time{}))
	r.caller.expectResponse(486)
	if n := r.eng.count(event.CallEnded); n != 1 {
		t.Errorf("call_ended = %d for a forgotten call's failure, want 1", n)
	}
	r.upstream.answer(r.port, pbxAnswer(third, 486, "Busy Here", time.Time{}))
	r.caller.expectResponse(486)
	if n := r.eng.count(event.CallEnded); n != 2 {
		t.Errorf("call_ended = %d, want 2", n)
	}
}

// Hang-ups wait for the PBX's 2xx in a table of their own, which lives 32
// s (a BYE's transaction): they never push a ringing INVITE out of the
// transaction table, whose answer would then go unreported.
func TestByesDoNotPushRingingCallsOut(t *testing.T) {
	r := newRig(t, &fakeEngine{}, func(c *Config) { c.MaxTransactions = 2 })
	r.caller.send(r.port, invite)
	ringing := r.upstream.expectRequest(sip.INVITE)
	second := strings.NewReplacer("call-1@test", "call-2@test", "test-1", "test-2").Replace(invite)
	r.caller.send(r.port, second)
	inv := r.upstream.expectRequest(sip.INVITE)
	r.upstream.answer(r.port, pbxAnswer(inv, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	r.caller.send(r.port, strings.ReplaceAll(byeFor(inv, "z9hG4bK-bye-2"), "call-1@test", "call-2@test"))
	bye := r.upstream.expectRequest(sip.BYE)
	r.upstream.answer(r.port, pbxAnswer(bye, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)

	r.upstream.answer(r.port, pbxAnswer(ringing, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	if a, e := r.eng.count(event.CallAnswered), r.eng.count(event.CallEnded); a != 2 || e != 1 {
		t.Errorf("answered %d, ended %d; want both calls answered and the second ended", a, e)
	}
}

// An allowed INVITE the guard cannot forward never rings: its call ends
// in the engine as the caller gets the failure, so it holds no
// concurrency slot, and a retransmission gets the same failure rather
// than bringing up a call the engine has seen end.
func TestInviteThatCannotBeForwardedEndsItsCall(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	r.caller.send(r.port, strings.Replace(invite, "Max-Forwards: 70", "Max-Forwards: 0", 1))
	r.caller.expectResponse(483)
	if n := r.eng.count(event.CallEnded); n != 1 {
		t.Errorf("call_ended = %d when the 483 reached the caller, want 1", n)
	}
	r.caller.send(r.port, invite) // the same transaction, Max-Forwards put right
	r.caller.expectResponse(483)
	r.upstream.expectNothing("upstream, after a retransmission of an INVITE answered 483")
	if n := r.decided(); n != 1 {
		t.Errorf("engine asked %d times, want 1", n)
	}
}

// A retransmission that arrives while the engine is still deciding the
// first copy is not decided again: one peer's datagrams go to one worker,
// in order, so the copy is handled as a retransmission once the first has
// its answer.
func TestRetransmissionWhileDecidingIsDecidedOnce(t *testing.T) {
	release := make(chan struct{})
	eng := &fakeEngine{decide: func(event.Event) event.Decision {
		<-release
		return event.Decision{Verdict: event.Allow}
	}}
	r := newRig(t, eng, nil)
	r.caller.send(r.port, invite)
	if eng.countEventually(event.CallAttempt, 1) != 1 {
		t.Fatal("the first INVITE was not handed to the engine")
	}
	r.caller.send(r.port, invite) // the phone's retransmission, same branch
	settle()
	close(release)
	r.upstream.expectRequest(sip.INVITE)
	settle()
	if n := eng.count(event.CallAttempt); n != 1 {
		t.Fatalf("the INVITE was decided %d times, want once", n)
	}
}

// Two long Call-IDs that differ only past the first 256 bytes are two
// calls, each decided and counted: cut to the same key, the second passed
// for a retransmission of the first (no decision, no count) and its end
// ended the first.
func TestLongCallIDsDifferingLateAreTwoCalls(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	head := strings.Repeat("p", 300)
	r.caller.send(r.port, strings.ReplaceAll(invite, "call-1@test", head+"A"))
	r.upstream.expectRequest(sip.INVITE)
	second := strings.NewReplacer("call-1@test", head+"B", "test-1", "test-9").Replace(invite)
	r.caller.send(r.port, second)
	r.upstream.expectRequest(sip.INVITE)
	r.eng.mu.Lock()
	defer r.eng.mu.Unlock()
	if len(r.eng.events) != 2 || r.eng.events[0].CallID == r.eng.events[1].CallID {
		t.Fatalf("%d decisions; want two calls under two ids", len(r.eng.events))
	}
	for _, ev := range r.eng.events {
		if len(ev.CallID) > maxField {
			t.Errorf("call id of %d bytes in an event, want at most %d", len(ev.CallID), maxField)
		}
	}
}

// A BYE ends the call only when its tags are the call's dialog: a BYE of
// another dialog with the same Call-ID (a forked 2xx's, or one with
// made-up tags sent as from the PBX) ends nothing, and the dialog's own
// BYE still does.
func TestByeOfAnotherDialogEndsNothing(t *testing.T) {
	r := newRig(t, &fakeEngine{}, nil)
	inv := answeredCall(t, r)
	// The caller hangs up a forked dialog (To tag pbx2): the PBX takes it.
	forked := strings.ReplaceAll(byeFor(inv, "z9hG4bK-bye-fork"), "tag=pbx1", "tag=pbx2")
	r.caller.send(r.port, forked)
	bye := r.upstream.expectRequest(sip.BYE)
	r.upstream.answer(r.port, pbxAnswer(bye, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	// A BYE "from the PBX" with made-up tags and only the Call-ID.
	r.upstream.send(r.port, strings.NewReplacer("$RR", inv.RecordRoute().Value(), "$ME", "127.0.0.1:9").Replace(`
BYE sip:1001@$ME SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-forged-1
Route: $RR
From: <sip:5511999990000@guard>;tag=made-up
To: <sip:1001@example.com>;tag=also-made-up
Call-ID: call-1@test
CSeq: 9 BYE
Max-Forwards: 70
Content-Length: 0

`))
	settle()
	if n := r.eng.count(event.CallEnded); n != 0 {
		t.Fatalf("call_ended = %d after BYEs of other dialogs, want 0: the call is up", n)
	}
	r.caller.send(r.port, byeFor(inv, "z9hG4bK-bye-1"))
	bye = r.upstream.expectRequest(sip.BYE)
	r.upstream.answer(r.port, pbxAnswer(bye, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	if n := r.eng.count(event.CallEnded); n != 1 {
		t.Errorf("call_ended = %d after the dialog's own BYE, want 1", n)
	}
}

// A call ringing after its INVITE transaction left the table (a full
// table, or a ring past the transaction's life) still has its answer and
// its end reported: the call knows the branch that opened it.
func TestAnswerAfterTheTransactionIsForgotten(t *testing.T) {
	r := newRig(t, &fakeEngine{}, func(c *Config) { c.MaxTransactions = 4 })
	r.caller.send(r.port, invite)
	inv := r.upstream.expectRequest(sip.INVITE)
	other := newPeerAt(t, "127.0.0.9")
	for i := range 4 { // four OPTIONS push the ringing INVITE out of the table
		other.send(r.port, strings.NewReplacer("INVITE sip", "OPTIONS sip", "1 INVITE", "1 OPTIONS",
			"z9hG4bK-test-1", fmt.Sprint("z9hG4bK-opt-", i), "call-1@test", fmt.Sprint("opt-", i)).Replace(invite))
		r.upstream.expectRequest(sip.OPTIONS)
	}
	r.upstream.answer(r.port, pbxAnswer(inv, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	if n := r.eng.count(event.CallAnswered); n != 1 {
		t.Fatalf("call_answered = %d for a call whose transaction was forgotten, want 1", n)
	}
	r.caller.send(r.port, byeFor(inv, "z9hG4bK-bye-1"))
	bye := r.upstream.expectRequest(sip.BYE)
	r.upstream.answer(r.port, pbxAnswer(bye, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	if n := r.eng.count(event.CallEnded); n != 1 {
		t.Errorf("call_ended = %d, want 1", n)
	}
}
