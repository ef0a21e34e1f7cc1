package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"

	"github.com/telguard/telguard/examples"
	"github.com/telguard/telguard/internal/cdr/replay"
	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/store/sqlite"
)

const replayHelp = `
Usage: telguard replay [--policy FILE] [--tenant T] [--format F] [--list] [--json] FILE
       telguard replay [--policy FILE] [--tenant T] --stored [--data DIR] [--since D] [--list] [--json]

Runs a CDR file (Asterisk Master.csv, FreeSWITCH CSV CDR or a CSV with a
header row; see telguard cdr import --help) through a policy in event time:
a fresh engine whose clock moves to each call's own times, every attempt
decided, the answer and end of each allowed call observed when they
happened, a blocked call not continued. Nothing is stored and nothing is
sent anywhere. The same file and policy always give the same report.

The report is what a fraud team reads before switching a policy to enforce:
calls that would have been blocked (rules in enforce) and would-block hits
(rules in monitor), by rule; each account's first block and what got
through before and after it; minutes and money that would have been saved
and let through, priced per second by the policy's rate deck (the built-in
deck unless the tenant names one); the accounts and destination countries
blocked most. --list adds every blocked and would-block call, numbers
masked: honest-looking blocks are the ones to check.

CDR files are written as calls end, so records come out of start order by
up to a call's length; --window bounds how far (records further out are
counted as late and not replayed; sort the file by start to avoid them).
Zone-less timestamps are read in the tenant's timezone unless --timezone
says otherwise. Baselines are learned during the replay, from the calls
that end; --model scores calls with a model from telguard anomaly train.

--stored replays the tenant's call history from the database instead of a
file (what telguard cdr import stored, in start order), --since limiting it
to the calls that started within a duration before now.

Exit status: 0 when a report was printed; 1 when reading failed; 2 on bad
flags, a bad policy or a file of no known format.

Examples:
  telguard replay --policy examples/policy.yaml --tenant demo Master.csv
  telguard replay --policy my-policy.yaml --list Master.csv
  telguard replay --json --format freeswitch Master.csv > report.json
  telguard replay --policy new-policy.yaml --stored --since 30d
`

