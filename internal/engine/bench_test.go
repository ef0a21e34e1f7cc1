package engine_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

// benchTenant is a realistic tenant policy: every limit metric and key,
// groups, denied prefixes, the built-in high-risk list, a quota and a
// schedule — 25 rules in all — plus the fraud patterns and the baseline
// rules at their defaults (in monitor), with a one-hour warm-up so that
// the benchmark's hour of traffic is judged by warm baselines.
const benchTenant = `
  %s:
    home_country: BR
    timezone: America/Sao_Paulo
    dial:
      outside_line: ["0"]
      international_prefixes: ["00"]
      national_prefix: "0"
    source_ips:
      deny: ["203.0.113.0/24"]
    defaults:
      international: false
      denied_prefixes: ["+55900", "+55300", "+5511999"]
    groups:
      intl:
        accounts: ["intl-*"]
        international: true
        allowed_countries: [US, GB, PT, AR, ES, CU]
        high_risk: challenge
        quota:
          international_money: 20
          international_minutes: 240
          warning: 0.8
        schedule:
          applies_to: international
          outside: challenge
          windows:
            - days: [mon-sun]
              from: "00:00"
              to: "24:00"
        limits:
          - {id: intl-concurrent, key: account, metric: concurrent, applies_to: international, warning: 3, critical: 5}
          - {id: intl-per-minute, key: account, metric: calls, window: 1m, applies_to: international, warning: 5, critical: 10}
          - {id: intl-distinct, key: account, metric: distinct_destinations, window: 1h, applies_to: international, warning: 10, critical: 20}
          - {id: intl-sequential, key: account, metric: sequential, window: 10m, applies_to: international, warning: 3, critical: 5}
          - {id: intl-repeat, key: account, metric: repeat_number, window: 10m, applies_to: international, warning: 10, critical: 20}
          - {id: country-per-minute, key: country, metric: calls, window: 1m, applies_to: international, critical: 2000}
          - {id: prefix-concurrent, key: prefix, prefix_len: 4, metric: concurrent, applies_to: international, warning: 50}
      office:
        accounts: ["office-*"]
        schedule:
          applies_to: all
          outside: challenge
          windows:
            - days: [mon-fri]
              from: "07:00"
              to: "22:00"
    limits:
      - {id: ip-calls-per-minute, key: source_ip, metric: calls, window: 1m, warning: 60, critical: 100}
      - {id: tenant-burst, key: tenant, metric: calls, window: 1s, critical: 2000, critical_action: throttle}
      - {id: account-per-minute, key: account, metric: calls, window: 1m, warning: 20, critical: 40}
      - {id: account-concurrent, key: account, metric: concurrent, warning: 8, critical: 10}
      - {id: ip-concurrent, key: source_ip, metric: concurrent, critical: 30}
      - {id: account-short-calls, key: account, metric: short_calls, short_call: 10s, window: 10m, warning: 20, critical: 40}
      - {id: ip-distinct, key: source_ip, metric: distinct_destinations, window: 10m, critical: 200}
      - {id: prefix-per-minute, key: prefix, prefix_len: 6, metric: calls, window: 1m, critical: 5000}
    escalation:
      window: 10m
      steps:
        - {after: 10, action: ban_ip, duration: 1h}
        - {after: 20, action: suspend_international}
    baselines:
      warm_up: 1h
      warm_up_calls: 5
`

