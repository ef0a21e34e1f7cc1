package sipedge

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telguard/telguard/internal/prom"
	"github.com/telguard/telguard/internal/sipedge/prefilter"
)

const (
	defaultMaxTransactions = 65536
	defaultMaxCalls        = 100000
	defaultCallTTL         = 12 * time.Hour
	defaultWorkers         = 4
	defaultMaxTCPConns     = 10000
	// readBuffer is the largest datagram read; bigger ones are dropped
	// as oversized. SIP over UDP stays well under 64 KiB.
	readBuffer = 65535
)

// Server is the SIP edge. Build it with New; Listen (optional) binds the
// sockets so Addrs can report them; Run serves until its context ends.
type Server struct {
	cfg      Config
	eng      Engine
	log      *slog.Logger
	metrics  *metrics
	parser   *sip.Parser
	upstream netip.AddrPort
	upNet    string      // the upstream's transport: "udp", "tcp" or "tls"
	upTLS    *tls.Config // dialling a tls upstream; nil otherwise
	stampKey []byte
	tlsConf  *tls.Config // for tls listeners; nil without any

	txs      *fifoCache[string, *txState] // by the guard's branch
	byes     *fifoCache[string, byeState] // callers' BYEs awaiting the upstream's 2xx, by branch
	calls    *callTable
	ended    *fifoCache[string, struct{}]
	trusts   []netip.Prefix // TrustedCIDRs and CarrierCIDRs: bypass screening
	carriers []netip.Prefix // CarrierCIDRs: INVITEs reported as inbound calls

	order [64]sync.Mutex // see relayInOrder

	runCtx    context.Context // for messages sipgo's TCP readers hand over
	mu        sync.Mutex
	listeners []*listener
	up        *listener // the listener that talks to the upstream
	started   bool

	// upstreamHostTrusted: the trusted peers list the upstream's address
	// alone, so a TCP connection from it is the PBX (see fromUpstream).
	upstreamHostTrusted bool

	// pbxConns holds the sources of TLS connections the PBX opened to
	// the guard, presenting its certificate (see fromUpstream).
	pbxConns sync.Map // netip.AddrPort → struct{}

	dialMu sync.Mutex    // guards dial
	dial   *upstreamDial // the connection attempt to the upstream in progress

	// attachFilter installs a socket filter (attachSocketFilter; tests
	// make it fail).
	attachFilter func(*net.UDPConn, []bpfInsn) error
}

// listener is one bound socket: a UDP socket the guard reads itself, or a
// TCP listener (plain or TLS) whose connections sipgo's transport layer
// runs.
type listener struct {
	idx     int
	network string // "udp", "tcp" or "tls"
	conn    *net.UDPConn
	tcp     *net.TCPListener
	tp      *sip.TransportLayer // tcp and tls only
	host    string              // advertised in Via and Record-Route
	port    int
	addr    netip.AddrPort
}

// viaTransport is the transport token for the guard's Via.
func (l *listener) viaTransport() string { return strings.ToUpper(l.network) }

// canReach reports whether a UDP socket on l can send to a: the same
// address family, or an IPv6 wildcard (dual-stack).
func (l *listener) canReach(a netip.Addr) bool {
	la := l.addr.Addr()
	return la.Is4() == a.Is4() || (la.Is6() && la.IsUnspecified())
}

// stream reports a connection-oriented listener (tcp or tls): responses
// and requests to its peers take the connection the peer opened.
func (l *listener) stream() bool { return l.network != "udp" }

