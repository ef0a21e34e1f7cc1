package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/event"
)

const hookSecret = "whsec_cHJvdmlkZXItc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWY="

func TestWebhookIngressOptions(t *testing.T) {
	c, err := Parse("c.yaml", []byte(`webhooks:
  tls_cert: hooks.crt
  tls_key: hooks.key
  tls_client_cas: ca.pem
  alerts: {signature_failures: 7, duplicates: -1, window: 30s}
  sources:
    telco:
      tenant: acme
      client_cert_names: [hooks.telco.example]
      secrets: [{secret: `+hookSecret+`}]
      mapping: {preset: flat, directions: {incoming: inbound}}
    issued-only: {tenant: acme, mapping: {preset: flat}}
`))
	if err != nil {
		t.Fatal(err)
	}
	ic, maps, err := c.Webhooks.Ingress(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if ic.TLSCert != "hooks.crt" || ic.TLSKey != "hooks.key" || ic.TLSClientCAs != "ca.pem" {
		t.Fatalf("tls: %+v", ic)
	}
	if ic.Alerts.SignatureFailures != 7 || ic.Alerts.Duplicates != -1 || ic.Alerts.Window != 30*time.Second {
		t.Fatalf("alerts: %+v", ic.Alerts)
	}
	if n := ic.Sources["telco"].ClientCertNames; len(n) != 1 || n[0] != "hooks.telco.example" {
		t.Fatalf("client certificate names: %v", n)
	}
	if len(ic.Sources["issued-only"].Verifier.Secrets) != 0 {
		t.Fatal("a source without configured secrets got some")
	}
	if maps["telco"].Directions["incoming"] != event.Inbound {
		t.Fatalf("direction values: %+v", maps["telco"])
	}
}

func TestWebhookIngressRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"cert without key":    {"tls_cert: a.crt", "webhooks.tls_cert"},
		"key without cert":    {"tls_key: a.key", "webhooks.tls_cert"},
		"client CAs alone":    {"tls_client_cas: ca.pem", "webhooks.tls_client_cas"},
		"negative window":     {"alerts: {window: -1s}", "webhooks.alerts.window"},
		"sub-second window":   {"alerts: {window: 10ms}", "webhooks.alerts.window"},
		"negative ip rate":    {"per_ip_rate: -1", "webhooks.per_ip_rate"},
		"short dedupe window": {"dedupe_window: 30s", "webhooks.dedupe_window"},
		"no tenant on source": {"sources: {telco: {secrets: [{secret: " + hookSecret + "}]}}", "webhooks.sources.telco.tenant"},
		"cert names without mutual TLS": {"sources: {telco: {tenant: acme, client_cert_names: [a.example], mapping: {preset: flat}}}",
			"webhooks.sources.telco.client_cert_names"},
	} {
		c, err := Parse("c.yaml", []byte("webhooks:\n  "+tc.yaml+"\n"))
		if err == nil {
			_, _, err = c.Webhooks.Ingress(func(string) string { return "" })
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
	}
}
