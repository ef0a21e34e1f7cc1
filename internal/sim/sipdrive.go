package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/event"
)

// The headers a simulation exchanges with an edge in simulation mode
// (sip.simulation: true; docs/sip.md).
const (
	// HeaderTime gives the event time of what a message reports: the
	// attempt on an INVITE, the answer on a 200 to it, the end on a BYE,
	// a failure to an INVITE or a 200 to a BYE. RFC 3339 with a fraction.
	HeaderTime = "X-Telguard-Time"
	// HeaderDecision is the edge's decision on an INVITE, on its
	// rejection or on the INVITE it forwards:
	// "verdict=deny; rule=<rule>; risk=90; score=0.0000".
	HeaderDecision = "X-Telguard-Decision"
)

// ErrSIP is wrapped by errors of a run through a SIP edge.
var ErrSIP = errors.New("sip edge")

// SIP timers of the simulator's user agents. Loopback UDP loses a datagram
// only when a socket buffer overflows, so retransmissions are a safety net.
const (
	sipT1         = time.Second      // first retransmission: well above a decision, so the edge never sees a retransmission of an INVITE it is still deciding
	sipT2         = 4 * time.Second  // longest gap between retransmissions
	sipTimeout    = 10 * time.Second // an exchange with no answer by then failed
	maxSIPSources = 4096             // loopback sockets (simulated source addresses)
	sipUserAgent  = "telguard-sim"
)

// SIPOptions configure a SIPDecider.
type SIPOptions struct {
	// Target is the edge's UDP listener (sip.listen).
	Target netip.AddrPort
	// PBX is where the simulated PBX listens: the edge's sip.upstream.
	PBX netip.AddrPort
	// Carrier is the address inbound calls come from; the edge must list
	// it in sip.carriers, and it must not be the PBX's address.
	Carrier netip.Addr
	// Rate is INVITEs per second; 0 sends each as soon as the last was
	// decided.
	Rate float64
	// RunID prefixes Call-IDs, so that a second run against one edge does
	// not meet the first one's calls.
	RunID string
	// Timeout bounds one exchange (an INVITE and its answer, an answer
	// relayed, a BYE and its 200), retransmissions included; 0 means 10 s.
	Timeout time.Duration
	// MaxSources bounds the simulated source addresses, each a loopback
	// socket; 0 means 4096.
	MaxSources int
}

// SIPDecider drives a running daemon's SIP edge with real SIP over UDP: it
// is every caller (one loopback socket per simulated source address) and
// the PBX behind the edge. A call attempt is an INVITE to the edge; the
// edge rejects it (its decision in X-Telguard-Decision) or forwards it to
// the PBX, which rings at once (180) and holds the transaction until the
// run says the call was answered (200, ACK) or given up (480); an answered
// call ends with the caller's BYE. Every message that reports an event
// carries its event time (X-Telguard-Time), so the edge, in simulation
// mode, tells the engine what the in-process run tells it, in the same
// order: calls go one at a time.
//
// Simulated source addresses keep their shape: each distinct /24 of the
// simulated IPv4 space becomes one 127.a.b.0/24 (in order of first
// appearance, from 127.1.0.0/24 on, so 127.0/16 stays the daemon's), with
// the last octet kept, so per-address and per-network rules see what they
// would have seen.
type SIPDecider struct {
	o   SIPOptions
	pbx *net.UDPConn
	t1  time.Duration // first retransmission

	mu        sync.Mutex
	nets      map[[3]byte]int         // simulated /24 → its loopback /24's index
	sources   map[netip.Addr]*sipPeer // simulated source (or the carrier) → socket
	calls     map[string]*sipCall     // by Call-ID
	started   time.Time
	checks    int
	latencies []time.Duration // INVITE → 180 or rejection; pacing excluded
	rejected  []time.Duration // of those, the edge's rejections
	failures  int
	firstErr  error
	closed    bool
	wg        sync.WaitGroup
}

