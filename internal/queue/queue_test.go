package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/telguard/telguard/internal/queue"
	"github.com/telguard/telguard/internal/queue/queuetest"
)

func openWith(t *testing.T, o queue.Options) *queue.Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := queue.Open(ctx, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func TestEmbedded(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, o queue.Options) *queue.Queue {
		o.Embedded = true
		return openWith(t, o)
	})
}

// TestExternal runs the suite against a separate NATS server reached over
// TCP by URL: the code path of a real cluster.
func TestExternal(t *testing.T) {
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoSigs:    true,
		NoLog:     true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("external nats not ready")
	}
	url := srv.ClientURL()
	queuetest.Run(t, func(t *testing.T, o queue.Options) *queue.Queue {
		o.URL = url
		return openWith(t, o)
	})
}

func TestOpenRefusesBadOptions(t *testing.T) {
	for _, o := range []queue.Options{
		{Embedded: true}, // no data dir
		{},               // neither embedded nor URL
		{Embedded: true, DataDir: t.TempDir(), Subject: "a.*"}, // wildcard subject
		{Embedded: true, DataDir: t.TempDir(), MaxBytes: -1},
	} {
		if q, err := queue.Open(context.Background(), o); err == nil {
			q.Close()
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
}

// TestEmbeddedForgetsConsumedIDsAcrossRestart pins the documented limit of
// the dedupe window: a restarted server rebuilds it from the messages still
// stored, and work-queue retention deleted the consumed ones.
func TestEmbeddedForgetsConsumedIDsAcrossRestart(t *testing.T) {
	o := queue.Options{Embedded: true, DataDir: t.TempDir(), NakDelay: 10 * time.Millisecond}
	q := openWith(t, o)
	if _, err := q.Publish(context.Background(), "once", []byte("x")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(ctx, "w", func(context.Context, queue.Msg) error { got <- struct{}{}; return nil })
	}()
	<-got
	for d := uint64(1); d != 0; d, _ = q.Depth(context.Background()) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	q.Close()
	q = openWith(t, o)
	dup, err := q.Publish(context.Background(), "once", []byte("x"))
	if err != nil || dup {
		t.Fatalf("after restart: dup=%v err=%v; the documented limit changed, update the package doc", dup, err)
	}
}
