package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Verification errors. All of them are answered with 401; ErrStale is
// counted apart because an authentic request with an old timestamp is
// what a replay looks like.
var (
	// ErrMissingHeader means a header the scheme needs is absent.
	ErrMissingHeader = errors.New("missing signature header")
	// ErrMalformed means a signature, timestamp or id header cannot be parsed
	// or is longer than the limits allow.
	ErrMalformed = errors.New("malformed signature header")
	// ErrBadSignature means no signature matched any active secret.
	ErrBadSignature = errors.New("no valid signature")
	// ErrStale means the signature is valid but the timestamp is outside
	// the tolerance.
	ErrStale = errors.New("timestamp outside tolerance")
)

// Scheme is a way of signing webhooks.
type Scheme string

// The supported schemes.
const (
	// StandardWebhooks is https://www.standardwebhooks.com: headers
	// webhook-id, webhook-timestamp and webhook-signature ("v1,<base64>"
	// entries separated by spaces) over "id.timestamp.body".
	StandardWebhooks Scheme = "standard-webhooks"
	// GenericHMAC is HMAC-SHA256 as most provider guides describe it: a
	// timestamp header and a signature header, hex or base64, over a
	// configurable template of body, timestamp and id.
	GenericHMAC Scheme = "hmac"
)

// Standard Webhooks header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Limits on what a sender controls in the headers.
const (
	// MaxSignatureHeader is the longest signature header accepted.
	MaxSignatureHeader = 4096
	// MaxSignatures is the most entries a Standard Webhooks signature
	// header may list.
	MaxSignatures = 16
	// MaxIDLength is the longest event id accepted.
	MaxIDLength = 256
	// maxTimestamp is the longest timestamp header: Unix seconds fit in 19
	// digits.
	maxTimestamp = 19
	// MaxSecrets is the most secrets a source may have active at once.
	MaxSecrets = 16
)

// DefaultTolerance is how far a timestamp may be from the clock.
const DefaultTolerance = 300 * time.Second

// Encoding is how a generic signature is written.
type Encoding string

// Signature encodings.
const (
	Hex    Encoding = "hex"
	Base64 Encoding = "base64"
)

// DefaultTemplate is what the generic scheme signs unless told otherwise.
const DefaultTemplate = "{body}.{timestamp}"

// Secret is one key a source signs with. Several may be active at once
// while a secret is rotated; each stops counting at Expires (zero: never).
type Secret struct {
	Key     []byte
	Expires time.Time
}

// ParseSecret reads a secret as configured: "whsec_<base64>" is the
// Standard Webhooks form and is decoded; anything else is used as its bytes.
func ParseSecret(s string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(s, "whsec_"); ok {
		k, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || len(k) == 0 {
			return nil, errors.New("parse secret: whsec_ secret is not base64")
		}
		return k, nil
	}
	if s == "" {
		return nil, errors.New("parse secret: empty")
	}
	return []byte(s), nil
}

// Verifier checks one source's signatures. Build it with NewVerifier; it
// is safe for concurrent use, and its secrets may be replaced while it
// runs (SetSecrets).
type Verifier struct {
	scheme    Scheme
	secrets   atomic.Pointer[secretSet]
	tolerance time.Duration

	// generic HMAC
	tsHeader  string
	sigHeader string
	encoding  Encoding
	prefix    string
	template  []part
	noTS      bool
	idHeader  string
}

// VerifierConfig configures a Verifier. Zero values take the defaults noted.
type VerifierConfig struct {
	Scheme  Scheme // → StandardWebhooks
	Secrets []Secret
	// Tolerance is how far the timestamp may be from now either way. → 300 s.
	Tolerance time.Duration

	// Generic HMAC only.
	TimestampHeader string   // required unless NoTimestamp
	SignatureHeader string   // required
	Encoding        Encoding // → Hex
	Prefix          string   // e.g. "sha256=", required on the signature when set
	// Template is what is signed, with {body}, {timestamp} and {id}
	// replaced. → "{body}.{timestamp}".
	Template string
	// IDHeader names the header the event id (and {id}) is read from.
	IDHeader string
	// NoTimestamp accepts a source that sends no timestamp. Replays are then
	// stopped only by the dedupe window; use it only when the provider
	// offers nothing better.
	NoTimestamp bool
}

// part of a compiled template: a literal, or one of the fields.
type part struct {
	lit   string
	field byte // 0 literal, 'b' body, 't' timestamp, 'i' id
}

