package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/queue"
)

func openQueue(t *testing.T) *queue.Queue {
	t.Helper()
	q, err := queue.Open(context.Background(), queue.Options{Embedded: true, DataDir: t.TempDir(), NakDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func publishEnvelope(t *testing.T, q *queue.Queue, id string, body string) {
	t.Helper()
	data, err := json.Marshal(Envelope{Source: "telco", Tenant: "acme", ID: id, Received: received, Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Publish(context.Background(), DedupeKey("telco", id), data); err != nil {
		t.Fatal(err)
	}
}

// recorder is a sink that counts events by call id and can fail on purpose.
type recorder struct {
	mu       sync.Mutex
	got      map[string]int
	failures map[string]int // call id → failures still to return
	all      chan event.Event
}

func newRecorder() *recorder {
	return &recorder{got: map[string]int{}, failures: map[string]int{}, all: make(chan event.Event, 1000)}
}

func (r *recorder) sink(_ context.Context, ev event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failures[ev.CallID] > 0 {
		r.failures[ev.CallID]--
		return errors.New("engine busy")
	}
	r.got[ev.CallID]++
	r.all <- ev
	return nil
}

func runWorker(t *testing.T, q *queue.Queue, cfg WorkerConfig) (*Worker, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.Sources == nil {
		cfg.Sources = map[string]Mapping{"telco": {Preset: "flat"}}
	}
	w, err := NewWorker(cfg, q, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker run: %v", err)
		}
	})
	return w, reg
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWorkerDeliversEachEventOnce(t *testing.T) {
	q := openQueue(t)
	rec := newRecorder()
	w, _ := runWorker(t, q, WorkerConfig{Sink: rec.sink})
	const n = 50
	for i := range n {
		publishEnvelope(t, q, fmt.Sprintf("evt-%d", i), fmt.Sprintf(`{"call_id":"c%d","status":"ended","duration":3}`, i))
	}
	waitFor(t, "all events", func() bool { return counterValue(w.metrics.events.WithLabelValues("handled")) == n })
	waitFor(t, "an empty queue", func() bool { d, _ := q.Depth(context.Background()); return d == 0 })
	time.Sleep(50 * time.Millisecond) // room for a stray redelivery to show
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) != n {
		t.Fatalf("sink saw %d calls, want %d", len(rec.got), n)
	}
	for id, c := range rec.got {
		if c != 1 {
			t.Errorf("call %s delivered %d times", id, c)
		}
	}
	ev := <-rec.all
	if ev.Kind != event.CallEnded || ev.Tenant != "acme" || ev.Duration != 3*time.Second {
		t.Fatalf("event %+v", ev)
	}
}

func TestWorkerRetriesTransientSinkErrors(t *testing.T) {
	q := openQueue(t)
	rec := newRecorder()
	rec.failures["flaky"] = 2
	w, _ := runWorker(t, q, WorkerConfig{Sink: rec.sink})
	publishEnvelope(t, q, "evt-flaky", `{"call_id":"flaky","status":"answered"}`)
	select {
	case ev := <-rec.all:
		if ev.CallID != "flaky" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event not delivered after the sink recovered")
	}
	if got := counterValue(w.metrics.events.WithLabelValues("retried")); got != 2 {
		t.Fatalf("retried = %v, want 2 (delivered on the third attempt)", got)
	}
}

type fakeForwarder struct {
	mu  sync.Mutex
	got []CallEvent
	err error
}

func (f *fakeForwarder) Forward(_ context.Context, ev CallEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.got = append(f.got, ev)
	return nil
}

func TestWorkerDropsPoison(t *testing.T) {
	q := openQueue(t)
	rec := newRecorder()
	fw := &fakeForwarder{}
	w, _ := runWorker(t, q, WorkerConfig{Sink: rec.sink, Forward: fw})
	if _, err := q.Publish(context.Background(), "raw/1", []byte("not an envelope")); err != nil {
		t.Fatal(err)
	}
	publishEnvelope(t, q, "evt-bad", `{"call_id":"c","status":"recording.ready"}`)
	data, _ := json.Marshal(Envelope{Source: "gone", Tenant: "acme", ID: "x", Body: []byte(`{}`)})
	if _, err := q.Publish(context.Background(), "gone/x", data); err != nil {
		t.Fatal(err)
	}
	publishEnvelope(t, q, "evt-good", `{"call_id":"good","status":"ended"}`)
	<-rec.all
	waitFor(t, "poison acknowledged", func() bool { d, _ := q.Depth(context.Background()); return d == 0 })
	for _, reason := range []string{"undecodable", "unmapped", "unknown_source"} {
		if got := counterValue(w.metrics.dropped.WithLabelValues(reason)); got != 1 {
			t.Errorf("dropped[%s] = %v, want 1", reason, got)
		}
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if len(fw.got) != 1 || fw.got[0].CallID != "good" || fw.got[0].Source != "telco" {
		t.Fatalf("forwarded %+v", fw.got)
	}
}

func TestWorkerPermanentSinkError(t *testing.T) {
	q := openQueue(t)
	var calls sync.WaitGroup
	calls.Add(1)
	w, _ := runWorker(t, q, WorkerConfig{Sink: func(context.Context, event.Event) error {
		defer calls.Done()
		return fmt.Errorf("engine: %w", ErrPermanent)
	}})
	publishEnvelope(t, q, "evt-1", `{"call_id":"c","status":"ended"}`)
	calls.Wait() // a second call would panic the WaitGroup
	waitFor(t, "acknowledged", func() bool { d, _ := q.Depth(context.Background()); return d == 0 })
	if got := counterValue(w.metrics.dropped.WithLabelValues("sink_refused")); got != 1 {
		t.Fatalf("sink_refused = %v", got)
	}
}

func TestNewWorkerRefuses(t *testing.T) {
	q := openQueue(t)
	sink := func(context.Context, event.Event) error { return nil }
	if _, err := NewWorker(WorkerConfig{}, q, nil, nil); err == nil {
		t.Error("no sink accepted")
	}
	if _, err := NewWorker(WorkerConfig{Sink: sink, Sources: map[string]Mapping{"s": {Preset: "nope"}}}, q, nil, nil); err == nil {
		t.Error("bad mapping accepted")
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
