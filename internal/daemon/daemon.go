// Package daemon is the one place that wires telguard's components together
// and runs them: store, batching writer, engine, decision API, policy
// reloads and housekeeping. Components implement Run(ctx) and are
// supervised with errgroup; shutdown is by context.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/telguard/telguard/examples"
	"github.com/telguard/telguard/internal/clock"
	"github.com/telguard/telguard/internal/config"
	"github.com/telguard/telguard/internal/decisionapi"
	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/queue"
	"github.com/telguard/telguard/internal/sipedge"
	"github.com/telguard/telguard/internal/sipedge/prefilter"
	"github.com/telguard/telguard/internal/store"
	"github.com/telguard/telguard/internal/store/sqlite"
	"github.com/telguard/telguard/internal/webhook"
	"github.com/telguard/telguard/internal/webhook/deliver"
)

// DefaultPolicyPath is where serve looks for a policy when the
// configuration names none.
const DefaultPolicyPath = "examples/policy.yaml"

// writerQueue is how many state changes may wait for the store. Past a
// quarter of it the decisions log is shed (and counted) so that a slow disk
// never slows decisions; durable state is never shed.
const writerQueue = 65536

// gcPercent is the garbage collector's target unless GOGC is set. At 400
// the collector runs a fifth as often as by default; on two cores under
// load that is about 10% more decisions per second for a heap that stays
// in the tens of megabytes.
const gcPercent = 400

// Options are what a daemon needs besides its configuration.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// Stdout receives the one-time message with a generated API key.
	Stdout io.Writer
	Getenv func(string) string
	Clock  clock.Clock
	// HandleSignals makes Run reload the policy on SIGHUP.
	HandleSignals bool
	// TrainCommand, when set, is the command line (program and leading
	// arguments) of `telguard anomaly train`: the periodic retraining
	// then runs in that child process, at the lowest CPU priority, so its
	// CPU and garbage never slow decisions down. Empty: in process.
	TrainCommand []string
}

// Daemon is a wired telguard, ready to Run.
type Daemon struct {
	cfg        *config.Config
	log        *slog.Logger
	clock      clock.Clock
	db         *sqlite.DB
	writer     *store.Writer
	engine     *engine.Engine
	api        *decisionapi.Server
	sip        *sipedge.Server    // nil unless configured
	filter     *prefilter.Filter  // the SIP edge's packet filter
	floodBans  chan prefilter.Ban // the filter's own bans, for the decisions log
	queue      *queue.Queue       // nil unless webhooks are configured
	hooks      *webhook.Server
	worker     *webhook.Worker
	deliverer  *deliver.Deliverer // nil without destinations
	registry   *prometheus.Registry
	policyPath string   // "" when running the built-in example
	trainCmd   []string // Options.TrainCommand
	signals    bool
	reloadMu   sync.Mutex
	model      modelState // the anomaly model file in force; see anomaly.go
}

// writerSink hands the engine's durable changes to the store's batching
// writer. A ban that ends is also written to the decisions log, so every
// ban and unban is on record with its reason.
type writerSink struct{ w *store.Writer }

func (s writerSink) Emit(changes ...event.Change) {
	s.w.Submit(changes...)
	for _, c := range changes {
		if c.Op == event.OpDeleteBan && c.Ban != nil {
			s.w.Submit(event.Change{Op: event.OpDecision, Decision: unbanRecord(c.Ban)})
		}
	}
}

// unbanRecord is the decisions-log entry of a ban that expired.
func unbanRecord(b *event.IPBan) *event.Decision {
	reason := "ban expired"
	if b.Rule != "" {
		reason = "ban by " + b.Rule + " expired"
	}
	return &event.Decision{
		Time: b.Until, Tenant: b.Tenant, SourceIP: b.Subject, Verdict: event.Allow,
		Reasons: []event.Reason{{Rule: "ban.lifted", Reason: reason, Mode: event.Enforce, Verdict: event.Allow}},
	}
}

