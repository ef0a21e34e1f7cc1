package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/store"
)

// fakeStore records applied batches; fail decides whether an Apply fails,
// and gate, when set, holds every Apply until it is closed.
type fakeStore struct {
	store.Store
	mu      sync.Mutex
	calls   int
	batches [][]event.Change
	fail    func(call int) error
	gate    chan struct{}
}

func (f *fakeStore) Apply(_ context.Context, changes []event.Change) error {
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		if err := f.fail(f.calls); err != nil {
			return err
		}
	}
	// Copy: the Writer reuses nothing, but a store must not rely on that.
	f.batches = append(f.batches, slices.Clone(changes))
	return nil
}

func (f *fakeStore) written() []event.Change {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Concat(f.batches...)
}

func suspend(account string) event.Change {
	return event.Change{Op: event.OpPutSuspension, Suspension: &event.Suspension{Tenant: "t1", Account: account}}
}

func run(t *testing.T, w *store.Writer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop = sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { stop() })
	return stop
}

func flush(t *testing.T, w *store.Writer) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return w.Flush(ctx)
}

func accounts(cs []event.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Suspension.Account)
	}
	return out
}

func TestWriterKeepsOrder(t *testing.T) {
	f := &fakeStore{}
	w := store.NewWriter(f, nil, store.WriterOptions{MaxBatch: 3})
	run(t, w)
	var want []string
	for _, a := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		w.Submit(suspend(a))
		want = append(want, a)
	}
	if err := flush(t, w); err != nil {
		t.Fatal(err)
	}
	if got := accounts(f.written()); !slices.Equal(got, want) {
		t.Errorf("written %v, want %v", got, want)
	}
	for _, b := range f.batches {
		if len(b) > 3 {
			t.Errorf("batch of %d over MaxBatch 3", len(b))
		}
	}
}

func TestWriterRetries(t *testing.T) {
	f := &fakeStore{fail: func(call int) error {
		if call < 3 {
			return errors.New("database is locked")
		}
		return nil
	}}
	w := store.NewWriter(f, nil, store.WriterOptions{})
	run(t, w)
	w.Submit(suspend("a"), suspend("b"))
	if err := flush(t, w); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got := accounts(f.written()); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("written %v after retries", got)
	}
	if s := w.Stats(); s.Errors != 2 || s.Dropped != 0 || s.Changes != 2 || s.Batches != 1 {
		t.Errorf("stats = %+v, want 2 errors, 2 changes in 1 batch", s)
	}
}

func TestWriterDropsAfterRetries(t *testing.T) {
	failing := true
	var mu sync.Mutex
	f := &fakeStore{fail: func(int) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return errors.New("disk I/O error")
		}
		return nil
	}}
	w := store.NewWriter(f, nil, store.WriterOptions{})
	run(t, w)
	w.Submit(suspend("lost"))
	if err := flush(t, w); !errors.Is(err, store.ErrDropped) {
		t.Fatalf("Flush: err = %v, want ErrDropped", err)
	}
	s := w.Stats()
	if s.Dropped != 1 || s.Errors < 2 || s.Changes != 0 {
		t.Errorf("stats = %+v, want the change dropped after several errors", s)
	}
	// The writer carries on with later batches.
	mu.Lock()
	failing = false
	mu.Unlock()
	w.Submit(suspend("kept"))
	if err := flush(t, w); err != nil {
		t.Fatalf("Flush after recovery: %v", err)
	}
	if got := accounts(f.written()); !slices.Equal(got, []string{"kept"}) {
		t.Errorf("written %v, want [kept]", got)
	}
}

func TestWriterSkipsInvalidChanges(t *testing.T) {
	f := &fakeStore{}
	w := store.NewWriter(f, nil, store.WriterOptions{})
	run(t, w)
	w.Submit(suspend("a"), event.Change{Op: event.OpPutCall}, event.Change{Op: "bogus"}, suspend("b"))
	if err := flush(t, w); err != nil {
		t.Fatal(err)
	}
	if got := accounts(f.written()); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("written %v, want the valid changes [a b]", got)
	}
	if s := w.Stats(); s.Dropped != 2 || s.Errors != 0 {
		t.Errorf("stats = %+v, want 2 dropped and no Apply errors", s)
	}
}

