package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/tlstest"
	"github.com/telguard/telguard/internal/webhook"
)

// The ingress behind mutual TLS, through the real binary: a provider with
// a certificate from the configured CA gets 202; without one the TLS
// handshake is refused; with one but a forged signature it gets 401 all
// the same. A spike of those forgeries raises one alert: a record in the
// decisions log (rule webhook.signature_failures, the source's tenant), a
// warning in the log and a metric.
func TestWebhookMutualTLSAndAlerts(t *testing.T) {
	providerKey := []byte("provider-secret-0123456789abcdef")
	dir := workdir(t)
	ca := tlstest.NewCA(t, "provider clients")
	srvCert, srvKey := ca.Issue(t, true)
	cliCert, cliKey := ca.Issue(t, false)
	for name, data := range map[string][]byte{"hooks.crt": srvCert, "hooks.key": srvKey, "clients-ca.pem": ca.PEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hooks := freePort(t)
	cfg := fmt.Sprintf(`webhooks:
  listen: %s
  tls_cert: hooks.crt
  tls_key: hooks.key
  tls_client_cas: clients-ca.pem
  alerts: {signature_failures: 5, duplicates: 3, window: 1m}
  sources:
    telco: {tenant: demo, secrets: [{secret: whsec_%[2]s}], mapping: {preset: flat}, client_cert_names: [hooks.telco.example, leaf]}
    crm: {tenant: demo, secrets: [{secret: whsec_%[2]s}], mapping: {preset: flat}, client_cert_names: [hooks.crm.example]}
`, hooks, base64.StdEncoding.EncodeToString(providerKey))
	if err := os.WriteFile(filepath.Join(dir, "telguard.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, withKey(), "--config", "telguard.yaml")

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
	}
	pair, err := tls.X509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	withCert, noCert := client(pair), client()
	postTo := func(source string, c *http.Client, id string, key []byte) (int, error) {
		body := `{"call_id":"mtls-1","status":"started","to":"+5511987654321","account":"m1"}`
		req, _ := http.NewRequest(http.MethodPost, "https://"+hooks+"/hooks/"+source, strings.NewReader(body))
		webhook.SetHeaders(req.Header, id, time.Now(), []byte(body), key)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	post := func(c *http.Client, id string, key []byte) (int, error) { return postTo("telco", c, id, key) }
	if code, err := post(withCert, "evt-mtls-1", providerKey); err != nil || code != 202 {
		t.Fatalf("client certificate from the CA, good signature: %d %v, want 202", code, err)
	}
	// Sources are bound to their own certificates: the telco's certificate
	// cannot post as the CRM, even with a good signature.
	crmCert, crmKey := ca.IssueClient(t, "hooks.crm.example")
	crmPair, err := tls.X509KeyPair(crmCert, crmKey)
	if err != nil {
		t.Fatal(err)
	}
	if code, err := postTo("crm", withCert, "evt-mtls-crm-1", providerKey); err != nil || code != 403 {
		t.Fatalf("another source's client certificate: %d %v, want 403", code, err)
	}
	if code, err := postTo("crm", client(crmPair), "evt-mtls-crm-2", providerKey); err != nil || code != 202 {
		t.Fatalf("the CRM's own client certificate: %d %v, want 202", code, err)
	}
	if code, err := post(noCert, "evt-mtls-2", providerKey); err == nil {
		t.Fatalf("no client certificate: answered %d, want the handshake refused", code)
	}
	if resp, err := http.Post("http://"+hooks+"/hooks/telco", "application/json", strings.NewReader("{}")); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP on the TLS port: %d, want Go's 400 for HTTP on an HTTPS port", resp.StatusCode)
		}
	}
	forged := []byte("not-the-provider-secret-0123456")
	for i := range 12 {
		if code, err := post(withCert, fmt.Sprintf("evt-forged-%d", i), forged); err != nil || code != 401 {
			t.Fatalf("client certificate but a forged signature: %d %v, want 401", code, err)
		}
	}

	// One alert for the spike, whatever number of forgeries followed.
	var alerts []map[string]any
	waitFor(t, func() bool {
		_, body := d.do("GET", "/v1/decisions?rule=webhook.signature_failures", nil)
		var page struct {
			Decisions []map[string]any `json:"decisions"`
		}
		json.Unmarshal(body, &page)
		alerts = page.Decisions
		return len(alerts) > 0
	}, "the signature-failure alert in the decisions log")
	time.Sleep(300 * time.Millisecond)
	_, body := d.do("GET", "/v1/decisions?rule=webhook.signature_failures", nil)
	if n := strings.Count(string(body), `"rule":"webhook.signature_failures"`); n != 1 {
		t.Fatalf("%d alerts for one spike, want 1: %s", n, body)
	}
	if alerts[0]["tenant"] != "demo" || alerts[0]["source_ip"] != "127.0.0.1" || strings.Contains(string(body), "mtls-1") {
		t.Fatalf("alert record: %s", body)
	}
	if !strings.Contains(d.stderr.String(), "webhook alert") {
		t.Fatalf("no warning logged:\n%s", d.stderr)
	}
	metrics, err := httpGet(d.base + "/metrics")
	if err != nil || !strings.Contains(metrics, `telguard_webhook_alerts_total{rule="webhook.signature_failures",source="telco"} 1`) {
		t.Fatalf("alert metric: %v\n%s", err, grepLines(metrics, "telguard_webhook_alerts"))
	}

	// Duplicates: the provider retrying one event past the threshold.
	for range 5 {
		post(withCert, "evt-mtls-1", providerKey)
	}
	waitFor(t, func() bool {
		_, body := d.do("GET", "/v1/decisions?rule=webhook.duplicates", nil)
		return strings.Count(string(body), `"rule":"webhook.duplicates"`) == 1
	}, "one duplicates alert")
}