// sipPeer is one loopback socket the simulated callers send from.
type sipPeer struct {
	conn  *net.UDPConn
	local netip.AddrPort
}

// sipCall is one call's state on both sides of the edge. The fields below
// resp are shared with the socket readers and kept under SIPDecider.mu.
type sipCall struct {
	id      string
	inbound bool
	from    *sipPeer
	invite  *sip.Request
	resp    chan *sip.Response // the caller's responses, for the driving goroutine

	// The dialog, once the caller has the 200.
	answered bool
	routes   []sip.Uri
	contact  sip.Uri
	toHeader *sip.ToHeader

	// The PBX's side.
	fwd      *sip.Request   // the INVITE as the edge forwarded it
	edge     netip.AddrPort // where it came from
	decision string         // its X-Telguard-Decision
	pbxLast  []byte         // the PBX's last response to it, for retransmitted INVITEs
	end      time.Time      // the call's end, for the 200 to the BYE
}

// NewSIPDecider opens the simulated PBX's socket on o.PBX; callers'
// sockets are opened as their addresses appear. Close releases them.
func NewSIPDecider(o SIPOptions) (*SIPDecider, error) {
	switch {
	case !o.Target.IsValid() || o.Target.Port() == 0:
		return nil, fmt.Errorf("%w: the edge's address %q needs a host and a port", ErrConfig, o.Target)
	case !o.PBX.IsValid() || o.PBX.Port() == 0:
		return nil, fmt.Errorf("%w: the PBX's address %q needs a host and a port", ErrConfig, o.PBX)
	case !o.Carrier.IsValid():
		return nil, fmt.Errorf("%w: no carrier address for inbound calls", ErrConfig)
	case o.Carrier == o.PBX.Addr():
		return nil, fmt.Errorf("%w: the carrier %s must not be the PBX's address: the edge takes what comes from the PBX's address for the PBX's own traffic", ErrConfig, o.Carrier)
	case o.Rate < 0:
		return nil, fmt.Errorf("%w: rate must not be negative", ErrConfig)
	}
	if o.Timeout <= 0 {
		o.Timeout = sipTimeout
	}
	if o.MaxSources <= 0 {
		o.MaxSources = maxSIPSources
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(o.PBX))
	if err != nil {
		return nil, fmt.Errorf("%w: listen as the PBX: %v", ErrSIP, err)
	}
	d := &SIPDecider{o: o, pbx: conn, t1: sipT1, nets: map[[3]byte]int{}, sources: map[netip.Addr]*sipPeer{}, calls: map[string]*sipCall{}}
	d.wg.Add(1)
	go d.read(conn, d.onPBX)
	return d, nil
}

// Close closes every socket and waits for their readers.
func (d *SIPDecider) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	conns := []*net.UDPConn{d.pbx}
	for _, p := range d.sources {
		conns = append(conns, p.conn)
	}
	d.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	d.wg.Wait()
	return nil
}

// loopbackSource returns the loopback address that stands for simulated
// source a: the i-th distinct /24 seen (i from 0) becomes 127.(1+i/256).(i%256).0/24.
func loopbackSource(a netip.Addr, index int) netip.Addr {
	b := a.As4()
	return netip.AddrFrom4([4]byte{127, byte(1 + index/256), byte(index % 256), b[3]})
}

// peer returns the socket for a simulated source, opening it on first use.
func (d *SIPDecider) peer(src netip.Addr, inbound bool) (*sipPeer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("%w: closed", ErrSIP)
	}
	key := src
	if inbound {
		key = d.o.Carrier
	}
	if p := d.sources[key]; p != nil {
		return p, nil
	}
	var local netip.Addr
	if inbound {
		local = d.o.Carrier
	} else {
		src = src.Unmap()
		if !src.Is4() {
			return nil, fmt.Errorf("%w: source %s: only IPv4 sources can be simulated", ErrSIP, src)
		}
		if len(d.sources) >= d.o.MaxSources {
			return nil, fmt.Errorf("%w: more than %d source addresses", ErrSIP, d.o.MaxSources)
		}
		b := src.As4()
		n := [3]byte{b[0], b[1], b[2]}
		i, ok := d.nets[n]
		if !ok {
			i = len(d.nets)
			d.nets[n] = i
		}
		local = loopbackSource(src, i)
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		return nil, fmt.Errorf("%w: open a socket on %s: %v", ErrSIP, local, err)
	}
	p := &sipPeer{conn: conn, local: netip.MustParseAddrPort(conn.LocalAddr().String())}
	d.sources[key] = p
	d.wg.Add(1)
	go d.read(conn, d.onCaller)
	return p, nil
}

