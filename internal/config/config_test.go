package config

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaults(t *testing.T) {
	c, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.API.Listen != "127.0.0.1:8080" || c.DataDir != "data" || c.StorePath() != "data/telguard.db" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestUnknownKeyIsAnErrorWithLine(t *testing.T) {
	_, err := Parse("c.yaml", []byte("data_dir: /tmp/x\napi:\n  listn: 127.0.0.1:9\n"))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "c.yaml:3") || !strings.Contains(err.Error(), "listn") {
		t.Fatalf("err = %v", err)
	}
}

func TestOverrides(t *testing.T) {
	c, err := Parse("c.yaml", []byte("api:\n  listen: 127.0.0.1:9999\n  keys:\n    - tenant: acme\n      key_env: ACME_KEY\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.API.Listen != "127.0.0.1:9999" {
		t.Fatal(c.API.Listen)
	}
	keys, err := c.ResolveKeys(func(string) string { return "0123456789abcdef0123" })
	if err != nil || keys["0123456789abcdef0123"] != "acme" {
		t.Fatalf("keys %v err %v", keys, err)
	}
	if _, err := c.ResolveKeys(func(string) string { return "" }); err == nil {
		t.Fatal("unset key_env accepted")
	}
}

func TestValidate(t *testing.T) {
	for _, in := range []string{
		"log:\n  level: loud\n",
		"api:\n  listen: nowhere\n",
		"api:\n  keys:\n    - tenant: a\n      key: short\n",
		"store:\n  driver: oracle\n",
	} {
		if _, err := Parse("c.yaml", []byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err = %v, want invalid", in, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("api:\n  listen: 127.0.0.1:9999\n"))
	f.Add([]byte("data_dir: x\nstore:\n  retain_decisions: 24h\n"))
	f.Add([]byte("api:\n  keys:\n    - {tenant: a, key_env: K}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// Whatever parsed is valid and complete.
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config Validate refuses: %v", err)
		}
		if c.API.Listen == "" || c.DataDir == "" {
			t.Fatalf("defaults missing: %+v", c)
		}
	})
}

func TestWebhooksSection(t *testing.T) {
	src := `webhooks:
  sources:
    telco:
      tenant: demo
      secrets:
        - {secret_env: TELCO_SECRET}
        - {secret: "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3", expires: 2027-01-01T00:00:00Z}
      mapping: {preset: flat}
`
	c, err := Parse("c.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Webhooks.Enabled() || c.Webhooks.Listen != "127.0.0.1:8081" {
		t.Fatalf("webhooks: %+v", c.Webhooks)
	}
	env := func(k string) string {
		if k == "TELCO_SECRET" {
			return "a-raw-secret-of-enough-length"
		}
		return ""
	}
	ing, maps, err := c.Webhooks.Ingress(env)
	if err != nil {
		t.Fatal(err)
	}
	if s := ing.Sources["telco"]; s.Tenant != "demo" || len(s.Verifier.Secrets) != 2 || s.Verifier.Secrets[1].Expires.IsZero() {
		t.Fatalf("source: %+v", s)
	}
	if maps["telco"].Preset != "flat" {
		t.Fatalf("mapping: %+v", maps["telco"])
	}
	if _, _, err := c.Webhooks.Ingress(func(string) string { return "" }); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "TELCO_SECRET") {
		t.Fatalf("unset secret env: %v", err)
	}
	short := strings.Replace(src, "{secret_env: TELCO_SECRET}", "{secret: short}", 1)
	c, _ = Parse("c.yaml", []byte(short))
	if _, _, err := c.Webhooks.Ingress(env); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a 5-byte secret was accepted: %v", err)
	}
}

func TestSIPTLSSection(t *testing.T) {
	c, err := Parse("c.yaml", []byte("sip:\n  listen: [\"udp:127.0.0.1:5060\", \"tls:[::1]:5061\"]\n  upstream: udp:127.0.0.1:5070\n"+
		"  tls_cert: /etc/telguard/sip.crt\n  tls_key: /etc/telguard/sip.key\n  tls_client_cas: /etc/telguard/trunks.pem\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.SIP.TLSCert != "/etc/telguard/sip.crt" || c.SIP.TLSKey != "/etc/telguard/sip.key" || c.SIP.TLSClientCAs != "/etc/telguard/trunks.pem" {
		t.Errorf("sip tls = %+v", c.SIP)
	}
	for _, in := range []string{
		"sip:\n  listen: [\"tls:127.0.0.1:5061\", \"udp:127.0.0.1:5060\"]\n  upstream: udp:127.0.0.1:5070\n",
		"sip:\n  listen: [\"TLS:127.0.0.1:5061\", \"udp:127.0.0.1:5060\"]\n  upstream: udp:127.0.0.1:5070\n  tls_cert: a.crt\n",
		"sip:\n  listen: [\"udp:127.0.0.1:5060\"]\n  upstream: udp:127.0.0.1:5070\n  tls_key: a.key\n",
	} {
		if _, err := Parse("c.yaml", []byte(in)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "tls") {
			t.Errorf("%q: err = %v, want invalid naming tls", in, err)
		}
	}
}
