package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/telguard/telguard/internal/sipedge/sipload"
)

const benchSIPHelp = `
Usage: telguard bench-sip [flags]

Benchmarks the SIP edge with SIPp on this machine, everything on
127.0.0.0/8, and prints the figures of docs/BENCHMARKS.md section 4. It
needs SIPp (Debian package sip-tester) and ends by itself: every SIPp run
has -m and -timeout, the flood has a duration.

What it starts:
  - the guard: this binary as a child process, 'telguard serve' with a
    config whose sip: section listens on 127.0.0.1 and forwards to the
    PBX, a throw-away data directory (SQLite decisions log included), the
    --policy file, and a flood limit (--flood-limit per 2 s) above the
    callers' packet rate: the callers are one SIPp on one address.
    A separate process so its peak RSS is its own.
  - the PBX: SIPp with a UAS scenario on 127.0.0.1 (answers 180, 200,
    takes ACK and BYE), restarted for each run.
  - the callers: SIPp with a UAC scenario on 127.0.0.2 (INVITE, 200, ACK,
    a pause of --hold, BYE), accounts acct-0…acct-9999 calling domestic
    São Paulo numbers from an injection file.
  - a probe: a Go caller on 127.0.0.3 placing --probe-rate calls a second,
    one at a time, alongside SIPp, timing INVITE → 200 in microseconds
    (SIPp's own response times are whole milliseconds of its event loop).

Phase 1, calls: for each rate in --rates, SIPp calls the PBX directly for
--step, then through the guard for --step. Reported per run: calls/s
started, successful and failed calls, retransmissions, SIPp's response
time (INVITE → 200) p50/p99, the probe's p50/p99, and for the guard its
own read-to-write time per message (telguard_sip_forward_seconds, as
bucket bounds). Then the added latency (guard minus direct, probe) and the
highest rate with zero failed calls on each path.

Phase 2, flood (skipped with --flood 0): source 127.0.0.66 sends one
SIPVicious OPTIONS (User-Agent: friendly-scanner) and is banned by the
policy's scanner rule; then it floods the guard with valid OPTIONS at
--flood-rate (0: as fast as one goroutine can) for --flood, while SIPp
places --flood-cps calls a second through the guard from 127.0.0.2.
Reported: packets sent and dropped as banned per second (by the kernel,
through the guard's socket filter of bans, and by the pre-filter after
reading), datagrams lost to full receive buffers, the calls' success rate,
the guard process's RSS before, at peak (VmHWM, reset when the flood
starts) and after, and every --sample its RSS and the sizes of its call
state tables (transactions, calls up, ended calls), to show where memory
levels off.

Examples:
  telguard bench-sip
  telguard bench-sip --rates 500,1000 --step 5s --flood 10s
  telguard bench-sip --flood 0 --keep /tmp/sipbench   # keep SIPp's files
  telguard bench-sip --rates "" --flood 300s --sample 20s   # a flood soak
`

type benchSIP struct {
	e         *env
	sipp      string
	work      string
	hold      time.Duration
	probeRate int
	api       string         // the guard's decision API, host:port
	guard     netip.AddrPort // the guard's SIP listener
	uasPort   int
	guardPID  int
	runs      int
	sample    time.Duration // phase 2's timeline interval
}

