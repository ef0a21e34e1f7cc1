package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/telguard/telguard/examples"
	"github.com/telguard/telguard/internal/daemon"
	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/store/sqlite"
)

const anomalyHelp = `
Usage: telguard anomaly train [--data DIR] [--config FILE] [--policy FILE] [--tenant T]
                              [--from stored|FILE] [--since D] [--out MODEL] [--seed N]
                              [--trees N] [--json] [CDR flags]

Trains the anomaly model: an isolation forest over each account's recent
calling (calls a minute, distinct destinations, new-country flag,
high-risk share, cost rate, short-call share, night share and deviation
from the account's own baseline, over 10-minute windows). History is
replayed account by account in start order, and at every call the window
is measured exactly as the engine measures it when it scores a decision;
destinations are read with the policy's dial rules, high-risk list and
rate deck.

--from stored (the default) reads the call history in DIR/telguard.db (what
"telguard cdr import" stored) for every tenant of the policy, or --tenant;
--from FILE reads a CDR file instead (same formats and flags as cdr
import; the file is read whole and sorted by start, up to --max-calls).

The model is written to --out (default DIR/anomaly.model), atomically. A
running daemon with the same data directory loads it within two seconds
(and at once on SIGHUP); rule anomaly.score in the policy decides what a
high score gets (docs/policy.md). The daemon also retrains the model by
itself, from the stored history, every anomaly.retrain_every (24h by
default; docs/config.md): a model written here is replaced at the next
retrain unless retrain_every is 0. Train on history you trust: the forest
learns what ordinary looks like, so fraud in the history looks ordinary.
The same history, policy and seed give the same model; --seed and --trees
default to the configuration's anomaly.seed and anomaly.trees (1 and 100),
which the daemon's own retraining uses.

Exit status: 0 when a model was written; 1 when reading or writing failed
or the history had no usable calls; 2 on bad flags or a bad policy.

Examples:
  telguard anomaly train --data /var/lib/telguard
  telguard anomaly train --since 90d --seed 7
  telguard anomaly train --from Master.csv --tenant demo --out model.bin
`

// maxTrainCalls bounds the calls read from a CDR file (they are held in
// memory to be sorted).
const maxTrainCalls = 2_000_000

// trainSummary is what anomaly train reports.
type trainSummary struct {
	Source  string   `json:"source"`
	Tenants []string `json:"tenants"`
	Calls   int      `json:"calls"`
	Samples int      `json:"samples"`
	Skipped int      `json:"skipped"`
	Trees   int      `json:"trees"`
	Seed    int64    `json:"seed"`
	Out     string   `json:"out"`
	Bytes   int      `json:"bytes"`
}

