package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/store"
	"github.com/telguard/telguard/internal/store/storetest"
)

func openTest(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	return db
}

func TestStoreMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, Memory) })
}

func TestStoreFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, filepath.Join(t.TempDir(), "telguard.db"))
	})
}

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "telguard.db")
	db := openTest(t, path)
	call := event.Call{Tenant: "t1", Account: "a1", CallID: "c1", E164: "+4420794601234", Country: "GB",
		International: true, RatePerMinute: 0.2, Started: t0}
	quota := event.QuotaUsage{Tenant: "t1", Account: "a1", Day: "2025-03-14", Seconds: 61, Money: 0.2}
	ban := event.IPBan{Tenant: "t1", Subject: "192.0.2.1", Until: t0.Add(time.Hour), Rule: "r", Reason: "why", Created: t0}
	susp := event.Suspension{Tenant: "t1", Account: "a1", Rule: "r", Reason: "why", Created: t0}
	dec := &event.Decision{Time: t0, Tenant: "t1", Account: "a1", CallID: "c1", Verdict: event.Deny,
		Reasons: []event.Reason{{Rule: "r", Mode: event.Enforce, Verdict: event.Deny}}, SIPCode: 403}
	err := db.Apply(t.Context(), []event.Change{
		{Op: event.OpPutCall, Call: &call}, {Op: event.OpPutQuota, Quota: &quota},
		{Op: event.OpPutBan, Ban: &ban}, {Op: event.OpPutSuspension, Suspension: &susp},
		{Op: event.OpDecision, Decision: dec},
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	db = openTest(t, path)
	defer db.Close()
	st, err := db.Load(t.Context(), "t1", t0)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := event.State{Calls: []event.Call{call}, Quotas: []event.QuotaUsage{quota},
		Bans: []event.IPBan{ban}, Suspensions: []event.Suspension{susp}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("after reopen:\n got %+v\nwant %+v", st, want)
	}
	ds, _, err := db.Decisions(t.Context(), "t1", store.DecisionQuery{Rule: "r"})
	if err != nil || len(ds) != 1 || ds[0].ID != dec.ID || !ds[0].Time.Equal(t0) {
		t.Errorf("decisions after reopen = %+v, %v; want the one with id %d", ds, err, dec.ID)
	}
}

// TestTimes checks what the suite cannot assume of every backend:
// nanoseconds survive, and times beyond int64 nanoseconds clamp sensibly.
func TestTimes(t *testing.T) {
	db := openTest(t, Memory)
	defer db.Close()
	forever := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	local := time.FixedZone("BRT", -3*3600)
	bans := []event.IPBan{
		{Tenant: "t1", Subject: "ns", Until: t0.Add(time.Nanosecond), Created: t0.In(local)},
		{Tenant: "t1", Subject: "forever", Until: forever},
	}
	for i := range bans {
		if err := db.Apply(t.Context(), []event.Change{{Op: event.OpPutBan, Ban: &bans[i]}}); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	st, err := db.Load(t.Context(), "t1", t0)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(st.Bans) != 2 {
		t.Fatalf("loaded %d bans, want 2: %+v", len(st.Bans), st.Bans)
	}
	byName := map[string]event.IPBan{st.Bans[0].Subject: st.Bans[0], st.Bans[1].Subject: st.Bans[1]}
	if got := byName["ns"]; !got.Until.Equal(t0.Add(time.Nanosecond)) || !got.Created.Equal(t0) {
		t.Errorf("ns ban = %+v, want until %v created %v", got, t0.Add(time.Nanosecond), t0)
	}
	if got := byName["forever"]; got.Until.Year() < 2262 {
		t.Errorf("forever ban until %v, want clamped to the far future", got.Until)
	}
	if st, _ := db.Load(t.Context(), "t1", time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)); len(st.Bans) != 1 || st.Bans[0].Subject != "forever" {
		t.Errorf("in 2200, loaded %+v; want only the forever ban", st.Bans)
	}
}

func TestOpenPaths(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a/b/c/telguard.db", "odd?name#with%chars.db", "spaces in name.db"} {
		path := filepath.Join(dir, name)
		db := openTest(t, path)
		if err := db.Apply(t.Context(), []event.Change{{Op: event.OpPutSuspension,
			Suspension: &event.Suspension{Tenant: "t", Account: "a"}}}); err != nil {
			t.Errorf("%s: Apply: %v", name, err)
		}
		db.Close()
		if fi, err := os.Stat(path); err != nil {
			t.Errorf("%s: database not at its path: %v", name, err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: database mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
}

func TestPragmas(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "telguard.db"))
	defer db.Close()
	for pragma, want := range map[string]string{
		"journal_mode": "wal", "synchronous": "1", "foreign_keys": "1", "busy_timeout": "5000",
	} {
		var got string
		if err := db.write.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil || got != want {
			t.Errorf("PRAGMA %s = %q, %v; want %q", pragma, got, err, want)
		}
	}
	if _, err := db.read.Exec(`DELETE FROM calls`); err == nil {
		t.Error("the read pool can write")
	}
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "telguard.db")
	db := openTest(t, path)
	versions := func() map[int]int64 {
		t.Helper()
		rows, err := db.write.Query(`SELECT version, applied_at FROM schema_migrations`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		m := map[int]int64{}
		for rows.Next() {
			var v int
			var at int64
			if err := rows.Scan(&v, &at); err != nil {
				t.Fatal(err)
			}
			m[v] = at
		}
		return m
	}
	first := versions()
	if len(first) != len(migrations) {
		t.Fatalf("schema_migrations has %v, want all %d migrations", first, len(migrations))
	}
	db.Close()

	t.Run("ReopenIsNoOp", func(t *testing.T) {
		db = openTest(t, path)
		if again := versions(); !reflect.DeepEqual(again, first) {
			t.Errorf("reopen changed schema_migrations: %v, was %v", again, first)
		}
		db.Close()
	})

	t.Run("NewerSchemaRefused", func(t *testing.T) {
		db = openTest(t, path)
		if _, err := db.write.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err := Open(path)
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("Open of a newer schema: err = %v, want ErrSchemaTooNew", err)
		}
		t.Logf("error reads: %v", err)
	})
}

