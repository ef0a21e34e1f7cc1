package engine_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/event"
)

// historySink keeps the call-history records an engine emits.
type historySink struct {
	mu   sync.Mutex
	recs []event.CallRecord
}

func (h *historySink) Emit(changes ...event.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range changes {
		if c.Op == event.OpPutHistory {
			h.recs = append(h.recs, *c.History)
		}
	}
}

// With Options.History, every call the engine let through is recorded when
// it ends (answered, unanswered, or expired at max_call_duration), and
// inbound calls it was told of too; a blocked attempt never rang and is
// not a call. Without the option nothing is recorded.
func TestFinishedCallsGoToHistory(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)
	src := netip.MustParseAddr("198.51.100.7")
	run := func(history bool) []event.CallRecord {
		sink := &historySink{}
		e := engine.New(benchPolicy(t, 1), engine.Options{Sink: sink, History: history})
		attempt := func(id, to string, off time.Duration) event.Decision {
			return e.Decide(ctx, event.Event{Kind: event.CallAttempt, Time: at.Add(off), Tenant: "t0", Account: "office-1",
				CallID: id, From: "1001", To: to, SourceIP: src})
		}
		observe := func(kind event.Kind, id string, off, dur time.Duration) {
			if err := e.Observe(ctx, event.Event{Kind: kind, Time: at.Add(off), Tenant: "t0", CallID: id, Duration: dur}); err != nil {
				t.Fatalf("%s of %s: %v", kind, id, err)
			}
		}
		if d := attempt("answered", "011987654321", 0); d.Verdict.Blocks() {
			t.Fatalf("answered call blocked: %v", d.Rules())
		}
		observe(event.CallAnswered, "answered", 5*time.Second, 0)
		observe(event.CallEnded, "answered", 65*time.Second, 0)
		if d := attempt("unanswered", "011987654321", time.Minute); d.Verdict.Blocks() {
			t.Fatalf("unanswered call blocked: %v", d.Rules())
		}
		observe(event.CallEnded, "unanswered", time.Minute+20*time.Second, 0)
		// Ended with a duration and no answer event (an integration that
		// reports only the end): answered that long before its end.
		if d := attempt("end-only", "011987654321", 90*time.Second); d.Verdict.Blocks() {
			t.Fatalf("end-only call blocked: %v", d.Rules())
		}
		observe(event.CallEnded, "end-only", 90*time.Second+10*time.Minute, 9*time.Minute)
		if d := attempt("premium", "+19005550100", 2*time.Minute); !d.Verdict.Blocks() {
			t.Fatalf("premium call allowed")
		}
		in := event.Event{Kind: event.CallAttempt, Time: at.Add(3 * time.Minute), Tenant: "t0", Direction: event.Inbound,
			Account: "office-1", CallID: "ring", From: "+5511987654321", To: "office-1", SourceIP: src}
		if d := e.Decide(ctx, in); d.Verdict.Blocks() {
			t.Fatalf("inbound ring blocked: %v", d.Rules())
		}
		observe(event.CallEnded, "ring", 3*time.Minute+3*time.Second, 0)
		if d := attempt("never-ended", "011987654321", 4*time.Minute); d.Verdict.Blocks() {
			t.Fatalf("last call blocked: %v", d.Rules())
		}
		e.Sweep(at.Add(24 * time.Hour)) // past max_call_duration: the call is ended by expiry
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.recs
	}
	if recs := run(false); len(recs) != 0 {
		t.Fatalf("without Options.History: %d records, want none", len(recs))
	}
	recs := run(true)
	byID := map[string]event.CallRecord{}
	for _, r := range recs {
		byID[r.CallID] = r
	}
	if len(recs) != 5 || len(byID) != 5 {
		t.Fatalf("history %+v: want 5 calls (answered, unanswered, end-only, ring, never-ended)", recs)
	}
	if e := byID["end-only"]; e.Disposition != "ANSWERED" || e.Billsec != 9*time.Minute || !e.Answer.Equal(at.Add(90*time.Second+time.Minute)) {
		t.Errorf("call ended with a duration and no answer event: %+v, want answered 9 minutes before its end", e)
	}
	if _, ok := byID["premium"]; ok {
		t.Errorf("a blocked attempt was recorded as a call")
	}
	a := byID["answered"]
	want := event.CallRecord{Tenant: "t0", Account: "office-1", CallID: "answered", From: "1001", To: "011987654321",
		Direction: event.Outbound, SourceIP: src, Start: at, Answer: at.Add(5 * time.Second), End: at.Add(65 * time.Second),
		Billsec: time.Minute, Disposition: "ANSWERED"}
	if a != want {
		t.Errorf("answered call:\n got %+v\nwant %+v", a, want)
	}
	if u := byID["unanswered"]; u.Answered() || u.Billsec != 0 || u.Disposition != "NO ANSWER" || !u.End.Equal(at.Add(80*time.Second)) {
		t.Errorf("unanswered call: %+v", u)
	}
	if r := byID["ring"]; r.Direction != event.Inbound || r.From != "+5511987654321" || r.To != "office-1" || r.Account != "office-1" {
		t.Errorf("inbound ring: %+v", r)
	}
	if x := byID["never-ended"]; x.End.Before(x.Start) || x.End.After(at.Add(24*time.Hour)) || x.Disposition != event.DispositionExpired {
		t.Errorf("expired call: %+v, want disposition %s", x, event.DispositionExpired)
	}
}

