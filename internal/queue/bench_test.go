package queue_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/queue"
)

// BenchmarkPublish is the ingress's hot path: durable publishes from
// several handlers at once into the embedded server's file store.
func BenchmarkPublish(b *testing.B) {
	q, err := queue.Open(context.Background(), queue.Options{Embedded: true, DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	data := make([]byte, 600)
	var n atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := q.Publish(ctx, "id-"+strconv.FormatInt(n.Add(1), 10), data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDedupeMemory measures what JetStream's duplicate window costs:
// the server keeps every message id published within the window in
// memory, consumed or not. It publishes b.N ids of the ingress's length
// (a provider's id, about 30 bytes), consumes and acknowledges them so the
// stream itself stays empty, and reports the live heap each id still holds.
func BenchmarkDedupeMemory(b *testing.B) {
	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Options{Embedded: true, DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	cctx, cancel := context.WithCancel(ctx)
	var consumed atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(cctx, "bench", func(context.Context, queue.Msg) error { consumed.Add(1); return nil })
	}()
	heap := func() uint64 {
		var m runtime.MemStats
		for range 2 {
			runtime.GC()
		}
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	b.ResetTimer()
	data := make([]byte, 200)
	var n atomic.Int64
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("evt_%026d", n.Add(1)) // 30 bytes, like msg_2Ue1... ids
			if _, err := q.Publish(ctx, id, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	for consumed.Load() < int64(b.N) {
		time.Sleep(10 * time.Millisecond)
	}
	after := heap()
	cancel()
	<-done
	b.ReportMetric(float64(int64(after)-int64(before))/float64(b.N), "heap-B/id")
}
