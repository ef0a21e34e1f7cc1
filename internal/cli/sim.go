package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/telguard/telguard/examples"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/sim"
)

const simHelp = `
Usage: telguard sim [--seed N] [--policy FILE] [--days D] [--warm-up W] [--model]
                    [--tenants T] [--accounts A] [--scenarios a,b,c] [--json]
                    [--target URL [--key KEY] [--rate N]]
                    [--sip-target udp:HOST:PORT --sip-pbx HOST:PORT
                     [--sip-carrier ADDR] [--rate N]]

Replays simulated traffic with attacks mixed in through the decision engine,
in process and in event time, and reports how much fraud was stopped, how
fast, what it cost, and how many honest calls were hurt. The same seed and
policy give the same calls and the same figures (except decision latency).

Honest traffic: T tenants with A accounts each, for D days from Monday
2026-03-02 in each tenant's time zone. Office extensions call in business
hours (morning and afternoon peaks, a lunch dip, quiet weekends), mostly
domestic mobiles and fixed lines with repeat contacts, about 72% answered,
median 100 s; accounts whose policy group may call abroad put about 15% of
calls to the group's allowed countries (less high-risk ones). Every fourth
tenant is a contact centre: agents dial fresh domestic numbers at about ten
attempts an hour, 38% answered. Simulated tenant i runs the rules of the
policy's tenant i mod N; extra tenants are copies named <tenant>-<i>.

Warm-up: before those D days, W days (default 21) of the same honest
traffic, and nothing else, run through the engine, so that its per-account
baselines and the tenants' known networks have history when the attacks
come, as on a system that has been running for weeks. Warm-up calls are in
no figure of the report (its header says how many there were); --warm-up 0
measures an engine that has learned nothing. With --model the anomaly model
is trained on the warm-up calls (what "telguard anomaly train" does on
honest history; seeded with --seed) and scores the measured days; the
report then compares the scores of honest and fraud attempts.

Attacks (one of each by default; each picks a tenant and an account that may
call abroad, the hard case, and every call is labelled with its scenario):
`

const simFooter = `
Calls are priced with the built-in rate deck (USD per minute, per second of
talk). A blocked call never rings and costs nothing; an allowed one rings,
is answered or not, and lasts as generated, and its answer and end are reported to the
engine at their event times, so concurrency, quota and short-call rules see
them as on a live system.

With --target the same traffic is sent to a running daemon over its
decision API (checks, answers and ends), one request at a time in event
order, at --rate checks per second, and the latency reported is each
check's HTTP round trip. Only one tenant is simulated, the API key's, and
the daemon must run the same policy. The simulated days, warm-up first,
are placed at least a week in the daemon's future and their event times are
sent as they are, so the daemon must accept any event time: start one
dedicated to the run with api.any_event_time: true in its config (never on
a live daemon) and a fresh data directory. The warm-up and the Wangiri
rings (inbound calls, "direction": "inbound") are sent too; --model is for
in-process runs (a daemon uses the model telguard anomaly train wrote).

Wangiri rings are sent as inbound calls before the callbacks; they are not
counted as attempts.

Through the SIP edge (--sip-target): the same traffic is played as SIP
calls over UDP against a daemon's SIP edge, and telguard sim is both the
callers and the PBX behind the edge. Each call is an INVITE from the
caller's own source address; the edge rejects it (403, 503, 603…) or
forwards it to the simulated PBX (--sip-pbx, the edge's sip.upstream),
which rings at once (180) and holds the call; when the call is answered
the PBX sends 200 and the caller ACKs; the caller hangs up with BYE; an
unanswered call is given up by the PBX with 480. Inbound rings come from
--sip-carrier (listed in the edge's sip.carriers). Every INVITE, BYE and the PBX's answers
carry the event time (X-Telguard-Time), and the edge puts its decision on
the rejection or the forwarded INVITE (X-Telguard-Decision), so the report
is that of the in-process run for the same start: the edge's engine sees
every call, answer and end in the same order. As with --target, the
simulated days are placed at least a week in the daemon's future. Latency is each INVITE's
round trip to the ring or the rejection (edge, engine, PBX hop and back).

Simulated source addresses become loopback addresses, which Linux routes
to lo without setup: each distinct /24 becomes one 127.a.b.0/24 from
127.1.0.0/24 on, in order of first appearance, keeping the last octet, so
per-address limits, bans and the new-network baseline see the same
structure (the default run uses about 125 addresses; at most 4096).

The daemon must be one dedicated to the run, with a fresh data directory
and the edge in simulation mode, which takes event times from the
simulator and must never face real callers (loopback listeners and
upstream only), running the same policy. Only one tenant is simulated: the edge's (sip.tenant,
default api.default_tenant), which must be the policy's first tenant by
name ("demo" in the example policy). Accounts are the From user
(sip.account_from: from_user, the default). Raise sip.flood_requests:
every honest call of a tenant's office comes from one address, far above
the default 64 packets in 2 s. For example, with the PBX on 127.0.0.1:5070
and the carrier on 127.0.0.2, sim.yaml:

  sip:
    simulation: true                # event times from X-Telguard-Time; loopback only
    listen: ["udp:127.0.0.1:5060"]
    upstream: "udp:127.0.0.1:5070"  # where telguard sim plays the PBX
    carriers: ["127.0.0.2/32"]      # the simulated carrier (inbound rings)
    flood_requests: 100000          # one office address carries all its calls

  telguard serve --config sim.yaml --data ./simdata &
  telguard sim --sip-target udp:127.0.0.1:5060 --sip-pbx 127.0.0.1:5070 \
      --sip-carrier 127.0.0.2 --rate 500

Examples:
  telguard sim
  telguard sim --seed 2 --model
  telguard sim --warm-up 0
  telguard sim --seed 7 --days 14 --tenants 20 --json > report.json
  telguard sim --policy my-policy.yaml --scenarios compromised-extension,slow-pumping
  telguard sim --target http://127.0.0.1:8080 --rate 1000 --days 2
  telguard sim --sip-target udp:127.0.0.1:5060 --sip-pbx 127.0.0.1:5070 --rate 500
`