// prepare opens the sockets of every source the calls use, in their order,
// so that a run that needs too many fails before it starts.
func (d *SIPDecider) prepare(calls []Call) error {
	for i := range calls {
		if _, err := d.peer(calls[i].SourceIP, calls[i].Inbound); err != nil {
			return err
		}
	}
	return nil
}

// read hands every SIP message that arrives on conn to handle, until the
// socket is closed. Unparsable datagrams are ignored: the edge sends none.
func (d *SIPDecider) read(conn *net.UDPConn, handle func(*net.UDPConn, sip.Message, netip.AddrPort)) {
	defer d.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		handle(conn, msg, from)
	}
}

// onCaller passes a response to the call it belongs to.
func (d *SIPDecider) onCaller(_ *net.UDPConn, msg sip.Message, _ netip.AddrPort) {
	res, ok := msg.(*sip.Response)
	if !ok || res.CallID() == nil || res.CSeq() == nil {
		return
	}
	d.mu.Lock()
	c := d.calls[string(*res.CallID())]
	d.mu.Unlock()
	if c == nil {
		return
	}
	select {
	case c.resp <- res:
	default: // a flood of retransmissions: dropped like a full socket buffer would
	}
}

// onPBX is the PBX: it rings every INVITE at once and holds it; BYE gets
// its 200.
func (d *SIPDecider) onPBX(conn *net.UDPConn, msg sip.Message, from netip.AddrPort) {
	req, ok := msg.(*sip.Request)
	if !ok || req.CallID() == nil || req.CSeq() == nil || req.Via() == nil {
		return
	}
	d.mu.Lock()
	c := d.calls[string(*req.CallID())]
	var out []byte
	switch req.Method {
	case sip.ACK:
	case sip.INVITE:
		switch {
		case c == nil:
			out = []byte(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil).String())
		case c.fwd != nil:
			out = c.pbxLast // a retransmission
		default:
			c.fwd, c.edge = req, from
			if h := req.GetHeader(HeaderDecision); h != nil {
				c.decision = h.Value()
			}
			out = c.pbxResponse(d.o.PBX, 180, "Ringing", time.Time{})
		}
	case sip.BYE:
		code, reason, at := 200, "OK", time.Time{}
		if c == nil {
			code, reason = 481, "Call/Transaction Does Not Exist"
		} else {
			at = c.end
		}
		res := sip.NewResponseFromRequest(req, code, reason, nil)
		if !at.IsZero() {
			res.AppendHeader(sip.NewHeader(HeaderTime, at.Format(time.RFC3339Nano)))
		}
		out = []byte(res.String())
	case sip.OPTIONS, sip.CANCEL:
		out = []byte(sip.NewResponseFromRequest(req, 200, "OK", nil).String())
	default:
		out = []byte(sip.NewResponseFromRequest(req, 501, "Not Implemented", nil).String())
	}
	d.mu.Unlock()
	if out != nil {
		_, _ = conn.WriteToUDPAddrPort(out, from)
	}
}

