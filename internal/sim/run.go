package sim

import (
	"container/heap"
	"context"
	"time"

	"github.com/telguard/telguard/internal/event"
)

// Decider is what the simulator drives: the engine in process, or a client
// of a running daemon's decision API.
type Decider interface {
	Decide(ctx context.Context, ev event.Event) event.Decision
	Observe(ctx context.Context, ev event.Event) error
}

// Outcome is what the decider made of one call.
type Outcome struct {
	Verdict event.Verdict
	Rule    string        // the enforced rule that set the verdict; "" when allowed
	Latency time.Duration // wall time of Decide
	Score   float64       // the decision's anomaly score; 0 when not scored
}

// Blocked reports whether the call was stopped.
func (o Outcome) Blocked() bool { return o.Verdict.Blocks() }

// Result is a whole run: calls[i] got outcomes[i].
type Result struct {
	Calls    []Call
	Outcomes []Outcome
	// ObserveErrors counts lifecycle events the decider refused; a call it
	// had already expired is one.
	ObserveErrors int
}

// lifecycle is a pending call_answered or call_ended of an allowed call.
type lifecycle struct {
	at  time.Time
	seq int // keeps events at the same instant in the order they were made
	ev  event.Event
}

type queue []lifecycle

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if c := q[i].at.Compare(q[j].at); c != 0 {
		return c < 0
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(lifecycle)) }
func (q *queue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// Run drives d through calls in event time: every attempt is decided, and
// the answer and end of each allowed call are observed at their own event
// times, interleaved with later attempts. A blocked call never rings, so it
// costs nothing. setTime, when not nil, is told the event time before each
// event (to move a manual clock). Run stops early, with what it has, when
// ctx is done.
func Run(ctx context.Context, d Decider, calls []Call, setTime func(time.Time)) (Result, error) {
	res := Result{Calls: calls, Outcomes: make([]Outcome, len(calls))}
	var q queue
	seq := 0
	observe := func(l lifecycle) {
		if setTime != nil {
			setTime(l.at)
		}
		if err := d.Observe(ctx, l.ev); err != nil {
			res.ObserveErrors++
		}
	}
	for i := range calls {
		if i%1024 == 0 && ctx.Err() != nil {
			res.Calls, res.Outcomes = calls[:i], res.Outcomes[:i]
			return res, ctx.Err()
		}
		c := &calls[i]
		for q.Len() > 0 && !q[0].at.After(c.Attempt) {
			observe(heap.Pop(&q).(lifecycle))
		}
		if setTime != nil {
			setTime(c.Attempt)
		}
		ev := event.Event{Kind: event.CallAttempt, Time: c.Attempt, Tenant: c.Tenant, Account: c.Account,
			CallID: c.ID, From: c.Account, To: c.To, SourceIP: c.SourceIP, Sensor: "sim"}
		if c.Inbound {
			ev.From, ev.To, ev.Direction = c.From, c.Account, event.Inbound
		}
		start := time.Now()
		dec := d.Decide(ctx, ev)
		lat := time.Since(start)
		res.Outcomes[i] = Outcome{Verdict: dec.Verdict, Rule: blockingRule(&dec), Latency: lat, Score: dec.AnomalyScore}
		if dec.Verdict.Blocks() {
			continue
		}
		ev.To, ev.From = "", ""
		ev.Direction = "" // the answer and end of an inbound call are found by its call id
		if c.Answered {
			ans := ev
			ans.Kind, ans.Time = event.CallAnswered, c.Answer()
			heap.Push(&q, lifecycle{at: ans.Time, seq: seq, ev: ans})
			seq++
		}
		end := ev
		end.Kind, end.Time, end.Duration = event.CallEnded, c.End(), c.Duration
		heap.Push(&q, lifecycle{at: end.Time, seq: seq, ev: end})
		seq++
	}
	for q.Len() > 0 {
		observe(heap.Pop(&q).(lifecycle))
	}
	return res, nil
}

// blockingRule returns the enforced rule whose verdict the decision took.
func blockingRule(d *event.Decision) string {
	if !d.Verdict.Blocks() {
		return ""
	}
	for _, r := range d.Reasons {
		if r.Mode == event.Enforce && r.Verdict == d.Verdict {
			return r.Rule
		}
	}
	return ""
}
