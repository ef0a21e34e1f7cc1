package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/queue"
	"github.com/telguard/telguard/internal/webhook"
	"github.com/telguard/telguard/internal/webhook/deliver"
)

const benchWebhooksHelp = `
Usage: telguard bench-webhooks [flags]

Benchmarks the webhook ingress on this machine, everything on 127.0.0.1,
and prints the figures of docs/BENCHMARKS.md section 6. It ends by itself:
every phase has a duration and every drain a timeout.

What runs, all in this process (client and server share the cores):
  - the pipeline the daemon wires for 'webhooks:' (internal/daemon
    newWebhooks): JetStream embedded with file storage in a throw-away
    data directory, the ingress (webhook.Server: limits, Standard Webhooks
    verification, dedupe, durable enqueue, 202), the workers
    (webhook.Worker: --workers consumers, flat mapping) and outbound
    delivery (deliver.Deliverer: the group-committed outbox log,
    --delivery-concurrency attempts, signed POSTs) to a local receiver
    admitted by an allow-internal 127.0.0.1/32. One source, one
    destination. Differences from the daemon: the per-address (default
    50/s) and per-source (default 1000/s) rate limits are raised out of
    the way, as per_ip_rate and rate in the config file can, since the
    point is what the pipeline can do; and the workers' engine sink is a
    no-op (the engine is sections 1-2).
  - the load generator: --concurrency keep-alive clients in a closed
    loop, each request a fresh event id, signed (HMAC-SHA256) by the
    client, a 200-byte flat call event.
  - the bare handler: net/http that reads the body and answers 202,
    driven by the same generator.

Phases, each --duration long:
  1. bare      the generator against the bare handler.
  2. ingress   the generator against the ingress, workers stopped: the
               events pile up in the queue.
  3. drain     workers and delivery start and empty the backlog of phase
               2 to the receiver (bounded by --drain-timeout).
  4. pipeline  the generator against the ingress while workers deliver,
               then the queue drains.
Reported: acknowledged webhooks/s (202), ack latency p50/p99 as the
client saw it, the ingress/bare ratio, deliveries/s reached at the
receiver, the process's CPU time (user and system, generator included)
per acknowledged webhook or per delivery — a cost other processes on a
shared machine move far less than throughput — and whether the queue and
the outbox drained.

The data directory (queue and delivery outbox) is a temporary directory
under $TMPDIR (default /tmp): set TMPDIR to measure another filesystem,
e.g. TMPDIR=/dev/shm for tmpfs.

Examples:
  telguard bench-webhooks
  telguard bench-webhooks --duration 10s --concurrency 32
  telguard bench-webhooks --sync          # queue_sync: fsync every event and outbox write
`

func (e *env) benchWebhooks(args []string) error {
	fs := e.flags("bench-webhooks", benchWebhooksHelp)
	duration := fs.Duration("duration", 5*time.Second, "how long each load phase runs")
	conc := fs.Int("concurrency", 16, "requests in flight (keep-alive clients)")
	workers := fs.Int("workers", 0, "queue consumers (0: the daemon's default, 4)")
	delivConc := fs.Int("delivery-concurrency", 0, "delivery attempts at once (0: the daemon's default, 8)")
	drainTimeout := fs.Duration("drain-timeout", 60*time.Second, "how long to wait for the queue and outbox to drain")
	syncAll := fs.Bool("sync", false, "fsync every queued event and outbox write (queue_sync: true)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to `file` (go tool pprof): of the whole run, or of --profile-phase")
	profPhase := fs.String("profile-phase", "", "with --cpuprofile, profile only this phase: bare, ingress, drain or pipeline")
	skip := fs.String("skip", "", "comma-separated phases to skip: bare, ingress (also skips drain), pipeline")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("bench-webhooks: unexpected argument %q", fs.Arg(0))
	}
	switch {
	case *duration < time.Second || *duration > 10*time.Minute:
		return usagef("bench-webhooks: keep 1s ≤ --duration ≤ 10m")
	case *conc < 1 || *conc > 1024:
		return usagef("bench-webhooks: keep 1 ≤ --concurrency ≤ 1024")
	case *workers < 0 || *workers > 256 || *delivConc < 0 || *delivConc > 256:
		return usagef("bench-webhooks: keep 0 ≤ --workers, --delivery-concurrency ≤ 256")
	case *drainTimeout < time.Second || *drainTimeout > 10*time.Minute:
		return usagef("bench-webhooks: keep 1s ≤ --drain-timeout ≤ 10m")
	}
	skipped := map[string]bool{}
	for p := range strings.SplitSeq(*skip, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if p != "bare" && p != "ingress" && p != "pipeline" {
			return usagef("bench-webhooks: --skip: unknown phase %q", p)
		}
		skipped[p] = true
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400) // as daemon.New does
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch *profPhase {
	case "", "bare", "ingress", "drain", "pipeline":
	default:
		return usagef("bench-webhooks: --profile-phase: unknown phase %q", *profPhase)
	}
	if *profPhase != "" && *cpuProfile == "" {
		return usagef("bench-webhooks: --profile-phase needs --cpuprofile")
	}
	b := &benchHooks{e: e, conc: *conc, dur: *duration, drainTimeout: *drainTimeout, profPhase: *profPhase}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("bench-webhooks: %w", err)
		}
		defer f.Close()
		b.profile = f
		if *profPhase == "" {
			if err := pprof.StartCPUProfile(f); err != nil {
				return fmt.Errorf("bench-webhooks: %w", err)
			}
			defer pprof.StopCPUProfile()
		}
	}
	if err := b.run(ctx, *workers, *delivConc, *syncAll, skipped); err != nil {
		return fmt.Errorf("bench-webhooks: %w", err)
	}
	return nil
}

