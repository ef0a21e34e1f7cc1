package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/webhook"
)

// The daemon is killed with SIGKILL while a provider posts signed events
// to it, and restarted on the same data directory; the provider retries
// what got no answer. Every event that was acknowledged (202, or 200 as a
// duplicate) must reach the CRM: at least once, and exactly once once the
// CRM drops repeats of a webhook-id. What carries them across the kill is
// JetStream's file store (acknowledged publishes) and the delivery outbox
// files (events the workers took off the queue); the CRM is slow until
// the kill so that both hold events when it comes.
func TestWebhookCrashKillRestart(t *testing.T) {
	const (
		events  = 2000
		clients = 16
	)
	providerKey := []byte("provider-secret-0123456789abcdef")
	crmKey := []byte("crm-secret-0123456789abcdefghijk")
	secret := func(k []byte) string { return "whsec_" + base64.StdEncoding.EncodeToString(k) }

	crm := newCrashCRM(t, crmKey)
	// Until the kill the CRM is slow, so that deliveries pile up in the
	// outbox (and events in the queue) and the kill finds them there.
	crm.delay.Store(int64(20 * time.Millisecond))
	dir := workdir(t)
	hooks := freePort(t)
	cfg := fmt.Sprintf(`webhooks:
  listen: %s
  sources:
    telco: {tenant: demo, secrets: [{secret: %s}], mapping: {preset: flat}}
  destinations:
    - {name: crm, tenant: demo, url: "http://%s/hook", secret: %s}
  allow_internal: ["127.0.0.1/32"]
  retry_schedule: [100ms, 200ms, 500ms, 1s, 2s]
`, hooks, secret(providerKey), crm.addr, secret(crmKey))
	if err := os.WriteFile(filepath.Join(dir, "telguard.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, withKey(), "--config", "telguard.yaml")

	// The provider: clients post from their own loopback addresses (the
	// ingress limits each address to 50/s, burst 100) and retry anything
	// without an answer, a 429 after its Retry-After, a 503 shortly.
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	todo := make(chan int, events)
	for i := range events {
		todo <- i
	}
	var (
		acked     [events]atomic.Int32 // the status that acknowledged event i
		nAcked    atomic.Int64
		attempts  atomic.Int64
		noAnswer  atomic.Int64 // transport errors: the daemon was down or died mid-request
		limited   atomic.Int64
		shed      atomic.Int64
		other     atomic.Int64
		remaining atomic.Int64
	)
	remaining.Store(events)
	allDone := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		client := crashClient(fmt.Sprintf("127.0.0.%d", 10+c))
		wg.Go(func() {
			defer client.CloseIdleConnections()
			for {
				var i int
				select {
				case i = <-todo:
				case <-allDone:
					return
				case <-ctx.Done():
					return
				}
				attempts.Add(1)
				code, wait, err := postCrashEvent(ctx, client, hooks, i, providerKey)
				switch {
				case err != nil:
					noAnswer.Add(1)
					wait = 50 * time.Millisecond
				case code == http.StatusAccepted || code == http.StatusOK:
					acked[i].Store(int32(code))
					nAcked.Add(1)
					if remaining.Add(-1) == 0 {
						close(allDone)
					}
					continue
				case code == http.StatusTooManyRequests:
					limited.Add(1)
				case code == http.StatusServiceUnavailable:
					shed.Add(1)
					wait = 20 * time.Millisecond
				default:
					other.Add(1)
					t.Errorf("event %d: unexpected status %d", i, code)
					wait = 100 * time.Millisecond
				}
				select {
				case <-time.After(min(wait, time.Second)):
				case <-ctx.Done():
					return
				}
				todo <- i
			}
		})
	}

	// The crash: SIGKILL once 30–60% are acknowledged, then a restart on
	// the same data directory and ports.
	killAt := int64(events * (30 + rand.IntN(31)) / 100)
	for nAcked.Load() < killAt {
		if ctx.Err() != nil {
			wg.Wait()
			t.Fatalf("only %d of %d acknowledged before the kill point %d\nstderr:\n%s", nAcked.Load(), events, killAt, d.stderr)
		}
		time.Sleep(time.Millisecond)
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := <-d.done
	d.done <- err // ProcessState is set: the cleanup's stop() now does nothing
	atKill := nAcked.Load()
	deliveredAtKill := crm.unique()
	crm.delay.Store(0)
	restartAt := time.Now()
	d2 := start(t, dir, withKey(), "--config", "telguard.yaml")
	t.Logf("killed (%v) at %d acknowledged (target %d), %d delivered: %d in the queue or the outbox; restarted in %v",
		err, atKill, killAt, deliveredAtKill, atKill-int64(deliveredAtKill), time.Since(restartAt).Round(time.Millisecond))

	wg.Wait()
	if n := nAcked.Load(); n != events {
		t.Fatalf("only %d of %d events acknowledged in time\nstderr after restart:\n%s", n, events, d2.stderr)
	}
	var n202, n200 int
	for i := range acked {
		if acked[i].Load() == http.StatusAccepted {
			n202++
		} else {
			n200++
		}
	}
	t.Logf("provider: %d attempts, %d acknowledged (%d × 202, %d × 200 duplicate), %d without answer, %d × 429, %d × 503, %d other",
		attempts.Load(), events, n202, n200, noAnswer.Load(), limited.Load(), shed.Load(), other.Load())

	// Every acknowledged event reaches the CRM.
	deadline := time.Now().Add(30 * time.Second)
	for crm.unique() < events && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // late repeats, if any, are counted too
	crm.mu.Lock()
	defer crm.mu.Unlock()
	var missing []string
	for i := range events {
		if crm.byEvent[crashEventID(i)] == 0 {
			missing = append(missing, crashEventID(i))
		}
	}
	repeats := 0
	for _, n := range crm.byMsg {
		repeats += n - 1
	}
	t.Logf("CRM: %d deliveries, %d distinct webhook-ids, %d distinct event ids, %d repeats (at-least-once), %d refused",
		crm.total, len(crm.byMsg), len(crm.byEvent), repeats, crm.refused)
	if len(missing) > 0 {
		t.Errorf("%d acknowledged events never delivered (lost), e.g. %v\nstderr after restart:\n%s",
			len(missing), missing[:min(len(missing), 10)], d2.stderr)
	}
	if len(crm.byMsg) != events || len(crm.byEvent) != events {
		t.Errorf("after dedupe by webhook-id: %d messages for %d events, want exactly %d of each",
			len(crm.byMsg), len(crm.byEvent), events)
	}
	for ev, ids := range crm.msgOf {
		if len(ids) != 1 {
			t.Errorf("event %s delivered under %d webhook-ids %v: the id must be stable per event", ev, len(ids), ids)
		}
	}
	if crm.foreign > 0 || crm.refused > 0 {
		t.Errorf("CRM got %d deliveries for events never posted and refused %d", crm.foreign, crm.refused)
	}
}

func crashEventID(i int) string { return fmt.Sprintf("evt-crash-%04d", i) }

// crashClient is an HTTP client whose connections leave from ip, a
// loopback address of its own.
func crashClient(ip string) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			MaxIdleConnsPerHost: 4,
			DisableCompression:  true,
		},
	}
}

