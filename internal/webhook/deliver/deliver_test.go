package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/queue"
	"github.com/telguard/telguard/internal/webhook"
)

var (
	signingKey = []byte("destination signing key, 32 b..")
	loopback   = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
)

// receiver is a test destination on 127.0.0.1 that verifies signatures,
// counts requests by webhook-id and answers what respond says.
type receiver struct {
	*httptest.Server
	t        *testing.T
	verifier *webhook.Verifier

	mu      sync.Mutex
	byID    map[string]int
	bodies  [][]byte
	times   []time.Time
	respond func(n int) (int, http.Header) // n: 1 for the first request
}

func newReceiver(t *testing.T, respond func(n int) (int, http.Header)) *receiver {
	v, err := webhook.NewVerifier(webhook.VerifierConfig{Secrets: []webhook.Secret{{Key: signingKey}}})
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, verifier: v, byID: map[string]int{}, respond: respond}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if _, err := r.verifier.Verify(req.Header, body, time.Now()); err != nil {
		r.t.Errorf("receiver: bad signature: %v", err)
	}
	r.mu.Lock()
	r.byID[req.Header.Get(webhook.HeaderID)]++
	r.bodies = append(r.bodies, body)
	r.times = append(r.times, time.Now())
	n := len(r.bodies)
	r.mu.Unlock()
	code, h := http.StatusNoContent, http.Header(nil)
	if r.respond != nil {
		code, h = r.respond(n)
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	w.WriteHeader(code)
}

func (r *receiver) hits() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