// NewVerifier checks c and builds a Verifier.
func NewVerifier(c VerifierConfig) (*Verifier, error) {
	if c.Scheme == "" {
		c.Scheme = StandardWebhooks
	}
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	if c.Tolerance < 0 {
		return nil, errors.New("negative tolerance")
	}
	if len(c.Secrets) == 0 {
		return nil, errors.New("no signing secret")
	}
	v := &Verifier{scheme: c.Scheme, tolerance: c.Tolerance}
	if err := v.SetSecrets(c.Secrets); err != nil {
		return nil, err
	}
	switch c.Scheme {
	case StandardWebhooks:
		return v, nil
	case GenericHMAC:
	default:
		return nil, fmt.Errorf("unknown scheme %q", c.Scheme)
	}
	if c.SignatureHeader == "" {
		return nil, errors.New("hmac scheme needs a signature header")
	}
	if c.TimestampHeader == "" && !c.NoTimestamp {
		return nil, errors.New("hmac scheme needs a timestamp header (or no_timestamp: true)")
	}
	if c.Encoding == "" {
		c.Encoding = Hex
	}
	if c.Encoding != Hex && c.Encoding != Base64 {
		return nil, fmt.Errorf("unknown signature encoding %q", c.Encoding)
	}
	if c.Template == "" {
		c.Template = DefaultTemplate
	}
	tpl, err := compileTemplate(c.Template)
	if err != nil {
		return nil, err
	}
	for _, p := range tpl {
		if p.field == 't' && c.NoTimestamp {
			return nil, errors.New("template signs {timestamp} but no_timestamp is set")
		}
		if p.field == 'i' && c.IDHeader == "" {
			return nil, errors.New("template signs {id} but no id header is configured")
		}
	}
	v.tsHeader = http.CanonicalHeaderKey(c.TimestampHeader)
	v.sigHeader = http.CanonicalHeaderKey(c.SignatureHeader)
	v.encoding, v.prefix, v.template, v.noTS = c.Encoding, c.Prefix, tpl, c.NoTimestamp
	if c.IDHeader != "" {
		v.idHeader = http.CanonicalHeaderKey(c.IDHeader)
	}
	return v, nil
}

func compileTemplate(s string) ([]part, error) {
	var parts []part
	hasBody := false
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			parts = append(parts, part{lit: s})
			break
		}
		if i > 0 {
			parts = append(parts, part{lit: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("template: unclosed {")
		}
		switch name := s[i+1 : i+j]; name {
		case "body":
			parts = append(parts, part{field: 'b'})
			hasBody = true
		case "timestamp":
			parts = append(parts, part{field: 't'})
		case "id":
			parts = append(parts, part{field: 'i'})
		default:
			return nil, fmt.Errorf("template: unknown field {%s}", name)
		}
		s = s[i+j+1:]
	}
	if !hasBody {
		return nil, errors.New("template must sign {body}")
	}
	return parts, nil
}

// Verified is what a successful verification established.
type Verified struct {
	// ID is the webhook-id (Standard Webhooks) or the id header (generic,
	// when configured); "" when the scheme carries none.
	ID        string
	Timestamp time.Time // zero with NoTimestamp
}

// Verify checks the request's signature against every active secret and
// then its timestamp against now. A valid signature with a timestamp out of
// tolerance gives ErrStale.
func (v *Verifier) Verify(h http.Header, body []byte, now time.Time) (Verified, error) {
	if v.scheme == StandardWebhooks {
		return v.verifyStandard(h, body, now)
	}
	return v.verifyGeneric(h, body, now)
}

