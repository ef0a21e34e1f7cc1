package sipedge

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/telguard/telguard/internal/sipedge/prefilter"
)

// The pre-filter drops a banned source's datagram after the guard has read
// it: a system call and a lookup each. At a few hundred thousand packets a
// second from one flooder, on a machine whose cores the PBX and others
// share, the reader falls behind for a few milliseconds at a time, the
// socket's receive buffer fills, and the kernel drops whatever arrives
// next, legitimate packets included. So the guard also gives each UDP
// socket a classic BPF filter (SO_ATTACH_FILTER: no privilege needed)
// listing the bans in force: the kernel discards a banned source's
// datagrams before they are queued, and the reader only ever sees the
// rest. The list is a copy of the pre-filter's, refreshed when a ban is
// made or lifted and when one it holds ends; the pre-filter stays the
// authority (and catches what the copy does not hold yet).

// BanLister is a PacketFilter whose bans can be listed
// (*prefilter.Filter). With one, the guard drops banned sources' UDP
// datagrams in the kernel too.
type BanLister interface {
	// TopBans returns at most n bans in force, those ending last first.
	TopBans(n int) []prefilter.Ban
	// BanVersion changes whenever the bans change.
	BanVersion() uint64
}

// maxKernelBans bounds the bans in a socket filter. The kernel walks the
// list for every datagram, so it stays short; bans past it (the ones
// ending soonest) are left to the pre-filter.
const maxKernelBans = 256

// kernelBanRefresh is how often the guard checks whether its socket
// filters need refreshing; kernelBanMinInterval is the least time between
// two rebuilds, so a distributed flood making bans by the thousand costs a
// walk of the ban table once a second, not at every ban. Until a ban
// reaches the kernel the pre-filter drops its source.
const (
	kernelBanRefresh     = 100 * time.Millisecond
	kernelBanMinInterval = time.Second
)

// kernelFilterRetry is how long after the kernel refused a socket filter
// the guard tries the full list again.
const kernelFilterRetry = 5 * time.Second

// Classic BPF, as linux/filter.h defines it.
const (
	bpfLD   = 0x00
	bpfALU  = 0x04
	bpfJMP  = 0x05
	bpfRET  = 0x06
	bpfW    = 0x00
	bpfB    = 0x10
	bpfABS  = 0x20
	bpfAND  = 0x50
	bpfJA   = 0x00
	bpfJEQ  = 0x10
	bpfK    = 0x00
	netOff  = -0x100000 // SKF_NET_OFF: offsets from the IP header
	maxInsn = 4096      // BPF_MAXINSNS
	accept  = 0xffffffff
)

type bpfInsn struct {
	code   uint16
	jt, jf uint8
	k      uint32
}

func ldAbs(size uint16, off int32) bpfInsn {
	return bpfInsn{code: bpfLD | size | bpfABS, k: uint32(netOff + off)}
}
func and(mask uint32) bpfInsn { return bpfInsn{code: bpfALU | bpfAND | bpfK, k: mask} }
func jeq(v uint32, jt, jf uint8) bpfInsn {
	return bpfInsn{code: bpfJMP | bpfJEQ | bpfK, jt: jt, jf: jf, k: v}
}
func ret(k uint32) bpfInsn { return bpfInsn{code: bpfRET | bpfK, k: k} }

// banProgram compiles bans into a socket filter that drops IPv4 and IPv6
// datagrams from the banned prefixes and accepts the rest. Bans covering
// any of keep (trusted peers, the upstream) are left out, and so are
// those that have ended by now. It also returns the earliest end among
// the bans it holds, when the program must be rebuilt (zero: never).
// At most limit bans are held (and never more than maxKernelBans).
func banProgram(bans []prefilter.Ban, keep []netip.Prefix, now time.Time, limit int) ([]bpfInsn, time.Time, int) {
	limit = min(limit, maxKernelBans)
	var live []prefilter.Ban
	for _, b := range bans {
		if !b.Until.After(now) || !b.Prefix.IsValid() {
			continue
		}
		if slices.ContainsFunc(keep, b.Prefix.Overlaps) {
			continue
		}
		live = append(live, b)
	}
	// The longest-lasting first: under the cap, those are the ones worth
	// the kernel's time.
	slices.SortFunc(live, func(x, y prefilter.Ban) int { return y.Until.Compare(x.Until) })
	var v4, v6 [][]bpfInsn
	size := 4 + 2 // the version dispatch and the two final accepts
	var next time.Time
	for _, b := range live {
		if len(v4)+len(v6) >= limit {
			break
		}
		p := b.Prefix.Masked()
		var e []bpfInsn
		if p.Addr().Is4() {
			a := p.Addr().As4()
			e = matchWords(a[:], p.Bits(), 12)
		} else {
			a := p.Addr().As16()
			e = matchWords(a[:], p.Bits(), 8)
		}
		if size+len(e) > maxInsn {
			break
		}
		size += len(e)
		if p.Addr().Is4() {
			v4 = append(v4, e)
		} else {
			v6 = append(v6, e)
		}
		if next.IsZero() || b.Until.Before(next) {
			next = b.Until
		}
	}
	prog := make([]bpfInsn, 0, size)
	prog = append(prog,
		ldAbs(bpfB, 0), // version and IHL, or version and traffic class
		and(0xf0),
		jeq(0x60, 0, 1),
		bpfInsn{}, // ja to the IPv6 part, set below
	)
	for _, e := range v4 {
		prog = append(prog, e...)
	}
	prog = append(prog, ret(accept))
	prog[3] = bpfInsn{code: bpfJMP | bpfJA, k: uint32(len(prog) - 4)}
	for _, e := range v6 {
		prog = append(prog, e...)
	}
	prog = append(prog, ret(accept))
	return prog, next, len(v4) + len(v6)
}

