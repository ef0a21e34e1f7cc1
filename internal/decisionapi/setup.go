package decisionapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/telguard/telguard/internal/serve"
)

// Config configures a Server. Zero values take the defaults noted.
type Config struct {
	// Addr is the TCP address to listen on, e.g. "127.0.0.1:8470"; port 0
	// picks a free port (see Listen and Addr).
	Addr string
	// Keys maps each API key to the tenant it acts for. At least one.
	Keys map[string]string
	// MaxBodyBytes caps request bodies; larger ones get 413. 0 → 16 KiB.
	MaxBodyBytes int64
	// HTTP server timeouts. 0 → 10 s read, 10 s write, 120 s idle. They are
	// never unlimited: a client that stalls must not hold a connection.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ShutdownTimeout bounds how long Run waits for in-flight requests once
	// its context is done. 0 → 10 s.
	ShutdownTimeout time.Duration
	// Clock gives the event time of requests that carry none. nil → time.Now.
	Clock func() time.Time
	// AnyEventTime accepts a request's "time" however far it is from the
	// clock. Off, it must be within maxClockSkew. Only for simulation.
	AnyEventTime bool
}

const (
	defaultMaxBodyBytes    = 16 << 10
	defaultReadTimeout     = 10 * time.Second
	defaultWriteTimeout    = 10 * time.Second
	defaultIdleTimeout     = 120 * time.Second
	defaultShutdownTimeout = 10 * time.Second
	maxHeaderBytes         = 64 << 10
	readyTimeout           = 5 * time.Second
)

// Server is the decision API. Build it with New, then either mount Handler
// in a server of your own or call Listen (optional) and Run.
type Server struct {
	cfg     Config
	eng     Engine
	log     DecisionLog
	rel     PolicyReloader
	ready   ReadyChecker
	dlq     DeadLetters
	logger  *slog.Logger
	metrics *metrics
	keys    keyring
	mux     *http.ServeMux
	pool    sync.Pool // *exchange
	srv     serve.HTTP

	notReady atomic.Bool // last /readyz answer was "not ready"; logs only changes
}

// New builds a Server. eng is required; log, rel and ready may be nil, in
// which case /v1/decisions and /v1/policy/reload answer 501 and /readyz
// always answers ready. Metrics are registered on reg (a fresh registry when
// nil); collectors another component already registered under the same
// names are shared rather than refused. logger nil discards logs.
func New(cfg Config, eng Engine, log DecisionLog, rel PolicyReloader, ready ReadyChecker, reg *prometheus.Registry, logger *slog.Logger) (*Server, error) {
	if eng == nil {
		return nil, errors.New("new decision api: no engine")
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("new decision api: negative max body size %d", cfg.MaxBodyBytes)
	}
	setDefault(&cfg.MaxBodyBytes, defaultMaxBodyBytes)
	setDefault(&cfg.ReadTimeout, defaultReadTimeout)
	setDefault(&cfg.WriteTimeout, defaultWriteTimeout)
	setDefault(&cfg.IdleTimeout, defaultIdleTimeout)
	setDefault(&cfg.ShutdownTimeout, defaultShutdownTimeout)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	keys, err := newKeyring(cfg.Keys)
	if err != nil {
		return nil, fmt.Errorf("new decision api: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("new decision api: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		eng:     eng,
		log:     log,
		rel:     rel,
		ready:   ready,
		logger:  logger,
		metrics: m,
		keys:    keys,
		mux:     http.NewServeMux(),
	}
	s.pool.New = func() any { return newExchange() }
	s.routes(reg)
	s.srv = serve.HTTP{Name: "decision api", Addr: cfg.Addr, ShutdownTimeout: cfg.ShutdownTimeout, Server: &http.Server{
		Handler:           s.mux,
		ReadTimeout:       cfg.ReadTimeout,
		ReadHeaderTimeout: cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}}
	return s, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// routes registers every route. The catch-all "/" turns the mux's plain-text
// 404 and 405 into JSON ones.
func (s *Server) routes(reg *prometheus.Registry) {
	s.handle("POST /v1/calls/check", true, http.StatusOK, s.check)
	s.handle("POST /v1/calls/{call_id}/answered", true, http.StatusNoContent, s.answered)
	s.handle("POST /v1/calls/{call_id}/ended", true, http.StatusNoContent, s.ended)
	s.handle("GET /v1/decisions", true, http.StatusOK, s.decisions)
	s.handle("POST /v1/policy/reload", true, http.StatusOK, s.reload)
	s.handle("POST /v1/accounts/{id}/unsuspend", true, http.StatusNoContent, s.unsuspend)
	s.handle("GET /v1/webhooks/dlq", true, http.StatusOK, s.listDeadLetters)
	s.handle("POST /v1/webhooks/dlq/{id}/replay", true, http.StatusNoContent, s.replayDeadLetter)
	s.handle("GET /healthz", false, http.StatusOK, s.healthz)
	s.handle("GET /readyz", false, http.StatusOK, s.readyz)
	prom := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
	s.handle("GET /metrics", false, http.StatusOK, func(x *exchange, r *http.Request) error {
		sw := &statusWriter{ResponseWriter: x.w}
		prom.ServeHTTP(sw, r)
		x.code = sw.status()
		return nil
	})
	s.handle("/", false, 0, s.unmatched)
}

// Handler returns the API's handler, for tests or for mounting in another
// server; Run serves the same handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Listen binds Config.Addr. After it returns, Addr reports the bound address
// and connections queue until Run serves them, so a caller (the daemon, a
// test using port 0) can learn the address and fail fast on a bind error
// before starting anything else. Calling Listen is optional: Run listens if
// it has not been called. Calling it twice is a no-op.
func (s *Server) Listen() error { return s.srv.Listen() }

// Addr returns the address the server is bound to, or "" before Listen.
func (s *Server) Addr() string { return s.srv.BoundAddr() }

// Run serves until ctx is done, then shuts down gracefully: it stops
// accepting, lets in-flight requests finish for up to
// Config.ShutdownTimeout, and then closes what is left. It returns nil after
// a clean shutdown. A Server runs once.
func (s *Server) Run(ctx context.Context) error {
	if err := s.srv.Listen(); err != nil {
		return err
	}
	s.logger.Info("decision api listening", "addr", s.srv.BoundAddr())
	if err := s.srv.Run(ctx); err != nil {
		return err
	}
	s.logger.Info("decision api stopped")
	return nil
}