func simUsage() string {
	var b strings.Builder
	b.WriteString(simHelp)
	for _, s := range sim.Scenarios() {
		fmt.Fprintf(&b, "  %s\n%s\n", s.Name, wrap(s.Help, 6, 78))
	}
	b.WriteString("\n")
	b.WriteString(sim.ColumnHelp)
	b.WriteString(simFooter)
	return b.String()
}

// wrap fills text to width with the given indent.
func wrap(text string, indent, width int) string {
	var b strings.Builder
	line := strings.Repeat(" ", indent)
	for _, w := range strings.Fields(text) {
		if len(line)+1+len(w) > width && strings.TrimSpace(line) != "" {
			b.WriteString(line + "\n")
			line = strings.Repeat(" ", indent)
		}
		if strings.TrimSpace(line) != "" {
			line += " "
		}
		line += w
	}
	b.WriteString(line)
	return b.String()
}

func (e *env) sim(args []string) error {
	fs := e.flags("sim", simUsage())
	seed := fs.Uint64("seed", 1, "seed for the traffic; the same seed gives the same calls")
	policyFile := fs.String("policy", "", "policy `file` (default: the built-in examples/policy.yaml)")
	days := fs.Int("days", 7, "simulated days")
	model := fs.Bool("model", false, "train the anomaly model on the warm-up days (honest traffic) and score the measured days with it")
	warmUp := fs.Int("warm-up", 21, "`days` of honest-only traffic before the measured days, to teach the baselines (not counted in the report)")
	tenants := fs.Int("tenants", 10, "simulated tenants")
	accounts := fs.Int("accounts", 50, "accounts per tenant")
	scen := fs.String("scenarios", strings.Join(sim.ScenarioNames(), ","), "comma-separated attack `scenarios` to mix in; \"none\" for honest traffic only")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	target := fs.String("target", "", "drive a running daemon's decision API at `URL` (http://127.0.0.1:8080) instead of the engine in process")
	key := fs.String("key", "", "API `key` for --target (default $TELGUARD_API_KEY or ./data/api-key)")
	rate := fs.Float64("rate", 500, "checks (with --sip-target: INVITEs) per second sent to --target; 0 = as fast as it answers")
	sipTarget := fs.String("sip-target", "", "drive a running daemon's SIP edge at `udp:HOST:PORT` (its sip.listen; simulation mode) instead of the engine in process")
	sipPBX := fs.String("sip-pbx", "", "with --sip-target, play the PBX at `HOST:PORT`: the edge's sip.upstream")
	sipCarrier := fs.String("sip-carrier", "127.0.0.2", "with --sip-target, send inbound rings from this `address`, listed in the edge's sip.carriers")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *target != "" && *sipTarget != "" {
		return usagef("sim: --target and --sip-target exclude each other")
	}
	if *sipTarget == "" && *sipPBX != "" {
		return usagef("sim: --sip-pbx goes with --sip-target")
	}
	if *target != "" || *sipTarget != "" {
		tenantsSet := false
		fs.Visit(func(f *flag.Flag) { tenantsSet = tenantsSet || f.Name == "tenants" })
		if tenantsSet && *tenants != 1 {
			if *sipTarget != "" {
				return usagef("sim: --sip-target simulates one tenant, the edge's: drop --tenants")
			}
			return usagef("sim: --target simulates one tenant, the API key's: drop --tenants")
		}
		*tenants = 1
	}
	if fs.NArg() > 0 {
		return usagef("sim: unexpected argument %q", fs.Arg(0))
	}
	if *warmUp < 0 || *warmUp > 366 {
		return usagef("sim: keep 0 ≤ --warm-up ≤ 366")
	}
	if *model && (*target != "" || *sipTarget != "") {
		return usagef("sim: --model runs in process only: drop --target and --sip-target")
	}
	if *model && *warmUp == 0 {
		return usagef("sim: --model trains on the warm-up days: give --warm-up")
	}
	if *days < 1 || *days > 366 || *tenants < 1 || *tenants > 10_000 || *accounts < 1 || *accounts > 10_000 {
		return usagef("sim: keep 1 ≤ --days ≤ 366, 1 ≤ --tenants ≤ 10000 and 1 ≤ --accounts ≤ 10000")
	}
	var names []string
	if *scen != "none" {
		known := map[string]bool{}
		for _, n := range sim.ScenarioNames() {
			known[n] = true
		}
		for n := range strings.SplitSeq(*scen, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			if !known[n] {
				return usagef("sim: unknown scenario %q (known: %s)", n, strings.Join(sim.ScenarioNames(), ", "))
			}
			names = append(names, n)
		}
	}
	var pol *policy.Policy
	var err error
	if *policyFile == "" {
		pol, err = policy.Parse("examples/policy.yaml", examples.Policy, nil)
	} else {
		pol, err = policy.Load(*policyFile)
	}
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	o := sim.Options{Seed: *seed, Days: *days, WarmUpDays: *warmUp, Model: *model, Tenants: *tenants, Accounts: *accounts, Scenarios: names, Policy: pol}
	if *target != "" {
		return e.simRemote(ctx, o, *target, *key, *rate, *asJSON)
	}
	if *sipTarget != "" {
		return e.simSIP(ctx, o, *sipTarget, *sipPBX, *sipCarrier, *rate, *asJSON)
	}
	rep, err := sim.Simulate(ctx, o)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(e.stdout)
}

