package anomaly

import "time"

// DefaultRecentCalls is how many calls a Recent keeps by default: more than
// any default detector level, so counts saturate only far past critical.
const DefaultRecentCalls = 256

// maxMissed bounds the missed inbound calls remembered for Wangiri
// callbacks.
const maxMissed = 32

// Recent is the sliding state of one subject (usually an account): its
// latest calls, oldest evicted first once full, and the numbers that
// recently rang it briefly. The detectors read it; the engine feeds it.
// Memory is bounded by its capacity, and grows with the calls held (the
// ring starts small and doubles up to the capacity), so a quiet account
// costs a few hundred bytes rather than a full ring. Calls should arrive in
// roughly increasing event time.
type Recent struct {
	calls  []Call // ring of len(calls) slots, n of them used, oldest at head
	head   int
	n      int
	max    int
	missed []missedCall // ring of recent short inbound calls
	mhead  int
}

type missedCall struct {
	from string
	at   time.Time
}

// NewRecent returns a Recent keeping up to capacity calls
// (DefaultRecentCalls if capacity < 1).
func NewRecent(capacity int) *Recent {
	if capacity < 1 {
		capacity = DefaultRecentCalls
	}
	return &Recent{max: capacity}
}

// recentStart is the ring's first allocation: most accounts make a few
// calls in a detector's window.
const recentStart = 4

// Len returns the number of calls held.
func (r *Recent) Len() int { return r.n }

// at returns the i-th newest call (0 is the newest).
func (r *Recent) at(i int) *Call {
	// head < len and i < n <= len, so one subtraction wraps it: a
	// division per call read was a measurable part of every window scan.
	j := r.head + r.n - 1 - i
	if j >= len(r.calls) {
		j -= len(r.calls)
	}
	return &r.calls[j]
}

// Start records a call attempt that was let through (or, when replaying
// CDRs, a call that already ended: set its Ended fields).
func (r *Recent) Start(c Call) {
	c.hour = int8(c.Time.Hour() + 1)
	c.dest = hash64(c.E164) | 1
	if r.n == len(r.calls) && len(r.calls) < r.max {
		r.resize(min(r.max, max(recentStart, len(r.calls)+len(r.calls)/2)))
	}
	if r.n < len(r.calls) {
		r.calls[(r.head+r.n)%len(r.calls)] = c
		r.n++
		return
	}
	r.calls[r.head] = c
	r.head = (r.head + 1) % len(r.calls)
}

// resize moves the calls held into a ring of size n (at least Len),
// oldest first.
func (r *Recent) resize(n int) {
	grown := make([]Call, n)
	for i := range r.n {
		grown[i] = *r.at(r.n - 1 - i)
	}
	r.calls, r.head = grown, 0
}

// Trim forgets the ended calls that started before cut, oldest first (it
// stops at the first call still up, which the simultaneous-calls detector
// still counts), and gives back the room they took once the ring is less
// than half used. Call it with the start of the longest window read, so
// that an account keeps only its calls in that window, not its last
// capacity calls however old.
func (r *Recent) Trim(cut time.Time) {
	drop := 0
	for drop < r.n {
		c := &r.calls[(r.head+drop)%len(r.calls)]
		if !c.Ended || !c.Time.Before(cut) {
			break
		}
		*c = Call{} // let go of its strings
		drop++
	}
	if drop == 0 {
		return
	}
	r.head = (r.head + drop) % len(r.calls)
	r.n -= drop
	if r.n < len(r.calls)/2 {
		r.resize(max(recentStart, r.n+r.n/2))
	}
}

// End records how call id ended. It reports false if the call is no longer
// held (evicted, or never started).
func (r *Recent) End(id string, end time.Time, answered bool, billed time.Duration) bool {
	for i := range r.n {
		c := r.at(i)
		if c.ID == id && id != "" {
			c.Ended, c.Answered, c.Billed, c.End = true, answered, billed, end
			return true
		}
	}
	return false
}

