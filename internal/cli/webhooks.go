package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/telguard/telguard/internal/config"
	"github.com/telguard/telguard/internal/webhook"
)

const webhooksHelp = `
Usage:
  telguard webhooks secret rotate --config FILE [--data DIR] [--grace 24h] SOURCE
  telguard webhooks secret list   --config FILE [--data DIR] SOURCE
  telguard webhooks dlq list      [--url URL] [--key KEY] [--limit N]
  telguard webhooks dlq replay    [--url URL] [--key KEY] ID

'secret rotate' issues a new whsec_ signing secret for a webhook source
and prints it once; every secret the source had (configured in the file or
issued before) stays valid for the grace period and then expires. The
secrets live in DATA/webhook-secrets.json (mode 0600, replaced atomically);
a running daemon picks the change up at once, without a restart. 'secret
list' shows each secret's id, origin, creation and expiry, never the
secret. Both read the config file to find the source, its configured
secrets and the data directory; run them with the daemon's environment
when its secrets come from secret_env, and as the user owning the data
directory (e.g. sudo -u telguard): rotate refuses otherwise, since the
daemon could not read a store written by another user.

Webhook deliveries to your destinations (a CRM) that ran out of retries go
to a dead-letter spool in the running daemon. 'list' shows the API key's
tenant's dead letters (no payloads); 'replay' sends one again under the
same webhook id, so a receiver that deduplicates by id is safe, and
re-enables a destination a 410 had disabled.

The key defaults to $TELGUARD_API_KEY, then to the key kept in
./data/api-key.
`

func (e *env) webhooks(args []string) error {
	if len(args) >= 2 && args[0] == "secret" && (args[1] == "rotate" || args[1] == "list") {
		return e.webhookSecret(args[1], args[2:])
	}
	if len(args) < 2 || args[0] != "dlq" || (args[1] != "list" && args[1] != "replay") {
		fmt.Fprint(e.stdout, strings.TrimLeft(webhooksHelp, "\n"))
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			return nil
		}
		return usagef("webhooks: want secret rotate|list SOURCE, or dlq list|replay")
	}
	fs := e.flags("webhooks dlq "+args[1], webhooksHelp)
	base := fs.String("url", "http://127.0.0.1:8080", "decision API base `URL`")
	key := fs.String("key", "", "API `key` (default $TELGUARD_API_KEY or ./data/api-key)")
	limit := fs.Int("limit", 100, "dead letters to list (1–1000)")
	if err := parse(fs, args[2:]); err != nil {
		return err
	}
	k, err := apiKey(*key)
	if err != nil {
		return err
	}
	root := strings.TrimRight(*base, "/") + "/v1/webhooks/dlq"
	if args[1] == "replay" {
		if fs.NArg() != 1 {
			return usagef("webhooks dlq replay: want exactly one ID")
		}
		body, code, err := call(http.MethodPost, root+"/"+url.PathEscape(fs.Arg(0))+"/replay", k)
		if err != nil {
			return err
		}
		if code != http.StatusNoContent {
			return fmt.Errorf("replay %s: %d: %s", fs.Arg(0), code, body)
		}
		fmt.Fprintf(e.stdout, "dead letter %s queued for delivery again\n", fs.Arg(0))
		return nil
	}
	if fs.NArg() != 0 {
		return usagef("webhooks dlq list: unexpected argument %q", fs.Arg(0))
	}
	body, code, err := call(http.MethodGet, fmt.Sprintf("%s?limit=%d", root, *limit), k)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("list dead letters: %d: %s", code, body)
	}
	var page struct {
		DeadLetters []struct {
			ID, Destination, Type, LastError string `json:",omitempty"`
			Attempts                         int
			Failed                           time.Time
		} `json:"dead_letters"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("list dead letters: %w", err)
	}
	if len(page.DeadLetters) == 0 {
		fmt.Fprintln(e.stdout, "no dead letters")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDESTINATION\tTYPE\tATTEMPTS\tFAILED\tLAST ERROR")
	for _, d := range page.DeadLetters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Destination, d.Type, d.Attempts, d.Failed.Format(time.RFC3339), d.LastError)
	}
	return tw.Flush()
}

// call makes one authenticated request to the daemon and returns the body
// (at most 1 MiB) and status.
func call(method, u, key string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, 0, usagef("%v", err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return body, resp.StatusCode, err
}

// webhookSecret runs `webhooks secret rotate|list`.
func (e *env) webhookSecret(verb string, args []string) error {
	fs := e.flags("webhooks secret "+verb, webhooksHelp)
	cfgFile := fs.String("config", "", "the daemon's configuration `file` (required)")
	dataDir := fs.String("data", "", "data `directory` (overrides the config, as for serve)")
	grace := fs.Duration("grace", 24*time.Hour, "how long the previous secrets stay valid (rotate)")
	// Flags may follow the source name: `rotate telco --grace 1h`.
	var positional []string
	for rest := args; ; {
		if err := parse(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(positional) != 1 {
		return usagef("webhooks secret %s: want exactly one SOURCE", verb)
	}
	source := positional[0]
	if *cfgFile == "" {
		return usagef("webhooks secret %s: --config is required (the source, its secrets and the data directory are there)", verb)
	}
	if *grace < 0 {
		return usagef("webhooks secret rotate: --grace must not be negative")
	}
	cfg, err := config.Load(*cfgFile)
	if err != nil {
		return usageError{err.Error()}
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if _, ok := cfg.Webhooks.Sources[source]; !ok {
		return usagef("webhooks secret %s: no source %q under webhooks.sources in %s", verb, source, *cfgFile)
	}
	icfg, _, err := cfg.Webhooks.Ingress(os.Getenv)
	if err != nil {
		return usageError{err.Error()}
	}
	configured := icfg.Sources[source].Verifier.Secrets
	path := filepath.Join(cfg.DataDir, webhook.SecretFileName)
	now := time.Now().UTC()
	if verb == "rotate" {
		r, err := webhook.RotateSecret(path, source, configured, *grace, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "new signing secret %s for source %s (shown once; give it to the provider now):\n\n%s\n\n", r.ID, source, r.Secret)
		if r.Retired > 0 {
			fmt.Fprintf(e.stdout, "%d previous secret(s) stay valid until %s, then expire.\n", r.Retired, r.Until.Format(time.RFC3339))
		}
		fmt.Fprintf(e.stdout, "stored in %s; a running daemon uses it at once.\n", path)
		return nil
	}
	stored, err := webhook.ReadSecretStore(path)
	if err != nil {
		return err
	}
	retire := map[string]time.Time{}
	for _, st := range stored[source] {
		if st.Secret == "" {
			retire[st.ID] = st.Expires
		}
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tORIGIN\tCREATED\tEXPIRES\tSTATE")
	row := func(id, origin string, created, expires time.Time) {
		c, x, state := "-", "never", "active"
		if !created.IsZero() {
			c = created.UTC().Format(time.RFC3339)
		}
		if !expires.IsZero() {
			x = expires.UTC().Format(time.RFC3339)
			state = "expiring"
			if !now.Before(expires) {
				state = "expired"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id, origin, c, x, state)
	}
	for _, s := range configured {
		exp := s.Expires
		if t, ok := retire[webhook.SecretID(s.Key)]; ok && !t.IsZero() && (exp.IsZero() || t.Before(exp)) {
			exp = t
		}
		row(webhook.SecretID(s.Key), "config", time.Time{}, exp)
	}
	for _, st := range stored[source] {
		if st.Secret != "" {
			row(st.ID, "issued", st.Created, st.Expires)
		}
	}
	return tw.Flush()
}