// New checks cfg and builds a Server. Nothing is bound until Listen or Run.
// Metrics are registered on reg (a fresh registry when nil); logger nil
// discards logs.
func New(cfg Config, eng Engine, reg *prometheus.Registry, logger *slog.Logger) (*Server, error) {
	if eng == nil {
		return nil, errors.New("new sip edge: no engine")
	}
	if len(cfg.Listen) == 0 {
		return nil, errors.New("new sip edge: no listen address")
	}
	if cfg.Tenant == "" {
		return nil, errors.New("new sip edge: no tenant")
	}
	switch cfg.AccountFrom {
	case "":
		cfg.AccountFrom = AccountFromUser
	case AccountFromUser, AccountAuthUser, AccountPAI:
	default:
		return nil, fmt.Errorf("new sip edge: account_from %q: want from_user, auth_user or pai", cfg.AccountFrom)
	}
	var tlsConf *tls.Config
	for _, l := range cfg.Listen {
		network, _, err := splitNetAddr(l)
		if err != nil {
			return nil, fmt.Errorf("new sip edge: listen %q: %w", l, err)
		}
		if strings.HasPrefix(network, "tls") && tlsConf == nil {
			if tlsConf, err = serverTLSConfig(&cfg); err != nil {
				return nil, fmt.Errorf("new sip edge: listen %q: %w", l, err)
			}
		}
	}
	network, hostport, err := splitNetAddr(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("new sip edge: upstream %q: %w", cfg.Upstream, err)
	}
	var upTLS *tls.Config
	if strings.HasPrefix(network, "tls") {
		if tlsConf == nil {
			return nil, fmt.Errorf("new sip edge: upstream %q: a tls upstream needs a tls listener", cfg.Upstream)
		}
		if upTLS, err = upstreamTLSConfig(&cfg, hostport, tlsConf); err != nil {
			return nil, fmt.Errorf("new sip edge: upstream %q: %w", cfg.Upstream, err)
		}
	}
	// Resolved once: the guard's idea of "from the upstream" is this address.
	upAddr := cfg.UpstreamAddr
	if !upAddr.IsValid() {
		if upAddr, err = ResolveUpstream(cfg.Upstream); err != nil {
			return nil, fmt.Errorf("new sip edge: %w", err)
		}
	}
	if cfg.Simulation {
		if err := checkSimulationAddrs(cfg.Listen, upAddr); err != nil {
			return nil, fmt.Errorf("new sip edge: %w", err)
		}
	}
	setDefault(&cfg.MaxTransactions, defaultMaxTransactions)
	setDefault(&cfg.MaxCalls, defaultMaxCalls)
	setDefault(&cfg.MaxCarrierCalls, cfg.MaxCalls)
	setDefault(&cfg.CallTTL, defaultCallTTL)
	setDefault(&cfg.Workers, defaultWorkers)
	setDefault(&cfg.MaxTCPConns, defaultMaxTCPConns)
	setDefault(&cfg.TLSHandshakeTimeout, defaultHandshakeTimeout)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	key := cfg.StampKey
	if len(key) == 0 {
		key = make([]byte, 32)
		rand.Read(key)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("new sip edge: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		eng:      eng,
		log:      logger,
		metrics:  m,
		parser:   sip.NewParser(),
		upstream: netip.AddrPortFrom(unmap(upAddr.Addr()), upAddr.Port()),
		upNet:    network[:3],
		upTLS:    upTLS,
		stampKey: key,
		tlsConf:  tlsConf,
		txs:      newFIFOCache[string, *txState](cfg.MaxTransactions, txTTL),
		byes:     newFIFOCache[string, byeState](cfg.MaxTransactions, byeTTL),
		calls:    newCallTable(cfg.MaxCalls, cfg.MaxCarrierCalls, cfg.CallTTL),
		ended:    newFIFOCache[string, struct{}](cfg.MaxCalls, endedTTL),
		trusts:   append(slices.Clone(cfg.TrustedCIDRs), cfg.CarrierCIDRs...),
		carriers: cfg.CarrierCIDRs,

		attachFilter: attachSocketFilter,
	}
	for _, p := range cfg.TrustedCIDRs {
		if p.IsSingleIP() && p.Addr().Unmap() == s.upstream.Addr() {
			s.upstreamHostTrusted = true
		}
	}
	if err := s.registerTableGauges(reg); err != nil {
		return nil, fmt.Errorf("new sip edge: %w", err)
	}
	return s, nil
}

// ResolveUpstream resolves an upstream ("udp:host:port", "tcp:…",
// "tls:…") to the one address the guard treats as the PBX: the first the
// resolver gives (IPv4 first for a plain udp, tcp or tls).
func ResolveUpstream(upstream string) (netip.AddrPort, error) {
	network, hostport, err := splitNetAddr(upstream)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("upstream %q: %w", upstream, err)
	}
	ua, err := net.ResolveUDPAddr("udp"+network[3:], hostport)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve upstream %q: %w", upstream, err)
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// Upstream returns the address the guard sends callers' requests to and
// treats as the PBX: Upstream resolved once, at New.
func (s *Server) Upstream() netip.AddrPort { return s.upstream }

// registerTableGauges reports the sizes of the guard's bounded tables, so
// an operator (and bench-sip) can see call state level off.
func (s *Server) registerTableGauges(reg prometheus.Registerer) error {
	for _, g := range []struct {
		name, help string
		size       func() int
	}{
		{"telguard_sip_transactions", "Transactions the SIP edge remembers (bounded by max transactions, 4 minutes each).", s.txs.len},
		{"telguard_sip_bye_transactions", "Callers' BYEs the SIP edge remembers until the upstream's 2xx ends the call (bounded by max transactions, 32 s each).", s.byes.len},
		{"telguard_sip_calls", "Callers' calls the SIP edge holds as up (bounded by max calls).", s.calls.outbound.len},
		{"telguard_sip_inbound_calls", "Carriers' inbound calls the SIP edge holds as up (bounded by max carrier calls).", s.calls.inbound.len},
		{"telguard_sip_ended_calls", "Ended calls the SIP edge remembers for 32 s, so late messages are not reported twice.", s.ended.len},
	} {
		if _, err := prom.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help},
			func() float64 { return float64(g.size()) })); err != nil {
			return err
		}
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// splitNetAddr splits "udp:host:port", "tcp:host:port" or "tls:host:port"
// into a network (udp, tcp or tls, with an optional 4 or 6) and
// "host:port".
func splitNetAddr(s string) (network, hostport string, err error) {
	network, hostport, ok := strings.Cut(s, ":")
	if !ok || hostport == "" {
		return "", "", errors.New(`want "udp:host:port", "tcp:host:port" or "tls:host:port"`)
	}
	switch strings.ToLower(network) {
	case "udp", "udp4", "udp6", "tcp", "tcp4", "tcp6", "tls", "tls4", "tls6":
		return strings.ToLower(network), hostport, nil
	}
	return "", "", fmt.Errorf("%w %q (udp, tcp and tls)", ErrUnsupportedTransport, network)
}

