package config

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/telguard/telguard/internal/webhook"
)

// Webhooks configures the webhook ingress, its queue, the workers that feed
// provider call events to the engine, and outbound delivery. Off unless
// at least one source is configured.
type Webhooks struct {
	// Listen is the ingress address, its own port (meant for its own
	// domain). Default 127.0.0.1:8081.
	Listen string `yaml:"listen"`
	// QueueURL connects to an external NATS cluster; empty runs JetStream
	// embedded, with file storage under DATA/queue.
	QueueURL string `yaml:"queue_url"`
	// QueueSync fsyncs every message ("sync: always") and every write of
	// the delivery outbox: an acknowledged webhook then survives a machine
	// crash, not only a process crash.
	QueueSync bool `yaml:"queue_sync"`
	// Sources are the providers allowed to post, by the {source} of
	// POST /hooks/{source}.
	Sources map[string]WebhookSource `yaml:"sources"`
	// Destinations receive every normalised event, signed.
	Destinations []WebhookDestination `yaml:"destinations"`
	// PerIPRate and PerIPBurst limit each client address (requests per
	// second and burst). Defaults 50 and 100.
	PerIPRate  float64 `yaml:"per_ip_rate"`
	PerIPBurst int     `yaml:"per_ip_burst"`
	// RetrySchedule is the wait before each retry of a failed delivery;
	// after the last one the delivery is dead-lettered. Default 5s, 5m,
	// 30m, 2h, 5h, 10h (with ±20% jitter).
	RetrySchedule []time.Duration `yaml:"retry_schedule"`
	// AllowInternal lists internal ranges destinations may resolve to;
	// everything private, loopback, link-local, metadata… is refused
	// otherwise.
	AllowInternal []string `yaml:"allow_internal"`
	// Alerts: a spike of signature failures or duplicates from one source
	// raises an alert (a decisions-log record, a warning, a metric).
	Alerts WebhookAlerts `yaml:"alerts"`
	// DedupeWindow is how long a queued event's id makes a retry of it a
	// duplicate. Default 24h (0 → the default); at least twice every
	// source's timestamp tolerance (checked when the ingress starts).
	DedupeWindow time.Duration `yaml:"dedupe_window"`
	// TLSCert and TLSKey (PEM files) serve the ingress over HTTPS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TLSClientCAs (a PEM file of CAs) requires mutual TLS: a client
	// without a certificate one of them issued fails the handshake. An
	// extra layer: the signature is checked all the same.
	TLSClientCAs string `yaml:"tls_client_cas"`
}

// WebhookAlerts sets the spike thresholds, per source and window. A
// negative threshold turns that alert off.
type WebhookAlerts struct {
	SignatureFailures int           `yaml:"signature_failures"` // default 20
	Duplicates        int           `yaml:"duplicates"`         // default 100
	Window            time.Duration `yaml:"window"`             // default 1m
}

// WebhookSource is one provider.
type WebhookSource struct {
	Tenant string `yaml:"tenant"`
	// Scheme: standard-webhooks (default) or hmac.
	Scheme string `yaml:"scheme"`
	// Secrets are the configured signing secrets. `telguard webhooks
	// secret rotate` adds issued ones in DATA/webhook-secrets.json and
	// may retire configured ones (they then expire after the grace even
	// though the file still lists them).
	Secrets []WebhookSecret `yaml:"secrets"`
	// Tolerance of the signed timestamp. Default 5m.
	Tolerance time.Duration `yaml:"tolerance"`
	// For scheme hmac.
	TimestampHeader string `yaml:"timestamp_header"`
	SignatureHeader string `yaml:"signature_header"`
	Encoding        string `yaml:"encoding"` // hex (default) or base64
	Prefix          string `yaml:"prefix"`   // e.g. "sha256="
	Template        string `yaml:"template"` // default {body}.{timestamp}
	IDHeader        string `yaml:"id_header"`
	// EventIDPointer takes the event id from the JSON body when the
	// scheme has no id header.
	EventIDPointer string   `yaml:"event_id_pointer"`
	AllowedCIDRs   []string `yaml:"allowed_cidrs"`
	// ClientCertNames binds the source to mutual-TLS client certificates
	// naming one of these (needs tls_client_cas).
	ClientCertNames []string `yaml:"client_cert_names"`
	MaxBodyBytes    int64    `yaml:"max_body_bytes"`
	// Rate and Burst limit the source as a whole. Defaults 1000/s, 2000.
	Rate    float64         `yaml:"rate"`
	Burst   int             `yaml:"burst"`
	Mapping webhook.Mapping `yaml:"mapping"`
}

// WebhookSecret is a signing secret, given inline (whsec_… or raw) or by
// environment variable, with an optional expiry for rotation.
type WebhookSecret struct {
	Secret    string    `yaml:"secret"`
	SecretEnv string    `yaml:"secret_env"`
	Expires   time.Time `yaml:"expires"`
}

// WebhookDestination is a receiver of normalised events (a CRM).
type WebhookDestination struct {
	Name      string   `yaml:"name"`
	Tenant    string   `yaml:"tenant"` // the tenant whose events it receives
	URL       string   `yaml:"url"`
	Secret    string   `yaml:"secret"`
	SecretEnv string   `yaml:"secret_env"`
	Kinds     []string `yaml:"kinds"` // call_attempt, call_answered, call_ended; empty: all
}

// Enabled reports whether the webhook ingress is configured.
func (w Webhooks) Enabled() bool { return len(w.Sources) > 0 }

func (w *Webhooks) applyDefaults() {
	if w.Listen == "" {
		w.Listen = "127.0.0.1:8081"
	}
}