func (v *Verifier) verifyStandard(h http.Header, body []byte, now time.Time) (Verified, error) {
	id, tsRaw, sigRaw := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsRaw == "" || sigRaw == "" {
		return Verified{}, ErrMissingHeader
	}
	if !ValidID(id) {
		return Verified{}, ErrMalformed
	}
	ts, err := parseTimestamp(tsRaw)
	if err != nil {
		return Verified{}, err
	}
	// The v1 entries that can be an HMAC-SHA256 at all (32 bytes), decoded
	// on the stack; the rules are ParseSignatureHeader's.
	var (
		sigs  [MaxSignatures][sha256.Size]byte
		nsigs int
	)
	if len(sigRaw) > MaxSignatureHeader {
		return Verified{}, ErrMalformed
	}
	n := 0
	for field := range strings.FieldsSeq(sigRaw) {
		if n++; n > MaxSignatures {
			return Verified{}, ErrMalformed
		}
		version, value, ok := strings.Cut(field, ",")
		if !ok || version != "v1" {
			continue
		}
		if decodeSHA256Base64(&sigs[nsigs], value) {
			nsigs++
		}
	}
	set := v.secrets.Load()
	ok := false
	var want [sha256.Size]byte
	for i := range set.list {
		if !set.list[i].activeAt(now) {
			continue
		}
		m := set.get(i)
		m.buf = append(append(append(append(m.buf[:0], id...), '.'), tsRaw...), '.')
		m.h.Write(m.buf)
		m.h.Write(body)
		m.h.Sum(want[:0])
		set.put(i, m)
		for j := range nsigs {
			if hmac.Equal(sigs[j][:], want[:]) {
				ok = true
			}
		}
	}
	if !ok {
		return Verified{}, ErrBadSignature
	}
	return v.checkTime(Verified{ID: id, Timestamp: ts}, now)
}

// decodeSHA256Base64 decodes s (base64, padded or not) into dst and
// reports whether it is exactly a SHA-256 size; nothing else can match.
func decodeSHA256Base64(dst *[sha256.Size]byte, s string) bool {
	const padded = (sha256.Size + 2) / 3 * 4 // 44
	if len(s) > padded {
		return false
	}
	var buf [padded]byte // DecodedLen(44) = 33
	n, err := base64.StdEncoding.Decode(buf[:], []byte(s))
	if err != nil {
		if n, err = base64.RawStdEncoding.Decode(buf[:], []byte(s)); err != nil {
			return false
		}
	}
	if n != sha256.Size {
		return false
	}
	copy(dst[:], buf[:n])
	return true
}

func (v *Verifier) verifyGeneric(h http.Header, body []byte, now time.Time) (Verified, error) {
	sigRaw := h.Get(v.sigHeader)
	if sigRaw == "" {
		return Verified{}, ErrMissingHeader
	}
	var (
		tsRaw string
		ts    time.Time
		err   error
	)
	if !v.noTS {
		if tsRaw = h.Get(v.tsHeader); tsRaw == "" {
			return Verified{}, ErrMissingHeader
		}
		if ts, err = parseTimestamp(tsRaw); err != nil {
			return Verified{}, err
		}
	}
	sig, err := v.decodeGeneric(sigRaw)
	if err != nil {
		return Verified{}, err
	}
	var id string
	if v.idHeader != "" {
		if id = h.Get(v.idHeader); id == "" {
			return Verified{}, ErrMissingHeader
		}
		if !ValidID(id) {
			return Verified{}, ErrMalformed
		}
	}
	var want [sha256.Size]byte
	ok := false
	set := v.secrets.Load()
	for i := range set.list {
		if !set.list[i].activeAt(now) {
			continue
		}
		m := set.get(i)
		v.writeTemplate(m.h, id, body, tsRaw)
		m.h.Sum(want[:0])
		set.put(i, m)
		if hmac.Equal(sig[:], want[:]) {
			ok = true
		}
	}
	if !ok {
		return Verified{}, ErrBadSignature
	}
	return v.checkTime(Verified{ID: id, Timestamp: ts}, now)
}

func (v *Verifier) decodeGeneric(raw string) (sig [sha256.Size]byte, err error) {
	if len(raw) > MaxSignatureHeader {
		return sig, ErrMalformed
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(raw), v.prefix)
	if !ok {
		return sig, ErrMalformed
	}
	if v.encoding == Hex {
		if len(s) != hex.EncodedLen(sha256.Size) {
			return sig, ErrMalformed
		}
		if _, err := hex.Decode(sig[:], []byte(s)); err != nil {
			return sig, ErrMalformed
		}
		return sig, nil
	}
	if !decodeSHA256Base64(&sig, s) {
		return sig, ErrMalformed
	}
	return sig, nil
}

func (v *Verifier) writeTemplate(w io.Writer, id string, body []byte, ts string) {
	for _, p := range v.template {
		switch p.field {
		case 0:
			_, _ = io.WriteString(w, p.lit)
		case 'b':
			_, _ = w.Write(body)
		case 't':
			_, _ = io.WriteString(w, ts)
		case 'i':
			_, _ = io.WriteString(w, id)
		}
	}
}

