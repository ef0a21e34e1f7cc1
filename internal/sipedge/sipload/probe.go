package sipload

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// ProbeOptions configure Probe.
type ProbeOptions struct {
	From     netip.Addr     // source address; the port is picked by the kernel
	To       netip.AddrPort // the guard, or the PBX directly
	Rate     int            // calls started per second, one at a time; default 20
	Duration time.Duration  // how long to keep calling; required
	// Account is the From user and Number the Request-URI user. Empty,
	// calls rotate over accounts probe-0 … probe-999 and dial a different
	// São Paulo number each (11 4xxx xxxx), so per-account limits and
	// repeated-number rules of a realistic policy are not what is measured.
	Account string
	Number  string
	// Timeout is how long to wait for a 200 (and for the BYE's 200);
	// default 2 s. The probe never retransmits: a lost packet is a failed
	// call, not a slow one.
	Timeout time.Duration
}

// ProbeReport is what Probe measured.
type ProbeReport struct {
	Calls    int             // INVITEs sent
	Answered int             // 200 OK received and the call hung up cleanly
	Failed   int             // no 200, another final answer, or no 200 to the BYE
	Setup    []time.Duration // INVITE sent → 200 received, sorted, answered calls only
}

// P returns the q-quantile of the setup times.
func (r ProbeReport) P(q float64) time.Duration { return Percentile(r.Setup, q) }

// Probe makes calls one after another — INVITE, 200, ACK, BYE, 200 — and
// times INVITE → 200 with the monotonic clock, in microseconds, where
// SIPp's response times are whole milliseconds of its event loop. It
// follows the 200's Record-Route set, so through the guard its ACK and BYE
// carry the guard's stamp, as a phone's would.
func Probe(ctx context.Context, o ProbeOptions) (ProbeReport, error) {
	if !o.From.IsValid() || !o.To.IsValid() || o.Duration <= 0 {
		return ProbeReport{}, errors.New("probe: From, To and Duration are required")
	}
	if o.Rate <= 0 {
		o.Rate = 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(o.From, 0)), net.UDPAddrFromAddrPort(o.To))
	if err != nil {
		return ProbeReport{}, fmt.Errorf("probe: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()

	p := &prober{conn: conn, o: o, local: conn.LocalAddr().(*net.UDPAddr).AddrPort(), buf: make([]byte, 65535)}
	var rep ProbeReport
	tick := time.NewTicker(time.Second / time.Duration(o.Rate))
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			slices.Sort(rep.Setup)
			return rep, nil
		case <-tick.C:
		}
		rep.Calls++
		setup, err := p.call(ctx, n)
		if err != nil {
			if ctx.Err() != nil { // cut short by the end of the run
				rep.Calls--
				continue
			}
			rep.Failed++
			continue
		}
		rep.Answered++
		rep.Setup = append(rep.Setup, setup)
	}
}

type prober struct {
	conn  *net.UDPConn
	o     ProbeOptions
	local netip.AddrPort
	buf   []byte
}

