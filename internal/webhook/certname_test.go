package webhook

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/telguard/telguard/internal/tlstest"
)

// A source bound to client certificate names takes a certificate naming
// one of them in its DNS names (any case) — or, when it has none, in its
// common name — and nothing else: no TLS, no verified chain, or another
// name is refused.
func TestCertNamed(t *testing.T) {
	ca := tlstest.NewCA(t, "clients")
	leaf := func(pemCert []byte) *tls.ConnectionState {
		b, _ := pem.Decode(pemCert)
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c}}}
	}
	named, _ := ca.IssueClient(t, "a.example", "hooks.provider.example")
	bare, _ := ca.Issue(t, false) // common name "leaf", no DNS names
	for _, tc := range []struct {
		name  string
		cs    *tls.ConnectionState
		names []string
		want  bool
	}{
		{"dns name", leaf(named), []string{"hooks.provider.example"}, true},
		{"dns name any case", leaf(named), []string{"HOOKS.Provider.example"}, true},
		{"other name", leaf(named), []string{"hooks.crm.example"}, false},
		{"common name ignored when dns names exist", leaf(named), []string{"leaf"}, false},
		{"common name without dns names", leaf(bare), []string{"leaf"}, true},
		{"no tls", nil, []string{"leaf"}, false},
		{"tls without a verified chain", &tls.ConnectionState{}, []string{"leaf"}, false},
	} {
		if got := certNamed(tc.cs, tc.names); got != tc.want {
			t.Errorf("%s: certNamed = %v, want %v", tc.name, got, tc.want)
		}
	}
}