type benchHooks struct {
	e            *env
	conc         int
	dur          time.Duration
	drainTimeout time.Duration
	profile      *os.File // --cpuprofile
	profPhase    string   // --profile-phase: "" for the whole run
	key          []byte
	seq          atomic.Int64 // event ids
	rows         []benchHooksRow
}

type benchHooksRow struct {
	phase, target      string
	sent, acked, other int64
	elapsed            time.Duration
	p50, p99           time.Duration
	delivered          int64
	drained            string
	deliverySpan       time.Duration
	// cpu is the process's CPU time (user and system) during the phase:
	// per event it is a cost that other processes on a shared machine
	// move less than throughput.
	cpu time.Duration
}

// processCPU returns the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (b *benchHooks) logf(format string, args ...any) {
	fmt.Fprintf(b.e.stderr, "bench-webhooks: "+format+"\n", args...)
}

func (b *benchHooks) run(ctx context.Context, workers, delivConc int, syncAll bool, skip map[string]bool) error {
	dir, err := os.MkdirTemp("", "telguard-bench-webhooks-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b.key = make([]byte, 32)
	_, _ = rand.Read(b.key)
	crmKey := make([]byte, 32)
	_, _ = rand.Read(crmKey)

	// The bare handler and the receiver.
	bare, err := serveLocal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	if err != nil {
		return err
	}
	defer bare.Close()
	var delivered atomic.Int64
	recv, err := serveLocal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Header.Get(webhook.HeaderID) == "" || r.Header.Get(webhook.HeaderSignature) == "" {
			http.Error(w, "unsigned", http.StatusBadRequest)
			return
		}
		delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	if err != nil {
		return err
	}
	defer recv.Close()

	// The pipeline, wired as daemon.newWebhooks wires it.
	q, err := queue.Open(ctx, queue.Options{Embedded: true, DataDir: filepath.Join(dir, "queue"), Sync: syncAll, DuplicateWindow: webhook.DedupeOverlap})
	if err != nil {
		return err
	}
	defer q.Close()
	noLimit := 1e9
	ingress, err := webhook.New(webhook.Config{
		Addr: "127.0.0.1:0", PerIPRate: noLimit, PerIPBurst: 1 << 30, DedupeDir: filepath.Join(dir, "webhook-dedupe"),
		Sources: map[string]webhook.SourceConfig{"bench": {
			Tenant: "bench", Rate: noLimit, Burst: 1 << 30,
			Verifier: webhook.VerifierConfig{Secrets: []webhook.Secret{{Key: b.key}}},
		}},
	}, q, nil, nil)
	if err != nil {
		return err
	}
	if err := ingress.Listen(); err != nil {
		return err
	}
	dl, err := deliver.New(deliver.Config{
		Dir: filepath.Join(dir, "deliveries"), Concurrency: delivConc, Sync: syncAll,
		Allow:    []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Schedule: []time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second},
		Destinations: []deliver.Destination{{Name: "crm", Tenant: "bench",
			URL: "http://" + recv.Addr().String() + "/hook", Secrets: [][]byte{crmKey}}},
	}, nil, nil)
	if err != nil {
		return err
	}
	defer dl.Close()
	var sunk atomic.Int64
	worker, err := webhook.NewWorker(webhook.WorkerConfig{
		Sources:     map[string]webhook.Mapping{"bench": {Preset: "flat"}},
		Sink:        func(context.Context, event.Event) error { sunk.Add(1); return nil },
		Forward:     dl,
		Concurrency: workers,
	}, q, nil, nil)
	if err != nil {
		return err
	}
	runCtx, stopAll := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() { stopAll(); wg.Wait() }()
	wg.Go(func() { _ = ingress.Run(runCtx) })
	hookURL := "http://" + ingress.Addr() + "/hooks/bench"
	b.logf("%d CPUs (GOMAXPROCS %d); ingress %s, bare %s, receiver %s; data in %s",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), ingress.Addr(), bare.Addr(), recv.Addr(), dir)

	var accepted int64 // 202s so far, all phases
	if !skip["bare"] {
		stopProf := b.profileFrom("bare")
		r := b.load(ctx, "http://"+bare.Addr().String()+"/hooks/bench")
		stopProf()
		r.phase, r.target, r.drained = "1 bare", "net/http: read body, 202", "—"
		b.add(r)
	}
	startWorkers := func() {
		wg.Go(func() { _ = dl.Run(runCtx) })
		wg.Go(func() { _ = worker.Run(runCtx) })
	}
	workersOn := false
	if !skip["ingress"] {
		stopProf := b.profileFrom("ingress")
		r := b.load(ctx, hookURL)
		stopProf()
		r.phase, r.target = "2 ingress", "verify+dedupe+enqueue, workers off"
		depth, _ := q.Depth(ctx)
		r.drained = fmt.Sprintf("queued %d", depth)
		b.add(r)
		accepted += r.acked

		stopProf = b.profileFrom("drain")
		start, before, cpu0 := time.Now(), delivered.Load(), processCPU()
		startWorkers()
		workersOn = true
		ok := b.drain(ctx, q, &delivered, accepted)
		stopProf()
		d := benchHooksRow{phase: "3 drain", target: "workers+delivery alone, backlog of 2",
			delivered: delivered.Load() - before, deliverySpan: time.Since(start), drained: drainWord(ok),
			cpu: processCPU() - cpu0}
		b.add(d)
	}
	if !skip["pipeline"] && ctx.Err() == nil {
		if !workersOn {
			startWorkers()
		}
		stopProf := b.profileFrom("pipeline")
		before := delivered.Load()
		r := b.load(ctx, hookURL)
		accepted += r.acked
		r.delivered = delivered.Load() - before
		start := time.Now()
		ok := b.drain(ctx, q, &delivered, accepted)
		stopProf()
		r.phase, r.target = "4 pipeline", "ingress + workers + delivery"
		r.drained = drainWord(ok) + fmt.Sprintf(" (+%v)", time.Since(start).Round(10*time.Millisecond))
		r.deliverySpan = r.elapsed
		b.add(r)
	}
	b.report()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// profileFrom starts the CPU profile when phase is the --profile-phase
