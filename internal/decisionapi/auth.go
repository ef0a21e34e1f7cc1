package decisionapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// keyring holds the SHA-256 of each configured API key, never the key.
// Comparing fixed-size hashes keeps the comparison constant-time whatever
// the length of the key presented.
type keyring []keyEntry

type keyEntry struct {
	sum    [sha256.Size]byte
	tenant string
	id     string // "key:" + first 8 hex digits of sum: names the key in logs without revealing it
}

func newKeyring(keys map[string]string) (keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("no API keys configured")
	}
	k := make(keyring, 0, len(keys))
	for key, tenant := range keys {
		// Errors name the tenant, never the key.
		switch {
		case tenant == "":
			return nil, errors.New("API key with an empty tenant")
		case key == "":
			return nil, fmt.Errorf("empty API key for tenant %q", tenant)
		case strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return nil, fmt.Errorf("API key for tenant %q contains spaces or control characters", tenant)
		}
		sum := sha256.Sum256([]byte(key))
		k = append(k, keyEntry{sum: sum, tenant: tenant, id: "key:" + hex.EncodeToString(sum[:4])})
	}
	sort.Slice(k, func(i, j int) bool { return k[i].id < k[j].id }) // stable order, for tests and logs
	return k, nil
}

// lookup returns the entry for a presented key. It compares the key's hash
// with every configured hash without stopping at a match, so the time taken
// tells nothing about which key matched or how close a guess was.
func (k keyring) lookup(presented string) (keyEntry, bool) {
	sum := sha256.Sum256([]byte(presented))
	match := -1
	for i := range k {
		eq := subtle.ConstantTimeCompare(sum[:], k[i].sum[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return keyEntry{}, false
	}
	return k[match], true
}

// authenticate sets x's tenant from the request's bearer key.
func (s *Server) authenticate(x *exchange, r *http.Request) error {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return errUnauthorized
	}
	e, ok := s.keys.lookup(strings.TrimSpace(h[len(prefix):]))
	if !ok {
		return errUnauthorized
	}
	x.tenant, x.keyID = e.tenant, e.id
	return nil
}
