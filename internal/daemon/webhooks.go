package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/telguard/telguard/internal/config"
	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/queue"
	"github.com/telguard/telguard/internal/webhook"
	"github.com/telguard/telguard/internal/webhook/deliver"
	"golang.org/x/sync/errgroup"
)

// newWebhooks opens the queue and builds the webhook ingress, its workers
// and outbound delivery, and binds the ingress port.
func (d *Daemon) newWebhooks(ctx context.Context, getenv func(string) string) error {
	wc := d.cfg.Webhooks
	icfg, mappings, err := wc.Ingress(getenv)
	if err != nil {
		return err
	}
	icfg.SecretFile = filepath.Join(d.cfg.DataDir, webhook.SecretFileName)
	// The ingress's dedupe index remembers the window's ids in 16 bytes
	// each, on disk too; the queue's own window, ~120 bytes an id in
	// memory, only has to cover two copies of an event arriving together.
	// An external cluster may be shared by several ingresses, each with
	// its own index: there the queue keeps the whole window too.
	icfg.DedupeDir = filepath.Join(d.cfg.DataDir, "webhook-dedupe")
	dupWindow := webhook.DedupeOverlap
	if wc.QueueURL != "" {
		dupWindow = cmp.Or(wc.DedupeWindow, 24*time.Hour)
	}
	icfg.OnAlert = d.recordWebhookAlert
	d.warnRetiredSecrets(icfg)
	d.queue, err = queue.Open(ctx, queue.Options{
		Embedded: wc.QueueURL == "", URL: wc.QueueURL, Sync: wc.QueueSync,
		DataDir: filepath.Join(d.cfg.DataDir, "queue"), Logger: d.log, DuplicateWindow: dupWindow,
	})
	if err != nil {
		return err
	}
	fail := func(err error) error {
		if d.deliverer != nil {
			d.deliverer.Close()
		}
		d.queue.Close()
		return err
	}
	if d.hooks, err = webhook.New(icfg, d.queue, d.registry, d.log); err != nil {
		return fail(err)
	}
	wcfg := webhook.WorkerConfig{Sources: mappings, Sink: d.webhookSink}
	if len(wc.Destinations) > 0 {
		allow, err := wc.AllowInternalPrefixes()
		if err != nil {
			return fail(err)
		}
		// queue_sync is about surviving a machine crash: the outbox, where
		// acknowledged events wait for delivery, is fsynced too.
		dcfg := deliver.Config{Dir: filepath.Join(d.cfg.DataDir, "deliveries"), Allow: allow, Schedule: wc.RetrySchedule, Sync: wc.QueueSync}
		for i, dst := range wc.Destinations {
			k, err := config.DestinationSecret(i, dst, getenv)
			if err != nil {
				return fail(err)
			}
			dd := deliver.Destination{Name: dst.Name, Tenant: dst.Tenant, URL: dst.URL, Secrets: [][]byte{k}}
			for _, kind := range dst.Kinds {
				dd.Kinds = append(dd.Kinds, event.Kind(kind))
			}
			dcfg.Destinations = append(dcfg.Destinations, dd)
		}
		if d.deliverer, err = deliver.New(dcfg, d.registry, d.log); err != nil {
			return fail(err)
		}
		wcfg.Forward = d.deliverer
		tenantOf := map[string]string{}
		for _, dst := range wc.Destinations {
			tenantOf[dst.Name] = dst.Tenant
		}
		d.api.SetDeadLetters(deadLetters{d: d.deliverer, tenantOf: tenantOf})
	}
	if d.worker, err = webhook.NewWorker(wcfg, d.queue, d.registry, d.log); err != nil {
		return fail(err)
	}
	if err := d.hooks.Listen(); err != nil {
		return fail(err)
	}
	return nil
}

// warnRetiredSecrets names each configured secret whose retirement by a
// rotation has passed: it verifies nothing, and the operator should take
// it out of the config file. A store that cannot be read is reported by
// webhook.New.
func (d *Daemon) warnRetiredSecrets(icfg webhook.Config) {
	stored, err := webhook.ReadSecretStore(icfg.SecretFile)
	if err != nil {
		return
	}
	now := d.clock.Now()
	for _, name := range slices.Sorted(maps.Keys(icfg.Sources)) {
		for _, id := range webhook.RetiredConfigured(icfg.Sources[name].Verifier.Secrets, stored[name], now) {
			d.log.Warn("configured webhook secret retired by a rotation: it verifies nothing, remove it from the config file", "source", name, "secret_id", id)
		}
	}
}

// webhookSink hands a provider's call event to the engine, so calls made
// on a provider's platform get the same tracking as the others. An ended
// call the engine never saw cannot become known by retrying: that is
// permanent, and the queue must not redeliver it forever.
func (d *Daemon) webhookSink(ctx context.Context, ev event.Event) error {
	ev.Sensor = "webhook"
	if ev.Kind == event.CallAttempt {
		d.engine.Decide(ctx, ev)
		return nil
	}
	err := d.engine.Observe(ctx, ev)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, engine.ErrUnknownCall), errors.Is(err, engine.ErrBadEvent), errors.Is(err, engine.ErrUnknownTenant):
		return fmt.Errorf("%w: %v", webhook.ErrPermanent, err)
	}
	return err
}

// recordWebhookAlert writes a spike of forged, stale or duplicate
// webhooks from one source to the decisions log, so it is on record (and
// listed by the decisions API) with the other alerts. The ingress raises
// it at most once per source, rule and window, and Submit never blocks
// for a decision, so this runs on the request's goroutine.
func (d *Daemon) recordWebhookAlert(a webhook.Alert) {
	dec := &event.Decision{
		Time: a.Time, Tenant: a.Tenant, Verdict: event.Challenge, Risk: 60, HTTPCode: http.StatusUnauthorized,
		Reasons: []event.Reason{{Rule: a.Rule, Reason: a.Reason(), Mode: event.Enforce, Verdict: event.Challenge, Level: "warning"}},
	}
	if a.Rule == webhook.RuleDuplicates {
		dec.Risk, dec.HTTPCode = 40, http.StatusOK
	}
	if a.LastAddr.IsValid() {
		dec.SourceIP = a.LastAddr.String()
	}
	d.writer.Submit(event.Change{Op: event.OpDecision, Decision: dec})
}

// WebhookAddr returns the webhook ingress's bound address, "" when it is
// off.
func (d *Daemon) WebhookAddr() string {
	if d.hooks == nil {
		return ""
	}
	return d.hooks.Addr()
}

// runWebhooks starts the ingress, the workers and delivery in g, when
// webhooks are configured. The returned func closes the delivery outbox
// and the queue; call it once g has finished.
func (d *Daemon) runWebhooks(ctx context.Context, g *errgroup.Group) (closeQueue func()) {
	if d.hooks == nil {
		return func() {}
	}
	g.Go(func() error { return d.hooks.Run(ctx) })
	g.Go(func() error { return d.worker.Run(ctx) })
	if d.deliverer != nil {
		g.Go(func() error { return d.deliverer.Run(ctx) })
	}
	return func() {
		if d.deliverer != nil {
			d.deliverer.Close()
		}
		d.queue.Close()
	}
}