func benchPolicy(b testing.TB, tenants int) *policy.Policy {
	var sb strings.Builder
	sb.WriteString("version: 1\ntenants:")
	for i := range tenants {
		fmt.Fprintf(&sb, benchTenant, fmt.Sprintf("t%d", i))
	}
	p, err := policy.Parse("bench.yaml", []byte(sb.String()), nil)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

const (
	benchAccounts = 10000
	benchActive   = 1000 // accounts (and source addresses) active in any one minute
	benchStep     = 10 * time.Millisecond
	benchInFlight = 300 // calls kept in flight; older ones are ended
)

// traffic generates a tenant's call attempts: 100 attempts a second, from a
// window of ~1000 active accounts that drifts through 10k, to a mix of
// domestic, allowed international, premium and high-risk numbers, and ends
// allowed calls so that the set in flight stays bounded.
type traffic struct {
	tenant   string
	accounts []string
	ips      []netip.Addr
	dests    []string
	callIDs  []string
	start    time.Time
	i        int
	flight   []string // ring of calls in flight
	head     int
}

func newTraffic(tenant string) *traffic {
	tr := &traffic{tenant: tenant, start: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	for i := range benchAccounts {
		var name string
		switch i % 10 {
		case 0, 1, 2:
			name = fmt.Sprintf("intl-%d", i)
		case 3:
			name = fmt.Sprintf("office-%d", i)
		default:
			name = fmt.Sprintf("%d", 100000+i)
		}
		tr.accounts = append(tr.accounts, name)
		tr.ips = append(tr.ips, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	// 5000 distinct destinations as PBXs dial them.
	for i := range 5000 {
		var d string
		switch r := i % 20; {
		case r < 10: // domestic mobile and fixed, some with the outside line
			d = fmt.Sprintf("0119%08d", 70000000+i)
		case r < 12:
			d = fmt.Sprintf("01134%06d", 100000+i)
		case r < 15: // US and GB
			d = fmt.Sprintf("+1212555%04d", i%10000)
		case r < 17:
			d = fmt.Sprintf("00442079%06d", i)
		case r == 17: // premium abroad and at home
			d = fmt.Sprintf("+44909879%04d", i%10000)
		case r == 18: // high risk: Cuba mobile, Sierra Leone
			d = fmt.Sprintf("+535%07d", 1000000+i)
		default:
			d = fmt.Sprintf("+2327%07d", 6000000+i)
		}
		tr.dests = append(tr.dests, d)
	}
	tr.callIDs = make([]string, 1<<16)
	for i := range tr.callIDs {
		tr.callIDs[i] = fmt.Sprintf("%s-call-%d", tenant, i)
	}
	tr.flight = make([]string, benchInFlight)
	return tr
}

// next returns the next attempt.
func (tr *traffic) next() event.Event {
	i := tr.i
	tr.i++
	now := tr.start.Add(time.Duration(i) * benchStep)
	// The active window drifts by one account every 60 ms (6000 a minute
	// at 100 attempts a second would replace it each minute: ~1000 active).
	base := i / 6
	a := (base + (i*7919)%benchActive) % benchAccounts
	return event.Event{
		Kind: event.CallAttempt, Time: now, Tenant: tr.tenant,
		Account: tr.accounts[a], CallID: tr.callIDs[i%len(tr.callIDs)],
		To: tr.dests[(i*31+a)%len(tr.dests)], SourceIP: tr.ips[a],
	}
}

// settle keeps the calls in flight bounded: an allowed call joins the ring
// and the oldest call in it is answered and ended.
func (tr *traffic) settle(ctx context.Context, e *engine.Engine, ev event.Event, d event.Decision) {
	if d.Verdict.Blocks() {
		return
	}
	if old := tr.flight[tr.head]; old != "" {
		end := event.Event{Kind: event.CallEnded, Time: ev.Time, Tenant: tr.tenant, CallID: old,
			Duration: time.Duration(5+tr.i%240) * time.Second}
		_ = e.Observe(ctx, end)
	}
	tr.flight[tr.head] = ev.CallID
	tr.head = (tr.head + 1) % len(tr.flight)
}

// BenchmarkDecide reports ns/op (Decide plus the traffic's bookkeeping:
// ending calls) and, per Decide alone, the mean and the p50/p99/p99.9
// latencies. Use -benchtime=200000x for the figures in docs.
func BenchmarkDecide(b *testing.B) { benchDecide(b, benchPolicy(b, 1), false) }

// BenchmarkDecideNoBaselines is BenchmarkDecide with the tenant's
// baselines off (no learning, no baseline rules): run both in one go to
// see what baselines add.
func BenchmarkDecideNoBaselines(b *testing.B) {
	p := benchPolicy(b, 1)
	p.Tenants["t0"].Baselines.Enabled = false
	benchDecide(b, p, false)
}

// BenchmarkDecideModel is BenchmarkDecide with an anomaly model loaded, so
// that every attempt no other rule blocks is also scored by the isolation
// forest: run both in one go to see what scoring adds.
func BenchmarkDecideModel(b *testing.B) { benchDecide(b, benchPolicy(b, 1), true) }

// benchWarmUp is how many attempts run before timing: 400 000 at 100 a
// second is 67 minutes of event time, past the bench policy's one-hour
// baseline warm-up.
const benchWarmUp = 400000

func benchDecide(b *testing.B, p *policy.Policy, model bool) {
	ctx := context.Background()
	e := engine.New(p, engine.Options{})
	tr := newTraffic("t0")
	// The model is trained in both variants, so that they differ only in
	// scoring, not in what training left on the heap.
	m := benchModel(b, p)
	if model {
		if err := e.SetModel(m); err != nil {
			b.Fatal(err)
		}
	}
	for range benchWarmUp { // warm up: caches, counters, baselines, calls in flight
		ev := tr.next()
		tr.settle(ctx, e, ev, e.Decide(ctx, ev))
	}
	lat := make([]time.Duration, 0, b.N)
	var verdicts [5]int
	scored := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ev := tr.next()
		t0 := time.Now()
		d := e.Decide(ctx, ev)
		lat = append(lat, time.Since(t0))
		verdicts[d.Verdict.Severity()]++
		if d.AnomalyScore > 0 {
			scored++
		}
		tr.settle(ctx, e, ev, d)
	}
	b.StopTimer()
	reportLatency(b, lat)
	if b.N >= 10000 {
		// The mix must exercise both sides of the rules.
		if verdicts[0] == 0 || verdicts[3]+verdicts[4] == 0 {
			b.Fatalf("verdicts allow/challenge/throttle/deny/ban = %v; the traffic does not exercise the policy", verdicts)
		}
		b.ReportMetric(100*float64(verdicts[0])/float64(b.N), "%allow")
		if model {
			b.ReportMetric(100*float64(scored)/float64(b.N), "%scored")
		}
	}
}

// benchModel trains a forest (100 trees, as the CLI's default) on an hour
// of the benchmark's own traffic, as if it were call history.
func benchModel(b testing.TB, p *policy.Policy) *anomaly.Forest {
	tr := newTraffic("t0")
	trainer := engine.NewTrainer(p, engine.TrainOptions{Seed: 1})
	for range 360000 {
		ev := tr.next()
		trainer.Add(event.CallRecord{Tenant: ev.Tenant, Account: ev.Account, CallID: ev.CallID, To: ev.To, SourceIP: ev.SourceIP,
			Start: ev.Time, Answer: ev.Time.Add(5 * time.Second), End: ev.Time.Add(65 * time.Second), Billsec: time.Minute})
	}
	f, err := trainer.Forest()
	if err != nil {
		b.Fatal(err)
	}
	return f
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	pct := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Nanoseconds()) }
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(lat)), "decide-ns")
	b.ReportMetric(pct(0.50), "p50-ns")
	b.ReportMetric(pct(0.99), "p99-ns")
	b.ReportMetric(pct(0.999), "p99.9-ns")
}

