// Package deliver owns outbound delivery of normalised call events to
// configured destinations such as a CRM: HTTP POSTs signed with Standard
// Webhooks headers, retried on a schedule with back-off and jitter, behind
// a circuit breaker per destination, through a dialer that refuses
// internal addresses (SSRF), with a dead-letter store for what could not
// be delivered.
//
// # What is sent
//
// The normalised event, not the provider's raw payload: destinations get
// one documented shape whatever the provider, and nothing the provider
// sent beyond the mapped fields leaves telguard. The body follows the
// Standard Webhooks payload convention:
//
//	{"type":"call.ended","timestamp":"2025-01-02T03:04:05Z",
//	 "data":{"event_id":"evt-1","source":"telco","tenant":"acme","call_id":"c1",
//	         "state":"completed","direction":"outbound","from":"+441234","to":"+33123",
//	         "account":"acc-1","duration_seconds":42,"recording":"https://…",
//	         "time":"2025-01-02T03:04:05Z"}}
//
// The webhook-id is derived from the tenant, source and event id, so it is
// the same on every attempt and every replay: receivers deduplicate on it.
//
// # Where pending deliveries live
//
// In an append-only log of segment files (Config.Dir/log, see outbox.go),
// group-committed: Forward returns once the delivery's record is written,
// so the webhook worker acknowledges the queued event only once its
// deliveries are stored; concurrent writers share one write (and one
// fsync with Sync). A failed attempt appends the delivery with its next
// time; a delivered one appends a "done" record; segments are deleted
// once nothing pending lives in them, and the few deliveries that retry
// for hours are copied forward so that they do not pin old segments. (The
// first versions kept one file per delivery in Config.Dir/outbox, which
// cost a create, a rename and an unlink per event; such a directory is
// moved into the log on open.) Deliveries that exhausted the schedule, or
// whose destination answered 410, move to Config.Dir/dead, one file each,
// which List and Replay serve (`telguard webhooks dlq list|replay`).
//
// The spool is local rather than a second JetStream stream because
// retries wait for hours at individual times and the dead letters must be
// listed and replayed by id; a work-queue stream consumed in order gives
// neither without holding messages unacknowledged. The price: with an
// external NATS cluster, each node's pending and dead deliveries stay on
// that node. A record is written before the call that stored it returns,
// so a process crash loses nothing; with Config.Sync each group commit is
// fsynced, for machine crashes too.
package deliver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/webhook"
)

// Destination is one receiver of outbound events.
type Destination struct {
	// Name identifies it in metrics, logs and dead letters ([a-z0-9_-], 1
	// to 64 characters).
	Name string
	// Tenant: only this tenant's events are sent here.
	Tenant string
	// URL receives the POSTs; http or https, no user information.
	URL string
	// Secrets sign every request (one webhook-signature entry each, so
	// the receiver can rotate). At least one.
	Secrets [][]byte
	// Kinds, when set, limits the events sent to these kinds.
	Kinds []event.Kind
}

// Config configures a Deliverer. Zero values take the defaults noted.
type Config struct {
	// Dir holds the spool (outbox/ and dead/). Required.
	Dir          string
	Destinations []Destination
	// Schedule is the wait before each retry; its length is the number of
	// retries. → 5 s, 5 min, 30 min, 2 h, 5 h, 10 h.
	Schedule []time.Duration
	// Jitter spreads each wait by up to ± this fraction. → 0.2; negative: none.
	Jitter float64
	// Timeout bounds one attempt: connect, send, response. → 10 s.
	Timeout time.Duration
	// BreakerThreshold consecutive failures open a destination's breaker. → 5.
	BreakerThreshold int
	// BreakerCooldown is how long an open breaker waits before a probe. → 1 min.
	BreakerCooldown time.Duration
	// MaxRetryAfter caps the wait a 429's Retry-After may ask for. → 24 h.
	MaxRetryAfter time.Duration
	// MaxPending and MaxDead cap the spool's entries; Forward fails when
	// the outbox is full, so the queued event waits in the queue. → 100,000 each.
	MaxPending, MaxDead int
	// Concurrency is how many attempts run at once. → 8.
	Concurrency int
	// PollInterval is how often the outbox is scanned for due retries. → 1 s.
	PollInterval time.Duration
	// Sync fsyncs every spool write.
	Sync bool
	// Allow lists internal ranges destinations may resolve to
	// ("10.20.0.0/16" for a CRM inside the network). Everything that is not
	// public unicast is refused otherwise.
	Allow []netip.Prefix
	// Resolver resolves destination names; nil is the system resolver.
	Resolver *net.Resolver
	// Clock → time.Now.
	Clock func() time.Time
}

