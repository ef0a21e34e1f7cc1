package webhook

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// limiter is a set of token buckets keyed by a string (a source, an IP).
// The number of keys is bounded: when the table is full, buckets that have
// refilled completely are forgotten (they carry no information), and if
// none has, an arbitrary one is, so an attacker spraying addresses cannot
// grow memory.
type limiter[K comparable] struct {
	rate  float64 // tokens per second
	burst float64
	max   int

	mu sync.Mutex
	m  map[K]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter[K comparable](rate float64, burst, maxKeys int) *limiter[K] {
	return &limiter[K]{rate: rate, burst: float64(burst), max: maxKeys, m: make(map[K]*bucket)}
}

// allow takes a token for key at now. When none is left it returns false
// and how long until one is.
func (l *limiter[K]) allow(key K, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil {
		if len(l.m) >= l.max {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.m[key] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

func (l *limiter[K]) evict(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.m {
		if now.Sub(b.last) >= full {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) < l.max {
			return
		}
		delete(l.m, k)
	}
}

// ipKey groups IPv6 clients by /64, the smallest block one host usually
// gets, so one host cannot dodge its limit by rotating addresses: the
// key of an IPv6 address is its /64 network address.
func ipKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}
