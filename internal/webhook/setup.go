package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telguard/telguard/internal/serve"
)

// Queue is where verified events go. *queue.Queue implements it. Publish
// must return only once the event is stored durably; dup reports an id
// already stored within the dedupe window.
type Queue interface {
	Publish(ctx context.Context, id string, data []byte) (dup bool, err error)
}

// Config configures a Server. Zero values take the defaults noted.
type Config struct {
	// Addr is the listen address. → "127.0.0.1:8081"; port 0 picks one.
	Addr string
	// Sources are the senders, keyed by the {source} path segment
	// ([a-z0-9_-], 1 to 64 characters). Requests for any other name get 404.
	Sources map[string]SourceConfig
	// MaxInFlight bounds the requests being handled at once; beyond it the
	// server answers 503 at once instead of queueing. → 1024.
	MaxInFlight int
	// EnqueueTimeout bounds one Publish. → 2 s.
	EnqueueTimeout time.Duration
	// PerIPRate and PerIPBurst limit each client address (IPv6 by /64)
	// across all sources. → 50/s, burst 100.
	PerIPRate  float64
	PerIPBurst int
	// HTTP server timeouts. → 5 s header, 10 s read, 10 s write, 60 s idle.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ShutdownTimeout bounds how long Run waits for requests in flight. → 10 s.
	ShutdownTimeout time.Duration
	// Clock is used for timestamps and rate limits. nil → time.Now.
	Clock func() time.Time
}

// SourceConfig is one sender of webhooks.
type SourceConfig struct {
	Tenant   string
	Verifier VerifierConfig
	// AllowedCIDRs, when set, refuse (403) requests from other addresses.
	// It is an extra layer: the signature is checked all the same.
	AllowedCIDRs []netip.Prefix
	// MaxBodyBytes caps the body; larger ones get 413. → 256 KiB.
	MaxBodyBytes int64
	// EventIDPointer is a JSON pointer (RFC 6901, "/data/id") to the event
	// id in the body. "" → the id the scheme carries in a header
	// (webhook-id, or VerifierConfig.IDHeader).
	EventIDPointer string
	// Rate and Burst limit the source as a whole. → 1000/s, burst 2000.
	Rate  float64
	Burst int
}

const (
	defaultAddr              = "127.0.0.1:8081"
	defaultMaxInFlight       = 1024
	defaultEnqueueTimeout    = 2 * time.Second
	defaultPerIPRate         = 50
	defaultPerIPBurst        = 100
	defaultSourceRate        = 1000
	defaultSourceBurst       = 2000
	defaultMaxBodyBytes      = 256 << 10
	defaultReadHeaderTimeout = 5 * time.Second
	defaultReadTimeout       = 10 * time.Second
	defaultWriteTimeout      = 10 * time.Second
	defaultIdleTimeout       = 60 * time.Second
	defaultShutdownTimeout   = 10 * time.Second
	maxHeaderBytes           = 32 << 10
	maxIPKeys                = 100_000
)

var sourceName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// source is a configured source, ready to serve.
type source struct {
	name     string
	cfg      SourceConfig
	verifier *Verifier
	pointer  []string // parsed EventIDPointer; nil → header id
	limit    *limiter
}

// Server is the webhook ingress. Build it with New, then call Listen
// (optional) and Run, or mount Handler in a server of your own.
type Server struct {
	cfg     Config
	queue   Queue
	logger  *slog.Logger
	metrics *metrics
	sources map[string]*source
	ipLimit *limiter
	slots   chan struct{}
	mux     *http.ServeMux
	srv     serve.HTTP
}

