package webhook

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A rotation while the ingress runs: the new secret verifies on the very
// next request, the old (configured) one until the grace ends, and not
// after; a second rotation retires the first issued secret the same way.
func TestRotateWhileServing(t *testing.T) {
	file := filepath.Join(t.TempDir(), SecretFileName)
	f := newFixture(t, func(c *Config) { c.SecretFile = file })
	post := func(id string, key []byte) int {
		t.Helper()
		return f.post(t, "telco", stdHeaders(id, f.clock, body, key), body).Code
	}
	if c := post("e1", keyA); c != http.StatusAccepted {
		t.Fatalf("configured secret before rotation: %d", c)
	}
	r, err := RotateSecret(file, "telco", []Secret{{Key: keyA}}, time.Hour, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.Secret, "whsec_") || r.Retired != 1 || !r.Until.Equal(f.clock.Add(time.Hour)) {
		t.Fatalf("rotation = %+v", r)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("store mode %v, %v; want 0600", fi.Mode(), err)
	}
	newKey, err := ParseSecret(r.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if c := post("e2", newKey); c != http.StatusAccepted {
		t.Fatalf("new secret right after rotation: %d, want 202 at once", c)
	}
	f.clock = f.clock.Add(59 * time.Minute)
	if c := post("e3", keyA); c != http.StatusAccepted {
		t.Fatalf("old secret within the grace: %d", c)
	}
	f.clock = f.clock.Add(time.Minute)
	if c := post("e4", keyA); c != http.StatusUnauthorized {
		t.Fatalf("old secret after the grace: %d, want 401", c)
	}
	if c := post("e5", newKey); c != http.StatusAccepted {
		t.Fatalf("new secret after the grace: %d", c)
	}

	// Rotating again retires the issued secret too; grace 0 ends it now.
	r2, err := RotateSecret(file, "telco", []Secret{{Key: keyA}}, 0, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	key2, _ := ParseSecret(r2.Secret)
	if c := post("e6", key2); c != http.StatusAccepted {
		t.Fatalf("second rotation's secret: %d", c)
	}
	if c := post("e7", newKey); c != http.StatusUnauthorized {
		t.Fatalf("first issued secret after a rotation with no grace: %d, want 401", c)
	}
	stored, err := ReadSecretStore(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range stored["telco"] {
		if e.Secret == r.Secret && !e.Expires.Equal(f.clock) {
			t.Fatalf("first issued secret expires %v, want %v", e.Expires, f.clock)
		}
	}
	// The next rotation drops it: it can never count again.
	if _, err := RotateSecret(file, "telco", []Secret{{Key: keyA}}, time.Hour, f.clock.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	stored, _ = ReadSecretStore(file)
	for _, e := range stored["telco"] {
		if e.Secret == r.Secret {
			t.Fatal("an issued secret past its expiry is still stored")
		}
	}
}

// A source may start with issued secrets only; with none at all the
// server refuses to start, naming the command that issues one.
func TestSourceWithoutConfiguredSecret(t *testing.T) {
	file := filepath.Join(t.TempDir(), SecretFileName)
	edit := func(c *Config) {
		c.SecretFile = file
		c.Sources = map[string]SourceConfig{"telco": {Tenant: "acme"}}
	}
	q := newFixture(t, nil).q
	cfg := Config{}
	edit(&cfg)
	if _, err := New(cfg, q, nil, nil); err == nil || !strings.Contains(err.Error(), "secret rotate telco") {
		t.Fatalf("no secret at all: %v", err)
	}
	if _, err := RotateSecret(file, "telco", nil, time.Hour, now); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, edit)
	stored, _ := ReadSecretStore(file)
	k, _ := ParseSecret(stored["telco"][0].Secret)
	if c := f.post(t, "telco", stdHeaders("e1", now, body, k), body).Code; c != http.StatusAccepted {
		t.Fatalf("issued secret only: %d", c)
	}
}

// A store that is not one telguard wrote stops the start; written while
// running, it leaves the previous secrets in force — those of the last
// good store, not the configured ones alone — until a good one is written.
func TestBadSecretStore(t *testing.T) {
	file := filepath.Join(t.TempDir(), SecretFileName)
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	q := newFixture(t, nil).q
	_, err := New(Config{SecretFile: file, Sources: map[string]SourceConfig{"telco": {Tenant: "acme",
		Verifier: VerifierConfig{Secrets: []Secret{{Key: keyA}}}}}}, q, nil, nil)
	if !errors.Is(err, ErrSecretStore) {
		t.Fatalf("bad store at start: %v", err)
	}
	os.Remove(file)
	f := newFixture(t, func(c *Config) { c.SecretFile = file })
	post := func(id string, key []byte) int {
		t.Helper()
		return f.post(t, "telco", stdHeaders(id, f.clock, body, key), body).Code
	}
	// A good store: the configured secret retired at once, a new one issued.
	r, err := RotateSecret(file, "telco", []Secret{{Key: keyA}}, 0, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	issued, _ := ParseSecret(r.Secret)
	if !f.srv.reloadSecrets(false) {
		t.Fatal("a good store was not loaded")
	}
	if post("e1", issued) != http.StatusAccepted || post("e2", keyA) != http.StatusUnauthorized {
		t.Fatal("the good store's secrets are not in force")
	}
	if err := os.WriteFile(file+".tmp", []byte(`{"version":1,"sources":{"telco":[{"id":"x","secret":"whsec_!!"}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Rename(file+".tmp", file)
	if f.srv.reloadSecrets(false) {
		t.Fatal("a bad store was loaded")
	}
	if c := post("e3", issued); c != http.StatusAccepted {
		t.Fatalf("issued secret after a bad store was written: %d, want 202", c)
	}
	if c := post("e4", keyA); c != http.StatusUnauthorized {
		t.Fatalf("retired secret after a bad store was written: %d, want 401", c)
	}
	// Fixed, it is loaded again.
	os.Remove(file)
	r2, err := RotateSecret(file, "telco", nil, 0, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := ParseSecret(r2.Secret)
	if !f.srv.reloadSecrets(false) {
		t.Fatal("a good store after a bad one was not loaded")
	}
	if c := post("e5", again); c != http.StatusAccepted {
		t.Fatalf("secret of the store written after the bad one: %d", c)
	}
}

// A version of the store that could not be read because of a passing
// error (EIO, too many open files) is read again by the poll, so the
// rotation is not missed until the next change; a failed signature does
// not retry it, and the failure is reported once.
func TestSecretReadErrorIsRetriedByThePoll(t *testing.T) {
	file := filepath.Join(t.TempDir(), SecretFileName)
	f := newFixture(t, func(c *Config) { c.SecretFile = file })
	r, err := RotateSecret(file, "telco", nil, 0, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	issued, _ := ParseSecret(r.Secret)
	reads := 0
	f.srv.readSecrets = func(path string) (map[string][]StoredSecret, error) {
		reads++
		if reads == 1 {
			return nil, fmt.Errorf("%w: read %s: input/output error", ErrSecretStore, path)
		}
		return ReadSecretStore(path)
	}
	if f.srv.reloadSecrets(false) {
		t.Fatal("loaded although the read failed")
	}
	if f.srv.reloadSecrets(false) || reads != 1 {
		t.Fatalf("a request re-read a version that failed (%d reads)", reads)
	}
	if c := f.post(t, "telco", stdHeaders("r1", f.clock, body, issued), body).Code; c != http.StatusUnauthorized {
		t.Fatalf("new secret before the retry: %d, want 401", c)
	}
	if !f.srv.reloadSecrets(true) || reads != 2 {
		t.Fatalf("the poll did not retry the version that failed (%d reads)", reads)
	}
	if c := f.post(t, "telco", stdHeaders("r2", f.clock, body, issued), body).Code; c != http.StatusAccepted {
		t.Fatalf("new secret after the retry: %d, want 202", c)
	}
	if f.srv.reloadSecrets(true) || reads != 2 {
		t.Fatalf("the poll re-read a version already loaded (%d reads)", reads)
	}
}

func TestRotateRefuses(t *testing.T) {
	file := filepath.Join(t.TempDir(), SecretFileName)
	if _, err := RotateSecret(file, "Bad Name", nil, time.Hour, now); err == nil {
		t.Error("bad source name accepted")
	}
	if _, err := RotateSecret(file, "telco", nil, -time.Second, now); err == nil {
		t.Error("negative grace accepted")
	}
	for i := range MaxSecrets - 1 {
		if _, err := RotateSecret(file, "telco", nil, time.Hour, now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
	}
	if _, err := RotateSecret(file, "telco", []Secret{{Key: keyA}}, time.Hour, now.Add(time.Minute)); !errors.Is(err, ErrTooManySecrets) {
		t.Fatalf("rotation past %d active secrets: %v", MaxSecrets, err)
	}
	// Once the grace is over the old ones are dropped and rotation works.
	if _, err := RotateSecret(file, "telco", []Secret{{Key: keyA}}, time.Hour, now.Add(2*time.Hour)); err != nil {
		t.Fatalf("rotation after the old secrets expired: %v", err)
	}
	stored, _ := ReadSecretStore(file)
	if n := len(EffectiveSecrets([]Secret{{Key: keyA}}, stored["telco"], now.Add(2*time.Hour))); n != 3 {
		// the configured one and the last issued one, both in their grace, and the new one
		t.Fatalf("%d active secrets after expiry, want 3", n)
	}
}

func TestSecretIDHidesTheSecret(t *testing.T) {
	id := SecretID(keyA)
	if id != SecretID(keyA) || id == SecretID(keyB) || strings.Contains(id, base64.StdEncoding.EncodeToString(keyA)[:8]) {
		t.Fatalf("SecretID = %s", id)
	}
}

// The retirement record of a configured secret is what keeps it retired:
// however many records pile up, it is never pruned, or the old secret
// would verify again. Expired records of secrets no longer configured go.
func TestRetirementOfConfiguredSecretIsKept(t *testing.T) {
	file := filepath.Join(t.TempDir(), SecretFileName)
	old := now.Add(-time.Hour)
	entries := []StoredSecret{{ID: SecretID(keyA), Created: old.Add(-time.Hour), Expires: old}}
	for i := range maxRetired + 5 {
		entries = append(entries, StoredSecret{ID: fmt.Sprintf("ws_gone%05d", i), Created: old, Expires: old.Add(time.Duration(i) * time.Second)})
	}
	if err := writeSecretStore(file, map[string][]StoredSecret{"telco": entries}); err != nil {
		t.Fatal(err)
	}
	configured := []Secret{{Key: keyA}}
	if ids := RetiredConfigured(configured, entries, now); len(ids) != 1 || ids[0] != SecretID(keyA) {
		t.Fatalf("retired configured secrets = %v, want keyA's id", ids)
	}
	if _, err := RotateSecret(file, "telco", configured, time.Hour, now); err != nil {
		t.Fatal(err)
	}
	stored, err := ReadSecretStore(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range EffectiveSecrets(configured, stored["telco"], now) {
		if string(s.Key) == string(keyA) {
			t.Fatal("a retired configured secret is valid again after its record was pruned")
		}
	}
	if n := len(stored["telco"]); n > maxRetired+1 {
		t.Fatalf("%d entries kept, want at most %d", n, maxRetired+1)
	}
}

// A rotation that cannot make its rename durable fails, rather than
// showing a secret that a power cut may undo; a temporary file left by
// a rotation that died (it holds secrets) is gone after the next one.
func TestRotateDurableAndTidy(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, SecretFileName)
	stale := filepath.Join(dir, ".webhook-secrets-123456")
	if err := os.WriteFile(stale, []byte(`{"version":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RotateSecret(file, "telco", nil, time.Hour, now); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temporary store left behind: %v", err)
	}
	orig := syncDir
	t.Cleanup(func() { syncDir = orig })
	syncDir = func(string) error { return errors.New("input/output error") }
	if _, err := RotateSecret(file, "telco", nil, time.Hour, now); err == nil {
		t.Fatal("a rotation whose directory fsync failed reported success")
	}
}

// Run as another user than the data directory's owner (root, typically),
// rotate refuses: the store it wrote would be unreadable to the daemon.
func TestRotateRefusesAnotherUsersDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the directory to another user")
	}
	dir := t.TempDir()
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	if _, err := RotateSecret(filepath.Join(dir, SecretFileName), "telco", nil, time.Hour, now); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("rotate in a directory of uid 4242: %v, want ErrNotOwner", err)
	}
	if _, err := os.Stat(filepath.Join(dir, SecretFileName)); !os.IsNotExist(err) {
		t.Fatalf("a store was written: %v", err)
	}
}
