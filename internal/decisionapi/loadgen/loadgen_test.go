package loadgen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telguard/telguard/internal/decisionapi"
	"github.com/telguard/telguard/internal/decisionapi/loadgen"
	"github.com/telguard/telguard/internal/event"
)

// checkServer answers like the decision API: deny for +44909…, allow
// otherwise, after checking each body is a valid request.
type checkServer struct {
	mu      sync.Mutex
	bodies  int
	callIDs map[string]bool
	bad     []string
	fail    atomic.Bool
}

func (s *checkServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CallID    string `json:"call_id"`
		Account   string `json:"account"`
		From      string `json:"from"`
		To        string `json:"to"`
		SourceIP  string `json:"source_ip"`
		UserAgent string `json:"user_agent"`
	}
	body, _ := io.ReadAll(r.Body)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	_, perr := netip.ParseAddr(req.SourceIP)
	s.mu.Lock()
	s.bodies++
	switch {
	case r.URL.Path != "/v1/calls/check" || r.Header.Get("Authorization") != "Bearer k":
		s.bad = append(s.bad, "bad path or key: "+r.URL.Path)
	case err != nil || perr != nil || req.CallID == "" || !strings.HasPrefix(req.Account, "acct-") || req.To == "" || req.From == "":
		s.bad = append(s.bad, string(body))
	case s.callIDs[req.CallID]:
		s.bad = append(s.bad, "repeated call id "+req.CallID)
	}
	s.callIDs[req.CallID] = true
	s.mu.Unlock()
	if s.fail.Load() {
		http.Error(w, `{"error":"boom"}`, 500)
		return
	}
	verdict := "allow"
	if strings.HasPrefix(req.To, "+44909") {
		verdict = "deny"
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"verdict":"`+verdict+`","reasons":[]}`)
}

func TestRunRequestBound(t *testing.T) {
	cs := &checkServer{callIDs: map[string]bool{}}
	ts := httptest.NewServer(cs)
	defer ts.Close()
	rep, err := loadgen.Run(context.Background(), loadgen.Options{URL: ts.URL, Key: "k", Concurrency: 8, Requests: 3000, Seed: 7}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if rep.Requests != 3000 || cs.bodies != 3000 || rep.Errors != 0 {
		t.Errorf("requests %d (server saw %d), errors %d; want exactly 3000 and no errors", rep.Requests, cs.bodies, rep.Errors)
	}
	if len(cs.bad) > 0 {
		t.Errorf("%d bad requests, first: %s", len(cs.bad), cs.bad[0])
	}
	if rep.Verdicts["allow"]+rep.Verdicts["deny"] != 3000 || rep.Verdicts["deny"] == 0 {
		t.Errorf("verdicts %v: want a mix adding up to 3000", rep.Verdicts)
	}
	if !(0 < rep.P50 && rep.P50 <= rep.P90 && rep.P90 <= rep.P99 && rep.P99 <= rep.Max) || rep.PerSecond <= 0 {
		t.Errorf("implausible figures: %+v", rep)
	}
	if s := rep.String(); !strings.Contains(s, "3000 requests") || !strings.Contains(s, "deny=") {
		t.Errorf("String() = %q", s)
	}
}

func TestRunDurationBoundAndProgress(t *testing.T) {
	cs := &checkServer{callIDs: map[string]bool{}}
	ts := httptest.NewServer(cs)
	defer ts.Close()
	var progress bytes.Buffer
	start := time.Now()
	rep, err := loadgen.Run(context.Background(), loadgen.Options{URL: ts.URL + "/", Key: "k", Concurrency: 4, Duration: 2200 * time.Millisecond}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 4*time.Second || rep.Elapsed < 2*time.Second {
		t.Errorf("run took %v (elapsed %v) for a 2.2 s bound", took, rep.Elapsed)
	}
	if n := strings.Count(progress.String(), "\n"); n != 2 {
		t.Errorf("%d progress lines in 2.2 s, want 2:\n%s", n, progress.String())
	}
	// Requests cut off by the deadline reach the server but are not counted.
	cs.mu.Lock()
	seen := cs.bodies
	cs.mu.Unlock()
	if rep.Errors != 0 || rep.Requests == 0 || seen < rep.Requests || seen > rep.Requests+4 {
		t.Errorf("requests %d (server saw %d), errors %d", rep.Requests, seen, rep.Errors)
	}
}

func TestRunCountsErrors(t *testing.T) {
	cs := &checkServer{callIDs: map[string]bool{}}
	cs.fail.Store(true)
	ts := httptest.NewServer(cs)
	defer ts.Close()
	rep, err := loadgen.Run(context.Background(), loadgen.Options{URL: ts.URL, Key: "k", Concurrency: 2, Requests: 50}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != 50 || rep.Errors != 50 || len(rep.Verdicts) != 0 {
		t.Errorf("report %+v: want 50 requests, all errors", rep)
	}
	if _, err := loadgen.Run(context.Background(), loadgen.Options{URL: "localhost:80"}, io.Discard); err == nil {
		t.Error("a URL without scheme was accepted")
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ts := httptest.NewServer(&checkServer{callIDs: map[string]bool{}})
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := loadgen.Run(ctx, loadgen.Options{URL: ts.URL, Key: "k", Duration: time.Hour}, io.Discard)
	if err != nil || time.Since(start) > 3*time.Second || rep.Errors != 0 {
		t.Errorf("cancelled run: %v after %v, %d errors", err, time.Since(start), rep.Errors)
	}
}

// fastEngine is the trivial engine of the throughput figure: no state.
type fastEngine struct{}

func (fastEngine) Decide(_ context.Context, ev event.Event) event.Decision {
	d := event.Decision{Time: ev.Time, Tenant: ev.Tenant, Account: ev.Account, CallID: ev.CallID, Verdict: event.Allow, HTTPCode: 200}
	if strings.HasPrefix(ev.To, "+44909") {
		d.Verdict, d.SIPCode, d.HTTPCode = event.Deny, 403, 403
		d.Reasons = []event.Reason{{Rule: "premium", Reason: "premium-rate destination", Mode: event.Enforce, Verdict: event.Deny}}
	}
	return d
}
func (fastEngine) Observe(context.Context, event.Event) error              { return nil }
func (fastEngine) Unsuspend(context.Context, string, string, string) error { return nil }

// TestAgainstDecisionAPI runs the load generator against a real
// decisionapi.Server with a trivial engine: every request must validate.
// TELGUARD_LOADGEN_SECONDS=N makes it an N-second throughput run that
// prints its report (TELGUARD_LOADGEN_CONCURRENCY sets the concurrency).
func TestAgainstDecisionAPI(t *testing.T) {
	srv, err := decisionapi.New(decisionapi.Config{Addr: "127.0.0.1:0", Keys: map[string]string{"k": "t1"}},
		fastEngine{}, nil, nil, nil, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	o := loadgen.Options{URL: "http://" + srv.Addr(), Key: "k", Requests: 5000, Seed: rand.Int64()}
	progress := io.Discard
	if secs, _ := strconv.Atoi(os.Getenv("TELGUARD_LOADGEN_SECONDS")); secs > 0 {
		o.Requests, o.Duration, progress = 0, time.Duration(secs)*time.Second, os.Stderr
		o.Concurrency, _ = strconv.Atoi(os.Getenv("TELGUARD_LOADGEN_CONCURRENCY"))
	}
	rep, err := loadgen.Run(context.Background(), o, progress)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if rep.Errors != 0 || rep.Requests == 0 {
		t.Errorf("%d of %d requests failed against the real API", rep.Errors, rep.Requests)
	}
	if rep.Verdicts["deny"] == 0 || rep.Verdicts["allow"] == 0 {
		t.Errorf("verdicts %v", rep.Verdicts)
	}
}
