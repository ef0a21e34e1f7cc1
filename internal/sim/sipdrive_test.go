package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/clock"
	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

// fakeEdge plays the SIP edge's side of the simulation contract (see
// SIPDecider) around an engine in process, so that the simulator's side
// can be tested without the daemon: it decides each INVITE at its
// X-Telguard-Time, rejects it with the decision in X-Telguard-Decision or
// forwards it to the PBX with the same header, relays the PBX's answers
// back, and tells the engine of answers and ends before relaying them.
// test/e2e/sim_sip_test.go runs the real edge.
type fakeEdge struct {
	t        *testing.T
	conn     *net.UDPConn
	pbx      netip.AddrPort
	carrier  netip.Addr
	eng      *engine.Engine
	clk      *clock.Manual
	tenant   string
	mu       sync.Mutex
	callers  map[string]netip.AddrPort // Call-ID → caller
	rejected map[string][]byte         // Call-ID → the edge's rejection, for retransmissions
	sources  map[netip.Addr]bool       // every caller address seen
	drop     func(sip.Message) bool    // when set, messages it says to drop are lost on the way in
	events   map[event.Kind]int        // what the engine was told
	wg       sync.WaitGroup
}

func newFakeEdge(t *testing.T, pol *policy.Policy, tenant string, start time.Time, pbx netip.AddrPort, carrier netip.Addr) *fakeEdge {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(start)
	e := &fakeEdge{t: t, conn: conn, pbx: pbx, carrier: carrier, eng: engine.New(pol, engine.Options{Clock: clk}), clk: clk, tenant: tenant,
		callers: map[string]netip.AddrPort{}, rejected: map[string][]byte{}, sources: map[netip.Addr]bool{}, events: map[event.Kind]int{}}
	e.wg.Add(1)
	go e.serve()
	t.Cleanup(func() { conn.Close(); e.wg.Wait() })
	return e
}

func (e *fakeEdge) addr() netip.AddrPort { return netip.MustParseAddrPort(e.conn.LocalAddr().String()) }

func (e *fakeEdge) serve() {
	defer e.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			e.t.Errorf("fake edge: unparsable message: %v", err)
			continue
		}
		e.mu.Lock()
		drop := e.drop != nil && e.drop(msg)
		e.mu.Unlock()
		if drop {
			continue
		}
		switch m := msg.(type) {
		case *sip.Request:
			e.onRequest(m, from)
		case *sip.Response:
			e.onResponse(m)
		}
	}
}

func (e *fakeEdge) timeOf(m interface {
	GetHeader(string) sip.Header
	StartLine() string
}) time.Time {
	h := m.GetHeader(HeaderTime)
	if h == nil {
		e.t.Errorf("fake edge: no %s on %s", HeaderTime, m.StartLine())
		return time.Time{}
	}
	at, err := time.Parse(time.RFC3339Nano, h.Value())
	if err != nil {
		e.t.Errorf("fake edge: %s: %v", HeaderTime, err)
	}
	return at
}

func (e *fakeEdge) observe(kind event.Kind, callID string, at time.Time) {
	e.mu.Lock()
	e.events[kind]++
	e.mu.Unlock()
	e.clk.Set(at)
	_ = e.eng.Observe(context.Background(), event.Event{Kind: kind, Time: at, Tenant: e.tenant, CallID: callID, Sensor: "sip"})
}

