package cli

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/telguard/telguard/internal/config"
	"github.com/telguard/telguard/internal/daemon"
)

const serveHelp = `
Usage: telguard serve [--config FILE] [--data DIR] [--policy FILE]

Runs the daemon. With no flags it starts on built-in defaults: the decision
API on 127.0.0.1:8080, data (SQLite) under ./data, and the policy in
examples/policy.yaml. API keys come from the config file; without any, the
key in $TELGUARD_API_KEY is accepted for tenant "demo", and when that is
unset a key is generated once, kept in DATA/api-key and printed.

The inline SIP edge (a guard in front of one PBX) starts when the config
file has a sip: section with listen and upstream; see docs/sip.md.

Signals: SIGHUP reloads the policy (a bad policy is refused and the old one
stays); SIGINT/SIGTERM shut down after requests in flight finish and every
decision is written.
`

func (e *env) serve(args []string) error {
	fs := e.flags("serve", serveHelp)
	cfgFile := fs.String("config", "", "configuration `file` (YAML); unknown keys are an error")
	dataDir := fs.String("data", "", "data `directory` (overrides the config)")
	policyFile := fs.String("policy", "", "policy `file` (overrides the config)")
	listen := fs.String("listen", "", "decision API `address` (overrides the config)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	cfg := config.Default()
	if *cfgFile != "" {
		var err error
		if cfg, err = config.Load(*cfgFile); err != nil {
			return usageError{err.Error()}
		}
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *policyFile != "" {
		cfg.Policy = *policyFile
	}
	if *listen != "" {
		cfg.API.Listen = *listen
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err.Error()}
	}
	logger := newLogger(cfg, e)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var train []string
	if exe, err := os.Executable(); err == nil {
		// Retraining runs as this binary's `anomaly train`, in a child
		// process at low priority (see daemon.Options.TrainCommand).
		train = []string{exe, "anomaly", "train"}
	}
	d, err := daemon.New(ctx, daemon.Options{Config: cfg, Logger: logger, Stdout: e.stdout, HandleSignals: true, TrainCommand: train})
	if err != nil {
		return err
	}
	logger.Info("telguard started", "version", Version, "api", d.Addr(), "sip", d.SIPAddrs(), "data", cfg.DataDir)
	return d.Run(ctx)
}

func newLogger(cfg *config.Config, e *env) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(e.stderr, opts))
}