// New checks cfg and builds a Server that publishes to q. Metrics are
// registered on reg (a fresh registry when nil); logger nil discards.
func New(cfg Config, q Queue, reg prometheus.Registerer, logger *slog.Logger) (*Server, error) {
	if q == nil {
		return nil, errors.New("new webhook server: no queue")
	}
	def(&cfg.Addr, defaultAddr)
	def(&cfg.MaxInFlight, defaultMaxInFlight)
	def(&cfg.EnqueueTimeout, defaultEnqueueTimeout)
	def(&cfg.PerIPRate, defaultPerIPRate)
	def(&cfg.PerIPBurst, defaultPerIPBurst)
	def(&cfg.ReadHeaderTimeout, defaultReadHeaderTimeout)
	def(&cfg.ReadTimeout, defaultReadTimeout)
	def(&cfg.WriteTimeout, defaultWriteTimeout)
	def(&cfg.IdleTimeout, defaultIdleTimeout)
	def(&cfg.ShutdownTimeout, defaultShutdownTimeout)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxInFlight < 0 || cfg.PerIPRate < 0 || cfg.PerIPBurst < 0 {
		return nil, errors.New("new webhook server: negative limit")
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:     cfg,
		queue:   q,
		logger:  logger,
		sources: make(map[string]*source, len(cfg.Sources)),
		ipLimit: newLimiter(cfg.PerIPRate, cfg.PerIPBurst, maxIPKeys),
		slots:   make(chan struct{}, cfg.MaxInFlight),
		mux:     http.NewServeMux(),
	}
	for name, sc := range cfg.Sources {
		src, err := newSource(name, sc)
		if err != nil {
			return nil, fmt.Errorf("new webhook server: source %s: %w", name, err)
		}
		s.sources[name] = src
	}
	var err error
	if s.metrics, err = newMetrics(reg); err != nil {
		return nil, fmt.Errorf("new webhook server: %w", err)
	}
	s.mux.HandleFunc("POST /hooks/{source}", s.serveHook)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such route")
	})
	s.srv = serve.HTTP{Name: "webhooks", Addr: cfg.Addr, ShutdownTimeout: cfg.ShutdownTimeout, Server: &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}}
	return s, nil
}

func newSource(name string, sc SourceConfig) (*source, error) {
	if !sourceName.MatchString(name) {
		return nil, errors.New("name must be 1 to 64 of [a-z0-9_-]")
	}
	if sc.Tenant == "" {
		return nil, errors.New("no tenant")
	}
	if sc.MaxBodyBytes < 0 || sc.Rate < 0 || sc.Burst < 0 {
		return nil, errors.New("negative limit")
	}
	def(&sc.MaxBodyBytes, defaultMaxBodyBytes)
	def(&sc.Rate, defaultSourceRate)
	def(&sc.Burst, defaultSourceBurst)
	v, err := NewVerifier(sc.Verifier)
	if err != nil {
		return nil, err
	}
	src := &source{name: name, cfg: sc, verifier: v, limit: newLimiter(sc.Rate, sc.Burst, 1)}
	if sc.EventIDPointer != "" {
		if src.pointer, err = parsePointer(sc.EventIDPointer); err != nil {
			return nil, err
		}
	} else if v.scheme == GenericHMAC && v.idHeader == "" {
		return nil, errors.New("no event id: set event_id_pointer or the id header")
	}
	return src, nil
}

func def[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Handler returns the ingress handler, for tests or another server.
func (s *Server) Handler() http.Handler { return s.mux }

// Listen binds Config.Addr, so the caller learns the address (Addr) and a
// bind error before anything runs. Optional: Run listens if needed.
func (s *Server) Listen() error { return s.srv.Listen() }

// Addr returns the bound address, or "" before Listen.
func (s *Server) Addr() string { return s.srv.BoundAddr() }

// Run serves until ctx is done, then stops accepting and lets requests in
// flight finish (each either enqueued and acknowledged, or answered 503)
// for up to ShutdownTimeout. A Server runs once.
func (s *Server) Run(ctx context.Context) error {
	if err := s.srv.Listen(); err != nil {
		return err
	}
	s.logger.Info("webhook ingress listening", "addr", s.srv.BoundAddr(), "sources", len(s.sources))
	if err := s.srv.Run(ctx); err != nil {
		return err
	}
	s.logger.Info("webhook ingress stopped")
	return nil
}
