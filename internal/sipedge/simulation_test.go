package sipedge

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telguard/telguard/examples"
	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/sipedge/prefilter"
)

// These tests drive the guard in simulation mode as `telguard sim` does:
// X-Telguard-Time on requests and on the PBX's answers, the decision read
// back from X-Telguard-Decision.

func simulation(c *Config) { c.Simulation = true }

// changeLog is an engine sink that keeps every change.
type changeLog struct {
	mu      sync.Mutex
	changes []event.Change
}

func (l *changeLog) Emit(cs ...event.Change) {
	l.mu.Lock()
	l.changes = append(l.changes, cs...)
	l.mu.Unlock()
}

// find returns the changes of op.
func (l *changeLog) find(op event.Op) []event.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []event.Change
	for _, c := range l.changes {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

// examplesEngine is a real engine on examples/policy.yaml that records
// its decisions and finished calls in log.
func examplesEngine(t *testing.T, log *changeLog) *engine.Engine {
	t.Helper()
	pol, err := policy.Parse("examples/policy.yaml", examples.Policy, nil)
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(pol, engine.Options{Sink: log, History: true})
}

// withHeader adds a header line to a request or response written as in
// proxy_test.go (before Max-Forwards, or before Content-Length).
func withHeader(msg, line string) string {
	if strings.Contains(msg, "Max-Forwards:") {
		return strings.Replace(msg, "Max-Forwards:", line+"\nMax-Forwards:", 1)
	}
	return strings.Replace(msg, "Content-Length:", line+"\r\nContent-Length:", 1)
}

// pbxAnswer builds the upstream's answer to req with an event time (none
// when at is zero).
func pbxAnswer(req *sip.Request, code int, reason string, at time.Time) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if _, ok := req.To().Params.Get("tag"); !ok {
		// The PBX's own tag, which the tests' in-dialog requests carry
		// (sipgo would otherwise make up one of its own).
		res.To().Params.Add("tag", "pbx1")
	}
	if !at.IsZero() {
		res.AppendHeader(sip.NewHeader(hdrEventTime, at.Format(time.RFC3339Nano)))
	}
	return res
}

// byeFor is the caller's BYE for the call invite opened, routed by the
// Record-Route the upstream received (what the caller learns from the
// 200).
func byeFor(inv *sip.Request, branch string) string {
	return strings.NewReplacer(
		"INVITE sip:5511999990000@guard", "BYE sip:pbx@127.0.0.1",
		"z9hG4bK-test-1", branch,
		"To: <sip:5511999990000@guard>", "To: <sip:5511999990000@guard>;tag=pbx1",
		"CSeq: 1 INVITE", "CSeq: 2 BYE",
		"Max-Forwards: 70", "Route: "+inv.RecordRoute().Value()+"\nMax-Forwards: 70",
	).Replace(invite)
}