// DefaultSchedule is the retry schedule unless configured.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour,
}

const (
	defaultJitter           = 0.2
	defaultTimeout          = 10 * time.Second
	defaultBreakerThreshold = 5
	defaultBreakerCooldown  = time.Minute
	defaultMaxRetryAfter    = 24 * time.Hour
	defaultMaxEntries       = 100_000
	defaultConcurrency      = 8
	defaultPollInterval     = time.Second
	maxResponseBytes        = 64 << 10
	maxErrorLength          = 200
	userAgent               = "telguard-webhook/1"
)

var destName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

type destination struct {
	Destination
	breaker  *breaker
	disabled atomic.Bool
}

// Deliverer sends forwarded events to their destinations. Build it with
// New, hand it to webhook.WorkerConfig.Forward, and Run it.
type Deliverer struct {
	cfg     Config
	dests   map[string]*destination
	order   []*destination
	outbox  *outbox
	dead    *spool
	client  *http.Client
	logger  *slog.Logger
	metrics *metrics
	wake    chan struct{}
	// moveMu makes moving an entry between outbox and dead letters (which
	// is two file operations) atomic for other movers.
	moveMu sync.Mutex
}

// New checks cfg, opens the spool and builds a Deliverer. Metrics are
// registered on reg (a fresh registry when nil); logger nil discards.
func New(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Deliverer, error) {
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("new deliverer: %w", err)
	}
	d := &Deliverer{cfg: cfg, dests: map[string]*destination{}, logger: logger, wake: make(chan struct{}, 1)}
	if d.logger == nil {
		d.logger = slog.New(slog.DiscardHandler)
	}
	for _, dc := range cfg.Destinations {
		if err := checkDestination(dc); err != nil {
			return nil, fmt.Errorf("new deliverer: destination %q: %w", dc.Name, err)
		}
		if d.dests[dc.Name] != nil {
			return nil, fmt.Errorf("new deliverer: destination %q listed twice", dc.Name)
		}
		dest := &destination{Destination: dc, breaker: &breaker{threshold: cfg.BreakerThreshold, cooldown: cfg.BreakerCooldown}}
		d.dests[dc.Name] = dest
		d.order = append(d.order, dest)
	}
	var err error
	if d.outbox, err = openOutbox(filepath.Join(cfg.Dir, "log"), cfg.MaxPending, cfg.Sync, filepath.Join(cfg.Dir, "outbox")); err != nil {
		return nil, fmt.Errorf("new deliverer: %w", err)
	}
	if n := d.outbox.unreadable; n > 0 {
		d.logger.Error("outbox records that passed their checksum but could not be read were skipped: those deliveries are lost", "records", n)
	}
	if n := d.outbox.holes; n > 0 {
		d.logger.Error("outbox segments had bad bytes before good records (a machine crash without sync?): skipped, deliveries written there are lost", "holes", n)
	}
	if d.dead, err = openSpool(filepath.Join(cfg.Dir, "dead"), cfg.MaxDead, cfg.Sync); err != nil {
		d.outbox.close()
		return nil, fmt.Errorf("new deliverer: %w", err)
	}
	d.client = Guard{Allow: cfg.Allow}.Client(cfg.Timeout, cfg.Resolver)
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if d.metrics, err = newMetrics(reg, d); err != nil {
		d.outbox.close()
		return nil, fmt.Errorf("new deliverer: %w", err)
	}
	return d, nil
}

// Close writes what the outbox has pending and closes its files; call it
// once Run and every Forward have returned.
func (d *Deliverer) Close() { d.outbox.close() }