func newDeliverer(t *testing.T, dir string, url string, edit func(*Config)) *Deliverer {
	t.Helper()
	cfg := Config{
		Dir:          dir,
		Destinations: []Destination{{Name: "crm", Tenant: "acme", URL: url, Secrets: [][]byte{signingKey}}},
		Schedule:     []time.Duration{5 * time.Millisecond, 10 * time.Millisecond},
		PollInterval: 5 * time.Millisecond,
		Allow:        loopback,
	}
	if edit != nil {
		edit(&cfg)
	}
	d, err := New(cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func run(t *testing.T, d *Deliverer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

func callEvent(id string) webhook.CallEvent {
	return webhook.CallEvent{ID: id, Source: "telco", Tenant: "acme", Kind: event.CallEnded, State: "completed",
		Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), CallID: "c-" + id, From: "+441234", To: "+33123",
		Duration: 42 * time.Second, Direction: webhook.DirectionOutbound}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (d *Deliverer) counter(dest, outcome string) float64 {
	var m dto.Metric
	if err := d.metrics.deliveries.WithLabelValues(dest, outcome).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func TestDeliverSignedOnceByEventID(t *testing.T) {
	rcv := newReceiver(t, nil)
	d := newDeliverer(t, t.TempDir(), rcv.URL, func(c *Config) {
		c.Destinations = append(c.Destinations,
			Destination{Name: "other-tenant", Tenant: "globex", URL: rcv.URL, Secrets: [][]byte{signingKey}},
			Destination{Name: "answers-only", Tenant: "acme", URL: rcv.URL, Secrets: [][]byte{signingKey},
				Kinds: []event.Kind{event.CallAnswered}})
	})
	ev := callEvent("evt-1")
	// Forwarded twice (a redelivered queue message) before anything ran.
	for range 2 {
		if err := d.Forward(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	run(t, d)
	waitFor(t, "delivery", func() bool { return d.counter("crm", "delivered") == 1 })
	time.Sleep(30 * time.Millisecond)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bodies) != 1 || rcv.byID[MessageID(ev)] != 1 {
		t.Fatalf("receiver got %d requests %v; want one, for %s", len(rcv.bodies), rcv.byID, MessageID(ev))
	}
	var p payload
	if err := json.Unmarshal(rcv.bodies[0], &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "call.ended" || p.Data.CallID != "c-evt-1" || p.Data.DurationSeconds != 42 || p.Data.Tenant != "acme" ||
		p.Data.Direction != "outbound" || p.Data.EventID != "evt-1" {
		t.Fatalf("payload %+v", p)
	}
	if d.outbox.len() != 0 {
		t.Fatalf("outbox holds %d after delivery", d.outbox.len())
	}
}

func TestRetriesThenDeadLetterThenReplay(t *testing.T) {
	fixed := make(chan struct{})
	rcv := newReceiver(t, func(int) (int, http.Header) {
		select {
		case <-fixed:
			return http.StatusOK, nil
		default:
			return http.StatusInternalServerError, nil
		}
	})
	d := newDeliverer(t, t.TempDir(), rcv.URL, nil)
	run(t, d)
	ev := callEvent("evt-dead")
	if err := d.Forward(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dead letter", func() bool { return d.dead.len() == 1 })
	if rcv.hits() != 3 { // the first attempt and two retries
		t.Fatalf("%d attempts, want 3", rcv.hits())
	}
	if got := d.counter("crm", "failed"); got != 3 {
		t.Fatalf("failed = %v", got)
	}
	dl, err := d.List(context.Background(), 10)
	if err != nil || len(dl) != 1 {
		t.Fatalf("list: %+v %v", dl, err)
	}
	if dl[0].Attempts != 3 || !strings.Contains(dl[0].LastError, "500") || dl[0].Destination != "crm" ||
		dl[0].MsgID != MessageID(ev) || dl[0].Type != "call.ended" {
		t.Fatalf("dead letter %+v", dl[0])
	}
	if err := d.Replay(context.Background(), "crm-msg_00000000000000000000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replay of an unknown id: %v", err)
	}
	if err := d.Replay(context.Background(), "../../etc/passwd"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replay of a path: %v", err)
	}
	close(fixed)
	if err := d.Replay(context.Background(), dl[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replayed delivery", func() bool { return d.counter("crm", "delivered") == 1 })
	if d.dead.len() != 0 || rcv.byID[MessageID(ev)] != 4 {
		t.Fatalf("after replay: dead %d, by id %v", d.dead.len(), rcv.byID)
	}
	if dl, _ := d.List(context.Background(), 0); len(dl) != 0 {
		t.Fatalf("list after replay: %+v", dl)
	}
}

func TestHonoursRetryAfter(t *testing.T) {
	rcv := newReceiver(t, func(n int) (int, http.Header) {
		if n == 1 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}
		}
		return http.StatusOK, nil
	})
	d := newDeliverer(t, t.TempDir(), rcv.URL, nil)
	run(t, d)
	if err := d.Forward(context.Background(), callEvent("evt-429")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after 429", func() bool { return d.counter("crm", "delivered") == 1 })
	rcv.mu.Lock()
	gap := rcv.times[1].Sub(rcv.times[0])
	rcv.mu.Unlock()
	if gap < 900*time.Millisecond {
		t.Fatalf("retried %v after a 429 with Retry-After: 1", gap)
	}
	if d.counter("crm", "rate_limited") != 1 {
		t.Fatal("429 not counted")
	}
}

func TestGoneDisablesDestination(t *testing.T) {
	var gone atomic.Bool
	gone.Store(true)
	rcv := newReceiver(t, func(int) (int, http.Header) {
		if gone.Load() {
			return http.StatusGone, nil
		}
		return http.StatusOK, nil
	})
	d := newDeliverer(t, t.TempDir(), rcv.URL, nil)
	run(t, d)
	if err := d.Forward(context.Background(), callEvent("evt-1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "disabled", func() bool { return d.Disabled("crm") && d.dead.len() == 1 })
	if err := d.Forward(context.Background(), callEvent("evt-2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "second dead letter", func() bool { return d.dead.len() == 2 })
	if rcv.hits() != 1 {
		t.Fatalf("a disabled destination got %d requests", rcv.hits())
	}
	dl, _ := d.List(context.Background(), 1)
	if len(dl) != 1 || !strings.Contains(dl[0].LastError, "410") {
		t.Fatalf("list %+v", dl)
	}
	// The receiver is back; a replay re-enables the destination and the
	// delivery goes through. (Checked after the delivery: were the
	// receiver still gone, the replayed attempt would disable it again.)
	gone.Store(false)
	if err := d.Replay(context.Background(), dl[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replayed delivery", func() bool { return rcv.hits() == 2 })
	if d.Disabled("crm") {
		t.Fatal("replay did not re-enable the destination")
	}
}

func TestBreakerHoldsAttemptsDuringCooldown(t *testing.T) {
	rcv := newReceiver(t, func(int) (int, http.Header) { return http.StatusServiceUnavailable, nil })
	const cooldown = 400 * time.Millisecond
	d := newDeliverer(t, t.TempDir(), rcv.URL, func(c *Config) {
		c.Schedule = []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond}
		c.BreakerThreshold, c.BreakerCooldown = 2, cooldown
	})
	run(t, d)
	if err := d.Forward(context.Background(), callEvent("evt-1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a probe after the cooldown", func() bool { return rcv.hits() >= 3 })
	rcv.mu.Lock()
	gap := rcv.times[2].Sub(rcv.times[1])
	rcv.mu.Unlock()
	if gap < cooldown-10*time.Millisecond {
		t.Fatalf("third attempt %v after the breaker opened; cooldown is %v", gap, cooldown)
	}
	if d.counter("crm", "deferred") == 0 {
		t.Fatal("no deferral counted while the breaker was open")
	}
}

func TestBreakerStates(t *testing.T) {
	b := &breaker{threshold: 2, cooldown: time.Minute}
	t0 := time.Unix(0, 0)
	for range 2 {
		if ok, _ := b.allow(t0); !ok {
			t.Fatal("closed breaker refused")
		}
		b.result(false, t0)
	}
	if ok, at := b.allow(t0.Add(time.Second)); ok || !at.Equal(t0.Add(time.Minute)) {
		t.Fatalf("open breaker: ok %v, retry at %v", ok, at)
	}
	if ok, _ := b.allow(t0.Add(time.Minute)); !ok {
		t.Fatal("no probe after the cooldown")
	}
	if ok, _ := b.allow(t0.Add(time.Minute)); ok {
		t.Fatal("a second probe while the first is out")
	}
	b.result(false, t0.Add(time.Minute))
	if ok, _ := b.allow(t0.Add(time.Minute + time.Second)); ok {
		t.Fatal("failed probe did not reopen")
	}
	if ok, _ := b.allow(t0.Add(2 * time.Minute)); !ok {
		t.Fatal("no second probe")
	}
	b.result(true, t0.Add(2*time.Minute))
	if ok, _ := b.allow(t0.Add(2 * time.Minute)); !ok || b.open() {
		t.Fatal("successful probe did not close")
	}
}

func TestRefusesInternalDestinationWithoutAllowlist(t *testing.T) {
	rcv := newReceiver(t, nil)
	d := newDeliverer(t, t.TempDir(), rcv.URL, func(c *Config) { c.Allow = nil })
	run(t, d)
	if err := d.Forward(context.Background(), callEvent("evt-1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dead letter", func() bool { return d.dead.len() == 1 })
	dl, _ := d.List(context.Background(), 1)
	if rcv.hits() != 0 || len(dl) != 1 || !strings.Contains(dl[0].LastError, "not allowed") {
		t.Fatalf("hits %d, dead letters %+v", rcv.hits(), dl)
	}
	if strings.Contains(dl[0].LastError, rcv.URL) {
		t.Fatal("the URL leaked into the error")
	}
}

func TestRedirectIsAFailure(t *testing.T) {
	rcv := newReceiver(t, func(int) (int, http.Header) {
		return http.StatusTemporaryRedirect, http.Header{"Location": {"http://169.254.169.254/latest/meta-data"}}
	})
	d := newDeliverer(t, t.TempDir(), rcv.URL, nil)
	run(t, d)
	if err := d.Forward(context.Background(), callEvent("evt-1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dead letter", func() bool { return d.dead.len() == 1 })
	if rcv.hits() != 3 {
		t.Fatalf("hits %d", rcv.hits())
	}
}

func TestOutboxSurvivesRestart(t *testing.T) {
	rcv := newReceiver(t, nil)
	dir := t.TempDir()
	d := newDeliverer(t, dir, rcv.URL, nil)
	if err := d.Forward(context.Background(), callEvent("evt-1")); err != nil {
		t.Fatal(err)
	}
	d2 := newDeliverer(t, dir, rcv.URL, nil) // a new process on the same directory
	if d2.outbox.len() != 1 {
		t.Fatalf("outbox after restart: %d", d2.outbox.len())
	}
	run(t, d2)
	waitFor(t, "delivery", func() bool { return d2.counter("crm", "delivered") == 1 })
}

func TestOutboxFullRefusesForward(t *testing.T) {
	d := newDeliverer(t, t.TempDir(), "https://crm.example.net/hook", func(c *Config) { c.MaxPending = 1 })
	if err := d.Forward(context.Background(), callEvent("evt-1")); err != nil {
		t.Fatal(err)
	}
	if err := d.Forward(context.Background(), callEvent("evt-2")); !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("forward into a full outbox: %v", err)
	}
}

func TestNewRefusesBadDestinations(t *testing.T) {
	for name, dest := range map[string]Destination{
		"bad name":  {Name: "CRM!", Tenant: "a", URL: "https://x", Secrets: [][]byte{signingKey}},
		"no tenant": {Name: "crm", URL: "https://x", Secrets: [][]byte{signingKey}},
		"scheme":    {Name: "crm", Tenant: "a", URL: "file:///etc/passwd", Secrets: [][]byte{signingKey}},
		"userinfo":  {Name: "crm", Tenant: "a", URL: "https://u:p@x/", Secrets: [][]byte{signingKey}},
		"no secret": {Name: "crm", Tenant: "a", URL: "https://x"},
	} {
		if _, err := New(Config{Dir: t.TempDir(), Destinations: []Destination{dest}}, nil, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(Config{}, nil, nil); err == nil {
		t.Error("no directory accepted")
	}
}

// TestWorkerToDestination wires the pieces as the daemon will: a queued
// envelope is normalised by the webhook worker, fed to the engine sink and
// forwarded to the destination.
func TestWorkerToDestination(t *testing.T) {
	q, err := queue.Open(context.Background(), queue.Options{Embedded: true, DataDir: t.TempDir(), NakDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	rcv := newReceiver(t, nil)
	d := newDeliverer(t, t.TempDir(), rcv.URL, nil)
	run(t, d)
	seen := make(chan event.Event, 10)
	w, err := webhook.NewWorker(webhook.WorkerConfig{
		Sources: map[string]webhook.Mapping{"telco": {Preset: "envelope-data"}},
		Sink:    func(_ context.Context, ev event.Event) error { seen <- ev; return nil },
		Forward: d,
	}, q, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	data, _ := json.Marshal(webhook.Envelope{Source: "telco", Tenant: "acme", ID: "evt-9", Received: time.Now(),
		Body: []byte(`{"type":"call.answered","data":{"call_id":"c9","from":"+441234","to":"+33123"}}`)})
	if _, err := q.Publish(context.Background(), webhook.DedupeKey("telco", "evt-9"), data); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-seen:
		if ev.Kind != event.CallAnswered || ev.CallID != "c9" || ev.Tenant != "acme" {
			t.Fatalf("engine got %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("engine got nothing")
	}
	waitFor(t, "delivery", func() bool { return d.counter("crm", "delivered") == 1 })
}