func TestSimulationEventTimesReachTheEngine(t *testing.T) {
	log := &changeLog{}
	up := newPeer(t)
	_, port := startGuard(t, examplesEngine(t, log), up.port(), nil, simulation)
	caller := newPeerAt(t, "127.0.0.7")
	t0 := time.Date(2026, 3, 2, 9, 15, 0, 500_000_000, time.UTC)

	// An ordinary call (1001 to a São Paulo number, allowed), months of
	// event time away from the wall clock: the attempt at t0, answered 5 s
	// later, hung up after 60 s of talk.
	call := strings.ReplaceAll(invite, "5511999990000", "1133334444")
	caller.send(port, withHeader(call, hdrEventTime+": 2026-03-02T09:15:00.5Z"))
	inv := up.expectRequest(sip.INVITE)
	up.answer(port, pbxAnswer(inv, 180, "Ringing", time.Time{}))
	caller.expectResponse(180)
	up.answer(port, pbxAnswer(inv, 200, "OK", t0.Add(5*time.Second)))
	caller.expectResponse(200)
	caller.send(port, withHeader(strings.ReplaceAll(byeFor(inv, "z9hG4bK-bye-1"), "5511999990000", "1133334444"), hdrEventTime+": 2026-03-02T09:16:05.5Z"))
	bye := up.expectRequest(sip.BYE)
	up.answer(port, pbxAnswer(bye, 200, "OK", time.Time{}))
	caller.expectResponse(200)

	decisions := log.find(event.OpDecision)
	if len(decisions) != 1 || !decisions[0].Decision.Time.Equal(t0) || decisions[0].Decision.Verdict != event.Allow {
		t.Fatalf("decisions = %+v, want one allow at %s (the INVITE's header)", decisions, t0)
	}
	// Told before the 200 to the BYE left the guard: no waiting here.
	history := log.find(event.OpPutHistory)
	if len(history) != 1 {
		t.Fatalf("finished calls = %d when the 200 to BYE arrived, want 1", len(history))
	}
	h := history[0].History
	if !h.Start.Equal(t0) || !h.Answer.Equal(t0.Add(5*time.Second)) || !h.End.Equal(t0.Add(65*time.Second)) || h.Billsec != time.Minute {
		t.Errorf("call record start %s answer %s end %s billsec %s; want the headers' times and 60s billed",
			h.Start, h.Answer, h.End, h.Billsec)
	}
}

func TestSimulationAnswersAndEndsAreToldBeforeTheyAreRelayed(t *testing.T) {
	eng := &fakeEngine{}
	r := newRig(t, eng, simulation)
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

	// A call the PBX answers: the answer is observed before the caller
	// sees the 200, with the 200's time.
	r.caller.send(r.port, withHeader(invite, hdrEventTime+": "+t0.Format(time.RFC3339)))
	first := r.upstream.expectRequest(sip.INVITE)
	r.upstream.answer(r.port, pbxAnswer(first, 200, "OK", t0.Add(3*time.Second)))
	r.caller.expectResponse(200)
	assertObserved(t, eng, event.CallAnswered, "call-1@test", t0.Add(3*time.Second))

	// A call the PBX turns down: ended before the 486 is relayed.
	second := strings.NewReplacer("call-1@test", "call-2@test", "test-1", "test-2").Replace(invite)
	r.caller.send(r.port, withHeader(second, hdrEventTime+": "+t0.Add(time.Minute).Format(time.RFC3339)))
	inv := r.upstream.expectRequest(sip.INVITE)
	r.upstream.answer(r.port, pbxAnswer(inv, 486, "Busy Here", t0.Add(time.Minute+2*time.Second)))
	r.caller.expectResponse(486)
	assertObserved(t, eng, event.CallEnded, "call-2@test", t0.Add(time.Minute+2*time.Second))

	// A call the caller cancels: ended, at the CANCEL's time, before the
	// 487 reaches the caller.
	third := strings.NewReplacer("call-1@test", "call-3@test", "test-1", "test-3").Replace(invite)
	r.caller.send(r.port, withHeader(third, hdrEventTime+": "+t0.Add(2*time.Minute).Format(time.RFC3339)))
	inv3 := r.upstream.expectRequest(sip.INVITE)
	cancel := strings.NewReplacer("INVITE sip", "CANCEL sip", "1 INVITE", "1 CANCEL").Replace(third)
	r.caller.send(r.port, withHeader(cancel, hdrEventTime+": "+t0.Add(2*time.Minute+4*time.Second).Format(time.RFC3339)))
	c := r.upstream.expectRequest(sip.CANCEL)
	r.upstream.answer(r.port, pbxAnswer(c, 200, "OK", time.Time{}))
	r.caller.expectResponse(200)
	r.upstream.answer(r.port, pbxAnswer(inv3, 487, "Request Terminated", time.Time{}))
	r.caller.expectResponse(487)
	assertObserved(t, eng, event.CallEnded, "call-3@test", t0.Add(2*time.Minute+4*time.Second))

	// The PBX hangs up the first call: its BYE's time.
	bye := strings.NewReplacer("$GUARD_RR", first.RecordRoute().Value(), "$CALLER", "127.0.0.1:"+strconv.Itoa(r.caller.port())).Replace(`
BYE sip:1001@$CALLER SIP/2.0
Via: SIP/2.0/UDP $ME;branch=z9hG4bK-pbx-bye
Route: $GUARD_RR
From: <sip:5511999990000@guard>;tag=pbx1
To: <sip:1001@example.com>;tag=a1
Call-ID: call-1@test
CSeq: 9 BYE
X-Telguard-Time: 2026-03-02T09:10:00Z
Max-Forwards: 70
Content-Length: 0

`)
	r.upstream.send(r.port, bye)
	r.caller.expectRequest(sip.BYE)
	assertObserved(t, eng, event.CallEnded, "call-1@test", t0.Add(10*time.Minute))
}