// matchWords is the code that drops a datagram whose source address (at
// off in the IP header, b in network order) has the first bits of b:
// one load, mask and compare per 32-bit word, a non-match jumping past
// the drop to whatever follows.
func matchWords(b []byte, bits, off int) []bpfInsn {
	words := (bits + 31) / 32
	var e []bpfInsn
	var fails []int
	for w := range words {
		v := uint32(b[4*w])<<24 | uint32(b[4*w+1])<<16 | uint32(b[4*w+2])<<8 | uint32(b[4*w+3])
		e = append(e, ldAbs(bpfW, int32(off+4*w)))
		if n := bits - 32*w; n < 32 {
			mask := ^uint32(0) << (32 - n)
			e = append(e, and(mask))
			v &= mask
		}
		fails = append(fails, len(e))
		e = append(e, jeq(v, 0, 0))
	}
	e = append(e, ret(0))
	for _, i := range fails {
		e[i].jf = uint8(len(e) - i - 1) // to the instruction after ret #0
	}
	return e
}

// syncKernelBans keeps l's socket filter in step with the pre-filter's
// bans until ctx ends. When the kernel refuses a program (out of socket
// option memory, say) it never leaves the previous one in force, whose
// lifted bans would keep dropping their sources: it tries again with half
// the bans, down to none, and failing even that removes the filter. Each
// refusal is counted and logged; the next change, or kernelFilterRetry
// after a refusal, starts again from the full list.
func (s *Server) syncKernelBans(ctx context.Context, l *listener, bl BanLister) {
	keep := append(slices.Clone(s.trusts), netip.PrefixFrom(s.upstream.Addr(), s.upstream.Addr().BitLen()))
	name := l.network + ":" + l.addr.String()
	tick := time.NewTicker(kernelBanRefresh)
	defer tick.Stop()
	version, first := uint64(0), true
	var next, retry, built time.Time // retry: when to try the full list again after a refusal
	var attached []bpfInsn
	for {
		now := time.Now()
		v := bl.BanVersion()
		due := first || v != version || (!next.IsZero() && !now.Before(next)) || (!retry.IsZero() && !now.Before(retry))
		if due && (first || now.Sub(built) >= kernelBanMinInterval) {
			first, retry, built = false, time.Time{}, now
			// Bans covering keep are left out of the program: ask for a
			// few more than it holds.
			bans := bl.TopBans(maxKernelBans + len(keep))
			failures := 0
			var lastErr error
			for limit := maxKernelBans; ; limit /= 2 {
				prog, until, n := banProgram(bans, keep, now, limit)
				if attached != nil && slices.Equal(prog, attached) {
					version, next = v, until // the same bans: nothing to tell the kernel
					break
				}
				err := s.attachFilter(l.conn, prog)
				if err == nil {
					attached = prog
					s.metrics.kernelBans.WithLabelValues(name).Set(float64(n))
					version, next = v, until
					break
				}
				if ctx.Err() != nil {
					return
				}
				failures++
				lastErr = err
				s.metrics.kernelFilterErrors.WithLabelValues(name).Inc()
				if limit == 0 {
					// Not even an accept-all program: take the filter
					// off, so no stale ban stays in the kernel.
					attached = nil
					if err := detachSocketFilter(l.conn); err != nil {
						s.log.Warn("sip edge: kernel socket filter not removed", "addr", name, "err", err)
					}
					s.metrics.kernelBans.WithLabelValues(name).Set(0)
					version = v
					break
				}
			}
			if failures > 0 {
				retry = now.Add(kernelFilterRetry)
				s.log.Warn("sip edge: kernel socket filter refused; holding fewer bans (the pre-filter still drops the rest)",
					"addr", name, "refusals", failures, "err", lastErr)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
