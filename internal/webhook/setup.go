package webhook

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"sync"
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
	// SecretFile is the secret store (see RotateSecret) whose secrets are
	// added to each source's configured ones. The server re-reads it when
	// it changes: at once when a signature fails to verify, and every
	// SecretPoll. "" → configured secrets only.
	SecretFile string
	// SecretPoll is how often the secret store is checked for changes. → 1 s.
	SecretPoll time.Duration
	// Alerts sets when a spike of signature failures or duplicates from
	// one source raises an Alert.
	Alerts AlertConfig
	// TLSCert and TLSKey are PEM files: when set, the ingress serves
	// HTTPS (TLS 1.2 or later). TLSClientCAs, a PEM file of CAs, then
	// requires each client to present a certificate one of them issued
	// (mutual TLS); a client without one fails the handshake. The
	// signature is checked all the same.
	TLSCert, TLSKey, TLSClientCAs string
	// DedupeWindow is how long an event id, once queued, makes a retry of
	// the event a duplicate (200, not queued again). → 24 h.
	DedupeWindow time.Duration
	// DedupeDir keeps the dedupe index's files, so that a restart
	// remembers the window's ids. "" → in memory only. Give the queue a
	// duplicate window of DedupeOverlap: the index does the rest.
	DedupeDir string
	// OnAlert, when set, receives each Alert (at most one per source, rule
	// and window). It is called on the request's goroutine: hand off, never
	// block.
	OnAlert func(Alert)
}

// SourceConfig is one sender of webhooks.
type SourceConfig struct {
	Tenant string
	// Verifier checks signatures. Its Secrets are the configured ones; the
	// secret store's are added, and the store may retire configured ones.
	Verifier VerifierConfig
	// AllowedCIDRs, when set, refuse (403) requests from other addresses.
	// It is an extra layer: the signature is checked all the same.
	AllowedCIDRs []netip.Prefix
	// ClientCertNames, when set, binds the source to client certificates
	// (mutual TLS, Config.TLSClientCAs): a request is refused (403) unless
	// its verified certificate names one of these (a DNS name in its
	// subject alternative names, or its common name when it has none), so
	// one provider's certificate cannot post as another source. An extra
	// layer: the signature is checked all the same.
	ClientCertNames []string
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
	defaultDedupeWindow      = 24 * time.Hour
	defaultSecretPoll        = time.Second
	maxHeaderBytes           = 32 << 10
	maxIPKeys                = 100_000
)

var sourceName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// source is a configured source, ready to serve.
type source struct {
	name       string
	cfg        SourceConfig
	configured []Secret // before the secret store is applied
	verifier   *Verifier
	pointer    []string // parsed EventIDPointer; nil → header id
	limit      *limiter[string]
	sigSpike   *spike
	dupSpike   *spike

	m            sourceMetrics
	envPrefix    string // appendEnvelope
	dedupePrefix string // DedupeKey(name, "")
}