// and returns what stops it.
func (b *benchHooks) profileFrom(phase string) (stop func()) {
	if b.profile == nil || b.profPhase != phase {
		return func() {}
	}
	if err := pprof.StartCPUProfile(b.profile); err != nil {
		b.logf("cpuprofile: %v", err)
		return func() {}
	}
	return pprof.StopCPUProfile
}

func drainWord(ok bool) string {
	if ok {
		return "drained"
	}
	return "NOT drained"
}

// drain waits until the receiver has every accepted event and the queue
// is empty.
func (b *benchHooks) drain(ctx context.Context, q *queue.Queue, delivered *atomic.Int64, want int64) bool {
	deadline := time.Now().Add(b.drainTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		depth, err := q.Depth(ctx)
		if err == nil && depth == 0 && delivered.Load() >= want {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.logf("drain: %d of %d delivered after %v", delivered.Load(), want, b.drainTimeout)
	return false
}

func (b *benchHooks) add(r benchHooksRow) {
	b.rows = append(b.rows, r)
	switch {
	case r.sent > 0:
		b.logf("%s: %d sent, %d × 202, %d other, %.0f/s, p50 %v p99 %v", r.phase, r.sent, r.acked, r.other,
			rate(r.acked, r.elapsed), r.p50, r.p99)
	default:
		b.logf("%s: %d delivered in %v (%.0f/s), %s", r.phase, r.delivered, r.deliverySpan.Round(time.Millisecond),
			rate(r.delivered, r.deliverySpan), r.drained)
	}
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func (b *benchHooks) report() {
	w := tabwriter.NewWriter(b.e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "phase\twhat\twebhooks/s (202)\tp50\tp99\tdeliveries/s\tCPU/event\tqueue\n")
	var bareRate, ingressRate, pipeRate float64
	var bareCPU, ingressCPU float64 // µs per 202
	for _, r := range b.rows {
		ack, p50, p99, dps, cpu := "—", "—", "—", "—", "—"
		if n := max(r.acked, r.delivered); n > 0 && r.cpu > 0 {
			per := float64(r.cpu.Microseconds()) / float64(n)
			cpu = fmt.Sprintf("%.0f µs", per)
			switch r.phase[0] {
			case '1':
				bareCPU = per
			case '2':
				ingressCPU = per
			}
		}
		if r.sent > 0 {
			v := rate(r.acked, r.elapsed)
			ack, p50, p99 = fmt.Sprintf("%.0f", v), fmtDur(r.p50), fmtDur(r.p99)
			switch r.phase[0] {
			case '1':
				bareRate = v
			case '2':
				ingressRate = v
			case '4':
				pipeRate = v
			}
		}
		if r.deliverySpan > 0 {
			dps = fmt.Sprintf("%.0f", rate(r.delivered, r.deliverySpan))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.phase, r.target, ack, p50, p99, dps, cpu, r.drained)
	}
	w.Flush()
	if bareRate > 0 {
		if ingressRate > 0 {
			fmt.Fprintf(b.e.stdout, "ingress / bare: %.0f%%\n", 100*ingressRate/bareRate)
		}
		if ingressCPU > 0 && bareCPU > 0 {
			fmt.Fprintf(b.e.stdout, "ingress / bare by CPU per webhook (generator included): %.0f%%\n", 100*bareCPU/ingressCPU)
		}
		if pipeRate > 0 {
			fmt.Fprintf(b.e.stdout, "pipeline / bare: %.0f%%\n", 100*pipeRate/bareRate)
		}
	}
}

func fmtDur(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

func serveLocal(h http.Handler) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln, nil
}

// load runs the closed-loop generator against url for b.dur: b.conc
// clients, each posting signed events with fresh ids one after another.
func (b *benchHooks) load(ctx context.Context, url string) benchHooksRow {
	tr := &http.Transport{MaxIdleConnsPerHost: b.conc, MaxConnsPerHost: b.conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	lctx, cancel := context.WithTimeout(ctx, b.dur)
	defer cancel()
	var sent, acked, other atomic.Int64
	lats := make([][]time.Duration, b.conc)
	var errOnce sync.Once
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), processCPU()
	for c := range b.conc {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1<<16)
			for lctx.Err() == nil {
				n := b.seq.Add(1)
				id := "evt-" + strconv.FormatInt(n, 10)
				body := appendBenchEvent(make([]byte, 0, 256), n)
				req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				if err != nil {
					return
				}
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				webhook.SetHeaders(req.Header, id, t0, body, b.key)
				resp, err := client.Do(req)
				sent.Add(1)
				if err != nil {
					other.Add(1)
					errOnce.Do(func() { b.logf("request error: %v", err) })
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
				if resp.StatusCode == http.StatusAccepted {
					acked.Add(1)
				} else {
					other.Add(1)
					errOnce.Do(func() { b.logf("status %d", resp.StatusCode) })
				}
			}
			lats[c] = lat
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	all := slices.Concat(lats...)
	slices.Sort(all)
	r := benchHooksRow{sent: sent.Load(), acked: acked.Load(), other: other.Load(), elapsed: elapsed, cpu: cpu}
	if len(all) > 0 {
		r.p50, r.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	return r
}

func appendBenchEvent(b []byte, n int64) []byte {
	b = append(b, `{"call_id":"bench-`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `","status":"started","direction":"outbound","from":"+551130001000","to":"+5511987654321","account":"acct-`...)
	b = strconv.AppendInt(b, n%10000, 10)
	b = append(b, `","timestamp":"2025-01-02T03:04:05Z"}`...)
	return b
}
