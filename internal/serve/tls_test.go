package serve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/tlstest"
)

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
	ca, other := tlstest.NewCA(t, "clients"), tlstest.NewCA(t, "someone else")
	sc, sk := ca.Issue(t, true)
	cfg, err := TLSConfig(write(t, dir, "s.crt", sc), write(t, dir, "s.key", sk), write(t, dir, "ca.pem", ca.PEM))
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
	roots.AddCert(ca.Cert)
	get := func(certs ...tls.Certificate) (int, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		resp, err := c.Get("https://" + h.BoundAddr() + "/")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	cc, ck := ca.Issue(t, false)
	good, _ := tls.X509KeyPair(cc, ck)
	if code, err := get(good); err != nil || code != http.StatusAccepted {
		t.Fatalf("client with a certificate from the CA: %d %v", code, err)
	}
	if _, err := get(); err == nil {
		t.Fatal("client without a certificate was served")
	}
	oc, ok := other.Issue(t, false)
	stranger, _ := tls.X509KeyPair(oc, ok)
	if _, err := get(stranger); err == nil {
		t.Fatal("client with a certificate from another CA was served")
	}
}

func TestTLSConfigRefuses(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	sc, sk := ca.Issue(t, true)
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

// A connection Admit refuses is closed before the TLS handshake: it is
// never served, and the server does no handshake work for it.
func TestAdmitRefusesBeforeHandshake(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "server")
	sc, sk := ca.Issue(t, true)
	cfg, err := TLSConfig(write(t, dir, "s.crt", sc), write(t, dir, "s.key", sk), "")
	if err != nil {
		t.Fatal(err)
	}
	var handshakes, admitted atomic.Int32
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		handshakes.Add(1)
		return nil, nil
	}
	const allowed = 3
	h := &HTTP{Name: "test", Addr: "127.0.0.1:0", ShutdownTimeout: time.Second, TLS: cfg,
		Admit: func(net.Addr) bool { return admitted.Add(1) <= allowed },
		Server: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})}}
	if err := h.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: roots}}}
	served := 0
	for range allowed + 4 {
		resp, err := c.Get("https://" + h.BoundAddr() + "/")
		if err == nil {
			resp.Body.Close()
			served++
		}
	}
	if served != allowed || handshakes.Load() != allowed {
		t.Fatalf("served %d requests after %d handshakes; want %d of each", served, handshakes.Load(), allowed)
	}
}
