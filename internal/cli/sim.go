package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
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

Examples:
  telguard sim
  telguard sim --seed 2 --model
  telguard sim --warm-up 0
  telguard sim --seed 7 --days 14 --tenants 20 --json > report.json
  telguard sim --policy my-policy.yaml --scenarios compromised-extension,slow-pumping
  telguard sim --target http://127.0.0.1:8080 --rate 1000 --days 2
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
	rate := fs.Float64("rate", 500, "checks per second sent to --target; 0 = as fast as it answers")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *target != "" {
		tenantsSet := false
		fs.Visit(func(f *flag.Flag) { tenantsSet = tenantsSet || f.Name == "tenants" })
		if tenantsSet && *tenants != 1 {
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
	if *model && *target != "" {
		return usagef("sim: --model runs in process only: drop --target")
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
		fmt.Fprintf(e.stdout, "\nDriven over the decision API at %s: %d checks in %s, %.0f checks/s (asked %g), %d failed requests.\n",
			target, st.Checks, st.Elapsed.Round(time.Millisecond), st.Rate, rate, st.Failures)
	}
	if st.Failures > 0 {
		return fmt.Errorf("sim: %d requests to %s failed; first: %s", st.Failures, target, st.FirstErr)
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
