package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/event"
)

func historyBatch(n, from int) []event.CallRecord {
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	recs := make([]event.CallRecord, n)
	for i := range recs {
		s := start.Add(time.Duration(from+i) * 7 * time.Second)
		recs[i] = event.CallRecord{
			Account: fmt.Sprintf("10%02d", i%100), CallID: fmt.Sprintf("%d.%d", s.Unix(), from+i),
			From: "1001", To: "011987654321", Direction: event.Outbound,
			Start: s, Answer: s.Add(5 * time.Second), End: s.Add(95 * time.Second),
			Billsec: 90 * time.Second, Disposition: "ANSWERED",
		}
	}
	return recs
}

// BenchmarkPutHistory measures cdr import's store side: batches of 2000
// new calls into a file database.
func BenchmarkPutHistory(b *testing.B) {
	db := openTest(b, filepath.Join(b.TempDir(), "telguard.db"))
	defer db.Close()
	const batch = 2000
	calls := 0
	for b.Loop() {
		res, err := db.PutHistory(b.Context(), "t1", historyBatch(batch, calls))
		if err != nil || res.New != batch {
			b.Fatalf("PutHistory: %+v, %v", res, err)
		}
		calls += batch
	}
	b.ReportMetric(float64(calls)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkHistory measures reading history back in start order.
func BenchmarkHistory(b *testing.B) {
	db := openTest(b, filepath.Join(b.TempDir(), "telguard.db"))
	defer db.Close()
	const total = 20000
	for i := 0; i < total; i += 2000 {
		if _, err := db.PutHistory(b.Context(), "t1", historyBatch(2000, i)); err != nil {
			b.Fatal(err)
		}
	}
	calls := 0
	for b.Loop() {
		if err := db.History(b.Context(), "t1", time.Time{}, time.Time{}, func(event.CallRecord) error { calls++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(calls)/b.Elapsed().Seconds(), "calls/s")
}