// simRemote runs the simulation against a daemon over its decision API.
func (e *env) simRemote(ctx context.Context, o sim.Options, target, keyFlag string, rate float64, asJSON bool) error {
	k, err := apiKey(keyFlag)
	if err != nil {
		return err
	}
	if rate < 0 {
		return usagef("sim: --rate must not be negative")
	}
	now := time.Now()
	o.Start = sim.FutureStart(now, o.WarmUpDays)
	h, err := sim.NewHTTPDecider(target, k, rate, fmt.Sprintf("r%d-", now.Unix()))
	if err != nil {
		return usagef("sim: %v", err)
	}
	stopProgress := simProgress(e.stderr, func() string {
		st := h.Stats()
		return fmt.Sprintf("sim: %d checks sent, %.0f/s, %d failed", st.Checks, st.Rate, st.Failures)
	})
	rep, st, err := sim.SimulateRemote(ctx, o, h)
	stopProgress()
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return e.remoteReport(asJSON, rep, st, func(w io.Writer) {
		fmt.Fprintf(w, "\nDriven over the decision API at %s: %d checks in %s, %.0f checks/s (asked %g), %d failed requests.\n",
			target, st.Checks, st.Elapsed.Round(time.Millisecond), st.Rate, rate, st.Failures)
	}, fmt.Sprintf("requests to %s", target))
}

