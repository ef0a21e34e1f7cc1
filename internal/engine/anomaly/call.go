package anomaly

import "time"

// Call is what the anomaly layer needs to know of one outbound call. The
// engine fills it from the attempt's event and its normalised destination,
// and again when the call ends.
type Call struct {
	ID string
	// Time is the attempt's event time. Its location decides hour of week
	// and night: pass it in the account's (tenant's) time zone.
	Time          time.Time
	E164          string  // normalised destination; evidence only, never logged unmasked
	Country       string  // ISO 3166 alpha-2 of the destination
	RatePerMinute float64 // rated cost per minute, tenant currency; 0 if unknown

	// Set once the call has ended.
	Billed time.Duration // answered (billed) duration
	End    time.Time     // when it ended; zero means Time+Billed

	// dest is hash64(E164)|1, set by Recent.Start so that windows do not
	// hash every number again on every decision; 0 means not yet known.
	dest uint64

	// The flags share one word (a Recent holds up to 128 calls an
	// account): 128 bytes a call in all.
	International bool
	HighRisk      bool // high-risk or premium-rate range
	Ended         bool // set once the call has ended
	Answered      bool
	// NoLearn keeps a trained call out of its account's baseline (a call
	// a rule flagged, or one ended by max_call_duration): the Trainer
	// learns baselines as the live engine does.
	NoLearn bool
	// hour is Time's hour of the day plus one, set by Recent.Start: the
	// hour in Time's zone is costly to work out, and windows ask for it
	// on every decision. 0 means not yet known.
	hour int8
}

// destHash returns hash64(c.E164)|1 (never 0).
func (c *Call) destHash() uint64 {
	if c.dest == 0 {
		return hash64(c.E164) | 1
	}
	return c.dest
}

// hourOfDay returns the hour of c.Time in its zone.
func (c *Call) hourOfDay() int {
	if c.hour == 0 {
		return c.Time.Hour()
	}
	return int(c.hour) - 1
}

// cost is what the call cost (ended) or has cost so far (at now).
func (c *Call) cost(now time.Time) float64 {
	if c.Ended {
		return c.Billed.Minutes() * c.RatePerMinute
	}
	if !c.Answered {
		return 0
	}
	return max(0, now.Sub(c.Time).Minutes()) * c.RatePerMinute
}

// hash64 is FNV-1a: a stable, allocation-free hash for bounded sets of
// destinations.
func hash64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// localHour returns the hour serial of t on its own wall clock: hours since
// 1970-01-01 00:00 local time.
func localHour(t time.Time) int64 {
	_, off := t.Zone()
	s := t.Unix() + int64(off)
	h := s / 3600
	if s%3600 < 0 {
		h--
	}
	return h
}

// hourOfWeek maps an hour serial to 0..167, Sunday 00:00 first, matching
// time.Weekday (1970-01-01 was a Thursday).
func hourOfWeek(serial int64) int {
	day := serial / 24
	if serial%24 < 0 {
		day--
	}
	wd := ((day+4)%7 + 7) % 7
	hr := ((serial % 24) + 24) % 24
	return int(wd*24 + hr)
}