// pbxResponse builds the PBX's response to the held INVITE and keeps it for
// retransmissions. at, when set, goes in X-Telguard-Time. Called with the
// decider's lock held.
func (c *sipCall) pbxResponse(pbx netip.AddrPort, code int, reason string, at time.Time) []byte {
	res := sip.NewResponseFromRequest(c.fwd, code, reason, nil)
	if to := res.To(); to != nil {
		to.Params.Add("tag", "pbx-"+tagOf(c.id))
	}
	if code < 300 {
		res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "pbx", Host: pbx.Addr().String(), Port: int(pbx.Port())}})
	}
	if !at.IsZero() {
		res.AppendHeader(sip.NewHeader(HeaderTime, at.Format(time.RFC3339Nano)))
	}
	c.pbxLast = []byte(res.String())
	return c.pbxLast
}

// tagOf makes a tag (a token) out of a Call-ID.
func tagOf(id string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, id)
}

// Decide sends the INVITE and returns the edge's decision: from its
// rejection, or from the INVITE the PBX got once the caller hears the
// ring. An INVITE that gets no answer is counted (see Stats) and taken as
// an allow.
func (d *SIPDecider) Decide(ctx context.Context, ev event.Event) event.Decision {
	d.pace()
	allow := event.Decision{Time: ev.Time, Tenant: ev.Tenant, Verdict: event.Allow}
	inbound := ev.Direction == event.Inbound
	d.mu.Lock()
	d.checks++
	d.mu.Unlock()
	p, err := d.peer(ev.SourceIP, inbound)
	if err != nil {
		d.fail(err)
		return allow
	}
	c := &sipCall{id: d.o.RunID + ev.CallID, inbound: inbound, from: p, resp: make(chan *sip.Response, 16)}
	c.invite = d.invite(c, ev)
	wire := []byte(c.invite.String())
	d.mu.Lock()
	d.calls[c.id] = c
	d.mu.Unlock()
	start := time.Now()
	res, err := d.exchange(ctx, func() error { return d.sendFrom(p, wire) }, c.resp, sip.INVITE, 180)
	lat := time.Since(start)
	if err != nil {
		d.forget(c.id)
		d.fail(fmt.Errorf("INVITE %s: %w", c.id, err))
		return allow
	}
	var header string
	rejected := false
	switch {
	case res.StatusCode >= 300:
		rejected = true
		d.forget(c.id)
		_ = d.sendFrom(p, []byte(ackNon2xx(c.invite, res).String()))
		if h := res.GetHeader(HeaderDecision); h != nil {
			header = h.Value()
		}
	case res.StatusCode >= 200:
		d.forget(c.id)
		d.fail(fmt.Errorf("%w: INVITE %s answered %d before the run said so", ErrSIP, c.id, res.StatusCode))
		return allow
	default:
		d.mu.Lock()
		header = c.decision
		d.mu.Unlock()
	}
	dec, err := parseDecision(header, res.StatusCode)
	dec.Time, dec.Tenant = ev.Time, ev.Tenant
	d.mu.Lock()
	d.latencies = append(d.latencies, lat)
	if rejected {
		d.rejected = append(d.rejected, lat)
	}
	d.mu.Unlock()
	if err != nil {
		d.fail(fmt.Errorf("INVITE %s: %w", c.id, err))
	}
	return dec
}

// Observe plays an answer (the PBX's 200, the caller's ACK) or an end (the
// caller's BYE and its 200, or the PBX giving up with 480) and returns
// once the caller has the last word: by then the edge has told the engine.
func (d *SIPDecider) Observe(ctx context.Context, ev event.Event) error {
	id := d.o.RunID + ev.CallID
	d.mu.Lock()
	c := d.calls[id]
	d.mu.Unlock()
	if c == nil {
		return fmt.Errorf("%w: call %s is not in progress", ErrSIP, id)
	}
	var err error
	switch ev.Kind {
	case event.CallAnswered:
		err = d.answer(ctx, c, ev.Time)
	case event.CallEnded:
		err = d.end(ctx, c, ev.Time)
		d.forget(id)
	default:
		return fmt.Errorf("%w: cannot play a %s", ErrSIP, ev.Kind)
	}
	if err != nil {
		d.fail(fmt.Errorf("%s %s: %w", ev.Kind, id, err))
	}
	return err
}