// postCrashEvent posts event i signed now (a provider signs each attempt
// afresh) and returns the status and a 429's Retry-After.
func postCrashEvent(ctx context.Context, c *http.Client, hooks string, i int, key []byte) (int, time.Duration, error) {
	body := fmt.Sprintf(`{"call_id":"crash-%d","status":"started","direction":"outbound","from":"+551130001000","to":"+5511987654321","account":"crash-%d"}`, i, i%50)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+hooks+"/hooks/telco", strings.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	webhook.SetHeaders(req.Header, crashEventID(i), time.Now(), []byte(body), key)
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	wait := 100 * time.Millisecond
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		wait = time.Duration(s) * time.Second
	}
	return resp.StatusCode, wait, nil
}

// crashCRM is the test's CRM: it verifies each delivery's signature and
// counts deliveries by webhook-id and by the event id in the payload.
type crashCRM struct {
	addr  string
	delay atomic.Int64 // a time.Duration each delivery waits before its answer

	mu      sync.Mutex
	total   int
	refused int
	foreign int
	byMsg   map[string]int
	byEvent map[string]int
	msgOf   map[string]map[string]bool // event id → webhook-ids seen
}

func newCrashCRM(t *testing.T, key []byte) *crashCRM {
	t.Helper()
	verifier, err := webhook.NewVerifier(webhook.VerifierConfig{Secrets: []webhook.Secret{{Key: key}}})
	if err != nil {
		t.Fatal(err)
	}
	c := &crashCRM{byMsg: map[string]int{}, byEvent: map[string]int{}, msgOf: map[string]map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		time.Sleep(time.Duration(c.delay.Load()))
		var p struct {
			Data struct {
				EventID string `json:"event_id"`
			} `json:"data"`
		}
		_, verr := verifier.Verify(r.Header, body, time.Now())
		jerr := json.Unmarshal(body, &p)
		c.mu.Lock()
		defer c.mu.Unlock()
		if verr != nil || jerr != nil || p.Data.EventID == "" {
			c.refused++
			http.Error(w, "bad delivery", http.StatusBadRequest)
			return
		}
		id, ev := r.Header.Get(webhook.HeaderID), p.Data.EventID
		c.total++
		c.byMsg[id]++
		c.byEvent[ev]++
		if !strings.HasPrefix(ev, "evt-crash-") {
			c.foreign++
		}
		if c.msgOf[ev] == nil {
			c.msgOf[ev] = map[string]bool{}
		}
		c.msgOf[ev][id] = true
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	c.addr = srv.Listener.Addr().String()
	return c
}

// unique is the number of distinct events delivered.
func (c *crashCRM) unique() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byEvent)
}
