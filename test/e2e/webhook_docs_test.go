package e2e

import (
	"strings"
	"testing"

	"github.com/telguard/telguard/internal/config"
	"github.com/telguard/telguard/internal/webhook"
)

// Every ```yaml block of docs/webhooks.md holding "webhooks:" is a
// configuration the daemon accepts: it parses, its sources resolve (with
// their secret_env variables set) and every mapping compiles.
func TestDocsWebhookConfigExamples(t *testing.T) {
	getenv := func(string) string { return "an-env-secret-0123456789abcdef" }
	n := 0
	for _, b := range readBlocks(t, "../../docs/webhooks.md") {
		if b.lang != "yaml" || !strings.Contains(b.body, "webhooks:") {
			continue
		}
		n++
		c, err := config.Parse("docs/webhooks.md", []byte(b.body))
		if err != nil {
			t.Errorf("docs/webhooks.md:%d: %v", b.line, err)
			continue
		}
		_, maps, err := c.Webhooks.Ingress(getenv)
		if err != nil {
			t.Errorf("docs/webhooks.md:%d: %v", b.line, err)
		}
		for name, m := range maps {
			if _, err := webhook.NewNormalizer(m); err != nil {
				t.Errorf("docs/webhooks.md:%d: source %s: %v", b.line, name, err)
			}
		}
		for i, d := range c.Webhooks.Destinations {
			if _, err := config.DestinationSecret(i, d, getenv); err != nil {
				t.Errorf("docs/webhooks.md:%d: %v", b.line, err)
			}
		}
	}
	if n < 2 {
		t.Fatalf("found %d webhook configuration examples in docs/webhooks.md", n)
	}
}