// assertObserved checks, without waiting, that the engine observed kind
// for callID at the time given.
func assertObserved(t *testing.T, eng *fakeEngine, kind event.Kind, callID string, at time.Time) {
	t.Helper()
	eng.mu.Lock()
	defer eng.mu.Unlock()
	for _, ev := range eng.observed {
		if ev.Kind == kind && ev.CallID == callID {
			if !ev.Time.Equal(at) {
				t.Errorf("%s %s at %s, want %s (the header's time)", kind, callID, ev.Time, at)
			}
			return
		}
	}
	t.Errorf("%s %s not observed by the time the message was relayed", kind, callID)
}

func TestSimulationMalformedTimeGets400(t *testing.T) {
	eng := &fakeEngine{}
	reg := prometheus.NewRegistry()
	up := newPeer(t)
	_, port := startGuard(t, eng, up.port(), reg, simulation)
	caller := newPeer(t)
	for _, v := range []string{"yesterday", "2026-03-02 09:15:00", "2026-03-02T09:15:00", "0001-01-01T00:00:00Z"} {
		caller.send(port, withHeader(invite, hdrEventTime+": "+v))
		res := caller.expectResponse(400)
		if res.GetHeader(hdrDecision) != nil {
			t.Errorf("a 400 carries %s", hdrDecision)
		}
	}
	up.expectNothing("upstream, after INVITEs with malformed times")
	if n := eng.count(event.CallAttempt); n != 0 {
		t.Errorf("the engine was asked %d times about requests with malformed times", n)
	}

	// A PBX answer with a malformed time is relayed and takes wall time.
	caller.send(port, invite)
	inv := up.expectRequest(sip.INVITE)
	res := pbxAnswer(inv, 200, "OK", time.Time{})
	res.AppendHeader(sip.NewHeader(hdrEventTime, "soon"))
	up.answer(port, res)
	caller.expectResponse(200)
	eng.mu.Lock()
	obs := append([]event.Event(nil), eng.observed...)
	eng.mu.Unlock()
	if len(obs) != 1 || obs[0].Kind != event.CallAnswered || time.Since(obs[0].Time).Abs() > time.Minute {
		t.Errorf("observed %+v, want one call_answered at wall time", obs)
	}
	if got := gaugeOrCounter(t, reg, "telguard_sip_event_time_invalid_total"); got != 1 {
		t.Errorf("telguard_sip_event_time_invalid_total = %v, want 1", got)
	}
}

