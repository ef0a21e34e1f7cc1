package webhook

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// SecretFileName is the secret store's file in the data directory.
const SecretFileName = "webhook-secrets.json"

// maxSecretFile bounds what is read of the secret store.
const maxSecretFile = 1 << 20

// maxRetired bounds the retirement records kept per source.
const maxRetired = 64

// Secret store errors.
var (
	// ErrSecretStore means the secret store file cannot be read or is not
	// one telguard wrote.
	ErrSecretStore = errors.New("bad webhook secret store")
	// ErrTooManySecrets means a rotation would leave a source with more
	// active secrets than a verifier takes.
	ErrTooManySecrets = errors.New("too many active secrets")
	// ErrNotOwner means rotate runs as another user than the one owning
	// the data directory: the store it writes (mode 0600) would be
	// unreadable to the daemon, which then refuses to start.
	ErrNotOwner = errors.New("not the data directory's owner")
)

// StoredSecret is one entry of the secret store. An entry with a Secret
// was issued by a rotation; one without is a retirement record: it sets
// the expiry of the configured secret whose SecretID is ID.
type StoredSecret struct {
	ID      string    `json:"id"`
	Secret  string    `json:"secret,omitempty"` // whsec_…
	Created time.Time `json:"created,omitzero"`
	Expires time.Time `json:"expires,omitzero"` // zero: never
}

// secretFile is the store's on-disk form.
type secretFile struct {
	Version int                       `json:"version"`
	Sources map[string][]StoredSecret `json:"sources"`
}

// SecretID names a secret in listings and retirement records without
// revealing it: a truncated hash, stable for the same key.
func SecretID(key []byte) string {
	h := sha256.Sum256(append([]byte("telguard webhook secret id\x00"), key...))
	return "ws_" + hex.EncodeToString(h[:6])
}

// ReadSecretStore reads the secret store at path; a missing file is an
// empty store.
func ReadSecretStore(path string) (map[string][]StoredSecret, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string][]StoredSecret{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSecretStore, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSecretStore, err)
	}
	if len(data) > maxSecretFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrSecretStore, path, maxSecretFile)
	}
	var sf secretFile
	if err := json.Unmarshal(data, &sf); err != nil || sf.Version != 1 {
		return nil, fmt.Errorf("%w: %s is not a version 1 secret store", ErrSecretStore, path)
	}
	for name, entries := range sf.Sources {
		for _, e := range entries {
			if e.ID == "" {
				return nil, fmt.Errorf("%w: %s: source %s: an entry has no id", ErrSecretStore, path, name)
			}
			if e.Secret == "" {
				continue
			}
			if _, err := ParseSecret(e.Secret); err != nil {
				return nil, fmt.Errorf("%w: %s: source %s: secret %s: %v", ErrSecretStore, path, name, e.ID, err)
			}
		}
	}
	if sf.Sources == nil {
		sf.Sources = map[string][]StoredSecret{}
	}
	return sf.Sources, nil
}

// EffectiveSecrets merges a source's configured secrets with its entries
// in the store: configured ones take the earlier of their own expiry and
// their retirement record's; issued ones follow. Secrets expired at now
// are left out.
func EffectiveSecrets(configured []Secret, stored []StoredSecret, now time.Time) []Secret {
	retire := map[string]time.Time{}
	var out []Secret
	for _, e := range stored {
		if e.Secret == "" {
			retire[e.ID] = e.Expires
		}
	}
	for _, s := range configured {
		if t, ok := retire[SecretID(s.Key)]; ok && !t.IsZero() && (s.Expires.IsZero() || t.Before(s.Expires)) {
			s.Expires = t
		}
		out = append(out, s)
	}
	for _, e := range stored {
		if e.Secret == "" {
			continue
		}
		k, err := ParseSecret(e.Secret)
		if err != nil {
			continue // ReadSecretStore refuses these
		}
		out = append(out, Secret{Key: k, Expires: e.Expires})
	}
	return slices.DeleteFunc(out, func(s Secret) bool { return !s.Expires.IsZero() && !now.Before(s.Expires) })
}

// Rotation is what Rotate did.
type Rotation struct {
	ID     string // the new secret's id
	Secret string // the new secret, whsec_…: shown once
	// Until is when the secrets active before the rotation stop counting.
	Until time.Time
	// Retired counts the secrets given that expiry (configured and issued).
	Retired int
}

