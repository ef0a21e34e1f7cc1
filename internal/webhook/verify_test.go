package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	now  = time.Unix(1_700_000_000, 0)
	keyA = []byte("first secret key, 32 bytes long!")
	keyB = []byte("second secret key for rotation..")
	body = []byte(`{"type":"call.ended","call_id":"c-1","duration":42}`)
)

func stdHeaders(id string, ts time.Time, body []byte, keys ...[]byte) http.Header {
	h := http.Header{}
	SetHeaders(h, id, ts, body, keys...)
	return h
}

func mustVerifier(t testing.TB, c VerifierConfig) *Verifier {
	t.Helper()
	v, err := NewVerifier(c)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func TestParseSecret(t *testing.T) {
	k, err := ParseSecret("whsec_" + base64.StdEncoding.EncodeToString(keyA))
	if err != nil || string(k) != string(keyA) {
		t.Fatalf("whsec: %q, %v", k, err)
	}
	if k, err := ParseSecret("plain"); err != nil || string(k) != "plain" {
		t.Fatalf("plain: %q, %v", k, err)
	}
	for _, bad := range []string{"", "whsec_", "whsec_!!!"} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) accepted", bad)
		}
	}
}

func TestStandardWebhooks(t *testing.T) {
	v := mustVerifier(t, VerifierConfig{Secrets: []Secret{{Key: keyA}}})
	other := append([]byte{}, body...)
	other[5] ^= 1
	tests := []struct {
		name string
		h    http.Header
		body []byte
		want error
	}{
		{"valid", stdHeaders("msg_1", now, body, keyA), body, nil},
		{"one of several signatures", stdHeaders("msg_1", now, body, keyB, keyA), body, nil},
		{"body changed by one byte", stdHeaders("msg_1", now, body, keyA), other, ErrBadSignature},
		{"wrong secret", stdHeaders("msg_1", now, body, keyB), body, ErrBadSignature},
		{"tolerance edge past", stdHeaders("msg_1", now.Add(-300*time.Second), body, keyA), body, nil},
		{"tolerance edge future", stdHeaders("msg_1", now.Add(300*time.Second), body, keyA), body, nil},
		{"stale", stdHeaders("msg_1", now.Add(-301*time.Second), body, keyA), body, ErrStale},
		{"too far in the future", stdHeaders("msg_1", now.Add(301*time.Second), body, keyA), body, ErrStale},
		{"missing id", without(stdHeaders("msg_1", now, body, keyA), HeaderID), body, ErrMissingHeader},
		{"missing timestamp", without(stdHeaders("msg_1", now, body, keyA), HeaderTimestamp), body, ErrMissingHeader},
		{"missing signature", without(stdHeaders("msg_1", now, body, keyA), HeaderSignature), body, ErrMissingHeader},
		{"id changed", with(stdHeaders("msg_1", now, body, keyA), HeaderID, "msg_2"), body, ErrBadSignature},
		{"timestamp changed", with(stdHeaders("msg_1", now, body, keyA), HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10)), body, ErrBadSignature},
		{"timestamp not a number", with(stdHeaders("msg_1", now, body, keyA), HeaderTimestamp, "1700000000.5"), body, ErrMalformed},
		{"negative timestamp", with(stdHeaders("msg_1", now, body, keyA), HeaderTimestamp, "-1"), body, ErrMalformed},
		{"id with a space", stdHeaders("msg 1", now, body, keyA), body, ErrMalformed},
		{"unknown version only", with(stdHeaders("msg_1", now, body, keyA), HeaderSignature,
			"v2,"+strings.SplitN(Sign(keyA, "msg_1", now, body), ",", 2)[1]), body, ErrBadSignature},
		{"unknown versions ignored", with(stdHeaders("msg_1", now, body, keyA), HeaderSignature,
			"v1a,abc garbage "+Sign(keyA, "msg_1", now, body)), body, nil},
		{"too many signatures", with(stdHeaders("msg_1", now, body, keyA), HeaderSignature,
			strings.Repeat("v1,AAAA ", MaxSignatures)+Sign(keyA, "msg_1", now, body)), body, ErrMalformed},
		{"signature header too long", with(stdHeaders("msg_1", now, body, keyA), HeaderSignature,
			Sign(keyA, "msg_1", now, body)+strings.Repeat(" ", MaxSignatureHeader)), body, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(tt.h, tt.body, now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err == nil && got.ID != tt.h.Get(HeaderID) {
				t.Fatalf("id = %q", got.ID)
			}
		})
	}
}

func TestRotationWithExpiry(t *testing.T) {
	expires := now.Add(time.Hour)
	v := mustVerifier(t, VerifierConfig{Secrets: []Secret{{Key: keyB}, {Key: keyA, Expires: expires}}})
	old := func(at time.Time) error {
		_, err := v.Verify(stdHeaders("m", at, body, keyA), body, at)
		return err
	}
	if err := old(now); err != nil {
		t.Fatalf("old secret before expiry: %v", err)
	}
	if err := old(expires); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("old secret at expiry: %v, want ErrBadSignature", err)
	}
	if _, err := v.Verify(stdHeaders("m", expires, body, keyB), body, expires); err != nil {
		t.Fatalf("new secret after old expired: %v", err)
	}
}

func genericSig(key []byte, msg string, enc Encoding) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	if enc == Base64 {
		return base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	return hex.EncodeToString(mac.Sum(nil))
}