// gaugeOrCounter reads an unlabelled counter or gauge from reg.
func gaugeOrCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func TestOutsideSimulationTheHeadersAreIgnored(t *testing.T) {
	var deny atomic.Bool
	eng := &fakeEngine{decide: func(event.Event) event.Decision {
		if deny.Load() {
			return event.Decision{Verdict: event.Deny, SIPCode: 403, Risk: 90,
				Reasons: []event.Reason{{Rule: "destination.number_type", Mode: event.Enforce, Verdict: event.Deny}}}
		}
		return event.Decision{Verdict: event.Allow}
	}}
	r := newRig(t, eng, nil)
	// A time long past and a malformed one: neither is read.
	r.caller.send(r.port, withHeader(invite, hdrEventTime+": 2020-01-01T00:00:00Z"))
	got := r.upstream.expectRequest(sip.INVITE)
	if h := got.GetHeader(hdrDecision); h != nil {
		t.Errorf("forwarded INVITE carries %s: %s", hdrDecision, h.Value())
	}
	eng.mu.Lock()
	at := eng.events[0].Time
	eng.mu.Unlock()
	if time.Since(at).Abs() > time.Minute {
		t.Errorf("event time %s, want wall time: the header is not trusted outside simulation mode", at)
	}
	second := strings.NewReplacer("call-1@test", "call-2@test", "test-1", "test-2").Replace(invite)
	r.caller.send(r.port, withHeader(second, hdrEventTime+": yesterday"))
	r.upstream.expectRequest(sip.INVITE)

	deny.Store(true)
	third := strings.NewReplacer("call-1@test", "call-3@test", "test-1", "test-3").Replace(invite)
	r.caller.send(r.port, third)
	if h := r.caller.expectResponse(403).GetHeader(hdrDecision); h != nil {
		t.Errorf("a rejection outside simulation mode tells the caller %s", h.Value())
	}
}

func TestSimulationDecisionHeader(t *testing.T) {
	var verdict atomic.Value
	verdict.Store(event.Allow)
	eng := &fakeEngine{decide: func(event.Event) event.Decision {
		switch verdict.Load().(event.Verdict) {
		case event.Deny:
			return event.Decision{Verdict: event.Deny, SIPCode: 403, Risk: 90, AnomalyScore: 0.876543,
				Reasons: []event.Reason{
					{Rule: "limit.calls", Mode: event.Monitor, Verdict: event.Ban},
					{Rule: "destination.number_type", Mode: event.Enforce, Verdict: event.Deny}}}
		case event.Ban:
			// A banned source: the engine asks for silence, but the
			// simulator must learn the decision.
			return event.Decision{Verdict: event.Ban, SIPCode: 603, Risk: 100, Silent: true, BanSeconds: 3600,
				Reasons: []event.Reason{{Rule: "source_ip.banned", Mode: event.Enforce, Verdict: event.Ban}}}
		}
		return event.Decision{Verdict: event.Allow, Risk: 12, AnomalyScore: 0.5,
			Reasons: []event.Reason{{Rule: "limit.calls", Mode: event.Monitor, Verdict: event.Deny}}}
	}}
	r := newRig(t, eng, simulation)

	// Allowed: the forwarded INVITE says so, in place of the caller's own.
	r.caller.send(r.port, withHeader(invite, hdrDecision+": verdict=allow; rule=; risk=0; score=0"))
	got := r.upstream.expectRequest(sip.INVITE)
	if hs := got.GetHeaders(hdrDecision); len(hs) != 1 || hs[0].Value() != "verdict=allow; rule=; risk=12; score=0.5000" {
		t.Errorf("forwarded %s = %v, want only the guard's \"verdict=allow; rule=; risk=12; score=0.5000\"", hdrDecision, hs)
	}
	r.caller.send(r.port, invite) // retransmitted: the same header
	if h := r.upstream.expectRequest(sip.INVITE).GetHeader(hdrDecision); h == nil || h.Value() != "verdict=allow; rule=; risk=12; score=0.5000" {
		t.Errorf("retransmitted INVITE's %s = %v", hdrDecision, h)
	}

	verdict.Store(event.Deny)
	second := strings.NewReplacer("call-1@test", "call-2@test", "test-1", "test-2").Replace(invite)
	r.caller.send(r.port, second)
	res := r.caller.expectResponse(403)
	if h := res.GetHeader(hdrDecision); h == nil || h.Value() != "verdict=deny; rule=destination.number_type; risk=90; score=0.8765" {
		t.Errorf("rejection's %s = %v", hdrDecision, h)
	}

	verdict.Store(event.Ban)
	third := strings.NewReplacer("call-1@test", "call-3@test", "test-1", "test-3").Replace(invite)
	r.caller.send(r.port, third)
	res = r.caller.expectResponse(603)
	if h := res.GetHeader(hdrDecision); h == nil || h.Value() != "verdict=ban; rule=source_ip.banned; risk=100; score=0.0000" {
		t.Errorf("ban's %s = %v", hdrDecision, h)
	}
	r.upstream.expectNothing("upstream, after rejected INVITEs")
}