// callSink keeps the calls in flight an engine persists, as the store does.
type callSink struct {
	mu    sync.Mutex
	calls map[string]event.Call
}

func (c *callSink) Emit(changes ...event.Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range changes {
		switch ch.Op {
		case event.OpPutCall:
			c.calls[ch.Call.CallID] = *ch.Call
		case event.OpDeleteCall:
			delete(c.calls, ch.Call.CallID)
		}
	}
}

// A call in flight at a restart keeps what the history and the baselines
// need: its numbers as dialled, and that a rule flagged it, so that after
// the restart a challenged call still teaches the baselines nothing.
func TestRestoredCallsKeepNumbersAndFlag(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)
	before := &callSink{calls: map[string]event.Call{}}
	e := engine.New(benchPolicy(t, 1), engine.Options{Sink: before})
	learnCalls(t, e, at, "office-1")
	ev := event.Event{Kind: event.CallAttempt, Time: time.Date(2026, 3, 3, 2, 30, 0, 0, time.UTC), Tenant: "t0",
		Account: "office-1", CallID: "late", From: "1001", To: "011987654322", SourceIP: netip.MustParseAddr("192.0.2.8")}
	if d := e.Decide(ctx, ev); d.Verdict != event.Challenge {
		t.Fatalf("late call: %s %v; want a challenge", d.Verdict, d.Rules())
	}
	snap, err := e.ExportBaselines()
	if err != nil {
		t.Fatal(err)
	}
	// The restart: a new engine with the persisted calls and baselines.
	hist := &historySink{}
	e2 := engine.New(benchPolicy(t, 1), engine.Options{Sink: hist, History: true})
	if err := e2.ImportBaselines(snap); err != nil {
		t.Fatal(err)
	}
	var st event.State
	for _, c := range before.calls {
		st.Calls = append(st.Calls, c)
	}
	e2.Restore("t0", st)
	ev.Kind, ev.Time, ev.Duration = event.CallEnded, ev.Time.Add(10*time.Minute), 10*time.Minute
	if err := e2.Observe(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if n, st := baselineCalls(t, e2, "office-1"), e2.Baselines("t0"); n != 1 || st.Networks != 1 {
		t.Errorf("a challenged call ended after a restart taught the baselines: %d calls learned, %+v; want 1 call, 1 network", n, st)
	}
	hist.mu.Lock()
	defer hist.mu.Unlock()
	if len(hist.recs) != 1 || hist.recs[0].From != "1001" || hist.recs[0].To != "011987654322" {
		t.Errorf("history of the restored call: %+v; want from 1001 to 011987654322", hist.recs)
	}
}