func (c *Config) defaults() error {
	if c.Dir == "" {
		return errors.New("no spool directory")
	}
	if c.Schedule == nil {
		c.Schedule = DefaultSchedule
	}
	for _, s := range c.Schedule {
		if s <= 0 {
			return errors.New("retry schedule: waits must be positive")
		}
	}
	if c.Jitter == 0 {
		c.Jitter = defaultJitter
	}
	c.Jitter = min(max(c.Jitter, 0), 1)
	def(&c.Timeout, defaultTimeout)
	def(&c.BreakerThreshold, defaultBreakerThreshold)
	def(&c.BreakerCooldown, defaultBreakerCooldown)
	def(&c.MaxRetryAfter, defaultMaxRetryAfter)
	def(&c.MaxPending, defaultMaxEntries)
	def(&c.MaxDead, defaultMaxEntries)
	def(&c.Concurrency, defaultConcurrency)
	def(&c.PollInterval, defaultPollInterval)
	if c.Timeout < 0 || c.BreakerThreshold < 0 || c.BreakerCooldown < 0 || c.MaxRetryAfter < 0 ||
		c.MaxPending < 0 || c.MaxDead < 0 || c.Concurrency < 0 || c.PollInterval < 0 {
		return errors.New("negative limit")
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return nil
}

func def[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

func checkDestination(dc Destination) error {
	if !destName.MatchString(dc.Name) {
		return errors.New("name must be 1 to 64 of [a-z0-9_-]")
	}
	if dc.Tenant == "" {
		return errors.New("no tenant")
	}
	u, err := url.Parse(dc.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return errors.New("url must be http(s)://host/… without user information")
	}
	if len(dc.Secrets) == 0 || slices.ContainsFunc(dc.Secrets, func(k []byte) bool { return len(k) == 0 }) {
		return errors.New("at least one non-empty signing secret is required")
	}
	return nil
}

// payload is the body sent to destinations (see the package doc).
type payload struct {
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      payloadData `json:"data"`
}

type payloadData struct {
	EventID         string    `json:"event_id"`
	Source          string    `json:"source"`
	Tenant          string    `json:"tenant"`
	CallID          string    `json:"call_id"`
	State           string    `json:"state,omitempty"`
	Direction       string    `json:"direction,omitempty"`
	From            string    `json:"from,omitempty"`
	To              string    `json:"to,omitempty"`
	Account         string    `json:"account,omitempty"`
	DurationSeconds float64   `json:"duration_seconds,omitempty"`
	Recording       string    `json:"recording,omitempty"`
	Time            time.Time `json:"time"`
}

// EventType is the payload type of a call event kind: "call.ended".
func EventType(k event.Kind) string {
	return "call." + strings.TrimPrefix(string(k), "call_")
}

// MessageID is the webhook-id destinations see for an event: stable
// across attempts and replays, and not the provider's own id.
func MessageID(ev webhook.CallEvent) string {
	h := sha256.Sum256([]byte(ev.Tenant + "\x00" + ev.Source + "\x00" + ev.ID))
	return "msg_" + hex.EncodeToString(h[:16])
}

// Forward stores one pending delivery per destination that takes ev (its
// tenant, and its kinds if set). Forwarding an event that is still pending
// does nothing, so a redelivered queue message is not sent twice. It
// implements webhook.Forwarder.
func (d *Deliverer) Forward(ctx context.Context, ev webhook.CallEvent) error {
	var body []byte
	now := d.cfg.Clock()
	added := false
	for _, dest := range d.order {
		if dest.Tenant != ev.Tenant || (len(dest.Kinds) > 0 && !slices.Contains(dest.Kinds, ev.Kind)) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("forward: %w", err)
		}
		if body == nil {
			var err error
			if body, err = render(ev); err != nil {
				return fmt.Errorf("forward: %w", err)
			}
		}
		msgID := MessageID(ev)
		j := job{ID: dest.Name + "-" + msgID, Destination: dest.Name, MsgID: msgID, Type: EventType(ev.Kind),
			Body: body, NotBefore: now, Created: now}
		ok, err := d.outbox.add(j)
		if err != nil {
			return fmt.Errorf("forward to %s: %w", dest.Name, err)
		}
		added = added || ok
	}
	if added {
		d.poke()
	}
	return nil
}

func render(ev webhook.CallEvent) ([]byte, error) {
	return json.Marshal(payload{Type: EventType(ev.Kind), Timestamp: ev.Time, Data: payloadData{
		EventID: ev.ID, Source: ev.Source, Tenant: ev.Tenant, CallID: ev.CallID, State: ev.State,
		Direction: string(ev.Direction), From: ev.From, To: ev.To, Account: ev.Account,
		DurationSeconds: ev.Duration.Seconds(), Recording: ev.Recording, Time: ev.Time,
	}})
}

func (d *Deliverer) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run attempts due deliveries until ctx is done. Attempts in flight then
// finish (each bounded by Timeout); what is not attempted stays in the
// outbox for the next Run.
func (d *Deliverer) Run(ctx context.Context) error {
	work := make(chan string)
	var wg sync.WaitGroup
	for range d.cfg.Concurrency {
		wg.Go(func() {
			for id := range work {
				d.attempt(context.WithoutCancel(ctx), id)
			}
		})
	}
	defer func() {
		close(work)
		wg.Wait()
	}()
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	batch := d.cfg.Concurrency * 4
	for {
		ids := d.outbox.claim(d.cfg.Clock(), batch)
		for i, id := range ids {
			select {
			case work <- id:
			case <-ctx.Done():
				for _, rest := range ids[i:] {
					d.outbox.release(rest)
				}
				return nil
			}
		}
		if len(ids) == batch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-d.wake:
		}
	}
}

