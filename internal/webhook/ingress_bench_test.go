package webhook

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// nullQueue stores nothing: the benchmark measures the handler itself.
type nullQueue struct{}

func (nullQueue) Publish(context.Context, string, []byte) (bool, error) { return false, nil }

// BenchmarkIngressHandler is one verified webhook through the handler
// (limits, Standard Webhooks verification, envelope) minus the queue.
func BenchmarkIngressHandler(b *testing.B) {
	clock := time.Now()
	s, err := New(Config{
		PerIPRate: 1e9, PerIPBurst: 1 << 30, Clock: func() time.Time { return clock },
		Sources: map[string]SourceConfig{"telco": {Tenant: "acme", Rate: 1e9, Burst: 1 << 30,
			Verifier: VerifierConfig{Secrets: []Secret{{Key: keyA}}}}},
	}, nullQueue{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	payload := []byte(`{"call_id":"bench-1","status":"started","direction":"outbound","from":"+551130001000","to":"+5511987654321","account":"acct-1","timestamp":"2025-01-02T03:04:05Z"}`)
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := "evt-" + strconv.FormatInt(n.Add(1), 10)
			r := httptest.NewRequest(http.MethodPost, "/hooks/telco", bytes.NewReader(payload))
			SetHeaders(r.Header, id, clock, payload, keyA)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusAccepted {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