// RotateSecret issues a new secret for source in the store at path and
// gives every secret active before it (the configured ones, by id, and
// the issued ones) an expiry of now+grace, unless theirs is earlier.
// Concurrent rotations are serialised by a lock file beside path; the
// store is replaced atomically (written, fsynced, renamed), so a running
// ingress reads either the old store or the new one.
func RotateSecret(path, source string, configured []Secret, grace time.Duration, now time.Time) (Rotation, error) {
	if !sourceName.MatchString(source) {
		return Rotation{}, errors.New("rotate secret: source name must be 1 to 64 of [a-z0-9_-]")
	}
	if grace < 0 {
		return Rotation{}, errors.New("rotate secret: negative grace")
	}
	if err := checkOwner(filepath.Dir(path)); err != nil {
		return Rotation{}, fmt.Errorf("rotate secret: %w", err)
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate secret: %w", err)
	}
	defer unlock()
	all, err := ReadSecretStore(path)
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate secret: %w", err)
	}
	until := now.Add(grace)
	r := Rotation{Until: until}
	entries := all[source]
	// Issued secrets already expired are gone for good: drop them.
	entries = slices.DeleteFunc(slices.Clone(entries), func(e StoredSecret) bool {
		return e.Secret != "" && !e.Expires.IsZero() && !now.Before(e.Expires)
	})
	for i, e := range entries {
		if e.Secret != "" && (e.Expires.IsZero() || until.Before(e.Expires)) {
			entries[i].Expires = until
			r.Retired++
		}
	}
	for _, s := range configured {
		if !s.Expires.IsZero() && !now.Before(s.Expires) {
			continue
		}
		id := SecretID(s.Key)
		i := slices.IndexFunc(entries, func(e StoredSecret) bool { return e.Secret == "" && e.ID == id })
		switch {
		case i < 0:
			entries = append(entries, StoredSecret{ID: id, Created: now, Expires: until})
			r.Retired++
		case entries[i].Expires.IsZero() || until.Before(entries[i].Expires):
			entries[i].Expires = until
			r.Retired++
		}
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return Rotation{}, fmt.Errorf("rotate secret: %w", err)
	}
	r.Secret = "whsec_" + base64.StdEncoding.EncodeToString(key[:])
	r.ID = SecretID(key[:])
	entries = append(entries, StoredSecret{ID: r.ID, Secret: r.Secret, Created: now})
	if n := len(EffectiveSecrets(configured, entries, now)); n > MaxSecrets {
		return Rotation{}, fmt.Errorf("rotate secret: %w: %d would be active, at most %d (wait for the old ones to expire, or rotate with a shorter --grace)", ErrTooManySecrets, n, MaxSecrets)
	}
	entries = pruneRetired(entries, configured, now)
	all[source] = entries
	if err := writeSecretStore(path, all); err != nil {
		return Rotation{}, fmt.Errorf("rotate secret: %w", err)
	}
	return r, nil
}

// pruneRetired drops retirement records past maxRetired, oldest expiry
// first, and only those that can no longer matter: expired, and for a
// secret no longer configured. The record of a configured secret is what
// keeps it retired; dropping it would make it valid again.
func pruneRetired(es []StoredSecret, configured []Secret, now time.Time) []StoredSecret {
	ids := map[string]bool{}
	for _, s := range configured {
		ids[SecretID(s.Key)] = true
	}
	var drop []int
	n := 0
	for i, e := range es {
		if e.Secret != "" {
			continue
		}
		n++
		if !ids[e.ID] && !e.Expires.IsZero() && !now.Before(e.Expires) {
			drop = append(drop, i)
		}
	}
	if n <= maxRetired {
		return es
	}
	slices.SortStableFunc(drop, func(a, b int) int { return es[a].Expires.Compare(es[b].Expires) })
	gone := map[int]bool{}
	for _, i := range drop[:min(len(drop), n-maxRetired)] {
		gone[i] = true
	}
	out := es[:0:0]
	for i, e := range es {
		if !gone[i] {
			out = append(out, e)
		}
	}
	return out
}

// RetiredConfigured returns the ids of configured secrets whose
// retirement (by a rotation) has passed: they no longer verify anything
// and should be removed from the config file.
func RetiredConfigured(configured []Secret, stored []StoredSecret, now time.Time) []string {
	var ids []string
	for _, s := range configured {
		id := SecretID(s.Key)
		for _, e := range stored {
			if e.Secret == "" && e.ID == id && !e.Expires.IsZero() && !now.Before(e.Expires) {
				ids = append(ids, id)
				break
			}
		}
	}
	return ids
}

// checkOwner refuses a data directory owned by another user than the
// one running (a root-owned store would take the daemon down at its next
// start). A directory not made yet is made by this user.
func checkOwner(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("%w: %s belongs to uid %d, this runs as uid %d; run it as the daemon's user (e.g. sudo -u)", ErrNotOwner, dir, st.Uid, uid)
	}
	return nil
}

// syncDir makes a rename in dir durable; a variable so tests can fail it.
var syncDir = func(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// tempPattern names the store's temporary files. One left by a write
// that died (it holds secrets) is removed at the next write, which holds
// the lock, so none is being written.
const tempPattern = ".webhook-secrets-*"

// writeSecretStore replaces the store at path atomically, mode 0600. The
// rename is durable when it returns: an error fsyncing the directory is
// an error.
func writeSecretStore(path string, sources map[string][]StoredSecret) error {
	data, err := json.MarshalIndent(secretFile{Version: 1, Sources: sources}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if stale, err := filepath.Glob(filepath.Join(dir, tempPattern)); err == nil {
		for _, name := range stale {
			_ = os.Remove(name)
		}
	}
	f, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename there is nothing left to remove
	if err = f.Chmod(0o600); err == nil {
		if _, err = f.Write(append(data, '\n')); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// lockFile takes an exclusive lock on path (created 0600), waiting for
// another holder; the returned func releases it.
func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// fileStamp identifies one version of a file: every write of the store is
// a rename of a new file, so a changed store has another inode.
type fileStamp struct {
	fi os.FileInfo // nil: no file
}

func statStamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fileStamp{}, nil
	}
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi}, nil
}

func (a fileStamp) same(b fileStamp) bool {
	if a.fi == nil || b.fi == nil {
		return a.fi == nil && b.fi == nil
	}
	return os.SameFile(a.fi, b.fi) && a.fi.ModTime().Equal(b.fi.ModTime()) && a.fi.Size() == b.fi.Size()
}