// Server is the webhook ingress. Build it with New, then call Listen
// (optional) and Run, or mount Handler in a server of your own.
type Server struct {
	cfg       Config
	queue     Queue
	logger    *slog.Logger
	metrics   *metrics
	sources   map[string]*source
	ipLimit   *limiter[netip.Addr]
	connLimit *limiter[netip.Addr]
	slots     chan struct{}
	mux       *http.ServeMux
	srv       serve.HTTP

	secretMu    sync.Mutex
	secretStamp fileStamp // the store version the verifiers hold
	// secretFailed is set while secretStamp's version could not be read:
	// the poll retries it (a read error may pass), a request does not.
	secretFailed bool
	readSecrets  func(path string) (map[string][]StoredSecret, error) // ReadSecretStore; tests fail it

	dedupe *dedupeIndex
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
	def(&cfg.SecretPoll, defaultSecretPoll)
	def(&cfg.Alerts.SignatureFailures, defaultAlertSignatureFailures)
	def(&cfg.Alerts.Duplicates, defaultAlertDuplicates)
	def(&cfg.Alerts.Window, defaultAlertWindow)
	def(&cfg.DedupeWindow, defaultDedupeWindow)
	if cfg.DedupeWindow < DedupeOverlap {
		return nil, fmt.Errorf("new webhook server: dedupe window %s is shorter than %s", cfg.DedupeWindow, DedupeOverlap)
	}
	if cfg.Alerts.Window < 0 {
		return nil, errors.New("new webhook server: negative alert window")
	}
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
		ipLimit: newLimiter[netip.Addr](cfg.PerIPRate, cfg.PerIPBurst, maxIPKeys),
		// A client never needs more new connections than requests, so
		// the request limit bounds connections too; checked at accept,
		// it spares the TLS handshake of a client over it.
		connLimit: newLimiter[netip.Addr](cfg.PerIPRate, cfg.PerIPBurst, maxIPKeys),
		slots:     make(chan struct{}, cfg.MaxInFlight),
		mux:       http.NewServeMux(),

		readSecrets: ReadSecretStore,
	}
	stored := map[string][]StoredSecret{}
	if cfg.SecretFile != "" {
		var err error
		if s.secretStamp, err = statStamp(cfg.SecretFile); err != nil {
			return nil, fmt.Errorf("new webhook server: %w: %v", ErrSecretStore, err)
		}
		if stored, err = ReadSecretStore(cfg.SecretFile); err != nil {
			return nil, fmt.Errorf("new webhook server: %w", err)
		}
	}
	for name, sc := range cfg.Sources {
		// A signed request can be replayed as long as its timestamp is
		// within the tolerance either side of the clock: the index must
		// remember its id at least that long, or a replay is queued anew.
		if tol := cmp.Or(sc.Verifier.Tolerance, DefaultTolerance); !sc.Verifier.NoTimestamp && cfg.DedupeWindow < 2*tol {
			return nil, fmt.Errorf("new webhook server: source %s: dedupe window %s is shorter than twice its timestamp tolerance %s: a replay could be queued again", name, cfg.DedupeWindow, tol)
		}
		if len(sc.ClientCertNames) > 0 && cfg.TLSClientCAs == "" {
			return nil, fmt.Errorf("new webhook server: source %s: client certificate names need mutual TLS (client CAs)", name)
		}
		src, err := newSource(name, sc, stored[name], cfg.Clock())
		if err != nil {
			return nil, fmt.Errorf("new webhook server: source %s: %w", name, err)
		}
		src.sigSpike = &spike{threshold: cfg.Alerts.SignatureFailures, window: cfg.Alerts.Window}
		src.dupSpike = &spike{threshold: cfg.Alerts.Duplicates, window: cfg.Alerts.Window}
		s.sources[name] = src
	}
	var err error
	if s.metrics, err = newMetrics(reg); err != nil {
		return nil, fmt.Errorf("new webhook server: %w", err)
	}
	for _, src := range s.sources {
		src.m = s.metrics.forSource(src.name)
	}
	s.mux.HandleFunc("POST /hooks/{source}", s.serveHook)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such route")
	})
	var tlsCfg *tls.Config
	if cfg.TLSCert != "" || cfg.TLSKey != "" || cfg.TLSClientCAs != "" {
		if tlsCfg, err = serve.TLSConfig(cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCAs); err != nil {
			return nil, fmt.Errorf("new webhook server: %w", err)
		}
	}
	if s.dedupe, err = openDedupe(cfg.DedupeDir, cfg.DedupeWindow, cfg.Clock(), logger); err != nil {
		return nil, fmt.Errorf("new webhook server: %w", err)
	}
	if err := s.metrics.registerDedupe(reg, s.dedupe); err != nil {
		return nil, fmt.Errorf("new webhook server: %w", err)
	}
	s.srv = serve.HTTP{Name: "webhooks", Addr: cfg.Addr, ShutdownTimeout: cfg.ShutdownTimeout, TLS: tlsCfg, Admit: s.admit, Server: &http.Server{
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

func newSource(name string, sc SourceConfig, stored []StoredSecret, now time.Time) (*source, error) {
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
	configured := sc.Verifier.Secrets
	vc := sc.Verifier
	vc.Secrets = EffectiveSecrets(configured, stored, now)
	if len(vc.Secrets) == 0 {
		return nil, fmt.Errorf("no active signing secret: configure one, or issue one with `telguard webhooks secret rotate %s`", name)
	}
	v, err := NewVerifier(vc)
	if err != nil {
		return nil, err
	}
	src := &source{name: name, cfg: sc, configured: configured, verifier: v, limit: newLimiter[string](sc.Rate, sc.Burst, 1),
		envPrefix: envelopePrefix(name, sc.Tenant), dedupePrefix: DedupeKey(name, "")}
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

// admit takes a connection token for the client's address (IPv6 by /64).
func (s *Server) admit(remote net.Addr) bool {
	a, ok := remote.(*net.TCPAddr)
	if !ok {
		return true
	}
	ip, _ := netip.AddrFromSlice(a.IP)
	if ok, _ := s.connLimit.allow(ipKey(ip), s.cfg.Clock()); !ok {
		s.metrics.rateLimitedConn.Inc()
		return false
	}
	return true
}

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
	var wg sync.WaitGroup
	pctx, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		wg.Wait()
		if err := s.dedupe.close(); err != nil {
			s.logger.Error("webhook dedupe index not saved at shutdown", "err", err)
		}
	}()
	if s.cfg.SecretFile != "" {
		wg.Go(func() { s.pollSecrets(pctx) })
	}
	wg.Go(func() { s.keepDedupe(pctx) })
	if err := s.srv.Run(ctx); err != nil {
		return err
	}
	s.logger.Info("webhook ingress stopped")
	return nil
}

// keepDedupe writes the dedupe index's new ids and forgets expired ones
// once a second, until ctx ends.
func (s *Server) keepDedupe(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.dedupe.expire(s.cfg.Clock())
			err := s.dedupe.flush()
			if err != nil && !failing {
				s.logger.Error("webhook dedupe index not written; a restart would forget the ids since", "err", err)
			}
			failing = err != nil
		}
	}
}

