package serve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testCA issues certificates for the tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key; server certificates are for
// 127.0.0.1.
func (ca *testCA) issue(t *testing.T, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// With client CAs, a client holding a certificate they issued is served;
// one without a certificate, or with one from another CA, fails the
// handshake.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := newTestCA(t, "clients"), newTestCA(t, "someone else")
	sc, sk := ca.issue(t, true)
	cfg, err := TLSConfig(write(t, dir, "s.crt", sc), write(t, dir, "s.key", sk), write(t, dir, "ca.pem", ca.pem))
	if err != nil {
		t.Fatal(err)
	}
	h := &HTTP{Name: "test", Addr: "127.0.0.1:0", ShutdownTimeout: time.Second, TLS: cfg,
		Server: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
		})}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if err := h.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- h.Run(ctx) }()
	defer func() { cancel(); <-done }()

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	get := func(certs ...tls.Certificate) (int, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		resp, err := c.Get("https://" + h.BoundAddr() + "/")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	cc, ck := ca.issue(t, false)
	good, _ := tls.X509KeyPair(cc, ck)
	if code, err := get(good); err != nil || code != http.StatusAccepted {
		t.Fatalf("client with a certificate from the CA: %d %v", code, err)
	}
	if _, err := get(); err == nil {
		t.Fatal("client without a certificate was served")
	}
	oc, ok := other.issue(t, false)
	stranger, _ := tls.X509KeyPair(oc, ok)
	if _, err := get(stranger); err == nil {
		t.Fatal("client with a certificate from another CA was served")
	}
}

func TestTLSConfigRefuses(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "ca")
	sc, sk := ca.issue(t, true)
	crt, key := write(t, dir, "s.crt", sc), write(t, dir, "s.key", sk)
	for name, args := range map[string][3]string{
		"no key":         {crt, "", ""},
		"missing file":   {filepath.Join(dir, "nope"), key, ""},
		"key for a cert": {key, key, ""},
		"empty CA file":  {crt, key, write(t, dir, "empty.pem", []byte("not pem"))},
	} {
		if _, err := TLSConfig(args[0], args[1], args[2]); !errors.Is(err, ErrTLSConfig) {
			t.Errorf("%s: %v, want ErrTLSConfig", name, err)
		}
	}
}
