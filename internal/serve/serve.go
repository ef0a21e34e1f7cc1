// Package serve owns the lifecycle of one HTTP listener: bind early (so a
// caller learns the address and a bind error before anything else runs),
// serve until a context ends, then shut down gracefully within a bound.
// The decision API and the webhook ingress both run on it.
package serve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// HTTP serves Server on Addr. Set the fields, then call Listen (optional)
// and Run once.
type HTTP struct {
	Name            string // for errors: "decision api", "webhooks"
	Addr            string
	Server          *http.Server
	ShutdownTimeout time.Duration // how long requests in flight may take to finish
	// TLS, when set, serves HTTPS on the bound address (see TLSConfig).
	TLS *tls.Config
	// Admit, when set, is asked about every accepted connection before
	// anything is read from it (before the TLS handshake): a connection
	// it refuses is closed at once, so a client over its limit costs the
	// server no handshake.
	Admit func(remote net.Addr) bool

	mu      sync.Mutex
	ln      net.Listener
	started bool
}

// Listen binds Addr. Calling it twice is a no-op; Run calls it if needed.
func (h *HTTP) Listen() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", h.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", h.Addr, err)
	}
	h.ln = ln
	return nil
}

// BoundAddr returns the address bound by Listen, or "" before it.
func (h *HTTP) BoundAddr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln == nil {
		return ""
	}
	return h.ln.Addr().String()
}

// Run serves until ctx is done, then stops accepting, lets requests in
// flight finish for up to ShutdownTimeout and closes what is left. It
// returns nil after a clean shutdown.
func (h *HTTP) Run(ctx context.Context) error {
	if err := h.Listen(); err != nil {
		return err
	}
	h.mu.Lock()
	if h.started {
		h.mu.Unlock()
		return fmt.Errorf("run %s: already run", h.Name)
	}
	h.started = true
	ln := h.ln
	h.mu.Unlock()

	if h.Admit != nil {
		ln = admitListener{ln, h.Admit}
	}
	if h.TLS != nil {
		ln = tls.NewListener(ln, h.TLS)
	}
	errc := make(chan error, 1)
	go func() { errc <- h.Server.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", h.Name, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.ShutdownTimeout)
	defer cancel()
	if err := h.Server.Shutdown(sctx); err != nil {
		h.Server.Close()
		<-errc
		return fmt.Errorf("shut down %s: %w", h.Name, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", h.Name, err)
	}
	return nil
}

// admitListener closes the connections admit refuses as they are accepted.
type admitListener struct {
	net.Listener
	admit func(net.Addr) bool
}

func (l admitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.admit(c.RemoteAddr()) {
			return c, err
		}
		c.Close()
	}
}

// ErrTLSConfig means a certificate, key or CA file cannot be used.
var ErrTLSConfig = errors.New("bad TLS configuration")

// TLSConfig loads a server certificate chain and key (PEM files) and,
// when clientCAs is set, requires every client to present a certificate
// issued by one of the CAs in that PEM file (mutual TLS): a client
// without one fails the handshake. TLS 1.2 is the minimum.
func TLSConfig(certFile, keyFile, clientCAs string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("%w: a certificate and a key are both required", ErrTLSConfig)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: load certificate: %v", ErrTLSConfig, err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAs != "" {
		pem, err := os.ReadFile(clientCAs)
		if err != nil {
			return nil, fmt.Errorf("%w: read client CAs: %v", ErrTLSConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrTLSConfig, clientCAs)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}
