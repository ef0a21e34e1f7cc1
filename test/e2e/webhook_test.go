package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/webhook"
)

// A provider's signed call events through the real binary: verified,
// queued, acknowledged; a replay refused; a forgery refused; the events
// reach the engine (its decisions log) and a CRM receives them signed.
func TestWebhookIngressEndToEnd(t *testing.T) {
	providerKey := []byte("provider-secret-0123456789abcdef")
	crmKey := []byte("crm-secret-0123456789abcdefghijk")
	secret := func(k []byte) string { return "whsec_" + base64.StdEncoding.EncodeToString(k) }

	// The CRM: verifies each delivery with the destination secret.
	var mu sync.Mutex
	var got []map[string]any
	verifier, err := webhook.NewVerifier(webhook.VerifierConfig{Secrets: []webhook.Secret{{Key: crmKey}}})
	if err != nil {
		t.Fatal(err)
	}
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := verifier.Verify(r.Header, body, time.Now()); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var m map[string]any
		json.Unmarshal(body, &m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(crm.Close)
	ln := crm.Listener

	dir := workdir(t)
	hooks := freePort(t)
	cfg := fmt.Sprintf(`webhooks:
  listen: %s
  sources:
    telco:
      tenant: demo
      secrets: [{secret: %s}]
      mapping: {preset: flat}
  destinations:
    - {name: crm, tenant: demo, url: "http://%s/hook", secret: %s}
  allow_internal: ["127.0.0.1/32"]
`, hooks, secret(providerKey), ln.Addr(), secret(crmKey))
	if err := os.WriteFile(filepath.Join(dir, "telguard.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, withKey(), "--config", "telguard.yaml")

	post := func(id string, body string, key []byte) int {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+hooks+"/hooks/telco", strings.NewReader(body))
		webhook.SetHeaders(req.Header, id, time.Now(), []byte(body), key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	started := `{"call_id":"wh-1","status":"started","direction":"outbound","from":"+551130001000","to":"+449098790000","account":"1001"}`
	if code := post("evt-1", started, providerKey); code != 202 {
		t.Fatalf("signed event: %d, want 202", code)
	}
	if code := post("evt-1", started, providerKey); code != 200 {
		t.Fatalf("replayed event id: %d, want 200 (duplicate, not queued again)", code)
	}
	if code := post("evt-2", started, []byte("not-the-provider-secret-0123456")); code != 401 {
		t.Fatalf("forged signature: %d, want 401", code)
	}
	tampered := bytes.Replace([]byte(started), []byte("started"), []byte("ended!!"), 1)
	req, _ := http.NewRequest("POST", "http://"+hooks+"/hooks/telco", bytes.NewReader(tampered))
	webhook.SetHeaders(req.Header, "evt-3", time.Now(), []byte(started), providerKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("body changed after signing: %v %v, want 401", resp.StatusCode, err)
	}

	// The worker fed it to the engine: a premium call, denied and logged.
	waitFor(t, func() bool {
		_, body := d.do("GET", "/v1/decisions?call_id=wh-1", nil)
		return strings.Contains(string(body), `"destination.number_type"`)
	}, "the webhook's call in the decisions log")
	// And the CRM got it once, signed.
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 1
	}, "a signed delivery to the CRM")
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	data, _ := got[0]["data"].(map[string]any)
	if len(got) != 1 || data["call_id"] != "wh-1" || data["event_id"] != "evt-1" {
		t.Fatalf("CRM received %d deliveries %v, want exactly the one event", len(got), got)
	}
}

// A destination that keeps failing: the delivery is dead-lettered after
// its retries, listed by `telguard webhooks dlq list`, and delivered by
// `replay` once the destination is back.
func TestWebhookDeadLetterReplay(t *testing.T) {
	providerKey := []byte("provider-secret-0123456789abcdef")
	crmKey := []byte("crm-secret-0123456789abcdefghijk")
	secret := func(k []byte) string { return "whsec_" + base64.StdEncoding.EncodeToString(k) }
	var mu sync.Mutex
	up, delivered := false, 0
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !up {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		delivered++
		w.WriteHeader(204)
	}))
	t.Cleanup(crm.Close)
	ln := crm.Listener

	dir := workdir(t)
	hooks := freePort(t)
	cfg := fmt.Sprintf(`webhooks:
  listen: %s
  sources:
    telco: {tenant: demo, secrets: [{secret: %s}], mapping: {preset: flat}}
  destinations:
    - {name: crm, tenant: demo, url: "http://%s/hook", secret: %s}
  allow_internal: ["127.0.0.1/32"]
  retry_schedule: [100ms, 100ms]
`, hooks, secret(providerKey), ln.Addr(), secret(crmKey))
	if err := os.WriteFile(filepath.Join(dir, "telguard.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, withKey(), "--config", "telguard.yaml")
	body := `{"call_id":"dl-1","status":"started","to":"+5511987654321","account":"2001"}`
	req, _ := http.NewRequest("POST", "http://"+hooks+"/hooks/telco", strings.NewReader(body))
	webhook.SetHeaders(req.Header, "evt-dl-1", time.Now(), []byte(body), providerKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 202 {
		t.Fatalf("post: %v %v", resp, err)
	}
	var id string
	waitFor(t, func() bool {
		out, _, code := run(t, dir, "webhooks", "dlq", "list", "--url", d.base, "--key", apiKey)
		if code != 0 || !strings.Contains(out, "crm") {
			return false
		}
		id = strings.Fields(strings.Split(out, "\n")[1])[0]
		return true
	}, "the failed delivery in the dead-letter list")
	mu.Lock()
	up = true
	mu.Unlock()
	if out, stderr, code := run(t, dir, "webhooks", "dlq", "replay", "--url", d.base, "--key", apiKey, id); code != 0 {
		t.Fatalf("replay: %d %s %s", code, out, stderr)
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return delivered == 1 }, "the replayed delivery")
	if out, _, _ := run(t, dir, "webhooks", "dlq", "list", "--url", d.base, "--key", apiKey); !strings.Contains(out, "no dead letters") {
		t.Fatalf("after replay the list still shows: %s", out)
	}
}
