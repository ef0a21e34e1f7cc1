package sipedge

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// Stream connection timeouts. A phone keeps its connection open with CRLF
// keep-alives and re-REGISTERs, so the idle timeout is long; a TLS
// handshake that has not finished in defaultHandshakeTimeout is a client
// holding a connection slot for nothing.
const (
	streamIdleTimeout       = 5 * time.Minute
	streamWriteTimeout      = 5 * time.Second
	defaultHandshakeTimeout = 10 * time.Second
)

// serverTLSConfig builds the TLS listeners' configuration from cfg: a copy
// of cfg.TLSConfig, or the PEM files. Cipher suites and curves are Go's
// defaults; TLS 1.2 is the floor whatever the caller's config says. With
// TLSClientCAs every client must present a certificate that chains to one
// of them (mutual TLS, as trunks use it).
func serverTLSConfig(cfg *Config) (*tls.Config, error) {
	var c *tls.Config
	if cfg.TLSConfig != nil {
		c = cfg.TLSConfig.Clone()
	} else {
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			return nil, ErrNoCertificate
		}
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load tls certificate: %w", err)
		}
		c = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	if len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
		return nil, ErrNoCertificate
	}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	if cfg.TLSClientCAs != "" {
		pem, err := os.ReadFile(cfg.TLSClientCAs)
		if err != nil {
			return nil, fmt.Errorf("read tls client CAs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read tls client CAs: no PEM certificate in %s", cfg.TLSClientCAs)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// upstreamTLSConfig is how the guard dials a tls upstream at hostport:
// TLS 1.2 at least, the upstream's certificate checked against
// cfg.UpstreamTLSCAs (the system's roots when empty) for the name or IP
// address the upstream was given as, and the guard's own certificate
// offered should the upstream ask for one (mutual TLS).
func upstreamTLSConfig(cfg *Config, hostport string, server *tls.Config) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, Certificates: server.Certificates}
	if cfg.UpstreamTLSCAs != "" {
		pem, err := os.ReadFile(cfg.UpstreamTLSCAs)
		if err != nil {
			return nil, fmt.Errorf("read upstream tls CAs: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read upstream tls CAs: no PEM certificate in %s", cfg.UpstreamTLSCAs)
		}
	}
	return c, nil
}

// streamConn is a caller's TCP or TLS connection as sipgo's transport layer
// reads it. It sets its own deadlines (sipgo's would need its transports
// configured with a logger that the guard cannot give them) and runs the
// TLS handshake under its own, shorter deadline on the first read, in the
// connection's goroutine, so a slow handshake never holds up Accept.
type streamConn struct {
	net.Conn            // the *tls.Conn, or the TCP connection
	tls       *tls.Conn // nil on TCP
	handshake time.Duration
	failed    func(error) // a handshake failed
	done      func(*tls.Conn) func()

	mu     sync.Mutex
	closed bool
	forget func() // undoes done's note, at Close

	once sync.Once
	err  error
}

func (c *streamConn) Read(b []byte) (int, error) {
	if c.tls != nil {
		c.once.Do(func() {
			c.tls.SetDeadline(time.Now().Add(c.handshake))
			if c.err = c.tls.Handshake(); c.err != nil {
				c.failed(c.err)
				return
			}
			c.tls.SetWriteDeadline(time.Time{})
			if c.done != nil {
				forget := c.done(c.tls)
				c.mu.Lock()
				if c.closed && forget != nil {
					forget()
					forget = nil
				}
				c.forget = forget
				c.mu.Unlock()
			}
		})
		if c.err != nil {
			return 0, c.err
		}
	}
	c.Conn.SetReadDeadline(time.Now().Add(streamIdleTimeout))
	return c.Conn.Read(b)
}

func (c *streamConn) Close() error {
	err := c.Conn.Close()
	c.mu.Lock()
	c.closed = true
	if c.forget != nil {
		c.forget()
		c.forget = nil
	}
	c.mu.Unlock()
	return err
}

func (c *streamConn) Write(b []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return c.Conn.Write(b)
}