func unmap(a netip.Addr) netip.Addr { return a.Unmap() }

// Listen binds every Config.Listen address. After it returns, Addrs reports
// the bound addresses, so a caller using port 0 can learn them and a bind
// error shows before anything else starts. Calling it is optional: Run
// listens if it has not been called. A second call is a no-op.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listeners != nil {
		return nil
	}
	var ls []*listener
	closeAll := func() {
		for _, l := range ls {
			if l.conn != nil {
				l.conn.Close()
			}
			if l.tcp != nil {
				l.tcp.Close()
			}
		}
	}
	for i, spec := range s.cfg.Listen {
		l, err := s.bind(i, spec)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen on %s: %w", spec, err)
		}
		ls = append(ls, l)
		switch {
		case s.cfg.Advertise != "":
			l.host = s.cfg.Advertise
		case l.addr.Addr().IsUnspecified():
			closeAll()
			return fmt.Errorf("listen on %s: a wildcard address needs Config.Advertise", spec)
		default:
			l.host = l.addr.Addr().String()
		}
	}
	// The upstream is reached from the first listener of its transport
	// and address family: over UDP from its socket; over TCP on a
	// connection the guard dials, which names that listener in Via and
	// Record-Route so the upstream's in-dialog requests come back to it.
	for _, l := range ls {
		if l.network == s.upNet && l.canReach(s.upstream.Addr()) {
			s.up = l
			break
		}
	}
	if s.up == nil {
		closeAll()
		return fmt.Errorf("listen: no %s listener of the upstream's address family (%s)", s.upNet, s.upstream)
	}
	s.listeners = ls
	return nil
}

// bind opens one listen address.
func (s *Server) bind(i int, spec string) (*listener, error) {
	network, hostport, _ := splitNetAddr(spec)
	l := &listener{idx: i}
	if strings.HasPrefix(network, "udp") {
		la, err := net.ResolveUDPAddr(network, hostport)
		if err != nil {
			return nil, err
		}
		if l.conn, err = net.ListenUDP(network, la); err != nil {
			return nil, err
		}
		l.network = "udp"
		l.addr = l.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	} else {
		tcpNet := "tcp" + network[3:] // tls6 → tcp6
		la, err := net.ResolveTCPAddr(tcpNet, hostport)
		if err != nil {
			return nil, err
		}
		if l.tcp, err = net.ListenTCP(tcpNet, la); err != nil {
			return nil, err
		}
		l.network = network[:3]
		l.addr = l.tcp.Addr().(*net.TCPAddr).AddrPort()
		// sipgo logs unparseable input with its bytes at error level:
		// that is the attacker's to fill, so its logs are discarded. The
		// transports it builds with this logger have no timeouts of their
		// own: streamConn sets them.
		l.tp = sip.NewTransportLayer(net.DefaultResolver, s.parser, s.upTLS,
			sip.WithTransportLayerLogger(slog.New(slog.DiscardHandler)))
		l.tp.OnMessage(func(msg sip.Message) { s.onStreamMessage(l, msg) })
	}
	l.addr = netip.AddrPortFrom(unmap(l.addr.Addr()), l.addr.Port())
	l.port = int(l.addr.Port())
	return l, nil
}