// SetSecrets replaces the secrets, at most MaxSecrets non-empty keys; a
// request being verified uses either the old set or the new one. With
// none, every signature is refused.
func (v *Verifier) SetSecrets(secrets []Secret) error {
	if len(secrets) > MaxSecrets {
		return fmt.Errorf("at most %d secrets, have %d", MaxSecrets, len(secrets))
	}
	for i, s := range secrets {
		if len(s.Key) == 0 {
			return fmt.Errorf("secret %d is empty", i+1)
		}
	}
	set := &secretSet{list: slices.Clone(secrets), macs: make([]sync.Pool, len(secrets))}
	for i := range set.list {
		key := set.list[i].Key
		set.macs[i].New = func() any { return &keyedMAC{h: hmac.New(sha256.New, key)} }
	}
	v.secrets.Store(set)
	return nil
}

// secretSet is one version of a Verifier's secrets, with a pool of HMAC
// states per secret: hmac.New hashes the key into its pads each time,
// where Reset only restores them.
type secretSet struct {
	list []Secret
	macs []sync.Pool // of *keyedMAC, one pool per secret
}

// keyedMAC is a reusable HMAC-SHA256 for one secret and a scratch buffer
// for what is signed ahead of the body.
type keyedMAC struct {
	h   hash.Hash
	buf []byte
}

func (s *secretSet) get(i int) *keyedMAC { return s.macs[i].Get().(*keyedMAC) }

func (s *secretSet) put(i int, m *keyedMAC) {
	m.h.Reset()
	if cap(m.buf) > 2*(MaxIDLength+maxTimestamp+2) {
		m.buf = nil
	}
	s.macs[i].Put(m)
}

func (s Secret) activeAt(now time.Time) bool {
	return s.Expires.IsZero() || now.Before(s.Expires)
}

func (v *Verifier) checkTime(r Verified, now time.Time) (Verified, error) {
	if v.noTS {
		return r, nil
	}
	d := now.Sub(r.Timestamp)
	if d > v.tolerance || d < -v.tolerance {
		return r, ErrStale
	}
	return r, nil
}

func writeStrings(w hash.Hash, ss ...string) {
	for _, s := range ss {
		w.Write([]byte(s))
	}
}

func parseTimestamp(s string) (time.Time, error) {
	if len(s) > maxTimestamp {
		return time.Time{}, ErrMalformed
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, ErrMalformed
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, ErrMalformed
	}
	return time.Unix(n, 0), nil
}

// ValidID reports whether id may serve as an event id: 1 to MaxIDLength
// printable ASCII characters without spaces. The id travels as a header
// value into the queue, so control characters are refused outright.
func ValidID(id string) bool {
	if id == "" || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// Signature is one entry of a Standard Webhooks signature header.
type Signature struct {
	Version string // "v1" for HMAC-SHA256; others are ignored by Verify
	Value   []byte // decoded
}

// ParseSignatureHeader splits a Standard Webhooks signature header into
// its entries. Entries that are not "version,base64" are skipped, as
// senders may add schemes a receiver does not know; a header longer than
// MaxSignatureHeader or with more than MaxSignatures entries is malformed.
func ParseSignatureHeader(h string) ([]Signature, error) {
	if len(h) > MaxSignatureHeader {
		return nil, ErrMalformed
	}
	var out []Signature
	n := 0
	for field := range strings.FieldsSeq(h) {
		if n++; n > MaxSignatures {
			return nil, ErrMalformed
		}
		version, value, ok := strings.Cut(field, ",")
		if !ok || version == "" {
			continue
		}
		b, err := decodeBase64(value)
		if err != nil {
			continue
		}
		out = append(out, Signature{Version: version, Value: b})
	}
	return out, nil
}

func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// Sign returns a Standard Webhooks signature entry ("v1,<base64>") for
// body sent with id at ts.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	writeStrings(mac, id, ".", strconv.FormatInt(ts.Unix(), 10), ".")
	mac.Write(body)
	var buf bytes.Buffer
	buf.WriteString("v1,")
	buf.WriteString(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return buf.String()
}

// SetHeaders sets the Standard Webhooks headers on h for body, signed with
// every key given (a receiver accepts any one of them, which lets the keys
// be rotated).
func SetHeaders(h http.Header, id string, ts time.Time, body []byte, keys ...[]byte) {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = Sign(k, id, ts, body)
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
}
