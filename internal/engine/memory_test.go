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
