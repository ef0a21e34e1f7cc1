package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/event"
)

// Decide, Observe, Sweep, Stats, SetPolicy and Unsuspend run at once on
// shared tenants; run with -race.
func TestConcurrentUse(t *testing.T) {
	p := benchPolicy(t, 2)
	store := &memStore{tenants: map[string]*tenantStore{}}
	e := engine.New(p, engine.Options{Sink: store})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := newTraffic(fmt.Sprintf("t%d", w%2))
			tr.i = w * 100000 // distinct call ids and times per worker
			for range 2000 {
				ev := tr.next()
				d := e.Decide(ctx, ev)
				if d.Tenant != ev.Tenant || d.CallID != ev.CallID {
					t.Errorf("decision %+v for event %+v", d, ev)
					return
				}
				tr.settle(ctx, e, ev, d)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
		for i := range 200 {
			e.Sweep(now.Add(time.Duration(i) * time.Second))
			e.Stats(now)
			e.SetPolicy(p)
			_ = e.Unsuspend(ctx, "t0", "intl-0", "test")
			_ = e.Observe(ctx, event.Event{Kind: event.CallEnded, Tenant: "t1", CallID: "nope", Time: now})
			if i%20 == 0 {
				// The daemon snapshots baselines while decisions run.
				if snap, err := e.ExportBaselines(); err != nil {
					t.Error(err)
				} else if err := e.ImportBaselines(snap); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	wg.Wait()
	// Every durable change was for a known tenant.
	for id := range store.states() {
		if id != "t0" && id != "t1" {
			t.Errorf("changes for tenant %q", id)
		}
	}
}