func TestSimulationKeepsEngineBansOutOfThePacketFilter(t *testing.T) {
	for _, sim := range []bool{false, true} {
		eng := &fakeEngine{decide: func(ev event.Event) event.Decision {
			return event.Decision{Verdict: event.Ban, SIPCode: 603, BanSeconds: 3600,
				Reasons: []event.Reason{{Rule: "escalation.ip_ban", Mode: event.Enforce, Verdict: event.Ban}}}
		}}
		filter, err := prefilter.New(prefilter.Config{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
		if err != nil {
			t.Fatal(err)
		}
		up := newPeer(t)
		_, port := startGuard(t, eng, up.port(), nil, func(c *Config) { c.Filter, c.Simulation = filter, sim })
		caller := newPeerAt(t, "127.0.0.9")
		caller.send(port, invite)
		caller.expectResponse(603)
		_, _, banned := filter.Banned(netip.MustParseAddr("127.0.0.9"))
		if banned == sim {
			t.Errorf("simulation %v: packet filter ban = %v, want %v", sim, banned, !sim)
		}
		second := strings.NewReplacer("call-1@test", "call-2@test", "test-1", "test-2").Replace(invite)
		caller.send(port, second)
		if sim {
			caller.expectResponse(603) // the engine answers again, on event time
		} else {
			caller.expectNothing("a source the filter banned")
		}
	}
}

func TestSimulationNeedsLoopbackAddresses(t *testing.T) {
	for _, tc := range []struct{ listen, upstream string }{
		{"udp:0.0.0.0:0", "udp:127.0.0.1:5070"},
		{"udp:127.0.0.1:0", "udp:192.0.2.1:5070"},
	} {
		_, err := New(Config{Listen: []string{"udp:127.0.0.1:0", tc.listen}, Upstream: tc.upstream, Tenant: "demo", Simulation: true}, &fakeEngine{}, nil, nil)
		if !errors.Is(err, ErrSimulationNotLoopback) {
			t.Errorf("listen %s upstream %s: err = %v, want ErrSimulationNotLoopback", tc.listen, tc.upstream, err)
		}
	}
	if _, err := New(Config{Listen: []string{"udp:[::1]:0"}, Upstream: "udp:[::1]:5070", Tenant: "demo", Simulation: true}, &fakeEngine{}, nil, nil); err != nil {
		t.Errorf("loopback IPv6: %v", err)
	}
}

func TestParseEventTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-03-02T09:15:00Z", time.Date(2026, 3, 2, 9, 15, 0, 0, time.UTC)},
		{"2026-03-02T09:15:00.5Z", time.Date(2026, 3, 2, 9, 15, 0, 500_000_000, time.UTC)},
		{" 2026-03-02T06:15:00.123456789-03:00 ", time.Date(2026, 3, 2, 9, 15, 0, 123456789, time.UTC)},
	} {
		got, err := parseEventTime(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseEventTime(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "now", "2026-03-02", "2026-03-02T09:15:00", "1969-12-31T23:59:59Z",
		"2026-03-02T09:15:00Z" + strings.Repeat("0", 64), "2026-13-02T09:15:00Z"} {
		if _, err := parseEventTime(in); !errors.Is(err, ErrBadEventTime) {
			t.Errorf("parseEventTime(%q): err = %v, want ErrBadEventTime", in, err)
		}
	}
}

func FuzzParseEventTime(f *testing.F) {
	for _, s := range []string{"2026-03-02T09:15:00.5Z", "2026-03-02T09:15:00+03:00", "", "x", "9999-12-31T23:59:59.999999999Z", "1970-01-01T00:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseEventTime(s)
		if err != nil {
			if !errors.Is(err, ErrBadEventTime) {
				t.Fatalf("error %v is not ErrBadEventTime", err)
			}
			if len(err.Error()) > 512 {
				t.Fatalf("error of %d bytes: the input must be bounded in it", len(err.Error()))
			}
			return
		}
		if got.IsZero() || got.Year() < 1970 || len(s) > maxEventTimeLen {
			t.Fatalf("parseEventTime(%q) = %s accepted", s, got)
		}
		// What is accepted round-trips: the simulator's own formatting
		// gives the same instant back.
		again, err := parseEventTime(got.Format(time.RFC3339Nano))
		if err != nil || !again.Equal(got) {
			t.Fatalf("round trip of %q: %s, %v", s, again, err)
		}
	})
}

func BenchmarkParseEventTime(b *testing.B) {
	for b.Loop() {
		if _, err := parseEventTime("2026-03-02T09:15:00.123456789Z"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecisionHeader(b *testing.B) {
	d := event.Decision{Verdict: event.Deny, Risk: 90, AnomalyScore: 0.61,
		Reasons: []event.Reason{{Rule: "destination.high_risk", Mode: event.Enforce, Verdict: event.Challenge},
			{Rule: "pattern.wangiri", Mode: event.Enforce, Verdict: event.Deny}}}
	for b.Loop() {
		decisionHeader(&d)
	}
}

// The guard's headers from outside never reach the PBX, in any mode: a
// caller's X-Telguard-Decision would pass for the engine's, and
// X-Telguard-Time is the guard's to read (in simulation mode) and no one
// else's.
func TestCallersTelguardHeadersNeverReachThePBX(t *testing.T) {
	for _, sim := range []bool{false, true} {
		eng := &fakeEngine{}
		r := newRig(t, eng, func(c *Config) { c.Simulation = sim })
		forged := withHeader(withHeader(invite, hdrDecision+": verdict=allow; rule=forged; risk=1; score=0.0000"),
			"x-telguard-time: 2026-03-02T09:15:00Z")
		r.caller.send(r.port, forged)
		inv := r.upstream.expectRequest(sip.INVITE)
		if h := inv.GetHeader(hdrEventTime); h != nil {
			t.Errorf("simulation %v: the PBX got the caller's %s: %s", sim, hdrEventTime, h.Value())
		}
		hs := inv.GetHeaders(hdrDecision)
		switch {
		case !sim && len(hs) != 0:
			t.Errorf("outside simulation the PBX got the caller's %s: %s", hdrDecision, hs[0].Value())
		case sim && (len(hs) != 1 || hs[0].Value() != "verdict=allow; rule=; risk=0; score=0.0000"):
			t.Errorf("in simulation the PBX got %s %v, want only the guard's", hdrDecision, hs)
		}
		eng.mu.Lock()
		at := eng.events[0].Time
		eng.mu.Unlock()
		if want := time.Date(2026, 3, 2, 9, 15, 0, 0, time.UTC); sim != at.Equal(want) {
			t.Errorf("simulation %v: event time %s; the header counts in simulation mode only", sim, at)
		}
		// In a dialog too.
		r.upstream.answer(r.port, pbxAnswer(inv, 200, "OK", time.Time{}))
		r.caller.expectResponse(200)
		r.caller.send(r.port, withHeader(withHeader(byeFor(inv, "z9hG4bK-bye-1"), hdrDecision+": verdict=deny"), hdrEventTime+": 2026-03-02T09:16:00Z"))
		bye := r.upstream.expectRequest(sip.BYE)
		if bye.GetHeader(hdrDecision) != nil || bye.GetHeader(hdrEventTime) != nil {
			t.Errorf("simulation %v: the BYE reached the PBX with the caller's X-Telguard headers", sim)
		}
	}
}