// remoteReport prints a run against a daemon (as JSON with its remote
// stats, or as text followed by trailer) and fails when exchanges failed.
func (e *env) remoteReport(asJSON bool, rep sim.Report, st sim.RemoteStats, trailer func(io.Writer), what string) error {
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			sim.Report
			Remote sim.RemoteStats `json:"remote"`
		}{rep, st}); err != nil {
			return err
		}
	} else {
		if err := rep.WriteText(e.stdout); err != nil {
			return err
		}
		trailer(e.stdout)
	}
	if st.Failures > 0 {
		return fmt.Errorf("sim: %d %s failed; first: %s", st.Failures, what, st.FirstErr)
	}
	return nil
}

// simProgress prints line() to w every few seconds until stopped, so a long
// run shows it is alive.
func simProgress(w io.Writer, line func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintln(w, line())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// simSIP runs the simulation through a daemon's SIP edge, playing the
// callers and the PBX.
func (e *env) simSIP(ctx context.Context, o sim.Options, target, pbx, carrier string, rate float64, asJSON bool) error {
	so, err := sipOptions(target, pbx, carrier)
	if err != nil {
		return err
	}
	if rate < 0 {
		return usagef("sim: --rate must not be negative")
	}
	now := time.Now()
	o.Start = sim.FutureStart(now, o.WarmUpDays)
	so.Rate, so.RunID = rate, fmt.Sprintf("r%d-", now.Unix())
	d, err := sim.NewSIPDecider(so)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	defer d.Close()
	stopProgress := simProgress(e.stderr, func() string {
		st := d.Stats()
		return fmt.Sprintf("sim: %d INVITEs sent, %.0f/s, %d failed", st.Checks, st.Rate, st.Failures)
	})
	rep, st, err := sim.SimulateSIP(ctx, o, d)
	stopProgress()
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return e.remoteReport(asJSON, rep, st, func(w io.Writer) {
		fmt.Fprintf(w, "\nDriven through the SIP edge at %s (PBX played at %s, %d source addresses): %d calls in %s, %.0f INVITEs/s (asked %g), %d failed exchanges.\n",
			target, so.PBX, d.Sources(), st.Checks, st.Elapsed.Round(time.Millisecond), st.Rate, rate, st.Failures)
		if r := st.Rejected; r != nil {
			fmt.Fprintf(w, "Calls the edge rejected itself (no PBX hop, %d): p50 %.1f µs, p99 %.1f µs, max %.1f µs.\n", r.Decisions, r.P50, r.P99, r.Max)
		}
	}, fmt.Sprintf("SIP exchanges with %s", target))
}

// sipOptions reads --sip-target, --sip-pbx and --sip-carrier.
func sipOptions(target, pbx, carrier string) (sim.SIPOptions, error) {
	var o sim.SIPOptions
	rest, ok := strings.CutPrefix(target, "udp:")
	if !ok {
		return o, usagef("sim: --sip-target %q: want udp:HOST:PORT (the edge's UDP listener)", target)
	}
	var err error
	if o.Target, err = netip.ParseAddrPort(rest); err != nil || o.Target.Port() == 0 {
		return o, usagef("sim: --sip-target %q: want udp:HOST:PORT with an IP address", target)
	}
	if pbx == "" {
		return o, usagef("sim: --sip-target needs --sip-pbx HOST:PORT, the edge's sip.upstream, where telguard sim plays the PBX")
	}
	if o.PBX, err = netip.ParseAddrPort(strings.TrimPrefix(pbx, "udp:")); err != nil || o.PBX.Port() == 0 {
		return o, usagef("sim: --sip-pbx %q: want HOST:PORT with an IP address", pbx)
	}
	if o.Carrier, err = netip.ParseAddr(carrier); err != nil {
		return o, usagef("sim: --sip-carrier %q: want an IP address", carrier)
	}
	for _, a := range []netip.Addr{o.Target.Addr(), o.PBX.Addr(), o.Carrier} {
		if !a.Is4() || !a.IsLoopback() {
			return o, usagef("sim: --sip-target, --sip-pbx and --sip-carrier must be IPv4 loopback addresses (127.x.x.x): a run in simulation mode stays on the machine")
		}
	}
	if o.Carrier == o.PBX.Addr() {
		return o, usagef("sim: --sip-carrier must be another address than --sip-pbx's: the edge takes what comes from the PBX's address for the PBX")
	}
	return o, nil
}