// Answer records that call id was answered at t (it is still up).
func (r *Recent) Answer(id string) {
	for i := range r.n {
		if c := r.at(i); c.ID == id && id != "" {
			c.Answered = true
			return
		}
	}
}

// MissedInbound records that number from rang the subject and hung up
// within a ring or two — the bait of a Wangiri attack. Only the latest
// few are kept.
func (r *Recent) MissedInbound(from string, t time.Time) {
	m := missedCall{from: from, at: t}
	if len(r.missed) < maxMissed {
		r.missed = append(r.missed, m)
		return
	}
	r.missed[r.mhead] = m
	r.mhead = (r.mhead + 1) % maxMissed
}

// HasMissed reports whether number rang briefly after since.
func (r *Recent) HasMissed(number string, since time.Time) bool { return r.missedSince(number, since) }

// missedSince reports whether number rang briefly after since.
func (r *Recent) missedSince(number string, since time.Time) bool {
	for _, m := range r.missed {
		if m.from == number && m.at.After(since) {
			return true
		}
	}
	return false
}

// short reports whether an ended call was cut short: unanswered, or billed
// under limit.
func (c *Call) short(limit time.Duration) bool {
	return c.Ended && (!c.Answered || c.Billed < limit)
}

// Night says which local hours count as night: from Start (inclusive) to End
// (exclusive), wrapping midnight. The zero value means 22:00–06:00.
type Night struct{ Start, End int }

func (n Night) hasHour(h int) bool {
	if n == (Night{}) {
		n = Night{22, 6}
	}
	if n.Start <= n.End {
		return h >= n.Start && h < n.End
	}
	return h >= n.Start || h < n.End
}

// FeatureConfig sets how Features are measured.
type FeatureConfig struct {
	Window    time.Duration // default 10 minutes
	ShortCall time.Duration // answered calls billed under this are short; default 10 s
	Night     Night
}

// Features measures the calls of the window ending at now. With a baseline
// (the account's, or its group's while the account warms up) it also fills
// NewCountry and BaselineDeviation. It does not allocate.
func (r *Recent) Features(now time.Time, cfg FeatureConfig, b *Baseline) Features {
	if cfg.Window <= 0 {
		cfg.Window = 10 * time.Minute
	}
	if cfg.ShortCall <= 0 {
		cfg.ShortCall = 10 * time.Second
	}
	f := Features{Window: cfg.Window}
	cut := now.Add(-cfg.Window)
	var n, ended, short, high, night float64
	// Distinct destinations: an open-addressing set on the stack, twice
	// the size of what it counts, so each call costs a probe or two
	// instead of a scan of the numbers seen so far.
	var dests [2 * maxHourDests]uint64
	nd := 0
	for i := range r.n {
		c := r.at(i)
		if !c.Time.After(cut) {
			break
		}
		if c.Time.After(now) {
			continue
		}
		n++
		f.CostRate += c.cost(now)
		if c.HighRisk {
			high++
		}
		if cfg.Night.hasHour(c.hourOfDay()) {
			night++
		}
		if c.Ended {
			ended++
			if c.short(cfg.ShortCall) {
				short++
			}
		}
		if nd < maxHourDests && c.E164 != "" {
			h := c.destHash() // never 0, which marks an empty slot
			for j := h; ; j++ {
				slot := &dests[j%uint64(len(dests))]
				if *slot == h {
					break
				}
				if *slot == 0 {
					*slot = h
					nd++
					break
				}
			}
		}
		if b != nil && c.International && c.Country != "" && !b.KnownCountry(c.Country, now) {
			f.NewCountry = 1
		}
	}
	mins := cfg.Window.Minutes()
	f.CallsPerMin = n / mins
	f.CostRate /= mins
	f.DistinctDest = float64(nd)
	if n > 0 {
		f.HighRiskShare, f.NightShare = high/n, night/n
	}
	if ended > 0 {
		f.ShortCallShare = short / ended
	}
	if b != nil {
		f.BaselineDeviation = b.Deviation(f, now)
	}
	return f
}
