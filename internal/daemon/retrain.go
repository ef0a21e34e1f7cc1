package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/anomaly"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

// HistoryReader reads a tenant's finished calls that started in [from,
// to) in start order, as store.CallHistory does; a zero bound is open.
type HistoryReader interface {
	History(ctx context.Context, tenant string, from, to time.Time, fn func(event.CallRecord) error) error
}

// Training is what one training run read and the model it produced.
type Training struct {
	Model *anomaly.Forest // nil when training failed
	// Calls is how many records were read; Windows how many windows the
	// trainer measured (one per usable outbound call); Skipped how many
	// records it could not use (inbound, unreadable destination).
	Calls, Windows, Skipped int
}

// Train replays the records feed passes to add into a trainer reading
// them under pol, and trains the forest. feed must give each account's
// records in the order they started. Cancelling ctx stops it at the next
// record. On error the counts say how far it got.
func Train(ctx context.Context, pol *policy.Policy, o engine.TrainOptions, feed func(add func(event.CallRecord) error) error) (Training, error) {
	tr := engine.NewTrainer(pol, o)
	var res Training
	err := feed(func(r event.CallRecord) error {
		res.Calls++
		tr.Add(r)
		return ctx.Err()
	})
	res.Windows, res.Skipped = tr.Samples()
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	m, err := tr.Forest()
	if err != nil {
		return res, err
	}
	res.Model = m
	return res, nil
}

// TrainStored trains on the stored call history of tenants, calls that
// started at or after since (all of them when since is zero). It is what
// `telguard anomaly train --from stored` and the daemon's retraining run.
// It reads through h only and holds no engine lock, so decisions never
// wait for it.
func TrainStored(ctx context.Context, h HistoryReader, pol *policy.Policy, tenants []string, since time.Time, o engine.TrainOptions) (Training, error) {
	return Train(ctx, pol, o, func(add func(event.CallRecord) error) error {
		for _, id := range tenants {
			if err := h.History(ctx, id, since, time.Time{}, add); err != nil {
				return fmt.Errorf("read history of %s: %w", id, err)
			}
		}
		return nil
	})
}

// WriteModel encodes m and writes it to file atomically (see writeAtomic)
// while holding the model's lock file, which the daemon's retraining takes
// too; it returns the encoded size.
func WriteModel(file string, m *anomaly.Forest) (int, error) {
	return writeModelIf(file, m, nil, nil)
}