// attempt sends the pending delivery id once and files the outcome.
func (d *Deliverer) attempt(ctx context.Context, id string) {
	j, err := d.outbox.read(id)
	if err != nil {
		d.logger.Error("unreadable delivery removed from the outbox", "id", id, "err", err)
		_ = d.outbox.remove(id)
		return
	}
	dest := d.dests[j.Destination]
	switch {
	case dest == nil:
		d.deadLetter(j, "destination no longer configured")
		return
	case dest.disabled.Load():
		d.deadLetter(j, "destination disabled after 410 Gone")
		return
	}
	now := d.cfg.Clock()
	if ok, retryAt := dest.breaker.allow(now); !ok {
		d.count(dest.Name, "deferred")
		d.reschedule(j, retryAt)
		return
	}
	code, retryAfter, err := d.send(ctx, dest, j, now)
	now = d.cfg.Clock()
	j.Attempts++
	switch {
	case err != nil:
		dest.breaker.result(false, now)
		j.LastError = err.Error()
		d.retry(dest, j, now, 0, "failed")
	case code >= 200 && code < 300:
		dest.breaker.result(true, now)
		d.count(dest.Name, "delivered")
		if err := d.outbox.delivered(id); err != nil {
			d.logger.Error("delivered but not removed from the outbox", "id", id, "err", err)
		}
	case code == http.StatusGone:
		dest.breaker.result(true, now)
		dest.disabled.Store(true)
		d.count(dest.Name, "gone")
		d.logger.Warn("destination answered 410 Gone and is disabled until a replay", "destination", dest.Name)
		d.deadLetter(j, "410 Gone")
	case code == http.StatusTooManyRequests:
		dest.breaker.result(true, now) // the receiver is up; it asks us to slow down
		j.LastError = "429 Too Many Requests"
		d.retry(dest, j, now, retryAfter, "rate_limited")
	default:
		dest.breaker.result(false, now)
		j.LastError = strconv.Itoa(code) + " " + http.StatusText(code)
		d.retry(dest, j, now, 0, "failed")
	}
}

// retry schedules the next attempt after j.Attempts attempts, or
// dead-letters j when the schedule is exhausted. wait, when positive,
// replaces the scheduled wait (a Retry-After).
func (d *Deliverer) retry(dest *destination, j job, now time.Time, wait time.Duration, outcome string) {
	d.count(dest.Name, outcome)
	n := j.Attempts - 1
	if n >= len(d.cfg.Schedule) {
		d.deadLetter(j, "retries exhausted: "+j.LastError)
		return
	}
	if wait <= 0 {
		wait = d.jitter(d.cfg.Schedule[n])
	}
	d.logger.Debug("delivery failed, will retry", "destination", dest.Name, "msg_id", j.MsgID,
		"attempts", j.Attempts, "wait", wait, "err", j.LastError)
	d.reschedule(j, now.Add(wait))
}

func (d *Deliverer) reschedule(j job, at time.Time) {
	j.NotBefore = at
	if err := d.outbox.put(j); err != nil {
		// The old entry is still there and due: it is simply tried again.
		d.logger.Error("could not reschedule a delivery", "id", j.ID, "err", err)
	}
	d.outbox.release(j.ID)
}

func (d *Deliverer) jitter(w time.Duration) time.Duration {
	f := 1 + d.cfg.Jitter*(2*rand.Float64()-1)
	return max(time.Duration(float64(w)*f), time.Millisecond)
}

func (d *Deliverer) deadLetter(j job, reason string) {
	d.moveMu.Lock()
	defer d.moveMu.Unlock()
	now := d.cfg.Clock()
	j.LastError, j.Failed, j.NotBefore = capError(reason), now, now
	added, err := d.dead.add(j)
	if err == nil && !added {
		err = d.dead.put(j)
	}
	if err != nil {
		// Left in the outbox, to be tried (and dead-lettered) again later.
		d.logger.Error("could not dead-letter a delivery", "id", j.ID, "err", err)
		d.reschedule(j, now.Add(d.cfg.BreakerCooldown))
		return
	}
	d.count(j.Destination, "dead_lettered")
	d.logger.Warn("delivery dead-lettered", "destination", j.Destination, "id", j.ID,
		"attempts", j.Attempts, "reason", j.LastError)
	if err := d.outbox.remove(j.ID); err != nil {
		d.logger.Error("dead-lettered but not removed from the outbox", "id", j.ID, "err", err)
	}
}