func TestGenericHMAC(t *testing.T) {
	ts := strconv.FormatInt(now.Unix(), 10)
	hexSig := "sha256=" + genericSig(keyA, string(body)+"."+ts, Hex)
	cfg := VerifierConfig{Scheme: GenericHMAC, Secrets: []Secret{{Key: keyA}},
		TimestampHeader: "X-Timestamp", SignatureHeader: "X-Signature", Prefix: "sha256="}
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	b64 := cfg
	b64.Encoding, b64.Prefix, b64.Template, b64.IDHeader = Base64, "", "{timestamp}:{id}:{body}", "X-Event-Id"
	tests := []struct {
		name string
		cfg  VerifierConfig
		h    http.Header
		body []byte
		want error
	}{
		{"hex with prefix", cfg, hdr("X-Timestamp", ts, "X-Signature", hexSig), body, nil},
		{"upper-case hex", cfg, hdr("X-Timestamp", ts, "X-Signature", "sha256="+strings.ToUpper(hexSig[7:])), body, nil},
		{"prefix missing", cfg, hdr("X-Timestamp", ts, "X-Signature", hexSig[7:]), body, ErrMalformed},
		{"body changed", cfg, hdr("X-Timestamp", ts, "X-Signature", hexSig), append([]byte(" "), body...), ErrBadSignature},
		{"timestamp missing", cfg, hdr("X-Signature", hexSig), body, ErrMissingHeader},
		{"stale", cfg, hdr("X-Timestamp", strconv.FormatInt(now.Unix()-1000, 10), "X-Signature",
			"sha256="+genericSig(keyA, string(body)+"."+strconv.FormatInt(now.Unix()-1000, 10), Hex)), body, ErrStale},
		{"short signature", cfg, hdr("X-Timestamp", ts, "X-Signature", hexSig[:20]), body, ErrMalformed},
		{"base64 template with id", b64, hdr("X-Timestamp", ts, "X-Event-Id", "ev-9", "X-Signature",
			genericSig(keyA, ts+":ev-9:"+string(body), Base64)), body, nil},
		{"base64 id changed", b64, hdr("X-Timestamp", ts, "X-Event-Id", "ev-8", "X-Signature",
			genericSig(keyA, ts+":ev-9:"+string(body), Base64)), body, ErrBadSignature},
		{"base64 id missing", b64, hdr("X-Timestamp", ts, "X-Signature",
			genericSig(keyA, ts+":ev-9:"+string(body), Base64)), body, ErrMissingHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mustVerifier(t, tt.cfg).Verify(tt.h, tt.body, now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	s := []Secret{{Key: keyA}}
	for name, c := range map[string]VerifierConfig{
		"no secrets":          {},
		"empty secret":        {Secrets: []Secret{{}}},
		"unknown scheme":      {Scheme: "md5", Secrets: s},
		"no signature header": {Scheme: GenericHMAC, Secrets: s, TimestampHeader: "T"},
		"no timestamp header": {Scheme: GenericHMAC, Secrets: s, SignatureHeader: "S"},
		"bad encoding":        {Scheme: GenericHMAC, Secrets: s, SignatureHeader: "S", TimestampHeader: "T", Encoding: "b32"},
		"template sans body":  {Scheme: GenericHMAC, Secrets: s, SignatureHeader: "S", TimestampHeader: "T", Template: "{timestamp}"},
		"unknown field":       {Scheme: GenericHMAC, Secrets: s, SignatureHeader: "S", TimestampHeader: "T", Template: "{body}{x}"},
		"id without header":   {Scheme: GenericHMAC, Secrets: s, SignatureHeader: "S", TimestampHeader: "T", Template: "{id}{body}"},
		"negative tolerance":  {Secrets: s, Tolerance: -time.Second},
	} {
		if _, err := NewVerifier(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func without(h http.Header, k string) http.Header { h.Del(k); return h }
func with(h http.Header, k, v string) http.Header { h.Set(k, v); return h }

func FuzzParseSignatureHeader(f *testing.F) {
	f.Add(Sign(keyA, "m", now, body))
	f.Add("v1,abc v2,def v1a,xyz ,, v1,")
	f.Add(strings.Repeat("v1,AAAA ", 20))
	f.Fuzz(func(t *testing.T, h string) {
		sigs, err := ParseSignatureHeader(h)
		if err != nil {
			return
		}
		if len(sigs) > MaxSignatures || len(h) > MaxSignatureHeader {
			t.Fatalf("limits not enforced: %d signatures from %d bytes", len(sigs), len(h))
		}
		for _, s := range sigs {
			if s.Version == "" {
				t.Fatal("entry without version")
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	v := mustVerifier(f, VerifierConfig{Secrets: []Secret{{Key: keyA}}})
	good := stdHeaders("msg_1", now, body, keyA)
	f.Add("msg_1", good.Get(HeaderTimestamp), good.Get(HeaderSignature), body)
	f.Add("", "", "", []byte{})
	f.Add("msg_1", "99999999999999999999", "v1,", body)
	f.Fuzz(func(t *testing.T, id, ts, sig string, b []byte) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		got, err := v.Verify(h, b, now)
		if err != nil {
			return
		}
		// Anything accepted must carry a signature the key really made.
		if !strings.Contains(sig, Sign(keyA, id, got.Timestamp, b)[3:]) &&
			!strings.Contains(sig, strings.TrimRight(Sign(keyA, id, got.Timestamp, b)[3:], "=")) {
			t.Fatalf("accepted a signature the key did not make: id=%q ts=%q sig=%q", id, ts, sig)
		}
		if !ValidID(got.ID) {
			t.Fatalf("accepted invalid id %q", got.ID)
		}
	})
}

func BenchmarkVerifyStandard(b *testing.B) {
	v := mustVerifier(b, VerifierConfig{Secrets: []Secret{{Key: keyA}}})
	h := stdHeaders("msg_1", now, body, keyA)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(h, body, now); err != nil {
			b.Fatal(err)
		}
	}
}