func TestMigrationOrderAndRollback(t *testing.T) {
	fsys := fstest.MapFS{
		"migrations/10_c.sql": {Data: []byte(`INSERT INTO log VALUES ('c');`)},
		"migrations/2_b.sql":  {Data: []byte(`INSERT INTO log VALUES ('b');`)},
		"migrations/1_a.sql":  {Data: []byte(`CREATE TABLE log (name TEXT); INSERT INTO log VALUES ('a');`)},
		"migrations/README":   {Data: []byte(`not a migration`)},
	}
	ms, err := loadMigrations(fsys)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetMaxOpenConns(1)
	db := &DB{write: raw}
	if err := migrate(t.Context(), db.write, ms); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	var order string
	if err := db.write.QueryRow(`SELECT group_concat(name, '') FROM log`).Scan(&order); err != nil || order != "abc" {
		t.Errorf("migrations ran as %q, %v; want abc", order, err)
	}

	// A failing migration leaves nothing of itself behind.
	fsys["migrations/11_bad.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE half (x); INSERT INTO nowhere VALUES (1);`)}
	ms, err = loadMigrations(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(t.Context(), db.write, ms); err == nil {
		t.Fatal("a failing migration succeeded")
	}
	var n int
	db.write.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'half'`).Scan(&n)
	var v int
	db.write.QueryRow(`SELECT count(*) FROM schema_migrations WHERE version = 11`).Scan(&v)
	if n != 0 || v != 0 {
		t.Errorf("failed migration left table=%d recorded=%d", n, v)
	}

	fsys["migrations/011_dup.sql"] = &fstest.MapFile{Data: []byte(`SELECT 1;`)}
	if _, err := loadMigrations(fsys); err == nil {
		t.Error("two migrations numbered 11 were accepted")
	}
}

// TestConcurrentReads runs readers against a file database while a writer
// writes, as the daemon does.
func TestConcurrentReads(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "telguard.db"))
	defer db.Close()
	ctx := t.Context()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readErr atomic.Value
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.Load(ctx, "t1", t0); err != nil {
					readErr.Store(err)
				}
				if _, _, err := db.Decisions(ctx, "t1", store.DecisionQuery{Rule: "r"}); err != nil {
					readErr.Store(err)
				}
			}
		})
	}
	for i := range 200 {
		c := event.Call{Tenant: "t1", CallID: fmt.Sprint(i), Started: t0}
		d := &event.Decision{Tenant: "t1", Time: t0, Verdict: event.Allow, Reasons: []event.Reason{{Rule: "r"}}}
		if err := db.Apply(ctx, []event.Change{{Op: event.OpPutCall, Call: &c}, {Op: event.OpDecision, Decision: d}}); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	if err, _ := readErr.Load().(error); err != nil {
		t.Errorf("reader: %v", err)
	}
}

// countingStore counts Apply calls.
type countingStore struct {
	store.Store
	applies atomic.Int64
}

func (c *countingStore) Apply(ctx context.Context, changes []event.Change) error {
	c.applies.Add(1)
	return c.Store.Apply(ctx, changes)
}

// startWriter runs a Writer on s; stop cancels its Run and returns what Run
// returned.
func startWriter(t *testing.T, s store.Store, o store.WriterOptions) (w *store.Writer, stop func() error) {
	t.Helper()
	w = store.NewWriter(s, nil, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop = sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { stop() })
	return w, stop
}

func TestWriterConcurrentSubmitters(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "telguard.db"))
	defer db.Close()
	cs := &countingStore{Store: db}
	w, _ := startWriter(t, cs, store.WriterOptions{QueueSize: 1000})

	const submitters, each = 16, 300
	var wg sync.WaitGroup
	for g := range submitters {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("g%d-%d", g, i)
				w.Submit(
					event.Change{Op: event.OpPutCall, Call: &event.Call{Tenant: "t1", CallID: id, Started: t0}},
					event.Change{Op: event.OpDecision, Decision: &event.Decision{Tenant: "t1", CallID: id, Time: t0, Verdict: event.Allow}},
				)
				if i%3 == 0 {
					w.Submit(event.Change{Op: event.OpDeleteCall, Call: &event.Call{Tenant: "t1", CallID: id}})
				}
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}

	st, err := db.Load(t.Context(), "t1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := submitters * (each - (each+2)/3); len(st.Calls) != want {
		t.Errorf("%d calls stored, want %d", len(st.Calls), want)
	}
	ds, _, err := db.Decisions(t.Context(), "t1", store.DecisionQuery{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	n := len(ds)
	for q := (store.DecisionQuery{Limit: store.MaxLimit}); len(ds) == store.MaxLimit; n += len(ds) {
		q.Cursor = store.EncodeCursor("t1", ds[len(ds)-1].ID)
		if ds, _, err = db.Decisions(t.Context(), "t1", q); err != nil {
			t.Fatal(err)
		}
	}
	if want := submitters * each; n != want {
		t.Errorf("%d decisions stored, want %d", n, want)
	}
	total := int64(submitters * (2*each + (each+2)/3))
	stats := w.Stats()
	if stats.Changes != total || stats.Errors != 0 || stats.Dropped != 0 || stats.Queued != 0 {
		t.Errorf("stats = %+v, want %d changes and no errors", stats, total)
	}
	if applies := cs.applies.Load(); applies >= total/10 || stats.Batches != applies {
		t.Errorf("%d Apply calls (%d batches) for %d changes: not batching", applies, stats.Batches, total)
	}
	t.Logf("%d changes in %d batches", total, stats.Batches)
}

func TestWriterFlushSkipsInterval(t *testing.T) {
	db := openTest(t, Memory)
	defer db.Close()
	w, _ := startWriter(t, db, store.WriterOptions{FlushInterval: time.Hour})
	w.Submit(event.Change{Op: event.OpPutSuspension, Suspension: &event.Suspension{Tenant: "t1", Account: "a1"}})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if st, _ := db.Load(t.Context(), "t1", t0); len(st.Suspensions) != 1 {
		t.Errorf("after Flush, loaded %+v", st)
	}
	// Nothing pending: Flush returns at once.
	if err := w.Flush(ctx); err != nil {
		t.Errorf("second Flush: %v", err)
	}
}

func TestWriterDrainsOnCancel(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "telguard.db"))
	defer db.Close()
	cs := &countingStore{Store: db}
	// The interval never fires and batches never fill: only the drain writes.
	w, stop := startWriter(t, cs, store.WriterOptions{FlushInterval: time.Hour, MaxBatch: 1000})
	const n = 2500
	for i := range n {
		w.Submit(event.Change{Op: event.OpDecision, Decision: &event.Decision{Tenant: "t1", Time: t0, Verdict: event.Deny, Account: fmt.Sprint(i)}})
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	ds, _, err := db.Decisions(t.Context(), "t1", store.DecisionQuery{Limit: 1})
	if err != nil || len(ds) != 1 || ds[0].Account != fmt.Sprint(n-1) {
		t.Fatalf("newest decision after drain = %+v, %v; want account %d", ds, err, n-1)
	}
	stats := w.Stats()
	if stats.Changes != n || stats.Queued != 0 {
		t.Errorf("stats after drain = %+v, want %d changes written", stats, n)
	}
	if got := cs.applies.Load(); got != 3 {
		t.Errorf("drain used %d Apply calls for %d changes in batches of 1000, want 3", got, n)
	}

	// After Run has returned, Submit drops rather than queueing forever.
	w.Submit(event.Change{Op: event.OpDecision, Decision: &event.Decision{Tenant: "t1", Verdict: event.Deny}})
	if got := w.Stats().Dropped; got != 1 {
		t.Errorf("Submit after Run returned: dropped = %d, want 1", got)
	}
	if err := w.Run(context.Background()); !errors.Is(err, store.ErrWriterStopped) {
		t.Errorf("second Run: err = %v, want ErrWriterStopped", err)
	}
}

func BenchmarkApplyDecisions(b *testing.B) {
	db := openTest(b, filepath.Join(b.TempDir(), "telguard.db"))
	defer db.Close()
	const batch = 512
	changes := make([]event.Change, batch)
	for i := range changes {
		changes[i] = event.Change{Op: event.OpDecision, Decision: benchDecision(i)}
	}
	ctx := context.Background()
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		if err := db.Apply(ctx, changes); err != nil {
			b.Fatal(err)
		}
		n += batch
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "decisions/s")
}

func BenchmarkWriterSubmit(b *testing.B) {
	db := openTest(b, filepath.Join(b.TempDir(), "telguard.db"))
	defer db.Close()
	w := store.NewWriter(db, nil, store.WriterOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			w.Submit(event.Change{Op: event.OpDecision, Decision: benchDecision(i)})
			i++
		}
	})
	// Count the time to get it all on disk: Submit is only as fast as the
	// store in the long run.
	if err := w.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(w.Stats().Changes)/b.Elapsed().Seconds(), "decisions/s")
}

func benchDecision(i int) *event.Decision {
	return &event.Decision{
		Time: t0.Add(time.Duration(i) * time.Millisecond), Tenant: "bench", Account: fmt.Sprintf("acct-%d", i%50),
		CallID: fmt.Sprintf("call-%d", i), From: "+5511987654334", To: "+8821612345678", SourceIP: "198.51.100.7",
		Destination: event.Destination{E164: "+8821612345678", Country: "001", International: true, RatePerMinute: 4.5},
		Verdict:     event.Deny,
		Reasons: []event.Reason{
			{Rule: "high-risk-dest", Reason: "satellite range", Mode: event.Enforce, Verdict: event.Deny},
			{Rule: "velocity", Reason: "12 calls in 60s", Mode: event.Monitor, Verdict: event.Ban},
		},
		Risk: 92, SIPCode: 403, HTTPCode: 403,
	}
}
