package webhook

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/telguard/telguard/internal/queue"
)

type fixture struct {
	srv   *Server
	q     *queue.Queue
	reg   *prometheus.Registry
	clock time.Time
}

func newFixture(t *testing.T, edit func(*Config)) *fixture {
	t.Helper()
	q, err := queue.Open(context.Background(), queue.Options{Embedded: true, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	f := &fixture{q: q, reg: prometheus.NewRegistry(), clock: now}
	cfg := Config{
		Clock: func() time.Time { return f.clock },
		Sources: map[string]SourceConfig{
			"telco": {Tenant: "acme", Verifier: VerifierConfig{Secrets: []Secret{{Key: keyA}}}},
			"generic": {Tenant: "acme", EventIDPointer: "/data/id", Verifier: VerifierConfig{
				Scheme: GenericHMAC, Secrets: []Secret{{Key: keyA}},
				TimestampHeader: "X-Ts", SignatureHeader: "X-Sig", Prefix: "sha256="}},
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	if f.srv, err = New(cfg, q, f.reg, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) post(t *testing.T, source string, h http.Header, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/hooks/"+source, bytes.NewReader(body))
	for k, v := range h {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, r)
	return w
}

func (f *fixture) depth(t *testing.T) uint64 {
	t.Helper()
	d, err := f.q.Depth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (f *fixture) counter(name, label string) float64 {
	var m dto.Metric
	if err := f.metric(name).WithLabelValues(label).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func (f *fixture) metric(name string) *prometheus.CounterVec {
	m := f.srv.metrics
	return map[string]*prometheus.CounterVec{
		"verified": m.verified, "stale": m.stale, "signature": m.signatureFailures,
		"duplicates": m.duplicates, "rate": m.rateLimited,
	}[name]
}

func TestIngress(t *testing.T) {
	f := newFixture(t, nil)

	// A good signature is acknowledged only once the event is queued.
	w := f.post(t, "telco", stdHeaders("evt_1", now, body, keyA), body)
	if w.Code != http.StatusAccepted {
		t.Fatalf("good signature: %d %s", w.Code, w.Body)
	}
	if d := f.depth(t); d != 1 {
		t.Fatalf("depth after 202 = %d, want 1", d)
	}

	// The same id again (a provider retry or a replay) is 200, not queued.
	w = f.post(t, "telco", stdHeaders("evt_1", now.Add(time.Second), body, keyA), body)
	if w.Code != http.StatusOK || f.depth(t) != 1 || f.counter("duplicates", "telco") != 1 {
		t.Fatalf("replay: %d, depth %d", w.Code, f.depth(t))
	}

	// One byte changed: 401, counted, nothing queued.
	changed := bytes.Replace(body, []byte("42"), []byte("43"), 1)
	w = f.post(t, "telco", stdHeaders("evt_2", now, body, keyA), changed)
	if w.Code != http.StatusUnauthorized || f.depth(t) != 1 || f.counter("signature", "telco") != 1 {
		t.Fatalf("changed body: %d", w.Code)
	}
	if strings.Contains(w.Body.String(), "call") {
		t.Fatal("error response echoes the payload")
	}

	// A valid signature on an old timestamp: 401 and counted as stale.
	w = f.post(t, "telco", stdHeaders("evt_3", now.Add(-10*time.Minute), body, keyA), body)
	if w.Code != http.StatusUnauthorized || f.counter("stale", "telco") != 1 || f.depth(t) != 1 {
		t.Fatalf("stale: %d", w.Code)
	}

	// Missing headers: 401.
	if w = f.post(t, "telco", http.Header{}, body); w.Code != http.StatusUnauthorized {
		t.Fatalf("unsigned: %d", w.Code)
	}
	// Unknown source: 404.
	if w = f.post(t, "nobody", stdHeaders("evt_4", now, body, keyA), body); w.Code != http.StatusNotFound {
		t.Fatalf("unknown source: %d", w.Code)
	}

	// The queued message is the envelope with the body as received.
	msgs := make(chan queue.Msg, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.q.Consume(ctx, "test", func(_ context.Context, m queue.Msg) error { msgs <- m; return nil })
	select {
	case m := <-msgs:
		env, err := DecodeEnvelope(m.Data)
		if err != nil || m.ID != "telco/evt_1" || env.Tenant != "acme" || env.ID != "evt_1" || !bytes.Equal(env.Body, body) {
			t.Fatalf("queued %q: %+v, %v", m.ID, env, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing consumed")
	}
}

func TestIngressGenericWithJSONPointerID(t *testing.T) {
	f := newFixture(t, nil)
	b := []byte(`{"data":{"id":"ev-77","state":"ended"}}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	h := http.Header{"X-Ts": {ts}, "X-Sig": {"sha256=" + genericSig(keyA, string(b)+"."+ts, Hex)}}
	if w := f.post(t, "generic", h, b); w.Code != http.StatusAccepted {
		t.Fatalf("generic: %d %s", w.Code, w.Body)
	}
	if w := f.post(t, "generic", h, b); w.Code != http.StatusOK {
		t.Fatalf("generic replay: %d", w.Code)
	}
	noID := []byte(`{"data":{}}`)
	h.Set("X-Sig", "sha256="+genericSig(keyA, string(noID)+"."+ts, Hex))
	if w := f.post(t, "generic", h, noID); w.Code != http.StatusBadRequest {
		t.Fatalf("no id in body: %d", w.Code)
	}
}

func TestIngressOversize(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		s := c.Sources["telco"]
		s.MaxBodyBytes = 1024
		c.Sources["telco"] = s
	})
	big := bytes.Repeat([]byte("x"), 1025)
	if w := f.post(t, "telco", stdHeaders("big", now, big, keyA), big); w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize: %d", w.Code)
	}
	// Without Content-Length the limit holds as well.
	r := httptest.NewRequest(http.MethodPost, "/hooks/telco", struct{ *bytes.Reader }{bytes.NewReader(big)})
	r.ContentLength = -1
	for k, v := range stdHeaders("big", now, big, keyA) {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge || f.depth(t) != 0 {
		t.Fatalf("oversize, chunked: %d", w.Code)
	}
}

func TestIngressQueueClosed(t *testing.T) {
	f := newFixture(t, nil)
	f.q.Close()
	w := f.post(t, "telco", stdHeaders("evt_1", now, body, keyA), body)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("queue closed: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
}

func TestIngressRateLimits(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.PerIPRate, c.PerIPBurst = 1, 2
	})
	for i := range 2 {
		id := "r" + strconv.Itoa(i)
		if w := f.post(t, "telco", stdHeaders(id, now, body, keyA), body); w.Code != http.StatusAccepted {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	w := f.post(t, "telco", stdHeaders("r2", now, body, keyA), body)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" || f.counter("rate", "ip") != 1 {
		t.Fatalf("over the per-IP limit: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	f.clock = f.clock.Add(time.Second)
	if w := f.post(t, "telco", stdHeaders("r2", now, body, keyA), body); w.Code != http.StatusAccepted {
		t.Fatalf("after refill: %d", w.Code)
	}

	g := newFixture(t, func(c *Config) {
		s := c.Sources["telco"]
		s.Rate, s.Burst = 1, 1
		c.Sources["telco"] = s
	})
	g.post(t, "telco", stdHeaders("s0", now, body, keyA), body)
	if w := g.post(t, "telco", stdHeaders("s1", now, body, keyA), body); w.Code != http.StatusTooManyRequests || g.counter("rate", "source") != 1 {
		t.Fatalf("over the source limit: %d", w.Code)
	}
}

func TestIngressAllowedCIDRs(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		s := c.Sources["telco"]
		s.AllowedCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		c.Sources["telco"] = s
	})
	// httptest requests come from 192.0.2.1.
	if w := f.post(t, "telco", stdHeaders("e", now, body, keyA), body); w.Code != http.StatusForbidden {
		t.Fatalf("outside the allowlist: %d", w.Code)
	}
}

// blockingQueue holds every Publish until released, to fill the in-flight slots.
type blockingQueue struct{ release chan struct{} }

func (b blockingQueue) Publish(ctx context.Context, _ string, _ []byte) (bool, error) {
	select {
	case <-b.release:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func TestIngressShedsBeyondInFlight(t *testing.T) {
	bq := blockingQueue{release: make(chan struct{})}
	srv, err := New(Config{
		MaxInFlight: 1,
		Clock:       func() time.Time { return now },
		Sources:     map[string]SourceConfig{"telco": {Tenant: "acme", Verifier: VerifierConfig{Secrets: []Secret{{Key: keyA}}}}},
	}, bq, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan int)
	go func() {
		r := httptest.NewRequest(http.MethodPost, "/hooks/telco", bytes.NewReader(body))
		for k, v := range stdHeaders("a", now, body, keyA) {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, r)
		first <- w.Code
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(srv.slots) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	r := httptest.NewRequest(http.MethodPost, "/hooks/telco", bytes.NewReader(body))
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("second request while one in flight: %d", w.Code)
	}
	close(bq.release)
	if c := <-first; c != http.StatusAccepted {
		t.Fatalf("first request: %d", c)
	}
}

func TestServerRunAndShutdown(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Addr = "127.0.0.1:0" })
	if err := f.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Run(ctx) }()
	req, _ := http.NewRequest(http.MethodPost, "http://"+f.srv.Addr()+"/hooks/telco", bytes.NewReader(body))
	for k, v := range stdHeaders("net", now, body, keyA) {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("over TCP: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestNewRefusesBadSources(t *testing.T) {
	good := VerifierConfig{Secrets: []Secret{{Key: keyA}}}
	for name, sc := range map[string]map[string]SourceConfig{
		"bad name":      {"Bad Name": {Tenant: "a", Verifier: good}},
		"no tenant":     {"x": {Verifier: good}},
		"bad pointer":   {"x": {Tenant: "a", Verifier: good, EventIDPointer: "data"}},
		"bad verifier":  {"x": {Tenant: "a"}},
		"generic no id": {"x": {Tenant: "a", Verifier: VerifierConfig{Scheme: GenericHMAC, Secrets: good.Secrets, SignatureHeader: "S", TimestampHeader: "T"}}},
	} {
		if _, err := New(Config{Sources: sc}, blockingQueue{}, nil, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// New connections are limited per client address (IPv6 by /64) at the
// same rate as requests, before any byte is read: a client never needs
// more connections than requests, and one opening connections in a loop
// gets no TLS handshake past its burst.
func TestConnectionsLimitedPerAddress(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.PerIPRate, c.PerIPBurst = 1, 2 })
	from := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000} }
	for i, want := range []bool{true, true, false} {
		if got := f.srv.admit(from("192.0.2.7")); got != want {
			t.Fatalf("connection %d from one address admitted = %v, want %v", i+1, got, want)
		}
	}
	if !f.srv.admit(from("192.0.2.8")) {
		t.Fatal("another address was refused")
	}
	f.srv.admit(from("2001:db8:1:2::1"))
	f.srv.admit(from("2001:db8:1:2::2"))
	if f.srv.admit(from("2001:db8:1:2::3")) {
		t.Fatal("a third connection from the same IPv6 /64 was admitted past the burst")
	}
	f.clock = f.clock.Add(time.Second)
	if !f.srv.admit(from("192.0.2.7")) {
		t.Fatal("a connection a second later was refused: the limit did not refill")
	}
	if n := f.counter("rate", "connection"); n != 2 {
		t.Fatalf("connections refused counted %v, want 2", n)
	}
}