// Secret resolves a secret's key.
func resolveSecret(field, inline, env string, getenv func(string) string) ([]byte, error) {
	if (inline == "") == (env == "") {
		return nil, fmt.Errorf("%w: %s: give exactly one of secret or secret_env", ErrInvalid, field)
	}
	v := inline
	if env != "" {
		if v = getenv(env); v == "" {
			return nil, fmt.Errorf("%w: %s: $%s is unset", ErrInvalid, field, env)
		}
	}
	k, err := webhook.ParseSecret(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, field, err)
	}
	if len(k) < 16 {
		return nil, fmt.Errorf("%w: %s: a signing secret needs at least 16 bytes", ErrInvalid, field)
	}
	return k, nil
}

// Ingress returns the ingress configuration, reading secrets from the
// environment.
func (w Webhooks) Ingress(getenv func(string) string) (webhook.Config, map[string]webhook.Mapping, error) {
	cfg := webhook.Config{Addr: w.Listen, Sources: map[string]webhook.SourceConfig{}, PerIPRate: w.PerIPRate, PerIPBurst: w.PerIPBurst,
		Alerts:  webhook.AlertConfig{SignatureFailures: w.Alerts.SignatureFailures, Duplicates: w.Alerts.Duplicates, Window: w.Alerts.Window},
		TLSCert: w.TLSCert, TLSKey: w.TLSKey, TLSClientCAs: w.TLSClientCAs, DedupeWindow: w.DedupeWindow}
	maps := map[string]webhook.Mapping{}
	if err := w.validate(); err != nil {
		return cfg, nil, err
	}
	for name, s := range w.Sources {
		f := "webhooks.sources." + name
		if s.Tenant == "" {
			return cfg, nil, fmt.Errorf("%w: %s.tenant: missing", ErrInvalid, f)
		}
		// No configured secret is allowed: `telguard webhooks secret
		// rotate` may have issued one into the secret store. The ingress
		// refuses to start a source left with none.
		vc := webhook.VerifierConfig{
			Scheme: webhook.Scheme(s.Scheme), Tolerance: s.Tolerance,
			TimestampHeader: s.TimestampHeader, SignatureHeader: s.SignatureHeader,
			Encoding: webhook.Encoding(s.Encoding), Prefix: s.Prefix, Template: s.Template, IDHeader: s.IDHeader,
		}
		for i, sec := range s.Secrets {
			k, err := resolveSecret(fmt.Sprintf("%s.secrets[%d]", f, i), sec.Secret, sec.SecretEnv, getenv)
			if err != nil {
				return cfg, nil, err
			}
			vc.Secrets = append(vc.Secrets, webhook.Secret{Key: k, Expires: sec.Expires})
		}
		sc := webhook.SourceConfig{Tenant: s.Tenant, Verifier: vc, MaxBodyBytes: s.MaxBodyBytes, EventIDPointer: s.EventIDPointer, Rate: s.Rate, Burst: s.Burst}
		if len(s.ClientCertNames) > 0 && w.TLSClientCAs == "" {
			return cfg, nil, fmt.Errorf("%w: %s.client_cert_names needs webhooks.tls_client_cas (mutual TLS)", ErrInvalid, f)
		}
		for i, n := range s.ClientCertNames {
			if n == "" || len(n) > 253 {
				return cfg, nil, fmt.Errorf("%w: %s.client_cert_names[%d]: want a DNS name", ErrInvalid, f, i)
			}
		}
		sc.ClientCertNames = s.ClientCertNames
		for i, c := range s.AllowedCIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return cfg, nil, fmt.Errorf("%w: %s.allowed_cidrs[%d]: bad CIDR %q", ErrInvalid, f, i, c)
			}
			sc.AllowedCIDRs = append(sc.AllowedCIDRs, p.Masked())
		}
		cfg.Sources[name] = sc
		maps[name] = s.Mapping
	}
	return cfg, maps, nil
}

// AllowInternalPrefixes parses AllowInternal.
func (w Webhooks) AllowInternalPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, c := range w.AllowInternal {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("%w: webhooks.allow_internal[%d]: bad CIDR %q", ErrInvalid, i, c)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// DestinationSecret resolves the signing secret of destination i.
func DestinationSecret(i int, dst WebhookDestination, getenv func(string) string) ([]byte, error) {
	f := fmt.Sprintf("webhooks.destinations[%d]", i)
	if dst.Name == "" || dst.URL == "" || dst.Tenant == "" {
		return nil, fmt.Errorf("%w: %s: name, tenant and url are required", ErrInvalid, f)
	}
	return resolveSecret(f, dst.Secret, dst.SecretEnv, getenv)
}

// validate checks what Ingress cannot leave to the webhook package: the
// fields are named as in the file.
func (w Webhooks) validate() error {
	bad := func(field, msg string) error { return fmt.Errorf("%w: webhooks.%s: %s", ErrInvalid, field, msg) }
	if w.Alerts.Window < 0 {
		return bad("alerts.window", "must not be negative")
	}
	if w.Alerts.Window > 0 && w.Alerts.Window < time.Second {
		return bad("alerts.window", "at least 1s")
	}
	if (w.TLSCert == "") != (w.TLSKey == "") {
		return bad("tls_cert", "give both tls_cert and tls_key, or neither")
	}
	if w.TLSClientCAs != "" && w.TLSCert == "" {
		return bad("tls_client_cas", "mutual TLS needs tls_cert and tls_key too")
	}
	if w.PerIPRate < 0 || w.PerIPBurst < 0 {
		return bad("per_ip_rate", "must not be negative")
	}
	if w.DedupeWindow != 0 && w.DedupeWindow < webhook.DedupeOverlap {
		return bad("dedupe_window", fmt.Sprintf("at least %s", webhook.DedupeOverlap))
	}
	return nil
}
