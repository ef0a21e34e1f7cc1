package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/queue"
)

// EventSink receives each normalised call event; the daemon passes the
// engine here. An error is taken as transient (the event is redelivered
// with back-off) unless it wraps ErrPermanent.
type EventSink func(ctx context.Context, ev event.Event) error

// ErrPermanent, wrapped in an error from an EventSink or a Forwarder, says
// that retrying the same event cannot succeed: the worker drops it
// (counted) instead of redelivering it.
var ErrPermanent = errors.New("permanent failure")

// Forwarder hands a normalised event on to outbound destinations;
// deliver.Deliverer implements it. Forward must store the event durably
// before it returns, and storing the same event twice must not deliver it
// twice while the first is pending.
type Forwarder interface {
	Forward(ctx context.Context, ev CallEvent) error
}

// Consumer is the queue the worker reads; *queue.Queue implements it.
type Consumer interface {
	Consume(ctx context.Context, durable string, handler func(context.Context, queue.Msg) error) error
	Depth(ctx context.Context) (uint64, error)
}

// WorkerConfig configures a Worker. Zero values take the defaults noted.
type WorkerConfig struct {
	// Sources maps each source name to its payload mapping. Events of a
	// source not listed are dropped (counted as unknown_source).
	Sources map[string]Mapping
	// Sink receives every call event. Required.
	Sink EventSink
	// Forward, when set, receives every call event too, before Sink.
	Forward Forwarder
	// Durable names the queue consumer. → "webhook-workers".
	Durable string
	// Concurrency is how many events are handled at once. → 4.
	Concurrency int
	// HandleTimeout bounds the handling of one event; keep it below the
	// queue's AckWait. → 20 s.
	HandleTimeout time.Duration
}

const (
	defaultDurable       = "webhook-workers"
	defaultConcurrency   = 4
	defaultHandleTimeout = 20 * time.Second
)

// Worker takes verified events from the queue, normalises them and hands
// them to the engine (and the outbound Forwarder). Delivery is at least
// once; events are identified by CallEvent.ID.
type Worker struct {
	cfg     WorkerConfig
	q       Consumer
	norm    map[string]*Normalizer
	logger  *slog.Logger
	metrics *workerMetrics
}

// NewWorker checks cfg and builds a Worker reading q. Metrics are
// registered on reg (a fresh registry when nil); logger nil discards.
func NewWorker(cfg WorkerConfig, q Consumer, reg prometheus.Registerer, logger *slog.Logger) (*Worker, error) {
	if q == nil || cfg.Sink == nil {
		return nil, errors.New("new webhook worker: queue and sink are required")
	}
	def(&cfg.Durable, defaultDurable)
	def(&cfg.Concurrency, defaultConcurrency)
	def(&cfg.HandleTimeout, defaultHandleTimeout)
	if cfg.Concurrency < 0 || cfg.HandleTimeout < 0 {
		return nil, errors.New("new webhook worker: negative limit")
	}
	w := &Worker{cfg: cfg, q: q, norm: make(map[string]*Normalizer, len(cfg.Sources)), logger: logger}
	if w.logger == nil {
		w.logger = slog.New(slog.DiscardHandler)
	}
	for name, m := range cfg.Sources {
		n, err := NewNormalizer(m)
		if err != nil {
			return nil, fmt.Errorf("new webhook worker: source %s: %w", name, err)
		}
		w.norm[name] = n
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	var err error
	if w.metrics, err = newWorkerMetrics(reg, q); err != nil {
		return nil, fmt.Errorf("new webhook worker: %w", err)
	}
	return w, nil
}

// Run consumes until ctx is done; the events in hand are finished or, if
// cut short, left to the queue to redeliver.
func (w *Worker) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for range w.cfg.Concurrency {
		g.Go(func() error { return w.q.Consume(gctx, w.cfg.Durable, w.Handle) })
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("run webhook worker: %w", err)
	}
	return nil
}

// Handle processes one queued message: a nil error acknowledges it. It is
// exported for tests and for a daemon that consumes by other means.
func (w *Worker) Handle(ctx context.Context, m queue.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.HandleTimeout)
	defer cancel()
	env, err := DecodeEnvelope(m.Data)
	if err != nil {
		w.drop(ctx, m, "undecodable", err)
		return nil
	}
	n := w.norm[env.Source]
	if n == nil {
		w.drop(ctx, m, "unknown_source", errors.New("no mapping for source"))
		return nil
	}
	ev, err := n.Normalize(env)
	if err != nil {
		w.drop(ctx, m, "unmapped", err)
		return nil
	}
	// Forward first: it is idempotent while pending, so a sink failure
	// that brings the event back does not deliver it twice.
	if w.cfg.Forward != nil {
		if err := w.cfg.Forward.Forward(ctx, ev); err != nil {
			return w.failed(ctx, m, "forward", err)
		}
	}
	if err := w.cfg.Sink(ctx, ev.Event()); err != nil {
		return w.failed(ctx, m, "sink", err)
	}
	w.metrics.events.WithLabelValues("handled").Inc()
	return nil
}

func (w *Worker) failed(ctx context.Context, m queue.Msg, stage string, err error) error {
	if errors.Is(err, ErrPermanent) {
		w.drop(ctx, m, stage+"_refused", err)
		return nil
	}
	w.metrics.events.WithLabelValues("retried").Inc()
	w.logger.LogAttrs(ctx, slog.LevelWarn, "webhook event will be retried",
		slog.String("id", m.ID), slog.Int("delivered", m.Delivered), slog.String("stage", stage),
		slog.String("err", err.Error()))
	return fmt.Errorf("%s: %w", stage, err)
}

// drop acknowledges a message that can never be handled. The log names
// the message and the reason, never the payload.
func (w *Worker) drop(ctx context.Context, m queue.Msg, reason string, err error) {
	w.metrics.events.WithLabelValues("dropped").Inc()
	w.metrics.dropped.WithLabelValues(reason).Inc()
	w.logger.LogAttrs(ctx, slog.LevelWarn, "webhook event dropped",
		slog.String("id", m.ID), slog.String("reason", reason), slog.String("err", err.Error()))
}

// workerMetrics are the worker's Prometheus collectors.
type workerMetrics struct {
	events  *prometheus.CounterVec // outcome: handled, retried, dropped
	dropped *prometheus.CounterVec // reason
}

func newWorkerMetrics(reg prometheus.Registerer, q Consumer) (*workerMetrics, error) {
	m := &workerMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telguard_webhook_worker_events_total",
			Help: "Queued webhook events handled by the workers, by outcome (handled, retried, dropped).",
		}, []string{"outcome"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telguard_webhook_worker_dropped_total",
			Help: "Queued webhook events dropped as impossible to handle, by reason.",
		}, []string{"reason"}),
	}
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "telguard_webhook_queue_depth",
		Help: "Webhook events stored in the queue and not yet handled.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		d, err := q.Depth(ctx)
		if err != nil {
			return -1
		}
		return float64(d)
	})
	for _, c := range []prometheus.Collector{m.events, m.dropped, depth} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