// onStreamMessage takes a message sipgo parsed from a TCP connection.
func (s *Server) onStreamMessage(l *listener, msg sip.Message) {
	start := time.Now()
	src, err := netip.ParseAddrPort(msg.Source())
	if err != nil {
		s.metrics.drop(dropMalformed)
		return
	}
	src = netip.AddrPortFrom(unmap(src.Addr()), src.Port())
	s.handle(s.runCtx, l, msg, src, start)
}

// Addrs returns the bound "network:ip:port" addresses, in Config.Listen
// order, or nil before Listen.
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.network + ":" + l.addr.String()
	}
	return out
}

// Run serves until ctx is done, then closes its sockets and returns nil. A
// Server runs once.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("run sip edge: already run")
	}
	s.started = true
	s.runCtx = ctx
	ls := s.listeners
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, l := range ls {
		s.log.Info("sip edge listening", "addr", l.network+":"+l.addr.String(), "upstream", s.upstream.String())
		if l.stream() {
			ln := &limitListener{TCPListener: l.tcp, slots: make(chan struct{}, s.cfg.MaxTCPConns),
				full: func() { s.metrics.drop(dropTCPLimit) }, filter: s.cfg.Filter}
			if l.network == "tls" {
				ln.tls, ln.handshake = s.tlsConf, s.cfg.TLSHandshakeTimeout
				if s.upTLS != nil {
					ln.tls = s.tlsConf.Clone()
					if ln.tls.ClientAuth == tls.NoClientCert {
						// Asked, not required: only the PBX is expected
						// to answer with a certificate.
						ln.tls.ClientAuth = tls.RequestClientCert
					}
					ln.handshakeDone = s.notePBXConn
				}
				ln.handshakeFailed = func(c net.Conn, err error) {
					s.metrics.drop(dropTLSHandshake)
					s.log.Debug("sip edge tls handshake", "source", c.RemoteAddr().String(), "err", err)
				}
				wg.Go(func() { l.tp.ServeTLS(ln) })
				continue
			}
			wg.Go(func() { l.tp.ServeTCP(ln) })
			continue
		}
		wg.Go(func() { s.readUDP(ctx, l) })
	}
	<-ctx.Done()
	for _, l := range ls {
		if l.stream() {
			l.tcp.Close()
			l.tp.Close()
			continue
		}
		l.conn.Close()
	}
	wg.Wait()
	s.log.Info("sip edge stopped")
	return nil
}

// udpQueue bounds the datagrams waiting for one worker. A worker that far
// behind sheds (counted as overload) rather than stall the reader, which
// would let the kernel drop packets of every source instead.
const udpQueue = 1024

// udpReadBuffer is the socket receive buffer asked of the kernel: the
// default (~200 KiB) overflows within milliseconds of a flood, losing
// legitimate packets with the flood's.
const udpReadBuffer = 4 << 20

type datagram struct {
	buf   *[]byte
	n     int
	src   netip.AddrPort
	start time.Time
}

// readUDP reads datagrams until the socket closes. It runs the pre-filter
// itself, so a flood is dropped at the cost of a read and a lookup, and
// hands the rest to the worker its source hashes to: one peer's messages
// are handled in arrival order, different peers' in parallel.
func (s *Server) readUDP(ctx context.Context, l *listener) {
	_ = l.conn.SetReadBuffer(udpReadBuffer) // best effort: the kernel caps it at rmem_max
	pool := sync.Pool{New: func() any { b := make([]byte, readBuffer+1); return &b }}
	queues := make([]chan datagram, max(s.cfg.Workers, 1))
	var workers sync.WaitGroup
	for i := range queues {
		q := make(chan datagram, udpQueue)
		queues[i] = q
		workers.Go(func() {
			for d := range q {
				s.handleDatagram(ctx, l, (*d.buf)[:d.n], d.src, d.start)
				pool.Put(d.buf)
			}
		})
	}
	defer func() {
		for _, q := range queues {
			close(q)
		}
		workers.Wait()
	}()
	if bl, ok := s.cfg.Filter.(BanLister); ok {
		workers.Go(func() { s.syncKernelBans(ctx, l, bl) })
	}
	seed := maphash.MakeSeed()
	for {
		buf := pool.Get().(*[]byte)
		n, src, err := l.conn.ReadFromUDPAddrPort(*buf)
		if err != nil {
			pool.Put(buf)
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			s.log.Warn("sip edge read", "addr", l.addr.String(), "err", err)
			continue
		}
		start := time.Now()
		if n > readBuffer {
			pool.Put(buf)
			s.metrics.drop(dropOversized)
			continue
		}
		if f := s.cfg.Filter; f != nil {
			// The filter counts what it drops, by verdict.
			if v := f.Check(src.Addr(), (*buf)[:n]); v.Drop() || v == prefilter.PassKeepAlive {
				pool.Put(buf)
				continue
			}
		}
		a := src.Addr().As16()
		i := maphash.Bytes(seed, a[:]) % uint64(len(queues))
		select {
		case queues[i] <- datagram{buf: buf, n: n, src: src, start: start}:
		default:
			pool.Put(buf)
			s.metrics.drop(dropOverload)
		}
	}
}