// New opens the store, loads the policy, restores the engine's durable
// state and binds the API port. Nothing runs until Run.
func New(ctx context.Context, o Options) (*Daemon, error) {
	cfg := o.Config
	if cfg == nil {
		cfg = config.Default()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Getenv("GOGC") == "" {
		// The live heap is small (counters, calls in flight) and memory
		// is cheap next to CPU on the decision path: collect less often
		// than Go's default. GOGC in the environment still wins.
		debug.SetGCPercent(gcPercent)
	}
	d := &Daemon{cfg: cfg, log: o.Logger, clock: o.Clock, signals: o.HandleSignals, registry: prometheus.NewRegistry(),
		trainCmd: o.TrainCommand}

	pol, err := d.loadPolicy()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	keys, err := d.apiKeys(pol, o)
	if err != nil {
		return nil, err
	}
	if d.db, err = sqlite.Open(cfg.StorePath()); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			d.db.Close()
		}
	}()
	d.writer = store.NewWriter(d.db, d.log, store.WriterOptions{
		FlushInterval: cfg.Store.FlushInterval,
		QueueSize:     writerQueue,
		ShedLogAbove:  writerQueue / 4,
	})
	d.engine = engine.New(pol, engine.Options{Clock: d.clock, Sink: writerSink{d.writer}, Logger: d.log, History: *d.cfg.Store.RecordHistory})
	now := d.clock.Now()
	for id := range pol.Tenants {
		st, err := d.db.Load(ctx, id, now)
		if err != nil {
			return nil, fmt.Errorf("restore tenant %s: %w", id, err)
		}
		d.engine.Restore(id, st)
		if n := len(st.Calls) + len(st.Bans) + len(st.Suspensions); n > 0 {
			d.log.Info("state restored", "tenant", id, "calls_in_flight", len(st.Calls), "bans", len(st.Bans), "suspensions", len(st.Suspensions), "quota_rows", len(st.Quotas))
		}
	}
	if err := d.newAnomaly(ctx); err != nil {
		return nil, err
	}
	d.registry.MustRegister(newEngineCollector(d.engine, d.writer, d.clock))
	// Heap and RSS next to the state tables, so memory can be attributed.
	d.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.api, err = decisionapi.New(decisionapi.Config{
		Addr:         cfg.API.Listen,
		Keys:         keys,
		MaxBodyBytes: cfg.API.MaxBodyBytes,
		ReadTimeout:  cfg.API.ReadTimeout,
		WriteTimeout: cfg.API.WriteTimeout,
		IdleTimeout:  cfg.API.IdleTimeout,
		Clock:        d.clock.Now,
		AnyEventTime: cfg.API.AnyEventTime,
	}, d.engine, d.db, d, d.ready, d.registry, d.log)
	if err != nil {
		return nil, err
	}
	if err := d.api.Listen(); err != nil {
		return nil, err
	}
	if cfg.SIP.Enabled() {
		if err := d.newSIPEdge(); err != nil {
			return nil, err
		}
	}
	if cfg.Webhooks.Enabled() {
		if err := d.newWebhooks(ctx, o.Getenv); err != nil {
			return nil, err
		}
	}
	ok = true
	return d, nil
}

// secretFile returns the secret kept in DATA/name, creating it (n random
// bytes, mode 0600) on first use, so it survives restarts.
func (d *Daemon) secretFile(name string, n int) ([]byte, error) {
	file := filepath.Join(d.cfg.DataDir, name)
	if b, err := os.ReadFile(file); err == nil && len(b) == n {
		return b, nil
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate %s: %w", name, err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return nil, fmt.Errorf("save %s: %w", name, err)
	}
	return b, nil
}

// Addr returns the decision API's bound address.
func (d *Daemon) Addr() string { return d.api.Addr() }

// Engine returns the running engine (for in-process tools such as bench).
func (d *Daemon) Engine() *engine.Engine { return d.engine }

// Run serves until ctx is done, then stops the API first (letting requests
// in flight finish), and only then drains the writer so every decision the
// API answered is on disk before Run returns.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.db.Close()
	wctx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriter()
	werr := make(chan error, 1)
	go func() { werr <- d.writer.Run(wctx) }()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.api.Run(gctx) })
	g.Go(func() error { return d.housekeep(gctx) })
	d.runSIP(gctx, g)
	defer d.runWebhooks(gctx, g)() // closes the queue after the ingress and the workers have stopped
	d.runAnomaly(gctx, g)
	d.runRetrain(gctx, g)
	if d.signals {
		g.Go(func() error { return d.onSIGHUP(gctx) })
	}
	err := g.Wait()
	stopWriter()
	if e := <-werr; e != nil && !errors.Is(e, context.Canceled) && err == nil {
		err = e
	}
	st := d.writer.Stats()
	d.log.Info("telguard stopped", "changes_written", st.Changes, "dropped", st.Dropped)
	return err
}

