package engine_test

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

// memTenant is the SIP edge benchmark's tenant: baselines, patterns and
// new_network at their defaults (baselines enforce, as the example policy).
const memTenant = `version: 1
tenants:
  t0:
    home_country: GB
    timezone: Europe/London
    defaults:
      international: true
    baselines:
      mode: enforce
`

// edgeLoad drives accounts×calls attempts at rate calls a second of event
// time, all from one source address, ending each call 30 s after it
// started (answered), as the SIP edge benchmark does.
type edgeLoad struct {
	accounts []string
	ids      int
	start    time.Time
	ip       netip.Addr
}

func newEdgeLoad(n int) *edgeLoad {
	l := &edgeLoad{start: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), ip: netip.MustParseAddr("192.0.2.10")}
	for i := range n {
		l.accounts = append(l.accounts, fmt.Sprintf("acct-%d", i))
	}
	return l
}

// run sends calls attempts (round robin over the accounts) at rate a
// second from the load's current position, and ends each 30 s later.
func (l *edgeLoad) run(tb testing.TB, e *engine.Engine, calls int, rate int) {
	ctx := context.Background()
	step := time.Second / time.Duration(rate)
	type up struct {
		id  string
		end time.Time
	}
	var open []up
	for i := range calls {
		n := l.ids
		l.ids++
		now := l.start.Add(time.Duration(n) * step)
		for len(open) > 0 && !open[0].end.After(now) {
			_ = e.Observe(ctx, event.Event{Kind: event.CallAnswered, Tenant: "t0", CallID: open[0].id, Time: open[0].end.Add(-25 * time.Second)})
			_ = e.Observe(ctx, event.Event{Kind: event.CallEnded, Tenant: "t0", CallID: open[0].id, Time: open[0].end})
			open = open[1:]
		}
		a := l.accounts[n%len(l.accounts)]
		id := fmt.Sprintf("call-%d", n)
		d := e.Decide(ctx, event.Event{Kind: event.CallAttempt, Tenant: "t0", Account: a, CallID: id,
			To: fmt.Sprintf("+4420794%05d", (n*7919+i)%100000), SourceIP: l.ip, Time: now})
		if !d.Verdict.Blocks() {
			open = append(open, up{id, now.Add(30 * time.Second)})
		}
	}
	for _, u := range open {
		_ = e.Observe(ctx, event.Event{Kind: event.CallEnded, Tenant: "t0", CallID: u.id, Time: u.end, Duration: 25 * time.Second})
	}
}

func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkBaselineMemory reports the live heap the engine holds per
// account and per call for the SIP edge benchmark's traffic (10,000
// accounts, 200 calls a second from one address, so each account calls
// every 50 s): the heap after one round of calls (every account seen once)
// is per account; the growth over the following rounds is per call. It
// runs for 5 minutes of traffic (the SIP edge soak) and for 80 minutes,
// past the one-hour horizon of the recent calls, after which nothing
// grows.
func BenchmarkBaselineMemory(b *testing.B) {
	for _, c := range []struct {
		name   string
		rounds int
	}{{"5min", 6}, {"80min", 96}} {
		b.Run(c.name, func(b *testing.B) {
			const accounts = 10000
			for range b.N {
				p, err := policy.Parse("mem.yaml", []byte(memTenant), nil)
				if err != nil {
					b.Fatal(err)
				}
				base := liveHeap()
				e := engine.New(p, engine.Options{})
				l := newEdgeLoad(accounts)
				l.run(b, e, accounts, 200)
				one := liveHeap()
				l.run(b, e, (c.rounds-1)*accounts, 200)
				all := liveHeap()
				if c.rounds > 72 {
					// The last 20 minutes: what still grows past the horizon.
					l.run(b, e, 24*accounts, 200)
					last := liveHeap()
					b.ReportMetric((float64(last)-float64(all))/float64(24*accounts), "B/call-past-horizon")
					all = last
				}
				snap, err := e.ExportBaselines()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(one-base)/accounts, "B/account-first-call")
				b.ReportMetric(float64(all-base)/accounts, "B/account-end")
				b.ReportMetric(float64(len(snap))/accounts, "snapB/account")
				b.ReportMetric(float64(e.Baselines("t0").Accounts), "learned")
				runtime.KeepAlive(e)
			}
		})
	}
}