func BenchmarkDecideParallel(b *testing.B) {
	const tenants = 16
	ctx := context.Background()
	e := engine.New(benchPolicy(b, tenants), engine.Options{})
	streams := make([]*traffic, tenants)
	for i := range streams {
		streams[i] = newTraffic(fmt.Sprintf("t%d", i))
		for range 20000 {
			ev := streams[i].next()
			streams[i].settle(ctx, e, ev, e.Decide(ctx, ev))
		}
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine drives its own tenant; beyond 16 goroutines two
		// share one and contend on its lock, as a hot tenant would.
		n := int(next.Add(1)-1) % tenants
		tr := streams[n]
		for pb.Next() {
			ev := tr.next()
			d := e.Decide(ctx, ev)
			tr.settle(ctx, e, ev, d)
		}
	})
}

// TestBenchTrafficIsRealistic keeps the benchmark honest: the policy has
// at least 20 rules, and the traffic draws every kind of verdict.
func TestBenchTrafficIsRealistic(t *testing.T) {
	p := benchPolicy(t, 1)
	ten := p.Tenants["t0"]
	if n := len(ten.Limits); n < 15 {
		t.Errorf("%d limits; want every metric and key", n)
	}
	metrics, keys := map[policy.Metric]bool{}, map[policy.KeyKind]bool{}
	for _, l := range ten.Limits {
		metrics[l.Metric], keys[l.Key] = true, true
	}
	if len(metrics) < 6 || len(keys) < 5 {
		t.Errorf("metrics %v, keys %v; want all six and all five", metrics, keys)
	}
	ctx := context.Background()
	e := engine.New(p, engine.Options{})
	tr := newTraffic("t0")
	seen := map[event.Verdict]int{}
	rules := map[string]bool{}
	for range 20000 {
		ev := tr.next()
		d := e.Decide(ctx, ev)
		seen[d.Verdict]++
		for _, r := range d.Reasons {
			rules[r.Rule] = true
		}
		tr.settle(ctx, e, ev, d)
	}
	for _, v := range []event.Verdict{event.Allow, event.Challenge, event.Deny} {
		if seen[v] == 0 {
			t.Errorf("no %s verdicts in %v", v, seen)
		}
	}
	if len(rules) < 5 {
		t.Errorf("only rules %v fired", rules)
	}
	st := e.Stats(tr.start.Add(time.Duration(tr.i) * benchStep))
	if len(st) != 1 || st[0].CallsInFlight > 2*benchInFlight {
		t.Errorf("stats %+v: calls in flight not bounded", st)
	}
	t.Logf("verdicts %v; rules %v; stats %+v", seen, rules, st)
}
