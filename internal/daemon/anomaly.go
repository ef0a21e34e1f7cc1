package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/telguard/telguard/internal/engine/anomaly"
)

// The behaviour layer's files in the data directory.
const (
	// BaselinesFile holds the engine's learned baselines (account
	// baselines and source networks), snapshotted every SnapshotEvery and
	// at shutdown, and loaded at start.
	BaselinesFile = "baselines.snap"
	// ModelFile is the anomaly model `telguard anomaly train` and the
	// daemon's own retraining write, and the daemon loads at start and
	// whenever the file changes.
	ModelFile = "anomaly.model"
)

// SnapshotEvery is how often the baselines are written to disk: what a
// crash can lose. A clean shutdown writes them too.
const SnapshotEvery = time.Minute

// modelPoll is how often the model file is checked for a new version.
const modelPoll = 2 * time.Second

// maxStateFile bounds what is read of the baselines or the model: far
// above a large install (about 5 KB an account, a few MB a model), and a
// damaged file cannot make the daemon read without end.
const maxStateFile = 1 << 30

// newAnomaly loads the learned baselines and the anomaly model, once the
// engine exists and before the first decision. A damaged baselines file is
// moved aside (kept for inspection, never overwritten) and learning starts
// over; a damaged model is refused and nothing is scored. Neither stops
// the daemon: both are extra evidence on top of the policy's rules.
func (d *Daemon) newAnomaly(_ context.Context) error {
	file := filepath.Join(d.cfg.DataDir, BaselinesFile)
	data, err := readStateFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("load baselines: %w", err)
	default:
		if err := d.engine.ImportBaselines(data); err != nil {
			aside := file + ".corrupt"
			d.log.Error("baselines file unreadable; moved aside, learning starts over", "file", file, "moved_to", aside, "err", err)
			if rerr := os.Rename(file, aside); rerr != nil {
				return fmt.Errorf("move damaged baselines aside: %w", rerr)
			}
		} else {
			d.log.Info("baselines loaded", "file", file, "bytes", len(data))
		}
	}
	d.loadModel()
	return nil
}

func readStateFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxStateFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", file, maxStateFile)
	}
	return b, nil
}

// modelStamp identifies a version of the model file.
type modelStamp struct {
	size int64
	mod  time.Time
}

// modelState is the version of the model file in force. Its lock orders
// the file poll and the daemon's own retraining, so that a model the
// daemon wrote and put in force is not read back a second time.
type modelState struct {
	mu    sync.Mutex
	stamp modelStamp // zero: no model loaded from the file
}

// modelFile is the model's path in the data directory.
func (d *Daemon) modelFile() string { return filepath.Join(d.cfg.DataDir, ModelFile) }

// modelOnDisk returns the stamp of the model file; zero when there is none.
func (d *Daemon) modelOnDisk() modelStamp {
	st, err := os.Stat(d.modelFile())
	if err != nil {
		return modelStamp{}
	}
	return modelStamp{st.Size(), st.ModTime()}
}

// loadModel (re)loads the model file when it is not the version in
// force. A missing file leaves no model; a damaged one keeps the model in
// force.
func (d *Daemon) loadModel() {
	d.model.mu.Lock()
	defer d.model.mu.Unlock()
	file := d.modelFile()
	st, err := os.Stat(file)
	if err != nil {
		if d.model.stamp != (modelStamp{}) {
			d.log.Warn("anomaly model removed; decisions are no longer scored", "file", file)
			_ = d.engine.SetModel(nil)
			d.model.stamp = modelStamp{}
		}
		return
	}
	stamp := modelStamp{st.Size(), st.ModTime()}
	if d.model.stamp == stamp {
		return
	}
	// Whatever happens below, this version has been judged: a damaged
	// file is refused once, not every two seconds.
	d.model.stamp = stamp
	data, err := readStateFile(file)
	var m anomaly.Forest
	if err == nil {
		err = m.UnmarshalBinary(data)
	}
	if err == nil {
		err = d.engine.SetModel(&m)
	}
	if err != nil {
		d.log.Error("anomaly model refused; the previous one (if any) stays in force", "file", file, "err", err)
		return
	}
	d.log.Info("anomaly model loaded", "file", file, "bytes", len(data))
}

// saveBaselines writes the snapshot atomically: a temporary file, synced,
// then renamed over the old one, so a crash leaves one or the other whole.
// The engine streams the snapshot into the file in small pieces, so saving
// neither holds a copy of every baseline nor stalls decisions; st (may be
// nil) records how long it took and whether it failed, for metrics.
func (d *Daemon) saveBaselines(st *snapshotStats) (err error) {
	start := time.Now()
	var n int64
	defer func() { st.record(time.Since(start), n, err) }()
	err = writeAtomic(filepath.Join(d.cfg.DataDir, BaselinesFile), func(w io.Writer) error {
		var werr error
		n, werr = d.engine.WriteBaselines(w)
		return werr
	})
	if err != nil {
		return fmt.Errorf("save baselines: %w", err)
	}
	return nil
}

// writeAtomic writes file through a temporary file in the same directory
// (created if need be), synced, then renamed over the old one, so a
// reader or a crash sees the old file or the new one, whole. Both the
// baselines snapshot and the anomaly model are written this way.
func writeAtomic(file string, write func(io.Writer) error) error {
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(file)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// runAnomaly snapshots the baselines every SnapshotEvery and once more at
// shutdown, and reloads the model when its file changes (checked every two
// seconds, and at once on SIGHUP when the daemon handles signals).
func (d *Daemon) runAnomaly(ctx context.Context, g *errgroup.Group) {
	st := &snapshotStats{}
	if err := d.registry.Register(newSnapshotCollector(st)); err != nil {
		d.log.Warn("baselines snapshot metrics not registered", "err", err)
	}
	g.Go(func() error {
		snap := time.NewTicker(SnapshotEvery)
		defer snap.Stop()
		poll := time.NewTicker(modelPoll)
		defer poll.Stop()
		var hup chan os.Signal
		if d.signals {
			hup = make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
		}
		for {
			select {
			case <-ctx.Done():
				if err := d.saveBaselines(st); err != nil {
					d.log.Error("baselines not saved at shutdown", "err", err)
				}
				return nil
			case <-snap.C:
				if err := d.saveBaselines(st); err != nil {
					d.log.Error("baselines snapshot failed; the next one will retry", "err", err)
				}
			case <-poll.C:
				d.loadModel()
			case <-hup:
				d.loadModel()
			}
		}
	})
}
