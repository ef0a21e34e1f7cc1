package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/config"
	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/event"
)

const retrainPolicy = `version: 1
tenants:
  demo:
    home_country: BR
    timezone: America/Sao_Paulo
    defaults:
      international: true
      high_risk: allow
  acme:
    home_country: GB
    defaults:
      international: true
`

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testDaemon is a daemon on a fresh data directory with the real SQLite
// store, running until the test ends.
type testDaemon struct {
	*Daemon
	log *syncBuffer
}

// newTestDaemon builds a daemon with min_windows 50 and retraining off
// unless edit changes the configuration; history is stored before it runs.
func newTestDaemon(t *testing.T, edit func(*config.Config), history ...event.CallRecord) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(retrainPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("test.yaml", fmt.Appendf(nil, "data_dir: %s\npolicy: %s\napi:\n  listen: 127.0.0.1:0\nanomaly:\n  retrain_every: 0s\n  min_windows: 50\n", filepath.Join(dir, "data"), pol))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(cfg)
	}
	buf := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(buf, nil))
	getenv := func(k string) string {
		if k == "TELGUARD_API_KEY" {
			return "retrain-test-key-0123456789"
		}
		return ""
	}
	// The store is opened by New; history goes in before Run.
	d, err := New(context.Background(), Options{Config: cfg, Logger: log, Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	td := &testDaemon{d, buf}
	td.put(t, history...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return td
}

func (d *testDaemon) put(t *testing.T, recs ...event.CallRecord) {
	t.Helper()
	by := map[string][]event.CallRecord{}
	for _, r := range recs {
		by[r.Tenant] = append(by[r.Tenant], r)
	}
	for tenant, rs := range by {
		if _, err := d.db.PutHistory(context.Background(), tenant, rs); err != nil {
			t.Fatal(err)
		}
	}
}

// officeCalls is n days of ordinary office calls of three accounts of
// tenant, ending yesterday: about 12 calls an account a day.
func officeCalls(tenant string, days int) []event.CallRecord {
	var out []event.CallRecord
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -days)
	for d := range days {
		for a, acct := range []string{"1001", "1002", "1003"} {
			for k := range 12 {
				at := day.AddDate(0, 0, d).Add(time.Duration(12+k/2)*time.Hour + time.Duration(k*4+a)*time.Minute)
				to := fmt.Sprintf("+5511300%02d%03d", d%100, k*10+a)
				if tenant == "acme" {
					to = fmt.Sprintf("+44207946%04d", (d*100+k*10+a)%10000)
				}
				out = append(out, event.CallRecord{
					Tenant: tenant, Account: acct, CallID: fmt.Sprintf("%s-%d-%s-%d", tenant, d, acct, k), To: to,
					Direction: event.Outbound, Start: at, Answer: at.Add(5 * time.Second), End: at.Add(185 * time.Second),
					Billsec: 180 * time.Second, Disposition: "ANSWERED",
				})
			}
		}
	}
	return out
}

// With enough history the daemon trains a model on every tenant's calls,
// writes the model file, puts it in force, and the file poll does not
// load that same file again.
func TestRetrainTrainsOnStoredHistory(t *testing.T) {
	hist := append(officeCalls("demo", 5), officeCalls("acme", 3)...)
	d := newTestDaemon(t, nil, hist...)
	if d.engine.Model() != nil {
		t.Fatal("a model before any training")
	}
	out := d.retrain(context.Background(), d.db)
	if out.result != retrained || out.tr.Calls != len(hist) || out.tr.Windows != len(hist) {
		t.Fatalf("retrain: %s, read %d calls / %d windows, want trained on %d", out.result, out.tr.Calls, out.tr.Windows, len(hist))
	}
	if d.engine.Model() == nil {
		t.Fatal("the retrained model is not in force")
	}
	data, err := os.ReadFile(d.modelFile())
	if err != nil || len(data) == 0 {
		t.Fatalf("no model file: %v", err)
	}
	if !strings.Contains(d.log.String(), fmt.Sprintf(`msg="anomaly model retrained" calls=%d windows=%d`, len(hist), len(hist))) {
		t.Errorf("no log line for the retrain:\n%s", d.log)
	}
	// The daemon's own write is known to the poll.
	d.loadModel()
	if strings.Contains(d.log.String(), "anomaly model loaded") {
		t.Errorf("the poll reloaded the model the daemon had just written:\n%s", d.log)
	}
	// Same history and seed: the same model, as the CLI would train.
	res, err := TrainStored(context.Background(), d.db, d.engine.Policy(), []string{"acme", "demo"}, time.Time{}, engine.TrainOptions{Seed: 1, Trees: 100})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := res.Model.MarshalBinary()
	if !bytes.Equal(data, want) {
		t.Error("the daemon's model differs from TrainStored's on the same history and seed")
	}

	// History older than train_window is not read.
	d.cfg.Anomaly.TrainWindow = 4 * 24 * time.Hour
	out = d.retrain(context.Background(), d.db)
	if out.result != retrained || out.tr.Calls >= len(hist) || out.tr.Calls == 0 {
		t.Fatalf("with a 4-day window: %s on %d of %d calls", out.result, out.tr.Calls, len(hist))
	}
}

// With fewer windows than min_windows, or none at all, the model in force
// stays (file and engine) and an info line says why.
func TestRetrainKeepsModelOnTooLittleHistory(t *testing.T) {
	d := newTestDaemon(t, nil)
	if out := d.retrain(context.Background(), d.db); out.result != retrainKept {
		t.Fatalf("empty history: %s, want kept", out.result)
	}
	if _, err := os.Stat(d.modelFile()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a model file from no history: %v", err)
	}

	d.put(t, officeCalls("demo", 5)...)
	if out := d.retrain(context.Background(), d.db); out.result != retrained {
		t.Fatalf("5 days: %s", out.result)
	}
	model, file := d.engine.Model(), mustRead(t, d.modelFile())

	d.cfg.Anomaly.MinWindows = 10000
	out := d.retrain(context.Background(), d.db)
	if out.result != retrainKept || out.tr.Windows != 180 {
		t.Fatalf("below min_windows: %s with %d windows", out.result, out.tr.Windows)
	}
	if d.engine.Model() != model || !bytes.Equal(mustRead(t, d.modelFile()), file) {
		t.Fatal("the model in force was replaced by too little history")
	}
	if !strings.Contains(d.log.String(), "too little history") || !strings.Contains(d.log.String(), "windows=180 min_windows=10000") {
		t.Errorf("no info line saying why:\n%s", d.log)
	}
}

// cancellingReader cancels the context after the first record it hands
// over, as a shutdown in the middle of reading the history would.
type cancellingReader struct {
	HistoryReader
	cancel func()
}

func (r cancellingReader) History(ctx context.Context, tenant string, from, to time.Time, fn func(event.CallRecord) error) error {
	return r.HistoryReader.History(ctx, tenant, from, to, func(rec event.CallRecord) error {
		r.cancel()
		return fn(rec)
	})
}

// A shutdown stops a retrain at once and changes nothing.
func TestRetrainCancelled(t *testing.T) {
	d := newTestDaemon(t, nil, officeCalls("demo", 5)...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := d.retrain(ctx, cancellingReader{d.db, cancel})
	if out.result != retrainStopped || out.tr.Calls != 1 {
		t.Fatalf("cancelled retrain: %s after %d calls, want cancelled after 1", out.result, out.tr.Calls)
	}
	if _, err := os.Stat(d.modelFile()); !errors.Is(err, os.ErrNotExist) || d.engine.Model() != nil {
		t.Fatalf("a cancelled retrain left a model: %v", err)
	}
}

// handWriter writes a model to the file while the daemon reads the
// history, as `telguard anomaly train` run meanwhile would.
type handWriter struct {
	HistoryReader
	once  *sync.Once
	write func()
}

func (r handWriter) History(ctx context.Context, tenant string, from, to time.Time, fn func(event.CallRecord) error) error {
	r.once.Do(r.write)
	return r.HistoryReader.History(ctx, tenant, from, to, fn)
}

// A model written by hand while the daemon trains is not clobbered by
// the daemon's older view of the history; the poll loads it.
func TestRetrainDoesNotClobberModelWrittenMeanwhile(t *testing.T) {
	d := newTestDaemon(t, nil, officeCalls("demo", 5)...)
	hand, err := TrainStored(context.Background(), d.db, d.engine.Policy(), []string{"demo"}, time.Time{}, engine.TrainOptions{Seed: 99, Trees: 10})
	if err != nil {
		t.Fatal(err)
	}
	out := d.retrain(context.Background(), handWriter{d.db, &sync.Once{}, func() {
		if _, err := WriteModel(d.modelFile(), hand.Model); err != nil {
			t.Error(err)
		}
	}})
	if out.result != retrainChanged {
		t.Fatalf("retrain: %s, want superseded", out.result)
	}
	want, _ := hand.Model.MarshalBinary()
	if !bytes.Equal(mustRead(t, d.modelFile()), want) {
		t.Fatal("the model written meanwhile was overwritten")
	}
	d.loadModel()
	if got, _ := d.engine.Model().MarshalBinary(); !bytes.Equal(got, want) {
		t.Fatal("the model written meanwhile is not the one in force")
	}
}

// The loop trains at start when there is no model file, and Run returns
// promptly at shutdown.
func TestRetrainLoopTrainsAtStart(t *testing.T) {
	d := newTestDaemon(t, func(c *config.Config) {
		every := time.Hour
		c.Anomaly.RetrainEvery = &every
	}, officeCalls("demo", 5)...)
	deadline := time.Now().Add(10 * time.Second)
	for d.engine.Model() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no model 10s after start:\n%s", d.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(d.modelFile()); err != nil {
		t.Fatal(err)
	}
}

func TestRetrainDelay(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, c := range []struct {
		name        string
		last, model time.Time
		want        time.Duration
	}{
		{"no model, never tried: now", time.Time{}, time.Time{}, 0},
		{"model older than every: now", time.Time{}, now.Add(-25 * time.Hour), 0},
		{"fresh model: when it ages", time.Time{}, now.Add(-time.Hour), 23 * time.Hour},
		{"tried an hour ago: a day after", now.Add(-time.Hour), time.Time{}, 23 * time.Hour},
		{"hand-trained after the last try: a day after it", now.Add(-20 * time.Hour), now.Add(-2 * time.Hour), 22 * time.Hour},
		{"model from the future: at most every", time.Time{}, now.Add(48 * time.Hour), day},
	} {
		if got := retrainDelay(now, c.last, c.model, day); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// With a TrainCommand the retrain runs in a child process. Its failure
// keeps the model in force and logs the child's last words; its report of
// too little history is a "too little history" retrain; and shutdown
// kills a child still training.
func TestRetrainInAChildProcess(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		want   retrainResult
		log    string
	}{
		{"child fails", `echo "telguard: open database: disk on fire" >&2; exit 1`, retrainFailed, "disk on fire"},
		{"too little history", `echo '{"calls": 3, "samples": 3, "skipped": 0, "bytes": 0}'; exit 1`, retrainKept, "too little history"},
		{"garbage summary", `echo 'not json'`, retrainFailed, "read its summary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDaemon(t, nil)
			d.trainCmd = []string{"/bin/sh", "-c", tc.script, "sh"}
			out := d.retrain(context.Background(), d.db)
			if out.result != tc.want || !strings.Contains(d.log.String(), tc.log) {
				t.Fatalf("retrain: %s, want %s; log:\n%s", out.result, tc.want, d.log)
			}
			if d.engine.Model() != nil {
				t.Fatal("a model in force after a retrain that made none")
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		d := newTestDaemon(t, nil)
		d.trainCmd = []string{"/bin/sh", "-c", "sleep 60", "sh"}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		out := d.retrain(ctx, d.db)
		if out.result != retrainStopped || time.Since(start) > 30*time.Second {
			t.Fatalf("retrain: %s after %s, want cancelled at once", out.result, time.Since(start))
		}
	})
}