func token() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// call makes one call and returns its setup time.
func (p *prober) call(ctx context.Context, n int) (time.Duration, error) {
	callID := token() + "@probe"
	fromTag := token()
	account, number := p.o.Account, p.o.Number
	if account == "" {
		account = fmt.Sprintf("probe-%d", n%1000)
	}
	if number == "" {
		number = fmt.Sprintf("114%07d", n%10_000_000)
	}
	to := p.o.To.String()
	ruri := "sip:" + number + "@" + to
	sdp := "v=0\r\no=probe 1 1 IN IP4 " + p.local.Addr().String() + "\r\ns=-\r\nc=IN IP4 " +
		p.local.Addr().String() + "\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	invite := p.request("INVITE", ruri, account, nil, callID, fromTag, "<"+ruri+">", 1, sdp)
	start := time.Now()
	if _, err := p.conn.Write(invite); err != nil {
		return 0, err
	}
	resp, err := p.await(ctx, callID, "INVITE", start)
	if err != nil {
		return 0, err
	}
	setup := time.Since(start)
	if resp.status != 200 {
		return 0, fmt.Errorf("probe call %d: got %d", n, resp.status)
	}
	// The route set is the Record-Route list reversed (RFC 3261 §12.1.2);
	// the request goes to the remote target, via the guard when it
	// recorded a route.
	routes := slices.Clone(resp.recordRoute)
	slices.Reverse(routes)
	target := resp.contact
	if target == "" {
		target = ruri
	}
	if _, err := p.conn.Write(p.request("ACK", target, account, routes, callID, fromTag, resp.to, 1, "")); err != nil {
		return 0, err
	}
	byeAt := time.Now()
	if _, err := p.conn.Write(p.request("BYE", target, account, routes, callID, fromTag, resp.to, 2, "")); err != nil {
		return 0, err
	}
	resp, err = p.await(ctx, callID, "BYE", byeAt)
	if err != nil {
		return 0, err
	}
	if resp.status != 200 {
		return 0, fmt.Errorf("probe call %d: BYE got %d", n, resp.status)
	}
	return setup, nil
}

func (p *prober) request(method, ruri, account string, routes []string, callID, fromTag, to string, cseq int, body string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, ruri)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\r\n", p.local, token())
	for _, r := range routes {
		fmt.Fprintf(&b, "Route: %s\r\n", r)
	}
	fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=%s\r\n", account, p.local, fromTag)
	fmt.Fprintf(&b, "To: %s\r\n", to)
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d %s\r\n", callID, cseq, method)
	fmt.Fprintf(&b, "Contact: <sip:%s@%s>\r\nMax-Forwards: 70\r\nUser-Agent: telguard-bench-probe\r\n", account, p.local)
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.Bytes()
}

// response is what the probe needs of a response.
type response struct {
	status      int
	callID      string
	cseqMethod  string
	to          string   // the To header value, with the tag
	contact     string   // the Contact URI, without <>
	recordRoute []string // each Record-Route entry, in order
}

// await reads until a final response to method in callID arrives;
// provisional responses and anything else are skipped.
func (p *prober) await(ctx context.Context, callID, method string, sent time.Time) (response, error) {
	p.conn.SetReadDeadline(sent.Add(p.o.Timeout))
	for {
		n, err := p.conn.Read(p.buf)
		if err != nil {
			if ctx.Err() != nil {
				return response{}, ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return response{}, fmt.Errorf("probe: no answer to %s", method)
			}
			continue // e.g. ICMP port unreachable: keep waiting
		}
		r, ok := parseResponse(p.buf[:n])
		if !ok || r.callID != callID || r.cseqMethod != method || r.status < 200 {
			continue
		}
		return r, nil
	}
}

// parseResponse reads the few headers the probe needs. Compact forms
// (i, t, m) are understood.
func parseResponse(b []byte) (response, bool) {
	head, _, _ := bytes.Cut(b, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	var r response
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "SIP/2.0 ") || len(lines[0]) < 11 {
		return r, false
	}
	if _, err := fmt.Sscanf(lines[0][8:11], "%d", &r.status); err != nil {
		return r, false
	}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "call-id", "i":
			r.callID = value
		case "cseq":
			if f := strings.Fields(value); len(f) == 2 {
				r.cseqMethod = f[1]
			}
		case "to", "t":
			r.to = value
		case "contact", "m":
			if i, j := strings.IndexByte(value, '<'), strings.IndexByte(value, '>'); i >= 0 && j > i {
				r.contact = value[i+1 : j]
			} else {
				r.contact, _, _ = strings.Cut(value, ";")
			}
		case "record-route":
			r.recordRoute = append(r.recordRoute, splitEntries(value)...)
		}
	}
	return r, r.callID != ""
}

// splitEntries splits a header value on the commas between entries, not
// on those inside <…> or quotes.
func splitEntries(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			depth++
		case c == '>':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(v[start:i]))
			start = i + 1
		}
	}
	if s := strings.TrimSpace(v[start:]); s != "" {
		out = append(out, s)
	}
	return out
}
