// Package queuetest is the behaviour every queue backend (embedded and
// external JetStream) must show. A backend's test calls Run with a function
// that opens a Queue from the Options the suite chose.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/queue"
)

// Open opens a Queue on the backend under test from o, completing o with
// what the backend needs (Embedded or URL). Calling it again with the same
// o must reach the same stored data: that is how the suite tests survival
// across Close and reopen. The Queue must be closed at the end of the test
// (t.Cleanup); Close is idempotent.
type Open func(t *testing.T, o queue.Options) *queue.Queue

const wait = 10 * time.Second

// Run runs the suite.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open, queue.Options)
	}{
		{"RoundTrip", testRoundTrip},
		{"DedupeByID", testDedupe},
		{"RedeliveryAfterError", testRedelivery},
		{"SurvivesReopen", testReopen},
		{"OrderPerPublish", testOrder},
		{"FullStreamRefuses", testFull},
		{"ClosedRefuses", testClosed},
		{"EmptyIDRefused", testNoID},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := queue.Options{
				DataDir:  t.TempDir(),
				Stream:   fmt.Sprintf("QT_%d_%d", time.Now().UnixNano(), i),
				NakDelay: 20 * time.Millisecond,
				AckWait:  5 * time.Second,
			}
			o.Subject = "qt." + strings.ToLower(o.Stream)
			tt.fn(t, open, o)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return c
}

func publish(t *testing.T, q *queue.Queue, id, data string) bool {
	t.Helper()
	dup, err := q.Publish(ctx(t), id, []byte(data))
	if err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
	return dup
}

// consumer runs Consume in the background and hands each message to msgs
// after handler (nil: succeed) returns.
type consumer struct {
	msgs chan queue.Msg
	stop func()
}

func consume(t *testing.T, q *queue.Queue, durable string, handler func(queue.Msg) error) *consumer {
	t.Helper()
	c := &consumer{msgs: make(chan queue.Msg, 1024)}
	cctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := q.Consume(cctx, durable, func(_ context.Context, m queue.Msg) error {
			var err error
			if handler != nil {
				err = handler(m)
			}
			if err == nil {
				c.msgs <- m
			}
			return err
		})
		if err != nil {
			t.Errorf("consume: %v", err)
		}
	}()
	c.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(c.stop)
	return c
}

func (c *consumer) next(t *testing.T) queue.Msg {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(wait):
		t.Fatal("no message within", wait)
		return queue.Msg{}
	}
}

func depthEventually(t *testing.T, q *queue.Queue, want uint64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		d, err := q.Depth(ctx(t))
		if err != nil {
			t.Fatalf("depth: %v", err)
		}
		if d == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("depth = %d, want %d", d, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testRoundTrip(t *testing.T, open Open, o queue.Options) {
	q := open(t, o)
	if dup := publish(t, q, "evt-1", `{"a":1}`); dup {
		t.Fatal("first publish reported duplicate")
	}
	depthEventually(t, q, 1)
	c := consume(t, q, "worker", nil)
	m := c.next(t)
	if m.ID != "evt-1" || string(m.Data) != `{"a":1}` || m.Delivered != 1 || m.Seq == 0 || m.Time.IsZero() {
		t.Fatalf("got %+v", m)
	}
	depthEventually(t, q, 0) // acknowledged messages leave the queue
}

func testDedupe(t *testing.T, open Open, o queue.Options) {
	q := open(t, o)
	publish(t, q, "same", "first")
	if dup := publish(t, q, "same", "second"); !dup {
		t.Fatal("second publish of the same id not reported as duplicate")
	}
	publish(t, q, "other", "third")
	depthEventually(t, q, 2)
	c := consume(t, q, "worker", nil)
	if m := c.next(t); string(m.Data) != "first" {
		t.Fatalf("first message = %q, want the first publish", m.Data)
	}
	if m := c.next(t); m.ID != "other" {
		t.Fatalf("second message id = %q, want other", m.ID)
	}
	// Consumed ids are still remembered while the server runs.
	if dup := publish(t, q, "same", "again"); !dup {
		t.Fatal("id forgotten after its message was consumed")
	}
}

func testRedelivery(t *testing.T, open Open, o queue.Options) {
	q := open(t, o)
	publish(t, q, "flaky", "x")
	var mu sync.Mutex
	calls := 0
	c := consume(t, q, "worker", func(m queue.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls < 3 {
			return errors.New("downstream down")
		}
		return nil
	})
	m := c.next(t)
	if m.Delivered != 3 || m.ID != "flaky" {
		t.Fatalf("got delivery %d of %q, want 3rd of flaky", m.Delivered, m.ID)
	}
	depthEventually(t, q, 0)
}

func testReopen(t *testing.T, open Open, o queue.Options) {
	q := open(t, o)
	publish(t, q, "keep-1", "one")
	publish(t, q, "keep-2", "two")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = open(t, o)
	depthEventually(t, q, 2)
	// The ids of messages still stored are remembered across the restart.
	if dup := publish(t, q, "keep-1", "one again"); !dup {
		t.Fatal("id of a stored message forgotten after reopen")
	}
	c := consume(t, q, "worker", nil)
	if a, b := c.next(t), c.next(t); string(a.Data) != "one" || string(b.Data) != "two" {
		t.Fatalf("after reopen got %q, %q", a.Data, b.Data)
	}
}

func testOrder(t *testing.T, open Open, o queue.Options) {
	q := open(t, o)
	const n = 100
	for i := range n {
		publish(t, q, fmt.Sprintf("m-%03d", i), fmt.Sprint(i))
	}
	c := consume(t, q, "worker", nil)
	var last uint64
	for i := range n {
		m := c.next(t)
		if m.Data == nil || string(m.Data) != fmt.Sprint(i) || m.Seq <= last {
			t.Fatalf("message %d: got %q seq %d after seq %d", i, m.Data, m.Seq, last)
		}
		last = m.Seq
	}
}

func testFull(t *testing.T, open Open, o queue.Options) {
	o.MaxBytes = 4 << 10
	q := open(t, o)
	data := make([]byte, 512)
	for i := range 64 {
		_, err := q.Publish(ctx(t), fmt.Sprint(i), data)
		if errors.Is(err, queue.ErrFull) {
			if i == 0 {
				t.Fatal("empty stream refused a message")
			}
			return
		}
		if err != nil {
			t.Fatalf("publish %d: %v, want nil or ErrFull", i, err)
		}
	}
	t.Fatal("a stream of 4 KiB took 32 KiB without ErrFull")
}

func testClosed(t *testing.T, open Open, o queue.Options) {
	q := open(t, o)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Publish(ctx(t), "late", nil); !errors.Is(err, queue.ErrClosed) {
		t.Fatalf("publish after close: %v, want ErrClosed", err)
	}
	done := make(chan error, 1)
	go func() { done <- q.Consume(ctx(t), "worker", func(context.Context, queue.Msg) error { return nil }) }()
	select {
	case <-done: // an error or nil: either way it must not hang
	case <-time.After(wait):
		t.Fatal("Consume on a closed queue did not return")
	}
}

func testNoID(t *testing.T, open Open, o queue.Options) {
	q := open(t, o)
	if _, err := q.Publish(ctx(t), "", []byte("x")); !errors.Is(err, queue.ErrNoID) {
		t.Fatalf("publish without id: %v, want ErrNoID", err)
	}
}
