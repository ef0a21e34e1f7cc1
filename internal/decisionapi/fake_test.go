package decisionapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/store"
)

const (
	keyA    = "key-a-0123456789abcdef"
	keyB    = "key-b-0123456789abcdef"
	tenantA = "tenant-a"
	tenantB = "tenant-b"
)

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeEngine allows everything except premium +44909 numbers, remembers
// calls per tenant, and panics when asked to call "panic".
type fakeEngine struct {
	mu        sync.Mutex
	events    []event.Event
	calls     map[string]bool // tenant/call_id
	suspended map[string]bool // tenant/account
	actors    []string
	record    bool
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{calls: map[string]bool{}, suspended: map[string]bool{}, record: true}
}

func (f *fakeEngine) Decide(_ context.Context, ev event.Event) event.Decision {
	if ev.To == "panic" {
		panic("fake engine told to panic")
	}
	d := event.Decision{
		Time: ev.Time, Tenant: ev.Tenant, Account: ev.Account, CallID: ev.CallID,
		From: ev.From, To: ev.To, Verdict: event.Allow, SIPCode: 0, HTTPCode: 200,
	}
	if ev.SourceIP.IsValid() {
		d.SourceIP = ev.SourceIP.String()
	}
	if strings.HasPrefix(ev.To, "+44909") {
		d.Verdict, d.Risk, d.SIPCode, d.HTTPCode = event.Deny, 90, 403, 403
		d.Reasons = []event.Reason{{Rule: "premium-rate", Reason: "premium-rate destination", Mode: event.Enforce, Verdict: event.Deny}}
	}
	if !f.record {
		return d
	}
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.calls[ev.Tenant+"/"+ev.CallID] = true
	f.mu.Unlock()
	return d
}

func (f *fakeEngine) Observe(_ context.Context, ev event.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ev.CallID == "bad-event" {
		return fmt.Errorf("observe: %w: no account", engine.ErrBadEvent)
	}
	if !f.calls[ev.Tenant+"/"+ev.CallID] {
		return fmt.Errorf("observe %s: %w", ev.Kind, engine.ErrUnknownCall)
	}
	if ev.Kind == event.CallEnded {
		delete(f.calls, ev.Tenant+"/"+ev.CallID)
	}
	f.events = append(f.events, ev)
	return nil
}

func (f *fakeEngine) Unsuspend(_ context.Context, tenant, account, actor string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.suspended[tenant+"/"+account] {
		return engine.ErrNotSuspended
	}
	delete(f.suspended, tenant+"/"+account)
	f.actors = append(f.actors, actor)
	return nil
}

func (f *fakeEngine) lastEvent(t *testing.T) event.Event {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) == 0 {
		t.Fatal("engine saw no event")
	}
	return f.events[len(f.events)-1]
}

// fakeLog returns one canned page and remembers the query.
type fakeLog struct {
	mu     sync.Mutex
	tenant string
	q      store.DecisionQuery
	page   []event.Decision
	next   string
}

func (l *fakeLog) Decisions(_ context.Context, tenant string, q store.DecisionQuery) ([]event.Decision, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tenant, l.q = tenant, q
	if q.Cursor == "garbage" {
		return nil, "", fmt.Errorf("decode cursor: %w", store.ErrBadCursor)
	}
	return l.page, l.next, nil
}

type fakeReloader struct{ err error }

func (r *fakeReloader) Reload(context.Context) error { return r.err }

// syncBuffer is a goroutine-safe log sink.
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

type harness struct {
	srv   *Server
	eng   *fakeEngine
	log   *fakeLog
	rel   *fakeReloader
	ready error
	reg   *prometheus.Registry
	logs  *syncBuffer
}

func newHarness(t testing.TB) *harness { return newHarnessAt(t, slog.LevelDebug) }

// newHarnessAt logs at level into h.logs.
func newHarnessAt(t testing.TB, level slog.Level) *harness {
	t.Helper()
	h := &harness{eng: newFakeEngine(), log: &fakeLog{}, rel: &fakeReloader{}, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	logger := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: level}))
	srv, err := New(Config{
		Addr:  "127.0.0.1:0",
		Keys:  map[string]string{keyA: tenantA, keyB: tenantB},
		Clock: func() time.Time { return testNow },
	}, h.eng, h.log, h.rel, func(context.Context) error { return h.ready }, h.reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	return h
}

// do sends a request straight to the handler.
func (h *harness) do(t testing.TB, method, path, key, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	return rec
}

// errorOf decodes an error response, checking its shape.
func errorOf(t testing.TB, rec *httptest.ResponseRecorder) errorBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e errorBody
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body is not {error, field} JSON: %v", err)
	}
	if e.Error == "" {
		t.Error(`error body has an empty "error"`)
	}
	return e
}

func checkBody(to string) string {
	return `{"call_id":"c1@pbx","account":"acct-1","from":"+551130001000","to":"` + to + `","source_ip":"127.0.0.1","user_agent":"Asterisk PBX 20.5.0"}`
}

var errTest = errors.New("test error")