func TestWriterSnapshotsRecords(t *testing.T) {
	f := &fakeStore{gate: make(chan struct{})}
	w := store.NewWriter(f, nil, store.WriterOptions{})
	run(t, w)
	rec := &event.Suspension{Tenant: "t1", Account: "before"}
	d := &event.Decision{Tenant: "t1", Reasons: []event.Reason{{Rule: "before"}}}
	w.Submit(event.Change{Op: event.OpPutSuspension, Suspension: rec}, event.Change{Op: event.OpDecision, Decision: d})
	rec.Account = "after" // the caller reuses its record
	d.Reasons[0].Rule = "after"
	close(f.gate)
	if err := flush(t, w); err != nil {
		t.Fatal(err)
	}
	got := f.written()
	if got[0].Suspension.Account != "before" || got[1].Decision.Reasons[0].Rule != "before" {
		t.Errorf("written %+v / %+v; want the records as submitted", got[0].Suspension, got[1].Decision.Reasons)
	}
}

func TestWriterBackPressure(t *testing.T) {
	f := &fakeStore{gate: make(chan struct{})}
	w := store.NewWriter(f, nil, store.WriterOptions{QueueSize: 4, MaxBatch: 2, FlushInterval: time.Millisecond})
	run(t, w)
	// The first batch is taken and held in Apply; then the queue fills.
	w.Submit(suspend("0"), suspend("1"))
	deadline := time.Now().Add(5 * time.Second)
	for w.Stats().Queued != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run never took the first batch")
		}
		time.Sleep(time.Millisecond)
	}
	w.Submit(suspend("2"), suspend("3"), suspend("4"), suspend("5"))
	submitted := make(chan struct{})
	go func() {
		w.Submit(suspend("6"))
		close(submitted)
	}()
	select {
	case <-submitted:
		t.Fatal("Submit returned while the queue was full")
	case <-time.After(50 * time.Millisecond):
	}
	close(f.gate)
	select {
	case <-submitted:
	case <-time.After(5 * time.Second):
		t.Fatal("Submit still blocked after the store caught up")
	}
	if err := flush(t, w); err != nil {
		t.Fatal(err)
	}
	if got := accounts(f.written()); !slices.Equal(got, []string{"0", "1", "2", "3", "4", "5", "6"}) {
		t.Errorf("written %v", got)
	}
	if s := w.Stats(); s.Dropped != 0 {
		t.Errorf("back-pressure dropped %d changes", s.Dropped)
	}
}

func TestWriterFlushHonoursContext(t *testing.T) {
	w := store.NewWriter(&fakeStore{}, nil, store.WriterOptions{})
	// No Run: nothing is ever written.
	w.Submit(suspend("a"))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := w.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush without Run: err = %v, want DeadlineExceeded", err)
	}
	// Run drains what was queued before it started, even when its context
	// is already done.
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := w.Run(done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := w.Stats(); s.Changes != 1 {
		t.Errorf("stats = %+v, want the queued change written by the drain", s)
	}
	if err := flush(t, w); err != nil {
		t.Errorf("Flush after drain: %v", err)
	}
}

func TestCursor(t *testing.T) {
	c := store.EncodeCursor("t1", 12345)
	if id, err := store.DecodeCursor("t1", c); err != nil || id != 12345 {
		t.Errorf("DecodeCursor = %d, %v; want 12345", id, err)
	}
	if _, err := store.DecodeCursor("t2", c); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("cursor of t1 for t2: err = %v, want ErrBadCursor", err)
	}
	if id, err := store.DecodeCursor("t1", ""); err != nil || id != 0 {
		t.Errorf("empty cursor = %d, %v; want 0, nil", id, err)
	}
	for _, bad := range []string{store.EncodeCursor("t1", 0), store.EncodeCursor("t1", -1), "====", c[:len(c)-1]} {
		if _, err := store.DecodeCursor("t1", bad); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("cursor %q: err = %v, want ErrBadCursor", bad, err)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add("t1", store.EncodeCursor("t1", 7))
	f.Add("t1", "")
	f.Add("", "AAAA")
	f.Fuzz(func(t *testing.T, tenant, cursor string) {
		id, err := store.DecodeCursor(tenant, cursor)
		if err == nil && cursor != "" && (id <= 0 || store.EncodeCursor(tenant, id) != cursor) {
			t.Errorf("DecodeCursor(%q, %q) = %d without error, which does not re-encode", tenant, cursor, id)
		}
	})
}