// writeModelIf is WriteModel that, when still is not nil, first asks it
// (under the lock) whether the file is still the one training started
// from, and writes nothing (returning errModelChanged) when it is not;
// then done (when not nil) runs, still under the lock, told whether the
// file was written.
func writeModelIf(file string, m *anomaly.Forest, still func() bool, done func(written bool)) (int, error) {
	data, err := m.MarshalBinary()
	if err != nil {
		return 0, fmt.Errorf("encode model: %w", err)
	}
	unlock, err := lockModel(file)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if still != nil && !still() {
		return 0, errModelChanged
	}
	err = writeAtomic(file, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if done != nil {
		done(err == nil)
	}
	if err != nil {
		return 0, err
	}
	return len(data), nil
}

// errModelChanged says the model file changed while the daemon trained.
var errModelChanged = errors.New("the model file changed while training")

// lockModel takes an exclusive lock on file+".lock", beside the model, so
// that `telguard anomaly train` and a retraining daemon never decide and
// write at the same time. The lock file stays; it holds nothing.
func lockModel(file string) (unlock func(), err error) {
	path := file + ".lock"
	// Read-only and world-readable: flock needs no write access, so a
	// lock file created by root running the CLI does not lock out a
	// daemon running as another user.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock model: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock model %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// retrainDelay is how long to wait before the next retrain: every after
// the latest of the last attempt and the model file's time (a model
// written by hand counts as a retrain), at once when there is neither,
// and never more than every from now.
func retrainDelay(now, lastAttempt, modelTime time.Time, every time.Duration) time.Duration {
	last := lastAttempt
	if modelTime.After(last) {
		last = modelTime
	}
	if last.IsZero() {
		return 0
	}
	return min(max(last.Add(every).Sub(now), 0), every)
}

// retrainResult is what one retrain did, for metrics.
type retrainResult string

const (
	retrained      retrainResult = "trained"
	retrainKept    retrainResult = "too_little_history"
	retrainFailed  retrainResult = "failed"
	retrainChanged retrainResult = "superseded"
	retrainStopped retrainResult = "cancelled"
)

// runRetrain retrains the anomaly model from the call history in the
// background: at start when the model file is missing or older than
// anomaly.retrain_every, then every retrain_every. Shutdown cancels a
// retrain in progress; the model in force stays.
func (d *Daemon) runRetrain(ctx context.Context, g *errgroup.Group) {
	every := d.cfg.Anomaly.Every()
	if every == 0 {
		d.log.Info("anomaly model retraining is off (anomaly.retrain_every: 0)")
		return
	}
	st := &retrainStats{}
	if err := d.registry.Register(newRetrainCollector(st)); err != nil {
		d.log.Warn("anomaly retrain metrics not registered", "err", err)
	}
	g.Go(func() error {
		var last time.Time
		next := func() time.Duration {
			var mod time.Time
			if fi, err := os.Stat(d.modelFile()); err == nil {
				mod = fi.ModTime()
			}
			return retrainDelay(time.Now(), last, mod, every)
		}
		wait := next()
		d.log.Info("anomaly model retraining on", "every", every, "train_window", d.cfg.Anomaly.TrainWindow, "first_in", wait.Round(time.Second))
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
			st.record(d.retrain(ctx, d.db))
			// Counted from the end, so retrains never run back to back
			// even when one takes longer than retrain_every.
			last = time.Now()
			timer.Reset(next())
		}
	})
}

// retrainOutcome is one retrain's result and what it read.
type retrainOutcome struct {
	result retrainResult
	took   time.Duration
	tr     Training
}

// retrain trains a model on the stored history of every tenant of the
// policy in force, over anomaly.train_window, writes it to the model file
// and puts it in force. With fewer than anomaly.min_windows windows the
// model in force is kept; when the model file changed while it trained
// (`telguard anomaly train`), that newer model is kept and this one
// dropped.
func (d *Daemon) retrain(ctx context.Context, h HistoryReader) retrainOutcome {
	start := time.Now()
	ac := d.cfg.Anomaly
	pol := d.engine.Policy()
	tenants := slices.Sorted(maps.Keys(pol.Tenants))
	before := d.modelOnDisk()
	since := d.clock.Now().Add(-ac.TrainWindow)
	var (
		tr  Training
		err error
	)
	if len(d.trainCmd) > 0 {
		tr, err = d.trainInChild(ctx)
	} else {
		tr, err = TrainStored(ctx, h, pol, tenants, since, engine.TrainOptions{Seed: ac.Seed, Trees: ac.Trees})
	}
	out := retrainOutcome{tr: tr, took: time.Since(start)}
	switch {
	case ctx.Err() != nil:
		d.log.Info("anomaly retrain cancelled; the model in force stays", "calls_read", tr.Calls)
		out.result = retrainStopped
		return out
	case errors.Is(err, anomaly.ErrNoSamples) || (err == nil && tr.Windows < ac.MinWindows):
		d.log.Info("anomaly model not retrained: too little history; the model in force (if any) stays",
			"calls", tr.Calls, "windows", tr.Windows, "min_windows", ac.MinWindows, "train_window", ac.TrainWindow)
		out.result = retrainKept
		return out
	case err != nil:
		d.log.Error("anomaly retrain failed; the model in force stays", "err", err)
		out.result = retrainFailed
		return out
	}

	// Write and put in force under the model file's lock (taken first,
	// so a `telguard anomaly train` holding it never blocks the file poll)
	// and then the model state's lock, so the poll, which takes that one
	// too, sees this version as already loaded.
	n, err := writeModelIf(d.modelFile(), tr.Model, func() bool {
		d.model.mu.Lock()
		if d.modelOnDisk() != before {
			d.model.mu.Unlock()
			return false
		}
		return true
	}, func(written bool) {
		defer d.model.mu.Unlock()
		if !written {
			return
		}
		// The stamp is taken before the file lock is released: a model
		// written by hand just after is then seen as new by the poll.
		d.model.stamp = d.modelOnDisk()
		if err := d.engine.SetModel(tr.Model); err != nil {
			// Cannot happen with a model the engine's own trainer built.
			d.log.Error("retrained anomaly model refused", "err", err)
		}
	})
	switch {
	case errors.Is(err, errModelChanged):
		d.log.Info("anomaly retrain dropped: the model file was written while training (telguard anomaly train?); that model is loaded instead", "file", d.modelFile())
		out.result = retrainChanged
		return out
	case err != nil:
		d.log.Error("anomaly retrain failed; the model in force stays", "err", err)
		out.result = retrainFailed
		return out
	}
	out.took = time.Since(start)
	out.result = retrained
	d.log.Info("anomaly model retrained", "calls", tr.Calls, "windows", tr.Windows, "skipped", tr.Skipped,
		"tenants", len(tenants), "duration", out.took.Round(time.Millisecond), "bytes", n, "file", d.modelFile(),
		"in", map[bool]string{true: "child process", false: "daemon"}[len(d.trainCmd) > 0])
	return out
}