// answer has the PBX answer the held INVITE and the caller acknowledge.
func (d *SIPDecider) answer(ctx context.Context, c *sipCall, at time.Time) error {
	d.mu.Lock()
	if c.fwd == nil {
		d.mu.Unlock()
		return fmt.Errorf("%w: the PBX never got the INVITE", ErrSIP)
	}
	wire, edge := c.pbxResponse(d.o.PBX, 200, "OK", at), c.edge
	d.mu.Unlock()
	res, err := d.exchange(ctx, func() error { return d.sendPBX(wire, edge) }, c.resp, sip.INVITE, 200)
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		return fmt.Errorf("%w: the caller got %d instead of the PBX's 200", ErrSIP, res.StatusCode)
	}
	c.answered = true
	c.toHeader = res.To()
	if c.toHeader == nil {
		return fmt.Errorf("%w: 200 without To", ErrSIP)
	}
	if ct := res.Contact(); ct != nil {
		c.contact = ct.Address
	} else {
		return fmt.Errorf("%w: 200 without Contact", ErrSIP)
	}
	rr := res.GetHeaders("Record-Route")
	c.routes = c.routes[:0]
	for i := len(rr) - 1; i >= 0; i-- {
		if h, ok := rr[i].(*sip.RecordRouteHeader); ok {
			c.routes = append(c.routes, h.Address)
		}
	}
	ack := d.inDialog(c, sip.ACK, 1, time.Time{})
	return d.sendFrom(c.from, []byte(ack.String()))
}

// end ends a call: the caller hangs up an answered one; the PBX gives up on
// one still ringing.
func (d *SIPDecider) end(ctx context.Context, c *sipCall, at time.Time) error {
	if c.answered {
		d.mu.Lock()
		c.end = at
		d.mu.Unlock()
		bye := []byte(d.inDialog(c, sip.BYE, 2, at).String())
		res, err := d.exchange(ctx, func() error { return d.sendFrom(c.from, bye) }, c.resp, sip.BYE, 200)
		if err == nil && res.StatusCode >= 300 {
			err = fmt.Errorf("%w: BYE got %d", ErrSIP, res.StatusCode)
		}
		return err
	}
	d.mu.Lock()
	if c.fwd == nil {
		d.mu.Unlock()
		return fmt.Errorf("%w: the PBX never got the INVITE", ErrSIP)
	}
	wire, edge := c.pbxResponse(d.o.PBX, 480, "Temporarily Unavailable", at), c.edge
	d.mu.Unlock()
	res, err := d.exchange(ctx, func() error { return d.sendPBX(wire, edge) }, c.resp, sip.INVITE, 300)
	if err != nil {
		return err
	}
	return d.sendFrom(c.from, []byte(ackNon2xx(c.invite, res).String()))
}

// exchange sends (and resends, from T1 doubling up to T2) until a
// response to method with a status of at least min arrives, or the
// exchange times out.
func (d *SIPDecider) exchange(ctx context.Context, send func() error, ch <-chan *sip.Response, method sip.RequestMethod, atLeast int) (*sip.Response, error) {
	deadline := time.Now().Add(d.o.Timeout)
	rto := d.t1
	t := time.NewTimer(rto)
	defer t.Stop()
	if err := send(); err != nil {
		return nil, err
	}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case res := <-ch:
			if res.CSeq().MethodName == method && res.StatusCode >= atLeast {
				return res, nil
			}
		case <-t.C:
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%w: no answer in %s", ErrSIP, d.o.Timeout)
			}
			if err := send(); err != nil {
				return nil, err
			}
			rto = min(2*rto, sipT2)
			t.Reset(rto)
		}
	}
}

func (d *SIPDecider) sendFrom(p *sipPeer, b []byte) error {
	if _, err := p.conn.WriteToUDPAddrPort(b, d.o.Target); err != nil {
		return fmt.Errorf("%w: send to the edge: %v", ErrSIP, err)
	}
	return nil
}