// handleDatagram parses one datagram that passed the pre-filter and
// routes it.
func (s *Server) handleDatagram(ctx context.Context, l *listener, data []byte, src netip.AddrPort, start time.Time) {
	if isKeepAlive(data) {
		return
	}
	msg, err := s.parser.ParseSIP(data)
	if err != nil {
		s.metrics.drop(dropMalformed)
		return
	}
	src = netip.AddrPortFrom(unmap(src.Addr()), src.Port())
	msg.SetTransport("UDP")
	msg.SetSource(src.String())
	s.handle(ctx, l, msg, src, start)
}

// handle routes one parsed message. A panic on one packet is contained
// and counted: a guard that one crafted packet could stop would be a
// denial of service of the PBX behind it.
func (s *Server) handle(ctx context.Context, l *listener, msg sip.Message, src netip.AddrPort, start time.Time) {
	defer func() {
		if r := recover(); r != nil {
			s.metrics.drop(dropPanic)
			s.log.Error("sip edge: message handler panicked", "source", src.String(), "panic", fmt.Sprint(r))
		}
	}()
	switch m := msg.(type) {
	case *sip.Request:
		s.onRequest(ctx, l, m, src, start)
	case *sip.Response:
		s.onResponse(ctx, l, m, src, start)
	}
}

// isKeepAlive reports a CRLF keep-alive (RFC 5626) or an empty datagram.
func isKeepAlive(b []byte) bool {
	for _, c := range b {
		if c != '\r' && c != '\n' && c != 0 {
			return false
		}
	}
	return true
}

// notePBXConn records a TLS connection whose client certificate is the
// PBX's (it verifies, as when the guard dials it, for the upstream's name)
// so that fromUpstream takes its messages as the PBX's; the returned
// function forgets it when the connection closes.
func (s *Server) notePBXConn(c *tls.Conn) func() {
	st := c.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return nil
	}
	opts := x509.VerifyOptions{Roots: s.upTLS.RootCAs, DNSName: s.upTLS.ServerName,
		Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	for _, ic := range st.PeerCertificates[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := st.PeerCertificates[0].Verify(opts); err != nil {
		return nil
	}
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return nil
	}
	ap := netip.AddrPortFrom(ta.AddrPort().Addr().Unmap(), ta.AddrPort().Port())
	s.pbxConns.Store(ap, struct{}{})
	return func() { s.pbxConns.Delete(ap) }
}

// limitListener caps the open TCP or TLS connections: each costs sipgo a
// goroutine and a read buffer. Past the cap a new connection is closed at
// once, so the kernel's backlog does not fill with connections nobody
// serves. A TLS connection holds its slot during the handshake, which is
// why the handshake has a deadline of its own.
//
// It also closes connections from sources the packet filter has banned:
// TCP reads are not framed as messages, so the filter's per-packet check
// does not fit there, but a ban does.
type limitListener struct {
	*net.TCPListener
	slots  chan struct{}
	full   func()
	filter PacketFilter

	tls             *tls.Config // nil: plain TCP
	handshake       time.Duration
	handshakeFailed func(net.Conn, error)
	// handshakeDone, when set, sees every finished handshake and returns
	// what to run when the connection closes.
	handshakeDone func(*tls.Conn) func()
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.TCPListener.AcceptTCP()
		if err != nil {
			return nil, err
		}
		if l.filter != nil {
			if _, _, banned := l.filter.Banned(c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()); banned {
				c.Close()
				continue
			}
		}
		select {
		case l.slots <- struct{}{}:
			lc := &limitConn{Conn: c, release: func() { <-l.slots }}
			if l.tls == nil {
				return &streamConn{Conn: lc}, nil
			}
			tc := tls.Server(lc, l.tls)
			return &streamConn{Conn: tc, tls: tc, handshake: l.handshake, done: l.handshakeDone,
				failed: func(err error) { l.handshakeFailed(lc, err) }}, nil
		default:
			c.Close()
			l.full()
		}
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