// pollSecrets re-reads the secret store when it changes, until ctx ends.
func (s *Server) pollSecrets(ctx context.Context) {
	t := time.NewTicker(s.cfg.SecretPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.reloadSecrets(true)
		}
	}
}

// reloadSecrets re-reads the secret store if it changed since the last
// read and gives every source its new secrets; changed reports whether
// it did. A store that cannot be read leaves the secrets as they were.
// A version that failed is tried again by the poll (retry), once a
// poll interval, so a passing read error does not leave a rotation
// unseen; a failed signature does not retry it, so forged requests cannot
// make the ingress re-read a broken file on every request.
func (s *Server) reloadSecrets(retry bool) (changed bool) {
	if s.cfg.SecretFile == "" {
		return false
	}
	s.secretMu.Lock()
	defer s.secretMu.Unlock()
	st, err := statStamp(s.cfg.SecretFile)
	if err != nil {
		return false
	}
	again := st.same(s.secretStamp)
	if again && !(retry && s.secretFailed) {
		return false
	}
	s.secretStamp = st
	stored, err := s.readSecrets(s.cfg.SecretFile)
	if err != nil {
		if !again || !s.secretFailed { // reported once per version, not per retry
			s.metrics.secretReloads.WithLabelValues("failed").Inc()
			s.logger.Error("webhook secret store not reloaded; the previous secrets stay in force", "err", err)
		}
		s.secretFailed = true
		return false
	}
	s.secretFailed = false
	now := s.cfg.Clock()
	for _, src := range s.sources {
		if err := src.verifier.SetSecrets(EffectiveSecrets(src.configured, stored[src.name], now)); err != nil {
			s.metrics.secretReloads.WithLabelValues("failed").Inc()
			s.logger.Error("webhook secrets not reloaded for a source; its previous secrets stay in force", "source", src.name, "err", err)
		}
	}
	s.metrics.secretReloads.WithLabelValues("reloaded").Inc()
	s.logger.Info("webhook secret store reloaded", "file", s.cfg.SecretFile)
	return true
}
