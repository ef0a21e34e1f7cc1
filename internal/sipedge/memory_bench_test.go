package sipedge

import (
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/event"
)

// BenchmarkCallStateCeiling fills the guard's tables to their default
// bounds (65,536 transactions, 65,536 callers' BYEs awaiting their 2xx,
// 100,000 callers' calls up, 100,000 carriers' calls up, 100,000 ended
// calls), each entry made from its own
// parsed INVITE as in real
// forwarding, and reports the heap they hold: the most memory the SIP
// edge's call state can take, whatever the call rate or a flood. Run it
// with -benchtime 1x.
func BenchmarkCallStateCeiling(b *testing.B) {
	s, err := New(Config{Listen: []string{"udp:127.0.0.1:0"}, Upstream: "udp:127.0.0.1:5070", Tenant: "demo"}, &fakeEngine{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	src := netip.MustParseAddr("192.0.2.1")
	now := time.Now()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	start := heap()
	for i := range defaultMaxTransactions {
		callID := fmt.Sprintf("%016x-%d@192.0.2.1", i*7919, i)
		raw := strings.Replace(richInvite, "abc@192.0.2.1", callID, 1)
		req := parseRequest(b, strings.Replace(raw, "z9hG4bK-1", fmt.Sprintf("z9hG4bK-%d", i), 1))
		ev := requestEvent(req, event.CallAttempt, src, "demo", AccountFromUser, now)
		s.txs.put(s.branchFor(req, netip.AddrPortFrom(src, 5060), 0), &txState{method: req.Method, ev: ev, screened: true}, now)
	}
	afterTxs := heap()
	for i := range defaultMaxTransactions {
		s.byes.add(fmt.Sprintf("%s0-%020x", branchPrefix, i), byeState{callID: fmt.Sprintf("%016x-%d@192.0.2.1", i*7919, i), at: now}, now)
	}
	afterByes := heap()
	for i := range defaultMaxCalls {
		branch := fmt.Sprintf("%s0-%020x", branchPrefix, i)
		s.calls.add(fmt.Sprintf("%016x-%d@192.0.2.1", i*7919, i), callState{branch: branch}, false, now)
		s.calls.add(fmt.Sprintf("%016x-%d@192.0.2.3", i*7919, i), callState{branch: branch}, true, now)
	}
	afterCalls := heap()
	for i := range defaultMaxCalls {
		s.ended.put(fmt.Sprintf("%016x-%d@192.0.2.2", i*7919, i), struct{}{}, now)
	}
	end := heap()
	if s.txs.len() != defaultMaxTransactions || s.byes.len() != defaultMaxTransactions || s.calls.outbound.len() != defaultMaxCalls || s.calls.inbound.len() != defaultMaxCalls || s.ended.len() != defaultMaxCalls {
		b.Fatal("tables not full")
	}
	for b.Loop() {
		s.txs.get("absent", now)
	}
	// After the loop: its start resets reported metrics.
	b.ReportMetric(float64(afterTxs-start)/defaultMaxTransactions, "B/transaction")
	b.ReportMetric(float64(afterByes-afterTxs)/defaultMaxTransactions, "B/bye")
	b.ReportMetric(float64(afterCalls-afterByes)/(2*defaultMaxCalls), "B/call")
	b.ReportMetric(float64(end-afterCalls)/defaultMaxCalls, "B/ended-call")
	b.ReportMetric(float64(end-start)/(1<<20), "MiB-ceiling")
	runtime.KeepAlive(s)
}
