// Package sipload owns the load tools of the SIP edge's benchmark (telguard
// bench-sip): a UDP flooder that sends one packet over and over from a
// chosen loopback address, a small SIP caller (Probe) that times INVITE → 200
// with microsecond resolution, readers for SIPp's statistics and
// response-time files, and the SIPp scenarios the benchmark runs.
//
// Everything here is a client: it sends to the address it is given and
// listens only on the socket it sends from. The benchmark uses 127.0.0.0/8.
package sipload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Options configure Flood.
type Options struct {
	// From is the source address (a loopback address in the benchmark);
	// the port is picked by the kernel.
	From netip.Addr
	// To is where the packets go.
	To netip.AddrPort
	// Rate is the target in packets per second; 0 sends as fast as one
	// goroutine can.
	Rate int
	// Duration bounds the flood; it also ends when ctx does. One of the
	// two must end it: a zero Duration needs a ctx with a deadline.
	Duration time.Duration
	// Packet is the datagram sent, unchanged, every time.
	Packet []byte
}

// Report is what a flood did.
type Report struct {
	Sent    uint64        // datagrams the kernel accepted
	Errors  uint64        // failed writes (e.g. ICMP port unreachable reported back)
	Elapsed time.Duration // from the first write to the last
}

// PPS is the achieved rate of accepted datagrams per second.
func (r Report) PPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// String is a one-line summary.
func (r Report) String() string {
	return fmt.Sprintf("sent %d packets in %.2fs (%.0f/s), %d write errors", r.Sent, r.Elapsed.Seconds(), r.PPS(), r.Errors)
}

// paceEvery is how many packets are written between clock reads and, with
// a Rate, between pacing sleeps.
const paceEvery = 64

// Flood sends o.Packet from o.From to o.To over a connected UDP socket until
// o.Duration has passed or ctx ends. Write errors are counted, not fatal:
// a flood goes on whatever the target does. The returned error is for a
// bad Options or a socket that cannot be opened.
func Flood(ctx context.Context, o Options) (Report, error) {
	if !o.From.IsValid() || !o.To.IsValid() {
		return Report{}, errors.New("flood: From and To are required")
	}
	if len(o.Packet) == 0 {
		return Report{}, errors.New("flood: empty packet")
	}
	if o.Rate < 0 {
		return Report{}, errors.New("flood: negative rate")
	}
	if _, ok := ctx.Deadline(); !ok && o.Duration <= 0 {
		return Report{}, errors.New("flood: give a Duration or a ctx with a deadline; a flood must end by itself")
	}
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(o.From, 0)), net.UDPAddrFromAddrPort(o.To))
	if err != nil {
		return Report{}, fmt.Errorf("flood: %w", err)
	}
	defer conn.Close()
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	var r Report
	start := time.Now()
	now := start
	for now.Before(deadline) && ctx.Err() == nil {
		for range paceEvery {
			if _, err := conn.Write(o.Packet); err != nil {
				r.Errors++
			} else {
				r.Sent++
			}
		}
		now = time.Now()
		if o.Rate > 0 {
			// Sleep until the packets sent are due; short sleeps are
			// imprecise, so only sleep when at least 200 µs ahead.
			due := start.Add(time.Duration(float64(r.Sent+r.Errors) / float64(o.Rate) * float64(time.Second)))
			if ahead := due.Sub(now); ahead > 200*time.Microsecond {
				time.Sleep(ahead)
				now = time.Now()
			}
		}
	}
	r.Elapsed = now.Sub(start)
	return r, nil
}