// BenchmarkExportStall reports Decide's worst latency while the
// baselines of 20,000 accounts are exported (the daemon's snapshot), how
// long the export took and what it allocated; and, as a control on a busy
// machine, Decide's worst latency over as long a stretch with no export.
func BenchmarkExportStall(b *testing.B) {
	const accounts = 20000
	p, err := policy.Parse("mem.yaml", []byte(memTenant), nil)
	if err != nil {
		b.Fatal(err)
	}
	e := engine.New(p, engine.Options{})
	l := newEdgeLoad(accounts)
	l.run(b, e, 2*accounts, 200)
	// What one export allocates (garbage the collector must then find).
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	if _, err := e.WriteBaselines(io.Discard); err != nil {
		b.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	ctx := context.Background()
	// decideUntil decides until done is closed and returns the worst.
	decideUntil := func(done chan struct{}) time.Duration {
		var worst time.Duration
		for n := 0; ; n++ {
			select {
			case <-done:
				return worst
			default:
			}
			now := l.start.Add(time.Duration(l.ids) * 5 * time.Millisecond)
			l.ids++
			t0 := time.Now()
			e.Decide(ctx, event.Event{Kind: event.CallAttempt, Tenant: "t0", Account: l.accounts[n%accounts],
				CallID: fmt.Sprintf("stall-%d", l.ids), To: "+442079400000", SourceIP: l.ip, Time: now})
			worst = max(worst, time.Since(t0))
		}
	}
	b.ResetTimer()
	var worst, control, exp time.Duration
	for range b.N {
		done := make(chan struct{})
		var took time.Duration
		go func() {
			t0 := time.Now()
			if _, err := e.WriteBaselines(io.Discard); err != nil {
				b.Error(err)
			}
			took = time.Since(t0)
			close(done)
		}()
		worst = max(worst, decideUntil(done))
		exp = max(exp, took)
		done = make(chan struct{})
		go func() {
			time.Sleep(took)
			close(done)
		}()
		control = max(control, decideUntil(done))
	}
	b.ReportMetric(float64(worst.Microseconds()), "worst-decide-µs")
	b.ReportMetric(float64(control.Microseconds()), "worst-decide-control-µs")
	b.ReportMetric(float64(exp.Milliseconds()), "export-ms")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/(1<<20), "export-alloc-MB")
}

// What the behaviour layer keeps for one account is capped by count, not
// by how much it calls: an account making a call every second for two
// hours (7,200 calls, to 7,200 numbers) holds at most 128 recent calls and
// one baseline whose snapshot stays within BaselineBytes, the same after
// the second hour as after the first; an hour after its last call (the
// longest window read) its recent calls are gone and only the baseline
// remains. No timing and no heap figures: counts and sizes only.
func TestAccountStateCappedByCount(t *testing.T) {
	p, err := policy.Parse("mem.yaml", []byte(memTenant), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(p, engine.Options{})
	ctx := context.Background()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ip := netip.MustParseAddr("192.0.2.10")
	countries := []string{"+4420794%05d", "+1201555%04d", "+3314299%04d", "+493012%05d", "+3491123%04d"}
	n := 0
	hour := func() {
		for range 3600 {
			now := start.Add(time.Duration(n) * time.Second)
			id := fmt.Sprintf("busy-%d", n)
			to := fmt.Sprintf(countries[n%len(countries)], n/len(countries)%10000)
			d := e.Decide(ctx, event.Event{Kind: event.CallAttempt, Tenant: "t0", Account: "busy", CallID: id, To: to, SourceIP: ip, Time: now})
			if d.Verdict.Blocks() {
				t.Fatalf("call %d to %s blocked: %v", n, to, d.Rules())
			}
			_ = e.Observe(ctx, event.Event{Kind: event.CallAnswered, Tenant: "t0", CallID: id, Time: now.Add(200 * time.Millisecond)})
			_ = e.Observe(ctx, event.Event{Kind: event.CallEnded, Tenant: "t0", CallID: id, Time: now.Add(800 * time.Millisecond)})
			n++
		}
	}
	snapSize := func() int {
		snap, err := e.ExportBaselines()
		if err != nil {
			t.Fatal(err)
		}
		empty := engine.New(p, engine.Options{})
		none, _ := empty.ExportBaselines()
		return len(snap) - len(none)
	}
	hour()
	first, firstSnap := e.Baselines("t0"), snapSize()
	hour()
	second, secondSnap := e.Baselines("t0"), snapSize()
	for i, st := range []engine.BaselineStats{first, second} {
		if st.Accounts != 1 || st.RecentAccounts != 1 || st.RecentCalls > 128 || st.RecentCalls < 100 || st.Networks != 1 {
			t.Errorf("after hour %d: %+v; want 1 baseline, 1 account with at most 128 recent calls, 1 network", i+1, st)
		}
	}
	t.Logf("hour 1: %+v, snapshot %d B; hour 2: %+v, snapshot %d B", first, firstSnap, second, secondSnap)
	if firstSnap > engine.BaselineBytes || secondSnap > engine.BaselineBytes || secondSnap > firstSnap+64 {
		t.Errorf("the account's snapshot: %d bytes after an hour, %d after two; want at most %d and no growth", firstSnap, secondSnap, engine.BaselineBytes)
	}
	// An hour and a minute of silence: the recent calls go, the baseline stays.
	e.Sweep(start.Add(time.Duration(n)*time.Second + time.Hour + 2*time.Minute))
	if st := e.Baselines("t0"); st.RecentAccounts != 0 || st.RecentCalls != 0 || st.Accounts != 1 {
		t.Errorf("an hour after the last call: %+v; want no recent calls, the baseline kept", st)
	}
}
