// Package bucket holds the sliding windows the engine counts with. They run
// on event time, slide continuously (no fixed-interval resets, no counters
// that wrap), and keep bounded memory per key: a window only needs to know
// whether a count passed the largest threshold asked of it, so it keeps at
// most that many entries per key.
package bucket

import "time"

// Log counts events per key over a sliding window. It is exact: it keeps the
// times of the last Cap events of each key, which is all a threshold check
// of up to Cap-1 needs. Not safe for concurrent use; the engine serialises.
type Log[K comparable] struct {
	window time.Duration
	cap    int
	keys   map[K]*ring
}

type ring struct {
	t    []int64 // unix nanoseconds, in insertion order from head
	head int
	n    int
	last int64 // newest time seen, for eviction
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
		r = &ring{t: make([]int64, 0, min(l.cap, 8))}
		l.keys[key] = r
	}
	ts := t.UnixNano()
	if len(r.t) < l.cap {
		r.t = append(r.t, ts)
		r.n++
	} else {
		r.t[r.head] = ts // overwrite the oldest
		r.head = (r.head + 1) % l.cap
	}
	if ts > r.last {
		r.last = ts
	}
	return r.count(ts - int64(l.window))
}

// Count returns the number of events of key in (t-window, t].
func (l *Log[K]) Count(key K, t time.Time) int {
	r := l.keys[key]
	if r == nil {
		return 0
	}
	return r.count(t.UnixNano() - int64(l.window))
}

// count counts entries newer than after. Entries may be slightly out of
// order (concurrent sensors), so it scans rather than bisects; the ring is at
// most Cap long.
func (r *ring) count(after int64) int {
	c := 0
	for _, v := range r.t {
		if v > after {
			c++
		}
	}
	return c
}

// Sweep forgets keys with no event in the window ending at now and returns how
// many keys remain.
func (l *Log[K]) Sweep(now time.Time) int {
	cut := now.UnixNano() - int64(l.window)
	for k, r := range l.keys {
		if r.last <= cut {
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
