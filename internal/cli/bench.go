package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"time"

	"github.com/telguard/telguard/internal/config"
	"github.com/telguard/telguard/internal/daemon"
	"github.com/telguard/telguard/internal/decisionapi/loadgen"
)

const benchHelp = `
Usage: telguard bench [--url URL --key KEY] [flags]

Load-tests the decision API with concurrent keep-alive clients sending a
realistic mix of call checks (domestic, foreign, premium, many accounts and
source addresses), and reports decisions per second and latency
percentiles. A progress line is printed every second.

Without --url it starts a daemon in this process on a free loopback port,
with a throw-away data directory and the given policy, and benchmarks that:
the client and the server then share the machine's cores, as they do when
run as two processes on one machine.

Examples:
  telguard bench --duration 10s
  telguard bench --url http://127.0.0.1:8080 --key "$TELGUARD_API_KEY" --requests 200000
`

func (e *env) bench(args []string) error {
	fs := e.flags("bench", benchHelp)
	url := fs.String("url", "", "decision API base `URL` (default: start a daemon in-process)")
	key := fs.String("key", "", "API `key` for --url (default $TELGUARD_API_KEY)")
	policyFile := fs.String("policy", "", "policy `file` for the in-process daemon (default examples/policy.yaml)")
	conc := fs.Int("concurrency", 8, "requests in flight (keep-alive connections)")
	requests := fs.Int("requests", 0, "stop after this many requests (0: no limit)")
	duration := fs.Duration("duration", 10*time.Second, "stop after this long (0: no limit)")
	accounts := fs.Int("accounts", 10000, "accounts the calls spread over")
	seed := fs.Int64("seed", 1, "seed for the request mix")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file` (go tool pprof)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *requests == 0 && *duration == 0 {
		return usagef("bench: give --requests or --duration; a load test must end by itself")
	}
	if *duration > time.Hour || *requests > 100_000_000 || *conc < 1 || *conc > 4096 {
		return usagef("bench: keep --duration ≤ 1h, --requests ≤ 1e8 and 1 ≤ --concurrency ≤ 4096")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	o := loadgen.Options{URL: *url, Key: *key, Concurrency: *conc, Requests: *requests, Duration: *duration, Accounts: *accounts, Seed: *seed}
	if o.URL == "" {
		dir, err := os.MkdirTemp("", "telguard-bench-")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(dir)
		raw := make([]byte, 16)
		_, _ = rand.Read(raw)
		cfg := config.Default()
		cfg.DataDir = dir
		cfg.Policy = *policyFile
		cfg.API.Listen = "127.0.0.1:0"
		o.Key = "bench_" + hex.EncodeToString(raw)
		d, err := daemon.New(ctx, daemon.Options{Config: cfg, Getenv: func(k string) string {
			if k == "TELGUARD_API_KEY" {
				return o.Key
			}
			return ""
		}})
		if err != nil {
			return err
		}
		dctx, stopDaemon := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- d.Run(dctx) }()
		defer func() { stopDaemon(); <-done }()
		o.URL = "http://" + d.Addr()
		fmt.Fprintf(e.stderr, "bench: in-process daemon on %s\n", d.Addr())
	} else if o.Key == "" {
		k, err := apiKey("")
		if err != nil {
			return err
		}
		o.Key = k
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := loadgen.Run(ctx, o, e.stderr)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	fmt.Fprintln(e.stdout, rep.String())
	return nil
}
