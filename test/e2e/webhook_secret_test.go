package e2e

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/webhook"
)

// `telguard webhooks secret rotate` while the daemon runs: the new secret
// is good at once, the configured one until the grace ends and refused
// (401) after it, without a restart; `secret list` shows ids and expiries,
// never a secret.
func TestWebhookSecretRotation(t *testing.T) {
	t.Setenv("GORACE", "atexit_sleep_ms=0") // the CLI runs several times
	oldKey := []byte("provider-secret-0123456789abcdef")
	oldSecret := "whsec_" + base64.StdEncoding.EncodeToString(oldKey)
	dir := workdir(t)
	hooks := freePort(t)
	cfg := fmt.Sprintf(`webhooks:
  listen: %s
  sources:
    telco: {tenant: demo, secrets: [{secret: %s}], mapping: {preset: flat}}
`, hooks, oldSecret)
	if err := os.WriteFile(filepath.Join(dir, "telguard.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, withKey(), "--config", "telguard.yaml")
	n := 0
	post := func(key []byte) int {
		t.Helper()
		n++
		body := fmt.Sprintf(`{"call_id":"rot-%d","status":"started","to":"+5511987654321","account":"r1"}`, n)
		req, _ := http.NewRequest(http.MethodPost, "http://"+hooks+"/hooks/telco", strings.NewReader(body))
		webhook.SetHeaders(req.Header, fmt.Sprintf("evt-rot-%d", n), time.Now(), []byte(body), key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post(oldKey); c != 202 {
		t.Fatalf("configured secret before rotation: %d", c)
	}

	const grace = 3 * time.Second
	rotated := time.Now()
	out, stderr, code := run(t, dir, "webhooks", "secret", "rotate", "telco", "--config", "telguard.yaml", "--grace", grace.String())
	if code != 0 {
		t.Fatalf("rotate: exit %d: %s %s", code, out, stderr)
	}
	var newSecret string
	for _, l := range strings.Split(out, "\n") {
		if s := strings.TrimSpace(l); strings.HasPrefix(s, "whsec_") {
			newSecret = s
		}
	}
	newKey, err := webhook.ParseSecret(newSecret)
	if err != nil {
		t.Fatalf("rotate printed no whsec_ secret: %q", out)
	}
	if c := post(newKey); c != 202 {
		t.Fatalf("new secret right after rotate: %d, want 202 at once", c)
	}
	if c := post(oldKey); c != 202 {
		t.Fatalf("old secret within the grace (%v after rotate): %d, want 202", time.Since(rotated), c)
	}
	if fi, err := os.Stat(filepath.Join(dir, "data", webhook.SecretFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret store: %v %v, want mode 0600", fi, err)
	}

	out, stderr, code = run(t, dir, "webhooks", "secret", "list", "telco", "--config", "telguard.yaml")
	if code != 0 {
		t.Fatalf("list: exit %d: %s %s", code, out, stderr)
	}
	if strings.Contains(out, "whsec_") || strings.Contains(out, oldSecret[6:20]) || strings.Contains(out, newSecret[6:20]) {
		t.Fatalf("list shows a secret:\n%s", out)
	}
	oldID, newID := webhook.SecretID(oldKey), webhook.SecretID(newKey)
	if l := grepLines(out, oldID); !strings.Contains(l, "config") || !strings.Contains(l, "expiring") {
		t.Fatalf("list: the configured secret is not shown expiring:\n%s", out)
	}
	if l := grepLines(out, newID); !strings.Contains(l, "issued") || !strings.Contains(l, "never") {
		t.Fatalf("list: the new secret is not shown active:\n%s", out)
	}

	time.Sleep(time.Until(rotated.Add(grace + 300*time.Millisecond)))
	if c := post(oldKey); c != 401 {
		t.Fatalf("old secret after the grace: %d, want 401", c)
	}
	if c := post(newKey); c != 202 {
		t.Fatalf("new secret after the grace: %d, want 202", c)
	}
	out, _, _ = run(t, dir, "webhooks", "secret", "list", "telco", "--config", "telguard.yaml")
	if l := grepLines(out, oldID); !strings.Contains(l, "expired") {
		t.Fatalf("list: the configured secret is not shown expired:\n%s", out)
	}

	// At the next start the daemon names the configured secret that no
	// longer verifies anything, so the operator removes it.
	d.stop()
	d = start(t, dir, withKey(), "--config", "telguard.yaml")
	if l := grepLines(d.stderr.String(), oldID); !strings.Contains(l, "retired") {
		t.Fatalf("no warning about the retired configured secret %s at start:\n%s", oldID, d.stderr)
	}
	if c := post(newKey); c != 202 {
		t.Fatalf("issued secret after a restart: %d", c)
	}

	// Refusals a user can make.
	if _, stderr, code := run(t, dir, "webhooks", "secret", "rotate", "nosuch", "--config", "telguard.yaml"); code != 2 || !strings.Contains(stderr, "no source") {
		t.Fatalf("rotate of an unknown source: exit %d %s", code, stderr)
	}
	if _, stderr, code := run(t, dir, "webhooks", "secret", "rotate", "telco"); code != 2 || !strings.Contains(stderr, "--config") {
		t.Fatalf("rotate without --config: exit %d %s", code, stderr)
	}

	// The commands docs/webhooks.md shows run as written.
	ran := 0
	for _, b := range readBlocks(t, "../../docs/webhooks.md") {
		if b.lang != "sh" || !strings.HasPrefix(b.body, "telguard webhooks secret") {
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(b.body), "\n") {
			args := strings.Fields(strings.SplitN(line, "#", 2)[0])[1:]
			if out, stderr, code := run(t, dir, args...); code != 0 {
				t.Errorf("docs/webhooks.md:%d: %s: exit %d: %s %s", b.line, line, code, out, stderr)
			}
			ran++
		}
	}
	if ran < 2 {
		t.Errorf("docs/webhooks.md shows %d `telguard webhooks secret` commands, want rotate and list", ran)
	}
}