// send makes one attempt. It returns the status, and a 429's Retry-After
// (0 when absent or unreadable); err is a transport error, stripped of
// the URL (which may carry a token).
func (d *Deliverer) send(ctx context.Context, dest *destination, j job, now time.Time) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dest.URL, bytes.NewReader(j.Body))
	if err != nil {
		return 0, 0, errors.New("build request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	webhook.SetHeaders(req.Header, j.MsgID, now, j.Body, dest.Secrets...)
	resp, err := d.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, 0, errors.New(capError(err.Error()))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	resp.Body.Close()
	return resp.StatusCode, d.retryAfter(resp.Header.Get("Retry-After"), now), nil
}

// retryAfter reads seconds or an HTTP date, capped at MaxRetryAfter.
func (d *Deliverer) retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var w time.Duration
	if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		w = time.Duration(min(n, int64(d.cfg.MaxRetryAfter/time.Second)+1)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		w = t.Sub(now)
	}
	return min(max(w, 0), d.cfg.MaxRetryAfter)
}

func capError(s string) string {
	if len(s) > maxErrorLength {
		return s[:maxErrorLength]
	}
	return s
}

func (d *Deliverer) count(dest, outcome string) {
	d.metrics.deliveries.WithLabelValues(dest, outcome).Inc()
}

// Disabled reports whether destination name was disabled by a 410.
func (d *Deliverer) Disabled(name string) bool {
	dest := d.dests[name]
	return dest != nil && dest.disabled.Load()
}

// DeadLetter describes one delivery that was given up on. It carries no
// payload: listings are safe to print.
type DeadLetter struct {
	ID          string    `json:"id"`
	Destination string    `json:"destination"`
	MsgID       string    `json:"msg_id"`
	Type        string    `json:"type"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error"`
	Created     time.Time `json:"created"`
	Failed      time.Time `json:"failed"`
}

// List returns up to limit dead letters, oldest failure first (limit <= 0:
// all of them).
func (d *Deliverer) List(ctx context.Context, limit int) ([]DeadLetter, error) {
	type entry struct {
		id string
		at time.Time
	}
	d.dead.mu.Lock()
	es := make([]entry, 0, len(d.dead.index))
	for id, at := range d.dead.index {
		if !d.dead.writing[id] {
			es = append(es, entry{id, at})
		}
	}
	d.dead.mu.Unlock()
	sort.Slice(es, func(i, k int) bool {
		if !es[i].at.Equal(es[k].at) {
			return es[i].at.Before(es[k].at)
		}
		return es[i].id < es[k].id
	})
	if limit > 0 && len(es) > limit {
		es = es[:limit]
	}
	out := make([]DeadLetter, 0, len(es))
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		j, err := d.dead.read(e.id)
		if errors.Is(err, os.ErrNotExist) {
			continue // replayed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		out = append(out, DeadLetter{ID: j.ID, Destination: j.Destination, MsgID: j.MsgID, Type: j.Type,
			Attempts: j.Attempts, LastError: j.LastError, Created: j.Created, Failed: j.Failed})
	}
	return out, nil
}

// Replay moves dead letter id back to the outbox with a fresh retry
// schedule, and re-enables its destination if a 410 had disabled it:
// replaying says the receiver is fixed. The receiver sees the same
// webhook-id as before.
func (d *Deliverer) Replay(ctx context.Context, id string) error {
	if !entryID.MatchString(id) {
		return fmt.Errorf("replay %q: %w", id, ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	d.moveMu.Lock()
	defer d.moveMu.Unlock()
	j, err := d.dead.read(id)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replay %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("replay %s: %w", id, err)
	}
	now := d.cfg.Clock()
	j.Attempts, j.LastError, j.Failed, j.NotBefore = 0, "", time.Time{}, now
	// Re-enable first: once the job is in the outbox a sender may claim it
	// at once, and would dead-letter it again unsent if the destination
	// still looked disabled.
	if dest := d.dests[j.Destination]; dest != nil && dest.disabled.Swap(false) {
		d.logger.Info("destination re-enabled by a replay", "destination", dest.Name)
	}
	// Out of the dead spool before into the outbox: a send that failed at
	// once could otherwise dead-letter the job again under the same id
	// while it is still here, and the removal would then lose it.
	if err := d.dead.remove(id); err != nil {
		return fmt.Errorf("replay %s: %w", id, err)
	}
	if _, err := d.outbox.add(j); err != nil {
		if _, derr := d.dead.add(j); derr != nil {
			d.logger.Error("replay: dead letter lost", "id", id, "err", derr)
		}
		return fmt.Errorf("replay %s: %w", id, err)
	}
	d.metrics.replayed.Inc()
	d.poke()
	return nil
}