func (e *env) anomaly(args []string) error {
	if len(args) == 0 || args[0] != "train" {
		fmt.Fprint(e.stdout, strings.TrimLeft(anomalyHelp, "\n"))
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			return nil
		}
		return usagef("anomaly: want the subcommand train")
	}
	const cmd = "anomaly train"
	fs := e.flags(cmd, anomalyHelp)
	dataDir := fs.String("data", "", "data `directory` holding telguard.db and the model (default ./data, or the config's)")
	cfgFile := fs.String("config", "", "configuration `file` whose data_dir, store.path and policy to use")
	storeFile := fs.String("store", "", "database `file` holding the call history (default DIR/telguard.db, or the config's store.path)")
	policyFile := fs.String("policy", "", "policy `file` (default: the config's, else examples/policy.yaml)")
	tenant := fs.String("tenant", "", "train on this tenant's calls only (required with a CDR file when the policy has several)")
	from := fs.String("from", "stored", "`source`: stored (the call history in the database) or a CDR FILE")
	since := fs.String("since", "", "only calls that started within this `duration` before now, like 90d (stored history only; default all of it, where the daemon's retraining reads anomaly.train_window)")
	out := fs.String("out", "", "model `file` to write (default DIR/"+daemon.ModelFile+")")
	seed := fs.Int64("seed", 1, "seed of the forest; the same history and seed give the same model (default: the config's anomaly.seed)")
	trees := fs.Int("trees", 100, "trees in the forest, 10 to 1000 (default: the config's anomaly.trees)")
	maxCalls := fs.Int("max-calls", maxTrainCalls, "most calls read from a CDR file")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	cf := addCDRFlags(fs, "IANA time `zone` of CDR timestamps without one (default: the tenant's timezone)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q (the CDR file goes in --from)", cmd, fs.Arg(0))
	}
	var window time.Duration
	if *since != "" {
		var err error
		if window, err = policy.ParseDuration(*since); err != nil || window <= 0 {
			return usagef("%s: --since %q: want a duration like 90d or 720h", cmd, *since)
		}
	}
	cfg, err := loadStoreConfig(*cfgFile, *dataDir)
	if err != nil {
		return err
	}
	if *storeFile != "" {
		cfg.Store.Path = *storeFile
	}
	// Unless given, trees and seed are the ones the daemon retrains with.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["trees"] {
		*trees = cfg.Anomaly.Trees
	}
	if !set["seed"] {
		*seed = cfg.Anomaly.Seed
	}
	if *trees < 10 || *trees > 1000 {
		return usagef("%s: --trees must be between 10 and 1000", cmd)
	}
	pol, err := trainPolicy(*policyFile, cfg.Policy)
	if err != nil {
		return usageError{fmt.Sprintf("%s: %v", cmd, err)}
	}
	var tenants []string
	for id := range pol.Tenants {
		if *tenant == "" || id == *tenant {
			tenants = append(tenants, id)
		}
	}
	slices.Sort(tenants)
	if len(tenants) == 0 {
		return usagef("%s: tenant %q is not in the policy", cmd, *tenant)
	}
	modelFile := cmp.Or(*out, filepath.Join(cfg.DataDir, daemon.ModelFile))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opts := engine.TrainOptions{Seed: *seed, Trees: *trees}
	sum := trainSummary{Source: *from, Tenants: tenants, Trees: *trees, Seed: *seed, Out: modelFile}
	var res daemon.Training
	if *from == "stored" {
		db, err := sqlite.Open(cfg.StorePath())
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		defer db.Close()
		var lo time.Time
		if window > 0 {
			lo = time.Now().Add(-window)
		}
		sum.Source = "stored history in " + cfg.StorePath()
		// The same code as the daemon's periodic retraining.
		res, err = daemon.TrainStored(ctx, db, pol, tenants, lo, opts)
		if err != nil && !errors.Is(err, anomaly.ErrNoSamples) {
			return fmt.Errorf("%s: %w", cmd, err)
		}
	} else {
		if len(tenants) != 1 {
			return usagef("%s: the policy has %d tenants (%s): say whose calls the file holds with --tenant", cmd, len(tenants), strings.Join(tenants, ", "))
		}
		if window > 0 {
			return usagef("%s: --since is for stored history", cmd)
		}
		o, err := cf.options(cmd, tenants[0], pol.Tenants[tenants[0]].Location)
		if err != nil {
			return err
		}
		rd, closeFile, err := e.openCDR(cmd, *from, o)
		if err != nil {
			return err
		}
		defer closeFile()
		var recs []event.CallRecord
		for {
			rec, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %s: %w", cmd, *from, err)
			}
			if len(recs) >= *maxCalls {
				return fmt.Errorf("%s: %s holds more than %d calls; raise --max-calls or import it and train from stored history", cmd, *from, *maxCalls)
			}
			recs = append(recs, rec)
		}
		// CDR files are written as calls end; the trainer wants starts.
		slices.SortStableFunc(recs, func(a, b event.CallRecord) int { return a.Start.Compare(b.Start) })
		res, err = daemon.Train(ctx, pol, opts, func(add func(event.CallRecord) error) error {
			for _, r := range recs {
				if err := add(r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, anomaly.ErrNoSamples) {
			return fmt.Errorf("%s: %w", cmd, err)
		}
	}
	sum.Calls, sum.Samples, sum.Skipped = res.Calls, res.Windows, res.Skipped
	if res.Model == nil {
		if *asJSON {
			// The counts say how little there was; "bytes": 0, no model.
			sum.Out = ""
			if b, err := json.MarshalIndent(sum, "", "  "); err == nil {
				fmt.Fprintf(e.stdout, "%s\n", b)
			}
		}
		return fmt.Errorf("%s: %d calls read, %d usable: %w", cmd, sum.Calls, sum.Samples, anomaly.ErrNoSamples)
	}
	n, err := daemon.WriteModel(modelFile, res.Model)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	sum.Bytes = n
	if *asJSON {
		b, err := json.MarshalIndent(sum, "", "  ")
		if err != nil {
			return fmt.Errorf("encode summary: %w", err)
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "trained the anomaly model on %d calls of %s (%s): %d windows measured, %d calls skipped (inbound or unreadable), %d trees, seed %d\nwrote %s (%d bytes)\n",
		sum.Calls, strings.Join(tenants, ", "), sum.Source, sum.Samples, sum.Skipped, sum.Trees, sum.Seed, modelFile, sum.Bytes)
	return err
}

// trainPolicy loads the policy the daemon would run: flag, config, the
// default path, or the built-in example.
func trainPolicy(flagFile, cfgFile string) (*policy.Policy, error) {
	file := cmp.Or(flagFile, cfgFile)
	if file == "" {
		if _, err := os.Stat(daemon.DefaultPolicyPath); err != nil {
			return policy.Parse("built-in examples/policy.yaml", examples.Policy, nil)
		}
		file = daemon.DefaultPolicyPath
	}
	return policy.Load(file)
}