func (e *fakeEdge) onRequest(req *sip.Request, from netip.AddrPort) {
	id := string(*req.CallID())
	e.mu.Lock()
	e.sources[from.Addr()] = true
	rej, wasRejected := e.rejected[id]
	_, forwarded := e.callers[id]
	e.mu.Unlock()
	switch {
	case req.IsInvite() && wasRejected:
		e.send(rej, from)
		return
	case req.IsInvite() && !forwarded:
		at := e.timeOf(req)
		ev := event.Event{Kind: event.CallAttempt, Time: at, Tenant: e.tenant, Account: req.From().Address.User, CallID: id,
			From: req.From().Address.User, To: req.Recipient.User, SourceIP: from.Addr(), Sensor: "sip"}
		if from.Addr() == e.carrier {
			ev.Account, ev.Direction = req.Recipient.User, event.Inbound
		}
		e.clk.Set(at)
		e.mu.Lock()
		e.events[ev.Kind]++
		e.mu.Unlock()
		d := e.eng.Decide(context.Background(), ev)
		rule := ""
		for _, r := range d.Reasons {
			if r.Mode == event.Enforce && r.Verdict == d.Verdict {
				rule = r.Rule
				break
			}
		}
		header := fmt.Sprintf("verdict=%s; rule=%s; risk=%d; score=%.4f", d.Verdict, rule, d.Risk, d.AnomalyScore)
		if d.Verdict.Blocks() && ev.Direction != event.Inbound {
			code := d.SIPCode
			if code < 300 {
				code = 403
			}
			res := sip.NewResponseFromRequest(req, code, "Rejected", nil)
			res.AppendHeader(sip.NewHeader(HeaderDecision, header))
			b := []byte(res.String())
			e.mu.Lock()
			e.rejected[id] = b
			e.mu.Unlock()
			e.send(b, from)
			return
		}
		e.mu.Lock()
		e.callers[id] = from
		e.mu.Unlock()
		req.AppendHeader(sip.NewHeader(HeaderDecision, header))
		req.PrependHeader(&sip.RecordRouteHeader{Address: sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(e.addr().Port()), UriParams: sip.HeaderParams{{K: "lr", V: ""}}}})
	case req.IsAck() && wasRejected:
		return
	case req.Method == sip.BYE:
		e.observe(event.CallEnded, id, e.timeOf(req))
	}
	for req.GetHeader("Route") != nil {
		req.RemoveHeader("Route")
	}
	branch, _ := req.Via().Params.Get("branch")
	req.PrependHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1", Port: int(e.addr().Port()),
		Params: sip.HeaderParams{{K: "branch", V: "z9hG4bK-fe-" + strings.TrimPrefix(branch, sip.RFC3261BranchMagicCookie)}}})
	e.send([]byte(req.String()), e.pbx)
}

func (e *fakeEdge) onResponse(res *sip.Response) {
	id := string(*res.CallID())
	e.mu.Lock()
	caller, ok := e.callers[id]
	e.mu.Unlock()
	if !ok {
		e.t.Errorf("fake edge: response to an unknown call %s", id)
		return
	}
	res.RemoveHeader("Via")
	if res.CSeq().MethodName == sip.INVITE {
		switch {
		case res.StatusCode >= 300:
			e.observe(event.CallEnded, id, e.timeOf(res))
		case res.StatusCode >= 200:
			e.observe(event.CallAnswered, id, e.timeOf(res))
		}
	}
	e.send([]byte(res.String()), caller)
}

func (e *fakeEdge) send(b []byte, to netip.AddrPort) {
	if _, err := e.conn.WriteToUDPAddrPort(b, to); err != nil && !errors.Is(err, net.ErrClosed) {
		e.t.Errorf("fake edge: send: %v", err)
	}
}

func freeUDP(t *testing.T, host string) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return netip.MustParseAddrPort(c.LocalAddr().String())
}