func (d *SIPDecider) sendPBX(b []byte, to netip.AddrPort) error {
	if _, err := d.pbx.WriteToUDPAddrPort(b, to); err != nil {
		return fmt.Errorf("%w: send as the PBX: %v", ErrSIP, err)
	}
	return nil
}

func (d *SIPDecider) forget(id string) {
	d.mu.Lock()
	delete(d.calls, id)
	d.mu.Unlock()
}

func (d *SIPDecider) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failures++
	if d.firstErr == nil {
		d.firstErr = err
	}
}

// pace waits until the next INVITE is due at the configured rate.
func (d *SIPDecider) pace() {
	d.mu.Lock()
	if d.started.IsZero() {
		d.started = time.Now()
	}
	due := d.started
	if d.o.Rate > 0 {
		due = d.started.Add(time.Duration(float64(d.checks) / d.o.Rate * float64(time.Second)))
	}
	d.mu.Unlock()
	if w := time.Until(due); w > 0 {
		time.Sleep(w)
	}
}

// invite builds the call's INVITE: the account calls the dialled number,
// or, for an inbound call, the carrier brings the caller's number to the
// account.
func (d *SIPDecider) invite(c *sipCall, ev event.Event) *sip.Request {
	fromUser, toUser := ev.Account, ev.To
	if c.inbound {
		fromUser, toUser = ev.From, ev.Account
	}
	host, port := d.o.Target.Addr().String(), int(d.o.Target.Port())
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: toUser, Host: host, Port: port})
	req.AppendHeader(c.via("1"))
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(&sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: fromUser, Host: c.from.local.Addr().String()},
		Params: sip.HeaderParams{{K: "tag", V: "c-" + tagOf(c.id)}}})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: toUser, Host: host}, Params: sip.HeaderParams{}})
	cid := sip.CallIDHeader(c.id)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: fromUser, Host: c.from.local.Addr().String(), Port: int(c.from.local.Port())}})
	req.AppendHeader(sip.NewHeader("User-Agent", sipUserAgent))
	req.AppendHeader(sip.NewHeader(HeaderTime, ev.Time.Format(time.RFC3339Nano)))
	req.SetBody(nil)
	return req
}

// via is the caller's Via for one of its transactions.
func (c *sipCall) via(n string) *sip.ViaHeader {
	return &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: c.from.local.Addr().String(), Port: int(c.from.local.Port()),
		Params: sip.HeaderParams{{K: "branch", V: sip.RFC3261BranchMagicCookie + "-sim-" + tagOf(c.id) + "-" + n}, {K: "rport", V: ""}}}
}

// inDialog builds the caller's ACK to the 200 or its BYE: to the PBX's
// Contact, along the route the edge recorded.
func (d *SIPDecider) inDialog(c *sipCall, method sip.RequestMethod, seq uint32, at time.Time) *sip.Request {
	req := sip.NewRequest(method, c.contact)
	req.AppendHeader(c.via(strings.ToLower(string(method))))
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	for _, r := range c.routes {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	if h := c.invite.From(); h != nil {
		req.AppendHeader(h)
	}
	req.AppendHeader(c.toHeader)
	cid := sip.CallIDHeader(c.id)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	req.AppendHeader(sip.NewHeader("User-Agent", sipUserAgent))
	if !at.IsZero() {
		req.AppendHeader(sip.NewHeader(HeaderTime, at.Format(time.RFC3339Nano)))
	}
	req.SetBody(nil)
	return req
}

// ackNon2xx is the ACK of a failure: the INVITE's Via, the response's To.
func ackNon2xx(inv *sip.Request, res *sip.Response) *sip.Request {
	ack := sip.NewRequest(sip.ACK, inv.Recipient)
	ack.AppendHeader(inv.Via())
	mf := sip.MaxForwardsHeader(70)
	ack.AppendHeader(&mf)
	if h := inv.From(); h != nil {
		ack.AppendHeader(h)
	}
	if h := res.To(); h != nil {
		ack.AppendHeader(h)
	}
	if h := inv.CallID(); h != nil {
		ack.AppendHeader(h)
	}
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.ACK})
	ack.SetBody(nil)
	return ack
}

