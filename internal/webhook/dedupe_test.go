package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/queue"
)

func key(i int) dedupeKey { return keyOf(fmt.Sprintf("telco\x00evt_%d", i)) }

// An id is a duplicate for the whole window and forgotten once the window
// (plus at most one bucket, 1/24 of it) has passed, whether or not other
// ids arrived meanwhile.
func TestDedupeWindow(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	x, err := openDedupe("", 24*time.Hour, t0, discard())
	if err != nil {
		t.Fatal(err)
	}
	x.add(key(1), t0)
	for h := 1; h <= 24; h++ {
		x.add(key(100+h), t0.Add(time.Duration(h)*time.Hour)) // traffic rolls the buckets
		x.sealing.Wait()
		if !x.seen(key(1)) {
			t.Fatalf("forgotten after %dh, inside the 24h window", h)
		}
	}
	if x.seen(key(2)) {
		t.Fatal("an id never added was seen")
	}
	x.expire(t0.Add(25*time.Hour + time.Minute))
	if x.seen(key(1)) {
		t.Fatal("still remembered after the window and one bucket")
	}
	if !x.seen(key(124)) {
		t.Fatal("the newest id was forgotten with the old ones")
	}
	if n, _ := x.stats(); n != 24 { // 101 (1h, within a bucket of the window) to 124
		t.Fatalf("%d ids remembered, want 24", n)
	}
}

// The ids survive a restart through the bucket files; a file cut in the
// middle of an id (a crash during a write) is read up to its last whole
// id, and files of buckets older than the window are removed.
func TestDedupeSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	x, err := openDedupe(dir, 24*time.Hour, t0, discard())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		x.add(key(i), t0.Add(time.Duration(i)*time.Minute)) // about 17 hours
	}
	if err := x.close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.ids"))
	if len(files) < 17 {
		t.Fatalf("%d bucket files for 17 hours of ids", len(files))
	}
	// A torn write at the end of the newest file.
	newest := files[len(files)-1]
	f, err := os.OpenFile(newest, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{1, 2, 3, 4, 5})
	f.Close()
	stale := filepath.Join(dir, fmt.Sprint(t0.Add(-48*time.Hour).Unix())+".ids")
	if err := os.WriteFile(stale, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}

	now := t0.Add(999 * time.Minute)
	y, err := openDedupe(dir, 24*time.Hour, now, discard())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if !y.seen(key(i)) {
			t.Fatalf("id %d forgotten by the restart", i)
		}
	}
	if n, _ := y.stats(); n != 1000 {
		t.Fatalf("%d ids after the restart, want 1000 (a torn tail must not add one)", n)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("a bucket file older than the window was kept: %v", err)
	}
	y.add(key(5000), now) // the current bucket takes new ids after a restart
	if !y.seen(key(5000)) {
		t.Fatal("an id added after the restart was not seen")
	}
	// The torn tail was cut off, so the id appended after it reads back.
	if err := y.close(); err != nil {
		t.Fatal(err)
	}
	z, err := openDedupe(dir, 24*time.Hour, now, discard())
	if err != nil {
		t.Fatal(err)
	}
	if !z.seen(key(5000)) || !z.seen(key(999)) {
		t.Fatal("an id appended after a torn tail was lost at the next restart")
	}
}