func (e *env) benchSIP(args []string) error {
	fs := e.flags("bench-sip", benchSIPHelp)
	ratesFlag := fs.String("rates", "200,500,1000,1500", "call `rates` (calls/s) of phase 1, comma-separated; \"\" skips phase 1")
	step := fs.Duration("step", 10*time.Second, "how long each phase-1 run places calls")
	hold := fs.Duration("hold", 500*time.Millisecond, "how long each call stays up before its BYE")
	probeRate := fs.Int("probe-rate", 20, "calls/s of the microsecond probe during each run (0: no probe)")
	flood := fs.Duration("flood", 60*time.Second, "how long phase 2 floods (0 skips phase 2)")
	floodRate := fs.Int("flood-rate", 0, "flood packets/s from the banned source (0: as fast as possible)")
	floodCPS := fs.Int("flood-cps", 200, "legitimate calls/s through the guard during the flood")
	sample := fs.Duration("sample", 10*time.Second, "how often phase 2 samples the guard's RSS and call state")
	floodLimit := fs.Int("flood-limit", 40000, "the guard's per-source flood limit (packets per 2 s), above the callers' rate")
	policyFile := fs.String("policy", "examples/bench/sip-policy.yaml", "policy `file` for the guard")
	sippBin := fs.String("sipp", "sipp", "SIPp `binary`")
	keep := fs.String("keep", "", "keep SIPp's files and the guard's log in `dir` (default: a temporary directory, removed)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("bench-sip: unexpected argument %q", fs.Arg(0))
	}
	var rates []int
	for f := range strings.SplitSeq(*ratesFlag, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		r, err := strconv.Atoi(f)
		if err != nil || r < 1 || r > 10000 {
			return usagef("bench-sip: --rates: want calls/s between 1 and 10000, got %q", f)
		}
		rates = append(rates, r)
	}
	switch {
	case *step < time.Second || *step > 10*time.Minute:
		return usagef("bench-sip: keep 1s ≤ --step ≤ 10m")
	case *hold < 0 || *hold > time.Minute:
		return usagef("bench-sip: keep 0 ≤ --hold ≤ 1m")
	case *flood < 0 || *flood > 10*time.Minute:
		return usagef("bench-sip: keep 0 ≤ --flood ≤ 10m")
	case *floodRate < 0 || *floodCPS < 1 || *floodCPS > 10000 || *probeRate < 0 || *probeRate > 200:
		return usagef("bench-sip: keep --flood-rate ≥ 0, 1 ≤ --flood-cps ≤ 10000, 0 ≤ --probe-rate ≤ 200")
	case *floodLimit < 1:
		return usagef("bench-sip: --flood-limit must be positive")
	case *sample < time.Second:
		return usagef("bench-sip: --sample must be at least 1s")
	}
	bin, err := exec.LookPath(*sippBin)
	if err != nil {
		return fmt.Errorf("bench-sip: %w (install Debian's sip-tester)", err)
	}
	policy, err := filepath.Abs(*policyFile)
	if err != nil {
		return fmt.Errorf("bench-sip: %w", err)
	}
	if _, err := os.Stat(policy); err != nil {
		return usagef("bench-sip: --policy: %v", err)
	}
	work := *keep
	if work == "" {
		if work, err = os.MkdirTemp("", "telguard-bench-sip-"); err != nil {
			return fmt.Errorf("bench-sip: %w", err)
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("bench-sip: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b := &benchSIP{e: e, sipp: bin, work: work, hold: *hold, probeRate: *probeRate, sample: *sample}
	if err := sipload.WriteScenarios(work); err != nil {
		return fmt.Errorf("bench-sip: %w", err)
	}
	if err := writeInjection(filepath.Join(work, "calls.csv"), 10000); err != nil {
		return fmt.Errorf("bench-sip: %w", err)
	}
	guard, err := b.startGuard(policy, *floodLimit)
	if err != nil {
		return fmt.Errorf("bench-sip: %w", err)
	}
	defer guard.stop()
	b.logf("guard pid %d: SIP %s, API %s, PBX 127.0.0.1:%d; files in %s", b.guardPID, b.guard, b.api, b.uasPort, work)

	if len(rates) > 0 {
		if err := b.phaseCalls(ctx, rates, *step); err != nil {
			return fmt.Errorf("bench-sip: %w", err)
		}
	}
	if *flood > 0 {
		if err := b.phaseFlood(ctx, *flood, *floodRate, *floodCPS); err != nil {
			return fmt.Errorf("bench-sip: %w", err)
		}
	}
	return nil
}

func (b *benchSIP) logf(format string, args ...any) {
	fmt.Fprintf(b.e.stderr, "bench-sip: "+format+"\n", args...)
}

// writeInjection writes SIPp's injection file: account;number per line,
// numbers São Paulo fixed lines (11 3xxx xxxx), which the bench policy
// allows.
func writeInjection(path string, n int) error {
	var sb strings.Builder
	sb.WriteString("SEQUENTIAL\n")
	r := mrand.New(mrand.NewPCG(1, 2))
	for i := range n {
		fmt.Fprintf(&sb, "acct-%d;113%07d\n", i, r.IntN(10_000_000))
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

func freePort(network, ip string) (int, error) {
	if network == "tcp" {
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	c, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

type child struct {
	cmd  *exec.Cmd
	done chan error
}

// stop ends a child process: SIGTERM, then SIGKILL after 10 s.
func (c *child) stop() {
	if c == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func start(cmd *exec.Cmd, logFile string) (*child, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(cmd.Path), err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait(); f.Close() }()
	return c, nil
}

// startGuard runs 'telguard serve' (this binary) with a SIP config and
// waits until its API answers /readyz.
func (b *benchSIP) startGuard(policy string, floodLimit int) (*child, error) {
	var err error
	if b.uasPort, err = freePort("udp", "127.0.0.1"); err != nil {
		return nil, err
	}
	sipPort, err := freePort("udp", "127.0.0.1")
	if err != nil {
		return nil, err
	}
	apiPort, err := freePort("tcp", "127.0.0.1")
	if err != nil {
		return nil, err
	}
	b.api = fmt.Sprintf("127.0.0.1:%d", apiPort)
	b.guard = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sipPort))
	cfg := fmt.Sprintf(`data_dir: %q
policy: %q
log: {level: warn}
api: {listen: %q}
sip:
  listen: ["udp:127.0.0.1:%d"]
  upstream: "udp:127.0.0.1:%d"
  flood_requests: %d
  flood_window: 2s
`, filepath.Join(b.work, "data"), policy, b.api, sipPort, b.uasPort, floodLimit)
	cfgFile := filepath.Join(b.work, "telguard.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	cmd := exec.Command(exe, "serve", "--config", cfgFile)
	cmd.Env = append(os.Environ(), "TELGUARD_API_KEY=bench_"+hex.EncodeToString(raw))
	c, err := start(cmd, filepath.Join(b.work, "guard.log"))
	if err != nil {
		return nil, err
	}
	b.guardPID = cmd.Process.Pid
	for range 200 {
		select {
		case err := <-c.done:
			log, _ := os.ReadFile(filepath.Join(b.work, "guard.log"))
			return nil, fmt.Errorf("the guard exited (%v):\n%s", err, log)
		default:
		}
		if resp, err := http.Get("http://" + b.api + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.stop()
	return nil, errors.New("the guard did not become ready within 10 s")
}

func (b *benchSIP) scrape() (sipload.Metrics, error) {
	resp, err := http.Get("http://" + b.api + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scrape guard metrics: %w", err)
	}
	defer resp.Body.Close()
	return sipload.ParseMetrics(resp.Body)
}

// startUAS starts SIPp as the PBX on 127.0.0.1:uasPort, bounded by limit.
func (b *benchSIP) startUAS(dir string, limit time.Duration) (*child, error) {
	cmd := exec.Command(b.sipp, "-sf", filepath.Join(b.work, "uas.xml"), "-i", "127.0.0.1", "-p", strconv.Itoa(b.uasPort),
		"-timeout", fmt.Sprintf("%ds", int(limit.Seconds())+1), "-nostdin", "-trace_err", "-error_file", filepath.Join(dir, "uas_errors.log"))
	cmd.Dir = dir
	c, err := start(cmd, filepath.Join(dir, "uas.out"))
	if err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond) // let it bind
	select {
	case err := <-c.done:
		return nil, fmt.Errorf("the SIPp UAS exited at once (%v); see %s", err, filepath.Join(dir, "uas.out"))
	default:
	}
	return c, nil
}

// uacResult is one SIPp caller run.
type uacResult struct {
	planned  int // calls SIPp was told to place (-m)
	stats    sipload.Stats
	rtt      []time.Duration
	probe    sipload.ProbeReport
	probeErr error
}

// runUAC places rate calls/s for d to target from 127.0.0.2, with the probe
// alongside, and waits for every call to end.
func (b *benchSIP) runUAC(ctx context.Context, dir string, target netip.AddrPort, rate int, d time.Duration) (uacResult, error) {
	var res uacResult
	port, err := freePort("udp", "127.0.0.2")
	if err != nil {
		return res, err
	}
	calls := int(float64(rate) * d.Seconds())
	res.planned = calls
	limit := d + b.hold + 30*time.Second
	args := []string{"-sf", filepath.Join(b.work, "uac.xml"), "-inf", filepath.Join(b.work, "calls.csv"),
		"-i", "127.0.0.2", "-p", strconv.Itoa(port), "-r", strconv.Itoa(rate), "-m", strconv.Itoa(calls),
		"-d", strconv.Itoa(int(b.hold.Milliseconds())), "-l", strconv.Itoa(max(rate*4, 100)),
		"-timeout", fmt.Sprintf("%ds", int(limit.Seconds())), "-timeout_error", "-nostdin",
		"-trace_stat", "-stf", filepath.Join(dir, "uac_stats.csv"), "-fd", "1",
		"-trace_rtt", "-rtt_freq", "200", "-trace_err", "-error_file", filepath.Join(dir, "uac_errors.log"),
		target.String()}
	cmd := exec.CommandContext(ctx, b.sipp, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var wg sync.WaitGroup
	if b.probeRate > 0 {
		wg.Go(func() {
			res.probe, res.probeErr = sipload.Probe(ctx, sipload.ProbeOptions{
				From: netip.MustParseAddr("127.0.0.3"), To: target, Rate: b.probeRate, Duration: d})
		})
	}
	c, err := start(cmd, filepath.Join(dir, "uac.out"))
	if err != nil {
		wg.Wait()
		return res, err
	}
	var runErr error
	select {
	case runErr = <-c.done:
	case <-time.After(limit + 10*time.Second):
		_ = cmd.Process.Kill()
		runErr = <-c.done
	}
	wg.Wait()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	f, err := os.Open(filepath.Join(dir, "uac_stats.csv"))
	if err != nil {
		return res, fmt.Errorf("SIPp UAC (%v) left no statistics: %w; see %s", runErr, err, dir)
	}
	res.stats, err = sipload.ParseStats(f)
	f.Close()
	if err != nil {
		return res, err
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*_rtt.csv")); len(files) > 0 {
		if f, err := os.Open(files[0]); err == nil {
			res.rtt, _ = sipload.ParseRTT(f, 1)
			f.Close()
		}
	}
	return res, nil
}

type callRun struct {
	rate   int
	path   string // "direct" or "guard"
	res    uacResult
	fwd50  float64 // guard's read→written, seconds (bucket bound)
	fwd99  float64
	drops  float64 // guard: packets dropped by the filter or the edge
	denied float64 // guard: INVITEs not allowed
}

func (b *benchSIP) phaseCalls(ctx context.Context, rates []int, step time.Duration) error {
	b.logf("phase 1: rates %v, %s per run, calls held %s", rates, step, b.hold)
	var runs []callRun
	for _, rate := range rates {
		for _, path := range []string{"direct", "guard"} {
			b.runs++
			dir := filepath.Join(b.work, fmt.Sprintf("%02d-%s-%d", b.runs, path, rate))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			target := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(b.uasPort))
			if path == "guard" {
				target = b.guard
			}
			uas, err := b.startUAS(dir, step+b.hold+60*time.Second)
			if err != nil {
				return err
			}
			before, err := b.scrape()
			if err != nil {
				uas.stop()
				return err
			}
			res, err := b.runUAC(ctx, dir, target, rate, step)
			time.Sleep(200 * time.Millisecond) // the last BYE's 200 through the guard
			uas.stop()
			if err != nil {
				return err
			}
			after, err := b.scrape()
			if err != nil {
				return err
			}
			r := callRun{rate: rate, path: path, res: res}
			if path == "guard" {
				r.fwd50 = sipload.HistogramQuantile(before, after, "telguard_sip_forward_seconds", 0.5)
				r.fwd99 = sipload.HistogramQuantile(before, after, "telguard_sip_forward_seconds", 0.99)
				delta := func(name string, labels ...string) float64 {
					return after.Sum(name, labels...) - before.Sum(name, labels...)
				}
				r.drops = delta("telguard_sip_dropped_total") + delta("telguard_sip_prefilter_packets_total", `verdict="drop_`)
				r.denied = delta("telguard_sip_requests_total", `method="INVITE"`)
				for _, v := range []string{"allow", "retransmission", "follow_up", "bypass"} {
					r.denied -= delta("telguard_sip_requests_total", `method="INVITE"`, `verdict="`+v+`"`)
				}
			}
			s := res.stats
			b.logf("%-6s %5d calls/s: %d ok, %d failed, %d retransmissions, probe p99 %s", path, rate, s.Successful, s.Failed, s.Retransmissions, us(res.probe.P(0.99)))
			runs = append(runs, r)
		}
	}
	b.printCalls(runs, step)
	return nil
}

func us(d time.Duration) string {
	if d == 0 {
		return "—"
	}
	return fmt.Sprintf("%d µs", d.Microseconds())
}

func ms(d time.Duration) string { return fmt.Sprintf("%d", d.Milliseconds()) }

func bound(sec float64) string {
	switch {
	case math.IsNaN(sec):
		return "—"
	case math.IsInf(sec, 1):
		return "> 100 ms"
	case sec < 1e-3:
		return fmt.Sprintf("≤ %g µs", sec*1e6)
	default:
		return fmt.Sprintf("≤ %g ms", sec*1e3)
	}
}

func (b *benchSIP) printCalls(runs []callRun, step time.Duration) {
	out := b.e.stdout
	fmt.Fprintf(out, "\n== Phase 1: SIPp UAC → PBX directly vs through the guard (%s per run, calls held %s, probe %d calls/s)\n\n", step, b.hold, b.probeRate)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "rate\tpath\tok calls/s\tok\tfailed\tretrans\tSIPp rtd p50/p99 (ms)\tprobe p50\tprobe p99\tprobe calls\tguard fwd p50\tguard fwd p99\tguard drops\tnot allowed")
	best := map[string]int{}
	for _, r := range runs {
		s, p := r.res.stats, r.res.probe
		fwd50, fwd99, drops, denied := "", "", "", ""
		if r.path == "guard" {
			fwd50, fwd99, drops, denied = bound(r.fwd50), bound(r.fwd99), fmt.Sprint(r.drops), fmt.Sprint(r.denied)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.1f\t%d\t%d\t%d\t%s/%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", r.rate, r.path, float64(s.Successful)/step.Seconds(), s.Successful, s.Failed,
			s.Retransmissions, ms(sipload.Percentile(r.res.rtt, 0.5)), ms(sipload.Percentile(r.res.rtt, 0.99)),
			us(p.P(0.5)), us(p.P(0.99)), p.Answered, p.Calls, fwd50, fwd99, drops, denied)
		if s.Failed == 0 && s.Successful == r.res.planned && r.rate > best[r.path] {
			best[r.path] = r.rate
		}
	}
	tw.Flush()
	fmt.Fprintln(out, "\nAdded latency through the guard (probe, guard minus direct at the same rate):")
	for i := 0; i+1 < len(runs); i += 2 {
		d, g := runs[i].res.probe, runs[i+1].res.probe
		if len(d.Setup) == 0 || len(g.Setup) == 0 {
			continue
		}
		fmt.Fprintf(out, "  %5d calls/s: p50 %+d µs, p99 %+d µs\n", runs[i].rate,
			(g.P(0.5) - d.P(0.5)).Microseconds(), (g.P(0.99) - d.P(0.99)).Microseconds())
	}
	fmt.Fprintf(out, "\nHighest rate with zero failed calls: direct %d calls/s, through the guard %d calls/s\n", best["direct"], best["guard"])
}

// scannerOptions is a SIPVicious probe: the policy's scanner rule bans its
// source and drops it unanswered.
const scannerOptions = "OPTIONS sip:100@%s SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.66:5060;branch=z9hG4bK-%d;rport\r\n" +
	"From: \"sipvicious\"<sip:100@1.1.1.1>;tag=6434396633623535\r\n" +
	"To: \"sipvicious\"<sip:100@1.1.1.1>\r\n" +
	"Call-ID: 1234567890-%d@127.0.0.66\r\nCSeq: 1 OPTIONS\r\n" +
	"Contact: <sip:100@127.0.0.66:5060>\r\nMax-Forwards: 70\r\n" +
	"User-Agent: friendly-scanner\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n"

// floodPacket is what the banned source floods with: a well-formed
// OPTIONS that the pre-filter would pass to the parser were it not banned.
const floodPacket = "OPTIONS sip:100@%s SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.66:5060;branch=z9hG4bK-flood;rport\r\n" +
	"From: <sip:flood@127.0.0.66>;tag=1\r\nTo: <sip:100@%s>\r\n" +
	"Call-ID: flood@127.0.0.66\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"

var banned = netip.MustParseAddr("127.0.0.66")

// ban bans 127.0.0.66 through the policy's scanner rule and waits until
// the pre-filter holds the ban.
func (b *benchSIP) ban() error {
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: banned.AsSlice()}, net.UDPAddrFromAddrPort(b.guard))
	if err != nil {
		return fmt.Errorf("ban: %w", err)
	}
	defer conn.Close()
	for i := range 50 {
		if i%10 == 0 {
			_, _ = fmt.Fprintf(conn, scannerOptions, b.guard, i, i)
		}
		m, err := b.scrape()
		if err != nil {
			return err
		}
		if m.Sum("telguard_sip_prefilter_bans") >= 1 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("ban: the scanner's source was not banned within 5 s")
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func (b *benchSIP) phaseFlood(ctx context.Context, d time.Duration, rate, cps int) error {
	b.runs++
	dir := filepath.Join(b.work, fmt.Sprintf("%02d-flood", b.runs))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b.logf("phase 2: banning %s, then flooding for %s while %d calls/s go through the guard", banned, d, cps)
	if err := b.ban(); err != nil {
		return err
	}
	uas, err := b.startUAS(dir, d+b.hold+60*time.Second)
	if err != nil {
		return err
	}
	defer uas.stop()
	memBefore, err := sipload.ReadProcMemory(b.guardPID)
	if err != nil {
		return err
	}
	peakReset := sipload.ResetPeak(b.guardPID) == nil
	before, err := b.scrape()
	if err != nil {
		return err
	}
	kdropsBefore, kerr := sipload.UDPDrops(b.guard.Port())

	rcvbufBefore, rerr := sipload.UDPRcvbufErrors()

	// Sample RSS and the edge's tables while the flood runs: a check on
	// VmHWM, and the timeline that shows call state levelling off.
	var sampledPeak int64
	var timeline []floodSample
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	floodStart := time.Now()
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		nextSample := time.Duration(0)
		for {
			if m, err := sipload.ReadProcMemory(b.guardPID); err == nil {
				sampledPeak = max(sampledPeak, m.RSS)
				if el := time.Since(floodStart); el >= nextSample {
					if mt, err := b.scrape(); err == nil {
						timeline = append(timeline, floodSample{at: el, rss: m.RSS, anon: m.Anon, file: m.File, txs: mt.Sum("telguard_sip_transactions"),
							calls: mt.Sum("telguard_sip_calls"), ended: mt.Sum("telguard_sip_ended_calls"),
							kernelBans: mt.Sum("telguard_sip_kernel_bans")})
					}
					nextSample += b.sample
				}
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	})
	var flood sipload.Report
	var floodErr error
	wg.Go(func() {
		pkt := fmt.Sprintf(floodPacket, b.guard, b.guard)
		flood, floodErr = sipload.Flood(ctx, sipload.Options{From: banned, To: b.guard, Rate: rate, Duration: d, Packet: []byte(pkt)})
	})
	saved := b.probeRate
	b.probeRate = 0 // the probe never retransmits: a flood would make it measure loss, not latency
	res, err := b.runUAC(ctx, dir, b.guard, cps, d)
	b.probeRate = saved
	stopSampling()
	wg.Wait()
	if err != nil {
		return err
	}
	if floodErr != nil {
		return floodErr
	}
	time.Sleep(200 * time.Millisecond)
	after, err := b.scrape()
	if err != nil {
		return err
	}
	memAfter, err := sipload.ReadProcMemory(b.guardPID)
	if err != nil {
		return err
	}
	// The socket's drop counter holds both what its ban filter refused
	// and what a full receive buffer lost; the system's RcvbufErrors
	// counts the latter alone (every socket's: an upper bound of ours).
	var sockDrops, overflows float64
	known := kerr == nil && rerr == nil
	if kdropsAfter, err := sipload.UDPDrops(b.guard.Port()); err == nil && known {
		sockDrops = float64(kdropsAfter - kdropsBefore)
	} else {
		known = false
	}
	if rcvbufAfter, err := sipload.UDPRcvbufErrors(); err == nil && known {
		overflows = float64(rcvbufAfter - rcvbufBefore)
	} else {
		known = false
	}
	kernelDropped := max(sockDrops-overflows, 0)
	dropped := after.Sum("telguard_sip_prefilter_packets_total", `verdict="drop_banned"`) - before.Sum("telguard_sip_prefilter_packets_total", `verdict="drop_banned"`)
	secs := flood.Elapsed.Seconds()

	out := b.e.stdout
	fmt.Fprintf(out, "\n== Phase 2: flood from banned %s for %s while SIPp calls through the guard at %d calls/s\n\n", banned, d, cps)
	fmt.Fprintf(out, "flood sent:                %d packets, %.0f packets/s (%d write errors)\n", flood.Sent, flood.PPS(), flood.Errors)
	if known {
		total := kernelDropped + dropped
		fmt.Fprintf(out, "dropped as banned:         %.0f packets, %.0f packets/s (%.1f%% of sent): %.0f by the kernel (the socket's ban filter), %.0f by the pre-filter after reading\n",
			total, total/secs, 100*total/float64(max(flood.Sent, 1)), kernelDropped, dropped)
		fmt.Fprintf(out, "lost to full receive buffers (system-wide RcvbufErrors): %.0f datagrams\n", overflows)
	} else {
		fmt.Fprintf(out, "dropped as banned (pre-filter): %.0f packets, %.0f packets/s; kernel counters unavailable\n", dropped, dropped/secs)
	}
	s := res.stats
	fmt.Fprintf(out, "legitimate calls:          %d placed, %d ok, %d failed, %d unfinished, %d retransmissions, success %.3f%%; SIPp rtd p50/p99 %s/%s ms\n",
		res.planned, s.Successful, s.Failed, res.planned-s.Successful-s.Failed, s.Retransmissions, 100*float64(s.Successful)/float64(max(res.planned, 1)),
		ms(sipload.Percentile(res.rtt, 0.5)), ms(sipload.Percentile(res.rtt, 0.99)))
	peak := "unavailable (VmHWM could not be reset)"
	if peakReset {
		peak = mib(memAfter.Peak) + " (VmHWM, reset as the flood started)"
	}
	fmt.Fprintf(out, "guard RSS:                 %s before, peak %s, sampled peak %s, %s after (lifetime VmHWM %s)\n",
		mib(memBefore.RSS), peak, mib(sampledPeak), mib(memAfter.RSS), mib(max(memAfter.Peak, memBefore.Peak)))
	fmt.Fprintf(out, "\nGuard memory and call state during the flood (every %s):\n\n", b.sample)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "t\tRSS\tof it anon\tof it files\ttransactions\tcalls up\tended calls\tkernel bans\t")
	for _, x := range timeline {
		fmt.Fprintf(tw, "%ds\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t\n", int(x.at.Round(time.Second).Seconds()), mib(x.rss), mib(x.anon), mib(x.file), x.txs, x.calls, x.ended, x.kernelBans)
	}
	tw.Flush()
	return nil
}

// floodSample is the guard's state at one moment of the flood.
type floodSample struct {
	at                            time.Duration
	rss, anon, file               int64
	txs, calls, ended, kernelBans float64
}