func BenchmarkWriterSubmitNop(b *testing.B) {
	w := store.NewWriter(nopStore{}, nil, store.WriterOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	d := &event.Decision{Tenant: "t1", Verdict: event.Deny, Reasons: []event.Reason{{Rule: "r"}}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Submit(event.Change{Op: event.OpDecision, Decision: d})
		}
	})
	b.StopTimer()
	cancel()
	<-done
}

// nopStore accepts everything and stores nothing.
type nopStore struct{ store.Store }

func (nopStore) Apply(context.Context, []event.Change) error { return nil }

// A store that falls behind sheds decision-log and call-history records,
// never durable state, so decisions are not slowed down by their own log.
func TestWriterShedsDecisionLogNotState(t *testing.T) {
	f := &fakeStore{gate: make(chan struct{})}
	w := store.NewWriter(f, nil, store.WriterOptions{MaxBatch: 4, QueueSize: 1000, ShedLogAbove: 10})
	stop := run(t, w)
	decision := func(id string) event.Change {
		return event.Change{Op: event.OpDecision, Decision: &event.Decision{Tenant: "t1", CallID: id, Verdict: event.Allow}}
	}
	// Fill the queue past the shedding mark while the store is stuck.
	for i := range 20 {
		w.Submit(suspend("a" + string(rune('a'+i))))
	}
	call := &event.CallRecord{Tenant: "t1", CallID: "shed-me-too", To: "+442079460000", Start: time.Unix(1e9, 0), End: time.Unix(1e9+60, 0)}
	w.Submit(decision("shed-me"), event.Change{Op: event.OpPutHistory, History: call}, suspend("kept"))
	if st := w.Stats(); st.Shed != 2 {
		t.Fatalf("shed = %d, want 2: the decision and the call-history record (queued %d)", st.Shed, st.Queued)
	}
	close(f.gate)
	if err := flush(t, w); err != nil {
		t.Fatal(err)
	}
	got := f.written()
	if len(got) != 21 || got[20].Suspension.Account != "kept" {
		t.Fatalf("wrote %d changes, last %+v; want the 20 suspensions and \"kept\"", len(got), got[len(got)-1])
	}
	// Below the mark, decisions are written again.
	w.Submit(decision("written"))
	if err := flush(t, w); err != nil {
		t.Fatal(err)
	}
	if got := f.written(); got[len(got)-1].Decision == nil || got[len(got)-1].Decision.CallID != "written" {
		t.Fatalf("decision below the mark not written")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Alerts and ban records in the decision log are not shed: an alert is
// raised once per window, so a shed one is never on record.
func TestWriterKeepsAlertsWhenShedding(t *testing.T) {
	f := &fakeStore{gate: make(chan struct{})}
	w := store.NewWriter(f, nil, store.WriterOptions{MaxBatch: 4, QueueSize: 1000, ShedLogAbove: 10})
	stop := run(t, w)
	for i := range 20 {
		w.Submit(suspend("a" + string(rune('a'+i))))
	}
	rules := []string{"webhook.signature_failures", "webhook.duplicates", "sip.flood", "ban.lifted"}
	for _, rule := range rules {
		w.Submit(event.Change{Op: event.OpDecision, Decision: &event.Decision{Tenant: "t1", Verdict: event.Challenge,
			Reasons: []event.Reason{{Rule: rule, Mode: event.Enforce, Verdict: event.Challenge}}}})
	}
	w.Submit(event.Change{Op: event.OpDecision, Decision: &event.Decision{Tenant: "t1", CallID: "shed-me", Verdict: event.Allow}})
	shed := w.Stats().Shed
	close(f.gate)
	if shed != 1 {
		t.Fatalf("shed = %d, want 1: only the call's decision", shed)
	}
	if err := flush(t, w); err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, c := range f.written() {
		if c.Decision != nil {
			kept = append(kept, c.Decision.Reasons[0].Rule)
		}
	}
	if !slices.Equal(kept, rules) {
		t.Fatalf("alerts written %v, want %v", kept, rules)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
