// Package bucket holds the sliding windows the engine counts with. They run
// on event time, slide continuously (no fixed-interval resets, no counters
// that wrap), and keep bounded memory per key: a window only needs to know
// whether a count passed the largest threshold asked of it, so it keeps at
// most that many entries per key.
package bucket

import "time"

// Log counts events per key over a sliding window. It is exact: it keeps the
// times of the last Cap events of each key, which is all a threshold check
// of up to Cap-1 needs. Times are kept in order, so a count is a binary
// search, not a scan: a tenant-wide limit of thousands costs the same as a
// per-account limit of ten. Not safe for concurrent use; the engine
// serialises.
type Log[K comparable] struct {
	window time.Duration
	cap    int
	keys   map[K]*ring
}

// ring holds up to cap times in ascending order, oldest at head.
type ring struct {
	t    []int64 // unix nanoseconds; len(t) grows up to cap
	head int     // index of the oldest time
	n    int     // times held
}

// slot returns the index of the i-th oldest time. head < len(t) and
// i <= n <= len(t), so one subtraction wraps it: a division per probe was
// most of the cost of a count's binary search.
func (r *ring) slot(i int) int {
	j := r.head + i
	if j >= len(r.t) {
		j -= len(r.t)
	}
	return j
}

func (r *ring) at(i int) int64 { return r.t[r.slot(i)] }

func (r *ring) set(i int, v int64) { r.t[r.slot(i)] = v }

// newest returns the latest time held (the ring is never empty once made).
func (r *ring) newest() int64 { return r.at(r.n - 1) }

// add inserts ts in order, dropping the oldest time when full.
func (r *ring) add(ts int64, capacity int) {
	if r.n == len(r.t) && len(r.t) < capacity {
		// Grow, unrolling so the oldest is at index 0.
		g := make([]int64, min(capacity, max(8, 2*len(r.t))))
		for i := 0; i < r.n; i++ {
			g[i] = r.at(i)
		}
		r.t, r.head = g, 0
	}
	if r.n == len(r.t) {
		if ts < r.at(0) {
			return // older than everything kept: it can never be counted
		}
		r.head = r.slot(1)
		r.n--
	}
	// Sensors deliver in near order: walk back from the end to the slot.
	i := r.n
	for i > 0 && r.at(i-1) > ts {
		r.set(i, r.at(i-1))
		i--
	}
	r.set(i, ts)
	r.n++
}

// countAfter returns how many times are later than after.
func (r *ring) countAfter(after int64) int {
	lo, hi := 0, r.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.at(m) > after {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return r.n - lo
}

// NewLog returns a Log with the given window that can count up to max events
// per key (counts above max are reported as max).
func NewLog[K comparable](window time.Duration, max int) *Log[K] {
	if max < 1 {
		max = 1
	}
	return &Log[K]{window: window, cap: max, keys: make(map[K]*ring)}
}

// Window returns the window length.
func (l *Log[K]) Window() time.Duration { return l.window }

// Add records one event for key at t and returns the number of events of key
// in the window (t-window, t], including this one, saturated at max.
func (l *Log[K]) Add(key K, t time.Time) int {
	r := l.keys[key]
	if r == nil {
		r = &ring{}
		l.keys[key] = r
	}
	ts := t.UnixNano()
	r.add(ts, l.cap)
	return r.countAfter(ts-int64(l.window)) - r.countAfterNewest(ts)
}

// countAfterNewest is countAfter for a time that is usually the newest
// held (event time runs forward): then nothing is later, with no search.
func (r *ring) countAfterNewest(ts int64) int {
	if r.n == 0 || r.newest() <= ts {
		return 0
	}
	return r.countAfter(ts)
}

// Count returns the number of events of key in (t-window, t].
func (l *Log[K]) Count(key K, t time.Time) int {
	r := l.keys[key]
	if r == nil {
		return 0
	}
	ts := t.UnixNano()
	return r.countAfter(ts-int64(l.window)) - r.countAfterNewest(ts)
}

// Sweep forgets keys with no event in the window ending at now and returns how
// many keys remain.
func (l *Log[K]) Sweep(now time.Time) int {
	cut := now.UnixNano() - int64(l.window)
	for k, r := range l.keys {
		if r.newest() <= cut {
			delete(l.keys, k)
		}
	}
	return len(l.keys)
}

// Len returns the number of keys tracked.
func (l *Log[K]) Len() int { return len(l.keys) }

// Distinct counts distinct values per key over a sliding window, up to max
// values per key.
type Distinct[K comparable, V comparable] struct {
	window time.Duration
	cap    int
	keys   map[K]*seen[V]
}

type seen[V comparable] struct {
	vals []V
	at   []int64
	last int64
}

// NewDistinct returns a Distinct with the given window that counts up to max
// distinct values per key.
func NewDistinct[K comparable, V comparable](window time.Duration, max int) *Distinct[K, V] {
	if max < 1 {
		max = 1
	}
	return &Distinct[K, V]{window: window, cap: max, keys: make(map[K]*seen[V])}
}

// Add records value v for key at t and returns the number of distinct values
// of key seen in (t-window, t], saturated at max.
func (d *Distinct[K, V]) Add(key K, v V, t time.Time) int {
	s := d.keys[key]
	if s == nil {
		s = &seen[V]{}
		d.keys[key] = s
	}
	ts := t.UnixNano()
	if ts > s.last {
		s.last = ts
	}
	cut := ts - int64(d.window)
	// Drop expired values and refresh v if present.
	j, found := 0, false
	for i := range s.vals {
		if s.at[i] <= cut && s.vals[i] != v {
			continue
		}
		s.vals[j], s.at[j] = s.vals[i], s.at[i]
		if s.vals[j] == v {
			found = true
			if ts > s.at[j] {
				s.at[j] = ts
			}
		}
		j++
	}
	s.vals, s.at = s.vals[:j], s.at[:j]
	if !found {
		if len(s.vals) >= d.cap {
			// Full: forget the oldest value; the count stays saturated.
			oldest := 0
			for i := range s.at {
				if s.at[i] < s.at[oldest] {
					oldest = i
				}
			}
			s.vals[oldest], s.at[oldest] = v, ts
		} else {
			s.vals = append(s.vals, v)
			s.at = append(s.at, ts)
		}
	}
	return len(s.vals)
}

// Sweep forgets keys with no value in the window ending at now.
func (d *Distinct[K, V]) Sweep(now time.Time) int {
	cut := now.UnixNano() - int64(d.window)
	for k, s := range d.keys {
		if s.last <= cut {
			delete(d.keys, k)
		}
	}
	return len(d.keys)
}

// Len returns the number of keys tracked.
func (d *Distinct[K, V]) Len() int { return len(d.keys) }

// Forget drops everything counted for key.
func (l *Log[K]) Forget(key K) { delete(l.keys, key) }
