package queue_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

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