// A restart with another dedupe_window, or with the clock set back, keeps
// the ids inside the new window and goes on taking new ones (files are
// named by time, not by bucket number).
func TestDedupeRestartWithOtherWindowOrClock(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	fill := func(t *testing.T) string {
		dir := t.TempDir()
		x, err := openDedupe(dir, 24*time.Hour, t0, discard())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			x.add(key(i), t0.Add(time.Duration(i)*10*time.Minute)) // 16.5 hours
		}
		if err := x.close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	last := t0.Add(99 * 10 * time.Minute)
	for _, tc := range []struct {
		name   string
		window time.Duration
		now    time.Time
		kept   []int // ids that must still be seen
		gone   []int // ids that must be forgotten
	}{
		{"window doubled", 48 * time.Hour, last, []int{0, 50, 99}, nil},
		{"window cut to 6h", 6 * time.Hour, last, []int{70, 99}, []int{0, 50}},
		{"clock set back 5h", 24 * time.Hour, last.Add(-5 * time.Hour), []int{0, 50, 99}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y, err := openDedupe(fill(t), tc.window, tc.now, discard())
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range tc.kept {
				if !y.seen(key(i)) {
					t.Errorf("id %d forgotten", i)
				}
			}
			for _, i := range tc.gone {
				if y.seen(key(i)) {
					t.Errorf("id %d kept past the window", i)
				}
			}
			for i := range 50 { // no panic, and new ids are taken
				y.add(key(1000+i), tc.now.Add(time.Duration(i)*time.Minute))
				if !y.seen(key(1000 + i)) {
					t.Fatalf("new id %d not seen", i)
				}
			}
			if err := y.close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Past the limit the oldest bucket is forgotten early, and counted.
func TestDedupeLimit(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	x, err := openDedupe("", 24*time.Hour, t0, discard())
	if err != nil {
		t.Fatal(err)
	}
	x.maxIDs = 100
	for i := range 60 {
		x.add(key(i), t0)
	}
	for i := 60; i < 120; i++ {
		x.add(key(i), t0.Add(2*time.Hour))
	}
	n, dropped := x.stats()
	if n != 60 || dropped != 60 || x.seen(key(0)) || !x.seen(key(119)) {
		t.Fatalf("after 120 ids with a limit of 100: %d kept, %d dropped, oldest seen %v", n, dropped, x.seen(key(0)))
	}
}

// Lookups run while buckets are sealed in the background (-race).
func TestDedupeConcurrent(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	x, err := openDedupe(t.TempDir(), time.Hour, t0, discard())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				id := g*10000 + i
				at := t0.Add(time.Duration(i) * time.Second)
				x.add(key(id), at)
				if !x.seen(key(id)) {
					t.Errorf("id %d not seen right after it was added", id)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := x.flush(); err != nil {
				t.Error(err)
			}
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	if err := x.close(); err != nil {
		t.Fatal(err)
	}
}

// A retry of an event queued before a restart is a duplicate after it,
// even on a queue that has never seen the event: the index, not
// JetStream's short window, remembers it.
func TestDuplicateAfterRestart(t *testing.T) {
	dir := t.TempDir()
	run := func(id string) (int, uint64) {
		q, err := queue.Open(context.Background(), queue.Options{Embedded: true, DataDir: t.TempDir(), DuplicateWindow: DedupeOverlap})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		s, err := New(Config{Addr: "127.0.0.1:0", DedupeDir: dir, Clock: func() time.Time { return now },
			Sources: map[string]SourceConfig{"telco": {Tenant: "acme", Verifier: VerifierConfig{Secrets: []Secret{{Key: keyA}}}}}}, q, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		for s.Addr() == "" {
			time.Sleep(time.Millisecond)
		}
		f := &fixture{srv: s, q: q, clock: now}
		code := f.post(t, "telco", stdHeaders(id, now, body, keyA), body).Code
		depth := f.depth(t)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return code, depth
	}
	if code, depth := run("evt_restart"); code != http.StatusAccepted || depth != 1 {
		t.Fatalf("first delivery: %d, queue depth %d; want 202 and 1", code, depth)
	}
	if code, depth := run("evt_restart"); code != http.StatusOK || depth != 0 {
		t.Fatalf("retry after a restart: %d, queue depth %d; want 200 (duplicate) and nothing queued", code, depth)
	}
	if code, _ := run("evt_other"); code != http.StatusAccepted {
		t.Fatalf("a new event after the restart: %d, want 202", code)
	}
}

// BenchmarkDedupeIndexMemory reports the live heap per remembered id, once
// its bucket is sealed (compare BenchmarkDedupeMemory in internal/queue:
// JetStream's own window).
func BenchmarkDedupeIndexMemory(b *testing.B) {
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	x, err := openDedupe("", 24*time.Hour, t0, discard())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		x.add(keyOf(fmt.Sprintf("telco\x00evt_%026d", i)), t0.Add(time.Duration(i)*(24*time.Hour)/time.Duration(b.N)))
	}
	b.StopTimer()
	x.add(key(-1), t0.Add(25*time.Hour/24*23)) // seal the last full bucket
	x.sealing.Wait()
	after := heap()
	runtime.KeepAlive(x)
	b.ReportMetric(float64(int64(after)-int64(before))/float64(b.N), "heap-B/id")
}

// BenchmarkDedupeSeen is the lookup every verified webhook pays: a full
// window of 24 sealed buckets.
func BenchmarkDedupeSeen(b *testing.B) {
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	x, _ := openDedupe("", 24*time.Hour, t0, discard())
	const n = 1_000_000
	for i := range n {
		x.add(key(i), t0.Add(time.Duration(i)*(24*time.Hour)/n))
	}
	x.sealing.Wait()
	keys := make([]dedupeKey, 1024)
	for i := range keys {
		keys[i] = keyOf(fmt.Sprintf("telco\x00new_%d", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if x.seen(keys[i%len(keys)]) {
			b.Fatal("a new id was seen")
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// The dedupe window must cover a signed request's whole replay span, twice
// the timestamp tolerance (the sender's clock may be ahead or behind).
func TestDedupeWindowCoversReplays(t *testing.T) {
	q, err := queue.Open(context.Background(), queue.Options{Embedded: true, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	src := func(tol time.Duration) map[string]SourceConfig {
		return map[string]SourceConfig{"telco": {Tenant: "acme", Verifier: VerifierConfig{Secrets: []Secret{{Key: keyA}}, Tolerance: tol}}}
	}
	if _, err := New(Config{DedupeWindow: 9 * time.Minute, Sources: src(0)}, q, nil, nil); err == nil || !strings.Contains(err.Error(), "tolerance") {
		t.Fatalf("9m window, default 5m tolerance: %v; want refused", err)
	}
	if _, err := New(Config{DedupeWindow: 10 * time.Minute, Sources: src(0)}, q, nil, nil); err != nil {
		t.Fatalf("10m window, 5m tolerance: %v", err)
	}
	if _, err := New(Config{DedupeWindow: 10 * time.Minute, Sources: src(time.Hour)}, q, nil, nil); err == nil {
		t.Fatal("10m window, 1h tolerance: accepted")
	}
}