// parseDecision reads X-Telguard-Decision
// ("verdict=deny; rule=<id>; risk=90; score=0.1234"). Without the header,
// the status code says what it can: a provisional response is an allow, a
// rejection a deny (503: throttle); the error says the header was missing.
func parseDecision(h string, status int) (event.Decision, error) {
	var d event.Decision
	if strings.TrimSpace(h) == "" {
		d.Verdict, d.SIPCode = event.Allow, 0
		if status >= 300 {
			d.Verdict, d.SIPCode = event.Deny, status
			if status == 503 {
				d.Verdict = event.Throttle
			}
		}
		return d, fmt.Errorf("%w: no %s on a %d", ErrSIP, HeaderDecision, status)
	}
	var rule string
	for part := range strings.SplitSeq(h, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		v = strings.TrimSpace(v)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "verdict":
			d.Verdict = event.Verdict(v)
		case "rule":
			rule = v
		case "risk":
			d.Risk, _ = strconv.Atoi(v)
		case "score":
			d.AnomalyScore, _ = strconv.ParseFloat(v, 64)
		}
	}
	if !d.Verdict.Valid() {
		v := d.Verdict
		d.Verdict = event.Allow
		if status >= 300 {
			d.Verdict = event.Deny
		}
		return d, fmt.Errorf("%w: %s has no known verdict (%q)", ErrSIP, HeaderDecision, v)
	}
	if status >= 300 {
		d.SIPCode = status
	}
	if rule != "" {
		d.Reasons = []event.Reason{{Rule: rule, Mode: event.Enforce, Verdict: d.Verdict}}
	}
	return d, nil
}

// Stats returns what the decider has seen so far: INVITEs sent (Checks),
// exchanges that failed, the pace, and the latency of the edge's
// rejections apart (the edge alone, no PBX hop).
func (d *SIPDecider) Stats() RemoteStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := RemoteStats{Checks: d.checks, Failures: d.failures}
	if len(d.rejected) > 0 {
		l := latencyStats(append([]time.Duration(nil), d.rejected...))
		st.Rejected = &l
	}
	if d.firstErr != nil {
		st.FirstErr = d.firstErr.Error()
	}
	if !d.started.IsZero() {
		st.Elapsed = time.Since(d.started)
		if s := st.Elapsed.Seconds(); s > 0 {
			st.Rate = float64(d.checks) / s
		}
	}
	return st
}

// Sources returns how many simulated source addresses have a socket.
func (d *SIPDecider) Sources() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.sources)
}

func (d *SIPDecider) decisionLatencies() []time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Duration(nil), d.latencies...)
}

func (d *SIPDecider) target() string { return "udp:" + d.o.Target.String() }

// SimulateSIP is Simulate through a running daemon's SIP edge (in
// simulation mode): the same world and traffic, warm-up and inbound rings
// included, played as SIP calls by d. The edge serves one tenant
// (sip.tenant), which must be the policy's simulated tenant, so only one
// tenant is simulated; its policy must be the daemon's, and the daemon's
// model its own (o.Model is refused). The report's latency is each
// INVITE's round trip to the ring or the rejection.
func SimulateSIP(ctx context.Context, o Options, d *SIPDecider) (Report, RemoteStats, error) {
	if o.Tenants != 1 {
		return Report{}, RemoteStats{}, fmt.Errorf("%w: a run through the SIP edge simulates one tenant, the edge's (sip.tenant)", ErrConfig)
	}
	if o.Model {
		return Report{}, RemoteStats{}, fmt.Errorf("%w: a run through the SIP edge uses the daemon's model; train it with telguard anomaly train", ErrConfig)
	}
	return simulateRemote(ctx, o, d)
}