// The same seed through SIP gives the same report as in process: every
// call's verdict is the engine's, warm-up and inbound rings included, and
// the simulated networks keep their shape on loopback (the new-network
// baseline denies the stolen key and the distributed attack from their
// fresh /24s as it does in process).
func TestSIPRunMatchesInProcess(t *testing.T) {
	pol := examplePolicy(t)
	o := Options{Seed: 3, Days: 2, WarmUpDays: 3, Tenants: 1, Accounts: 30, Scenarios: ScenarioNames(), Policy: pol, Start: DefaultStart}
	local, err := Simulate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}

	_, world, err := World(pol, 1, o.Accounts)
	if err != nil {
		t.Fatal(err)
	}
	pbx, carrier := freeUDP(t, "127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	edge := newFakeEdge(t, world, "demo", DefaultStart.AddDate(0, 0, -o.WarmUpDays), pbx, carrier)
	d, err := NewSIPDecider(SIPOptions{Target: edge.addr(), PBX: pbx, Carrier: carrier, RunID: "t1-"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	remote, st, err := SimulateSIP(context.Background(), o, d)
	if err != nil {
		t.Fatal(err)
	}
	if st.Failures != 0 || st.Checks != remote.Honest.Attempts+remote.Overall.Attempts+remote.WarmUpCalls+remote.Inbound {
		t.Fatalf("SIP run: %+v, want every attempt sent without failures", st)
	}
	same := func(what string, a, b any) {
		t.Helper()
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("%s differs:\nthrough SIP: %s\nin process:  %s", what, ja, jb)
		}
	}
	same("honest traffic", remote.Honest, local.Honest)
	same("overall", remote.Overall, local.Overall)
	for i := range min(len(remote.Attacks), len(local.Attacks)) {
		same(remote.Attacks[i].Scenario, remote.Attacks[i], local.Attacks[i])
	}
	if len(remote.Attacks) != len(local.Attacks) || remote.Inbound == 0 || remote.Inbound != local.Inbound || remote.WarmUpCalls != local.WarmUpCalls {
		t.Errorf("%d attacks, %d inbound, %d warm-up through SIP; %d, %d, %d in process",
			len(remote.Attacks), remote.Inbound, remote.WarmUpCalls, len(local.Attacks), local.Inbound, local.WarmUpCalls)
	}
	if st.Rejected == nil || st.Rejected.Decisions < remote.Overall.Blocked+remote.Honest.Blocked || st.Rejected.Decisions >= st.Checks {
		t.Errorf("rejections' latency %+v; %d blocked of %d", st.Rejected, remote.Overall.Blocked+remote.Honest.Blocked, st.Checks)
	}
	if remote.Overall.Blocked == 0 || remote.Latency.Decisions != st.Checks || remote.Latency.P50 <= 0 || remote.Target != "udp:"+edge.addr().String() {
		t.Errorf("blocked %d, latency %+v, target %q", remote.Overall.Blocked, remote.Latency, remote.Target)
	}

	// Every simulated source was a loopback address of its own, each
	// simulated /24 one loopback /24, and nothing came from 127.0/16 but
	// the carrier.
	calls, _ := Generate(Config{Seed: o.Seed, Start: o.Start, Days: o.Days, WarmUpDays: o.WarmUpDays, Rings: true, Tenants: mustWorld(t, pol, o.Accounts), Scenarios: o.Scenarios})
	addrs, nets := map[netip.Addr]bool{}, map[netip.Prefix]bool{}
	for _, c := range calls {
		if !c.Inbound {
			addrs[c.SourceIP] = true
			nets[netip.PrefixFrom(c.SourceIP, 24).Masked()] = true
		}
	}
	edge.mu.Lock()
	defer edge.mu.Unlock()
	seenNets := map[netip.Prefix]bool{}
	for a := range edge.sources {
		if a == carrier {
			continue
		}
		if b := a.As4(); b[0] != 127 || b[1] == 0 {
			t.Errorf("source %s outside 127.1.0.0-127.255.255.255", a)
		}
		seenNets[netip.PrefixFrom(a, 24).Masked()] = true
	}
	if len(edge.sources) != len(addrs)+1 || len(seenNets) != len(nets) || len(nets) < 100 {
		t.Errorf("edge saw %d sources in %d /24s; the run has %d addresses in %d /24s, plus the carrier", len(edge.sources), len(seenNets), len(addrs), len(nets))
	}
}

func mustWorld(t *testing.T, pol *policy.Policy, accounts int) []Tenant {
	t.Helper()
	w, _, err := World(pol, 1, accounts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// Sources map to loopback by /24, in order of first appearance, keeping
// the last octet; past the bound the run fails instead of opening sockets
// without end.
func TestSIPSourcesKeepTheirNetworks(t *testing.T) {
	pbx := freeUDP(t, "127.0.0.1")
	d, err := NewSIPDecider(SIPOptions{Target: freeUDP(t, "127.0.0.1"), PBX: pbx, Carrier: netip.MustParseAddr("127.0.0.2"), MaxSources: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, c := range []struct{ sim, loop string }{
		{"203.0.113.7", "127.1.0.7"}, {"198.18.0.0", "127.1.1.0"}, {"203.0.113.9", "127.1.0.9"}, {"100.64.3.254", "127.1.2.254"},
	} {
		p, err := d.peer(netip.MustParseAddr(c.sim), false)
		if err != nil {
			t.Fatal(err)
		}
		if p.local.Addr().String() != c.loop {
			t.Errorf("%s → %s, want %s", c.sim, p.local.Addr(), c.loop)
		}
	}
	if p, err := d.peer(netip.MustParseAddr("203.0.113.7"), false); err != nil || p.local.Addr().String() != "127.1.0.7" {
		t.Errorf("same source again: %v %v", p, err)
	}
	if p, err := d.peer(netip.MustParseAddr("198.51.100.1"), true); err != nil || p.local.Addr().String() != "127.0.0.2" {
		t.Errorf("inbound calls come from the carrier: %v %v", p, err)
	}
	if _, err := d.peer(netip.MustParseAddr("192.0.2.1"), false); !errors.Is(err, ErrSIP) {
		t.Errorf("a fifth source: %v, want the bound", err)
	}
	if _, err := d.peer(netip.MustParseAddr("2001:db8::1"), false); !errors.Is(err, ErrSIP) {
		t.Errorf("IPv6 source: %v", err)
	}
}

// An edge that never answers: the INVITE is retransmitted, then given up,
// counted as a failure and taken as an allow; the call's end is refused.
func TestSIPDecideWithoutAnswerFails(t *testing.T) {
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	got := make(chan int, 1)
	go func() {
		n, buf := 0, make([]byte, 65535)
		for {
			if _, _, err := silent.ReadFromUDP(buf); err != nil {
				got <- n
				return
			}
			n++
		}
	}()
	d, err := NewSIPDecider(SIPOptions{Target: netip.MustParseAddrPort(silent.LocalAddr().String()), PBX: freeUDP(t, "127.0.0.1"),
		Carrier: netip.MustParseAddr("127.0.0.2"), Timeout: 1200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ev := event.Event{Kind: event.CallAttempt, Time: DefaultStart, Tenant: "demo", Account: "2001", CallID: "c1", To: "+5511912345678", SourceIP: netip.MustParseAddr("198.18.0.1")}
	if dec := d.Decide(context.Background(), ev); dec.Verdict != event.Allow {
		t.Errorf("verdict %s", dec.Verdict)
	}
	if err := d.Observe(context.Background(), event.Event{Kind: event.CallEnded, CallID: "c1", Time: DefaultStart.Add(time.Minute)}); err == nil {
		t.Error("the end of a call that never rang was played")
	}
	st := d.Stats()
	if st.Checks != 1 || st.Failures != 1 || !strings.Contains(st.FirstErr, "no answer") {
		t.Errorf("stats %+v", st)
	}
	silent.Close()
	if n := <-got; n < 2 {
		t.Errorf("the edge got %d INVITEs, want retransmissions", n)
	}
}

func TestNewSIPDeciderRefusesBadOptions(t *testing.T) {
	pbx := freeUDP(t, "127.0.0.1")
	good := SIPOptions{Target: freeUDP(t, "127.0.0.1"), PBX: pbx, Carrier: netip.MustParseAddr("127.0.0.2")}
	for name, mod := range map[string]func(*SIPOptions){
		"no target":           func(o *SIPOptions) { o.Target = netip.AddrPort{} },
		"no pbx":              func(o *SIPOptions) { o.PBX = netip.AddrPort{} },
		"no carrier":          func(o *SIPOptions) { o.Carrier = netip.Addr{} },
		"carrier is pbx":      func(o *SIPOptions) { o.Carrier = pbx.Addr() },
		"negative rate":       func(o *SIPOptions) { o.Rate = -1 },
		"target without port": func(o *SIPOptions) { o.Target = netip.AddrPortFrom(o.Target.Addr(), 0) },
	} {
		o := good
		mod(&o)
		if d, err := NewSIPDecider(o); !errors.Is(err, ErrConfig) {
			if d != nil {
				d.Close()
			}
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

func TestParseDecision(t *testing.T) {
	for _, c := range []struct {
		h       string
		status  int
		verdict event.Verdict
		rule    string
		risk    int
		score   float64
		err     bool
	}{
		{"verdict=deny; rule=destination.number_type; risk=90; score=0.0000", 403, event.Deny, "destination.number_type", 90, 0, false},
		{"verdict=allow; rule=; risk=0; score=0.4123", 180, event.Allow, "", 0, 0.4123, false},
		{"verdict=challenge;rule=baseline.new_network;risk=55;score=0.7000", 180, event.Challenge, "baseline.new_network", 55, 0.7, false},
		{" verdict = ban ; rule = escalation.ban_ip ", 603, event.Ban, "escalation.ban_ip", 0, 0, false},
		{"", 180, event.Allow, "", 0, 0, true},
		{"", 403, event.Deny, "", 0, 0, true},
		{"", 503, event.Throttle, "", 0, 0, true},
		{"verdict=maybe", 403, event.Deny, "", 0, 0, true},
	} {
		d, err := parseDecision(c.h, c.status)
		if (err != nil) != c.err || d.Verdict != c.verdict || blockingRule(&d) != c.rule && d.Verdict.Blocks() || d.Risk != c.risk || d.AnomalyScore != c.score {
			t.Errorf("%q %d: %+v %v", c.h, c.status, d, err)
		}
		if c.rule != "" && (len(d.Reasons) != 1 || d.Reasons[0].Rule != c.rule) {
			t.Errorf("%q: reasons %+v", c.h, d.Reasons)
		}
	}
}

// The decision header comes from the daemon under test; whatever it holds,
// parsing gives a valid verdict and never panics.
func FuzzParseDecision(f *testing.F) {
	f.Add("verdict=deny; rule=destination.number_type; risk=90; score=0.0000", 403)
	f.Add("verdict=allow; rule=; risk=0; score=0.4123", 180)
	f.Add(";;==;verdict=", 503)
	f.Fuzz(func(t *testing.T, h string, status int) {
		d, _ := parseDecision(h, status)
		if !d.Verdict.Valid() {
			t.Fatalf("%q: verdict %q", h, d.Verdict)
		}
	})
}

func BenchmarkParseDecision(b *testing.B) {
	for b.Loop() {
		_, _ = parseDecision("verdict=deny; rule=destination.number_type; risk=90; score=0.0000", 403)
	}
}

// Datagrams lost on the way: the first INVITE, the PBX's first 200 and
// 480 and the first BYE never reach the edge. Each exchange is repeated
// until it goes through, and the edge (so the engine) hears of every
// attempt, answer and end once.
func TestSIPRetransmitsLostMessages(t *testing.T) {
	pol := examplePolicy(t)
	_, world, err := World(pol, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	pbx, carrier := freeUDP(t, "127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	edge := newFakeEdge(t, world, "demo", DefaultStart, pbx, carrier)
	lost := map[string]bool{}
	edge.mu.Lock()
	defer edge.mu.Unlock()
	edge.drop = func(m sip.Message) bool { // under edge.mu
		var key string
		switch m := m.(type) {
		case *sip.Request:
			key = string(m.Method)
		case *sip.Response:
			key = fmt.Sprint(m.StatusCode)
		}
		if key == "180" || key == "ACK" || lost[key] {
			return false
		}
		lost[key] = true
		return true
	}
	edge.mu.Unlock()
	d, err := NewSIPDecider(SIPOptions{Target: edge.addr(), PBX: pbx, Carrier: carrier, RunID: "loss-"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.t1 = 50 * time.Millisecond
	ctx := context.Background()
	at := DefaultStart.Add(10 * time.Hour)
	call := func(id string, at time.Time) {
		ev := event.Event{Kind: event.CallAttempt, Time: at, Tenant: "demo", Account: "2001", CallID: id, From: "2001",
			To: "+551133334444", SourceIP: netip.MustParseAddr("198.18.0.0")}
		if dec := d.Decide(ctx, ev); dec.Verdict != event.Allow {
			t.Fatalf("%s: %+v", id, dec)
		}
	}
	call("answered", at)
	if err := d.Observe(ctx, event.Event{Kind: event.CallAnswered, CallID: "answered", Time: at.Add(5 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := d.Observe(ctx, event.Event{Kind: event.CallEnded, CallID: "answered", Time: at.Add(65 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	call("unanswered", at.Add(time.Minute))
	if err := d.Observe(ctx, event.Event{Kind: event.CallEnded, CallID: "unanswered", Time: at.Add(90 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Failures != 0 || st.Checks != 2 {
		t.Errorf("stats %+v", st)
	}
	edge.mu.Lock()
	if len(lost) != 4 {
		t.Errorf("lost %v, want the first INVITE, 200, BYE and 480", lost)
	}
	if want := map[event.Kind]int{event.CallAttempt: 2, event.CallAnswered: 1, event.CallEnded: 2}; fmt.Sprint(edge.events) != fmt.Sprint(want) {
		t.Errorf("the engine was told %v, want %v", edge.events, want)
	}
}