func (e *env) replay(args []string) error {
	const cmd = "replay"
	fs := e.flags(cmd, replayHelp)
	policyFile := fs.String("policy", "", "policy `file` (default: the built-in examples/policy.yaml)")
	tenant := fs.String("tenant", "", "policy tenant whose rules judge the calls (default: the policy's only tenant)")
	list := fs.Bool("list", false, "list every blocked and would-block call (numbers masked)")
	asJSON := fs.Bool("json", false, "print the report as JSON (always with the list)")
	window := fs.Duration("window", replay.DefaultWindow, "how far out of start order records may come")
	modelFile := fs.String("model", "", "anomaly model `file` (from telguard anomaly train) to score calls with, as the daemon does")
	stored := fs.Bool("stored", false, "replay the tenant's stored call history instead of a FILE")
	dataDir := fs.String("data", "", "with --stored: data `directory` holding telguard.db (default ./data, or the config's)")
	cfgFile := fs.String("config", "", "with --stored: configuration `file` whose data_dir / store.path to use")
	since := fs.String("since", "", "with --stored: only calls that started within this `duration` before now, like 30d")
	cf := addCDRFlags(fs, "IANA time `zone` of timestamps without one (default: the tenant's timezone)")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *stored && fs.NArg() != 0:
		return usagef("%s: --stored replays the database: drop FILE", cmd)
	case !*stored && fs.NArg() != 1:
		return usagef("%s: want exactly one FILE, or --stored (see telguard replay --help)", cmd)
	case !*stored && (*dataDir != "" || *cfgFile != "" || *since != ""):
		return usagef("%s: --data, --config and --since go with --stored", cmd)
	case *stored && len(setReaderFlags(fs)) > 0:
		return usagef("%s: %s: --stored reads calls already parsed and stored, not a file; drop them", cmd, strings.Join(setReaderFlags(fs), ", "))
	}
	if *window <= 0 {
		return usagef("%s: --window must be positive", cmd)
	}
	var (
		pol *policy.Policy
		err error
	)
	if *policyFile == "" {
		pol, err = policy.Parse("examples/policy.yaml", examples.Policy, nil)
	} else {
		pol, err = policy.Load(*policyFile)
	}
	if err != nil {
		return usageError{err.Error()}
	}
	if *tenant == "" {
		if len(pol.Tenants) != 1 {
			ids := make([]string, 0, len(pol.Tenants))
			for id := range pol.Tenants {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			return usagef("%s: the policy has %d tenants (%s): pick one with --tenant", cmd, len(ids), strings.Join(ids, ", "))
		}
		for id := range pol.Tenants {
			*tenant = id
		}
	}
	t := pol.Tenants[*tenant]
	if t == nil {
		return usagef("%s: tenant %q is not in the policy", cmd, *tenant)
	}
	o, err := cf.options(cmd, *tenant, t.Location)
	if err != nil {
		return err
	}
	var model *anomaly.Forest
	if *modelFile != "" {
		if model, err = readModel(*modelFile); err != nil {
			return usagef("%s: --model: %v", cmd, err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ro := replay.Options{Tenant: *tenant, Window: *window, Model: model}
	if *stored {
		return e.replayStored(ctx, pol, ro, *dataDir, *cfgFile, *since, *list, *asJSON)
	}
	file := fs.Arg(0)
	rd, closeFile, err := e.openCDR(cmd, file, o)
	if err != nil {
		return err
	}
	defer closeFile()
	rep, err := replay.Run(ctx, pol, &progressSource{src: rd, w: e.stderr, what: cmd + ": " + file}, ro)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", cmd, file, err)
	}
	st := rd.Stats()
	if *asJSON {
		out, err := json.MarshalIndent(struct {
			File  string `json:"file"`
			Input any    `json:"input"`
			*replay.Report
		}{file, st, rep}, "", "  ")
		if err != nil {
			return fmt.Errorf("encode report: %w", err)
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", out)
		return err
	}
	fmt.Fprintf(e.stdout, "%s (%s): %d lines, %d calls, %d bad lines skipped\n", file, st.Format, st.Lines, st.Records, st.Skipped)
	return rep.WriteText(e.stdout, *list)
}

// maxModelBytes bounds what is read of a model file: far above a trained
// forest (a few MB).
const maxModelBytes = 256 << 20

// readModel loads an anomaly model written by anomaly train.
func readModel(path string) (*anomaly.Forest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxModelBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxModelBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxModelBytes)
	}
	var m anomaly.Forest
	if err := m.UnmarshalBinary(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// errStopped ends a History walk the replay no longer reads.
var errStopped = errors.New("stopped")

// historySource reads stored history as a replay.Source.
type historySource struct {
	next  func() (event.CallRecord, bool)
	err   *error
	calls int64
}

func (h *historySource) Next() (event.CallRecord, error) {
	r, ok := h.next()
	if !ok {
		if *h.err != nil {
			return r, *h.err
		}
		return r, io.EOF
	}
	h.calls++
	return r, nil
}

// replayStored replays the tenant's call history from the database.
func (e *env) replayStored(ctx context.Context, pol *policy.Policy, ro replay.Options, dataDir, cfgFile, since string, list, asJSON bool) error {
	const cmd = "replay"
	var from time.Time
	if since != "" {
		d, err := policy.ParseDuration(since)
		if err != nil || d <= 0 {
			return usagef("%s: --since: want a duration like 30d or 12h, got %q", cmd, since)
		}
		from = time.Now().Add(-d)
	}
	cfg, err := loadStoreConfig(cfgFile, dataDir)
	if err != nil {
		return err
	}
	path := cfg.StorePath()
	if _, err := os.Stat(path); err != nil {
		return usagef("%s: --stored: no database at %s (import calls with telguard cdr import first)", cmd, path)
	}
	db, err := sqlite.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	defer db.Close()
	var herr error
	seq := func(yield func(event.CallRecord) bool) {
		herr = db.History(ctx, ro.Tenant, from, time.Time{}, func(r event.CallRecord) error {
			if !yield(r) {
				return errStopped
			}
			return nil
		})
		if errors.Is(herr, errStopped) {
			herr = nil
		}
	}
	next, stop := iter.Pull(seq)
	defer stop()
	src := &historySource{next: next, err: &herr}
	rep, err := replay.Run(ctx, pol, &progressSource{src: src, w: e.stderr, what: cmd + ": stored history"}, ro)
	if err != nil {
		return fmt.Errorf("%s: stored history: %w", cmd, err)
	}
	if asJSON {
		out, err := json.MarshalIndent(struct {
			Database string `json:"database"`
			Calls    int64  `json:"stored_calls"`
			*replay.Report
		}{path, src.calls, rep}, "", "  ")
		if err != nil {
			return fmt.Errorf("encode report: %w", err)
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", out)
		return err
	}
	fmt.Fprintf(e.stdout, "stored history of tenant %s in %s: %d calls\n", ro.Tenant, path, src.calls)
	return rep.WriteText(e.stdout, list)
}

// progressSource passes records through and says how far it got on
// stderr every progressEvery, for long imports and replays.
type progressSource struct {
	src  replay.Source
	w    io.Writer
	what string
	// detail, when set, adds to the count (cdr import: lines, new calls,
	// bad lines).
	detail func() string
	now    func() time.Time // nil: time.Now
	n      int64
	last   time.Time
}

func (p *progressSource) Next() (event.CallRecord, error) {
	r, err := p.src.Next()
	if err != nil {
		return r, err
	}
	p.n++
	if p.n%4096 == 0 {
		now := time.Now
		if p.now != nil {
			now = p.now
		}
		t := now()
		if p.last.IsZero() {
			p.last = t
		} else if t.Sub(p.last) >= progressEvery {
			p.last = t
			extra := ""
			if p.detail != nil {
				extra = ", " + p.detail()
			}
			fmt.Fprintf(p.w, "%s: %d calls read%s\n", p.what, p.n, extra)
		}
	}
	return r, nil
}
