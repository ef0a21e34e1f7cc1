package daemon

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// newAnomaly prepares the behaviour layer (baselines, anomaly model) once
// the engine exists.
func (d *Daemon) newAnomaly(ctx context.Context) error { return nil }

// runAnomaly starts the behaviour layer's background work in g.
func (d *Daemon) runAnomaly(ctx context.Context, g *errgroup.Group) {}
