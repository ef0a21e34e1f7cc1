package deliver

import (
	"sync"
	"time"
)

// breaker is a destination's circuit breaker. Closed, every attempt goes
// out; after threshold consecutive failures it opens and attempts wait
// (without spending a retry) until cooldown has passed; then one probe is
// let through (half-open): its success closes the breaker, its failure
// opens it for another cooldown.
type breaker struct {
	threshold int
	cooldown  time.Duration

	mu       sync.Mutex
	failures int
	openedAt time.Time // zero when closed
	probing  bool
}

// allow reports whether an attempt may go out at now; when not, retryAt
// is when to ask again.
func (b *breaker) allow(now time.Time) (ok bool, retryAt time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openedAt.IsZero() {
		return true, time.Time{}
	}
	reopen := b.openedAt.Add(b.cooldown)
	if now.Before(reopen) || b.probing {
		return false, maxTime(reopen, now.Add(b.cooldown/10+time.Millisecond))
	}
	b.probing = true
	return true, time.Time{}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// result records the outcome of an attempt allow let through.
func (b *breaker) result(ok bool, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	wasProbe := b.probing
	b.probing = false
	if ok {
		b.failures, b.openedAt = 0, time.Time{}
		return
	}
	b.failures++
	if wasProbe || b.failures >= b.threshold {
		b.openedAt = now
	}
}

// open reports whether the breaker is open (or half-open).
func (b *breaker) open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.openedAt.IsZero()
}