// housekeep expires calls past their maximum duration, forgets idle
// counters and prunes old decisions.
func (d *Daemon) housekeep(ctx context.Context) error {
	tick := time.NewTicker(d.cfg.Engine.SweepInterval)
	defer tick.Stop()
	lastPrune := time.Time{}
	var lastShed int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := d.clock.Now()
		d.engine.Sweep(now)
		if shed := d.writer.Stats().Shed; shed > lastShed {
			d.log.Warn("the store cannot keep up: decision-log and call-history records were shed (state is kept)", "shed", shed-lastShed)
			lastShed = shed
		}
		if now.Sub(lastPrune) >= time.Hour {
			lastPrune = now
			before := now.Add(-d.cfg.Store.RetainDecisions)
			// Quota rows older than a week are history; today's must stay.
			day := now.AddDate(0, 0, -7).Format(time.DateOnly)
			if n, err := d.db.Prune(ctx, before, day); err != nil {
				d.log.Error("prune store", "err", err)
			} else if n > 0 {
				d.log.Info("store pruned", "rows", n)
			}
			if n, err := d.db.PruneHistory(ctx, now.Add(-d.cfg.Store.RetainHistory)); err != nil {
				d.log.Error("prune call history", "err", err)
			} else if n > 0 {
				d.log.Info("call history pruned", "calls", n)
			}
		}
	}
}

func (d *Daemon) onSIGHUP(ctx context.Context) error {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
			if err := d.Reload(ctx); err == nil {
				d.log.Info("policy reloaded on SIGHUP")
			}
		}
	}
}

// Reload re-reads the policy file. A policy that does not compile is
// refused with its file:line, and the running one stays in force.
func (d *Daemon) Reload(_ context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	pol, err := d.loadPolicy()
	if err != nil {
		d.log.Error("policy reload refused; the previous policy stays in force", "err", err)
		return err
	}
	d.engine.SetPolicy(pol)
	d.log.Info("policy loaded", "file", pol.File, "tenants", len(pol.Tenants))
	return nil
}

func (d *Daemon) loadPolicy() (*policy.Policy, error) {
	path := d.cfg.Policy
	if path == "" {
		if _, err := os.Stat(DefaultPolicyPath); err == nil {
			path = DefaultPolicyPath
		} else {
			return policy.Parse("built-in examples/policy.yaml", examples.Policy, nil)
		}
	}
	d.policyPath = path
	return policy.Load(path)
}

func (d *Daemon) ready(ctx context.Context) error {
	if _, _, err := d.db.Decisions(ctx, "-readyz-", store.DecisionQuery{Limit: 1}); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if st := d.writer.Stats(); st.Queued > writerQueue*9/10 {
		return errors.New("store writer queue is nearly full")
	}
	return nil
}

// apiKeys returns the API keys: the configured ones, or one key for the
// default tenant from $TELGUARD_API_KEY, or one generated once, kept in the
// data directory and printed once.
func (d *Daemon) apiKeys(pol *policy.Policy, o Options) (map[string]string, error) {
	keys, err := d.cfg.ResolveKeys(o.Getenv)
	if err != nil {
		return nil, err
	}
	if len(keys) > 0 {
		for _, t := range keys {
			if pol.Tenants[t] == nil {
				d.log.Warn("an API key names a tenant the policy does not have", "tenant", t)
			}
		}
		return keys, nil
	}
	tenant := d.cfg.API.DefaultTenant
	if k := o.Getenv("TELGUARD_API_KEY"); k != "" {
		if len(k) < config.MinKeyLength {
			return nil, fmt.Errorf("%w: TELGUARD_API_KEY is shorter than %d characters", config.ErrInvalid, config.MinKeyLength)
		}
		return map[string]string{k: tenant}, nil
	}
	file := filepath.Join(d.cfg.DataDir, "api-key")
	if b, err := os.ReadFile(file); err == nil {
		if k := strings.TrimSpace(string(b)); len(k) >= config.MinKeyLength {
			d.log.Info("using the API key kept in the data directory", "file", file, "tenant", tenant)
			return map[string]string{k: tenant}, nil
		}
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate api key: %w", err)
	}
	k := "tg_" + hex.EncodeToString(raw)
	if err := os.WriteFile(file, []byte(k+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("save generated api key: %w", err)
	}
	fmt.Fprintf(o.Stdout, "telguard: TELGUARD_API_KEY is not set; generated an API key for tenant %q (kept in %s):\n\n    %s\n\n", tenant, file, k)
	return map[string]string{k: tenant}, nil
}
