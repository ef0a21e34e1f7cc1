package cdr

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/telguard/telguard/internal/event"
)

// switchLayout is how Asterisk (DATE_FORMAT "%Y-%m-%d %T") and FreeSWITCH
// (${start_stamp}) write times: local time, no zone.
const switchLayout = "2006-01-02 15:04:05"

// autoLayouts are tried in order for a generic CSV without a time format.
// Layouts without a zone are read in the tenant's zone.
var autoLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999 -0700",
	"2006-01-02 15:04:05.999999999 -0700 MST",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
}

// Errors of the field readers name the problem, never the value: a bad
// line's fields may be phone numbers, and skip messages go to stderr.

// parseSwitchTime reads an Asterisk or FreeSWITCH timestamp in loc. The
// fixed layout is read by hand: time.Parse was a third of the parsing cost.
func parseSwitchTime(s string, loc *time.Location) (time.Time, error) {
	if t, ok := fastSwitchTime(s, loc); ok {
		return t, nil
	}
	t, err := time.ParseInLocation(switchLayout, s, loc)
	if err != nil {
		return time.Time{}, errors.New("not a time like 2026-03-02 14:05:09")
	}
	return t, nil
}

// fastSwitchTime reads exactly "YYYY-MM-DD HH:MM:SS" with every field in
// range; anything else is left to time.ParseInLocation.
func fastSwitchTime(s string, loc *time.Location) (time.Time, bool) {
	if len(s) != len(switchLayout) || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	y, mo, d, h, mi, sec := num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2)
	if y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, loc)
	if t.Day() != d { // 31 April rolled over into May
		return time.Time{}, false
	}
	return t, true
}

// parseTime reads a generic CSV time: with layout "" any of autoLayouts or
// Unix seconds/milliseconds; "unix", "unixms" and "rfc3339" by name; else a
// Go layout. Zone-less times are in loc.
func parseTime(s, layout string, loc *time.Location) (time.Time, error) {
	switch layout {
	case "unix":
		return parseUnix(s, false)
	case "unixms":
		return parseUnix(s, true)
	case "rfc3339":
		layout = time.RFC3339Nano
	case "":
		if isDigits(s) && (len(s) == 9 || len(s) == 10) {
			return parseUnix(s, false)
		}
		if isDigits(s) && len(s) == 13 {
			return parseUnix(s, true)
		}
		if i := strings.IndexByte(s, '.'); i >= 9 && i <= 10 && isDigits(s[:i]) && isDigits(s[i+1:]) {
			return parseUnix(s, false)
		}
		for _, l := range autoLayouts {
			if t, err := time.ParseInLocation(l, s, loc); err == nil {
				return t, nil
			}
		}
		return time.Time{}, errors.New("not a time (RFC 3339, 2026-03-02 14:05:09 or Unix seconds; set a time format)")
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("not a time in the layout %q", layout)
	}
	return t, nil
}

func parseUnix(s string, ms bool) (time.Time, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1e13 && !ms || f > 1e16 {
		return time.Time{}, errors.New("not a Unix time")
	}
	if ms {
		return time.UnixMilli(int64(f)).UTC(), nil
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseSeconds reads a whole or decimal number of seconds, ≥ 0 and within
// a week.
func parseSeconds(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != f {
		return 0, errors.New("not a number of seconds")
	}
	if f < 0 || f > maxCallLength.Seconds() {
		return 0, fmt.Errorf("seconds out of range (0 to %d)", int(maxCallLength.Seconds()))
	}
	return time.Duration(f * float64(time.Second)), nil
}

// checkLen fails when a text field is longer than max.
func checkLen(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	return nil
}

// parseIP reads an address, with or without a port; empty is no address.
func parseIP(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), nil
	}
	return netip.Addr{}, errors.New("not an IP address")
}

// parseDirection reads a direction column.
func parseDirection(s string) (event.Direction, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "outbound", "out", "outgoing", "o":
		return event.Outbound, nil
	case "inbound", "in", "incoming", "i":
		return event.Inbound, nil
	}
	return "", errors.New("neither inbound nor outbound")
}

// digestID makes a stable call id from a record's fields, for files that
// carry none: the same line always gets the same id, so importing a file
// twice stores its calls once.
func digestID(prefix string, fields ...string) string {
	h := sha256.New()
	for _, f := range fields {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return prefix + hex.EncodeToString(h.Sum(nil)[:12])
}

// colErr builds a LineError for a column.
func colErr(line int64, col string, err error) *LineError {
	return &LineError{Line: line, Column: col, Err: err}
}

// finish checks a record's times and fields against the limits every format
// shares. col names the columns for errors: start, answer, end, to,
// account, call_id.
func finish(rec *event.CallRecord, o *Options, line int64, col func(string) string) error {
	switch {
	case rec.Start.Before(EarliestStart):
		return colErr(line, col("start"), fmt.Errorf("start is before %s", EarliestStart.Format(time.DateOnly)))
	case rec.Start.After(o.latest):
		return colErr(line, col("start"), errors.New("start is more than a day in the future"))
	}
	switch {
	case rec.Account == "":
		return colErr(line, col("account"), errors.New("no account"))
	case rec.To == "":
		return colErr(line, col("to"), errors.New("no destination"))
	}
	for _, c := range []struct {
		name, v string
		max     int
	}{
		{"account", rec.Account, maxAccountLen}, {"to", rec.To, maxNumberLen}, {"from", rec.From, maxNumberLen},
		{"call_id", rec.CallID, maxCallIDLen}, {"disposition", rec.Disposition, maxDispositionLen},
	} {
		if err := checkLen(c.v, c.max); err != nil {
			return colErr(line, col(c.name), err)
		}
	}
	if rec.End.Before(rec.Start) {
		return colErr(line, col("end"), fmt.Errorf("end %s is before start %s", rec.End.Format(time.RFC3339), rec.Start.Format(time.RFC3339)))
	}
	if rec.End.Sub(rec.Start) > maxCallLength {
		return colErr(line, col("end"), fmt.Errorf("call lasts more than %s", maxCallLength))
	}
	if !rec.Answer.IsZero() {
		// Switches round times to the second; allow that much slack.
		if rec.Answer.Before(rec.Start.Add(-time.Second)) || rec.Answer.After(rec.End.Add(time.Second)) {
			return colErr(line, col("answer"), errors.New("answer time is outside start..end"))
		}
		// Within the slack, clamp: a reader of the record (replay) must
		// never see the answer after the end or before the start.
		if rec.Answer.After(rec.End) {
			rec.Answer = rec.End
		}
		if rec.Answer.Before(rec.Start) {
			rec.Answer = rec.Start
		}
	}
	return nil
}

// wallInstants returns the instants a local wall-clock reading may name,
// earliest first, and how many there are: t is what time.Date made of the
// reading in its location. A reading in the hour repeated when clocks go
// back names two instants; any other names one (a reading skipped when
// they go forward keeps time.Date's). It allocates nothing: it runs twice
// for every switch record.
func wallInstants(t time.Time) ([2]time.Time, int) {
	out := [2]time.Time{t}
	loc := t.Location()
	if loc == time.UTC {
		return out, 1
	}
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	wall := time.Date(y, mo, d, h, mi, s, t.Nanosecond(), time.UTC)
	// The offsets in force half a day either side cover any transition
	// that could make this reading ambiguous; the same offset on both
	// sides (nearly always) means none.
	_, before := wall.Add(-12 * time.Hour).In(loc).Zone()
	_, after := wall.Add(12 * time.Hour).In(loc).Zone()
	if before == after {
		return out, 1
	}
	for _, off := range [2]int{before, after} {
		c := wall.Add(-time.Duration(off) * time.Second).In(loc)
		if c.Equal(t) {
			continue
		}
		cy, cmo, cd := c.Date()
		ch, cmi, cs := c.Clock()
		if cy == y && cmo == mo && cd == d && ch == h && cmi == mi && cs == s {
			out[1] = c
			if c.Before(t) {
				out[0], out[1] = c, t
			}
			return out, 2
		}
	}
	return out, 1
}

// durationSlack is how far a switch's end column may lie from start +
// duration: both are rounded to the second.
const durationSlack = 2 * time.Second

// switchClock places Asterisk and FreeSWITCH records on the time line.
// They write local wall-clock times, so across a DST change the end column
// can read earlier than the start (02:50 → 02:10 when clocks go back) and a
// reading in the repeated hour names two instants. The duration column is
// real elapsed time: a call starts at its start and ends duration later,
// and the end column only checks that — it also picks which of two
// instants a start means. A call wholly inside the repeated hour fits
// either; it goes to the one nearer the previous record's start.
type switchClock struct {
	prev time.Time
}

// place returns the start and end of a record whose start and end
// columns read as start and end (from time.Date in the record's zone) and
// whose duration column is dur. endCol names the end column for errors.
func (c *switchClock) place(start, end time.Time, dur time.Duration, line int64, endCol string) (time.Time, time.Time, error) {
	best, bestEnd, bestDiff := closestPair(start, end, dur, c.prev)
	if bestEnd.Before(best) {
		return best, bestEnd, colErr(line, endCol, fmt.Errorf("end %s is before start %s", bestEnd.Format(time.RFC3339), best.Format(time.RFC3339)))
	}
	if bestDiff > durationSlack {
		return best, bestEnd, colErr(line, endCol, fmt.Errorf("end %s is not start %s + duration %ds", bestEnd.Format(time.RFC3339), best.Format(time.RFC3339), int64(dur.Seconds())))
	}
	c.prev = best
	return best, best.Add(dur), nil
}

// closestPair returns, of the instants wall-clock readings start and end
// may name, the pair whose distance is nearest dur, and how far from dur
// it is; a tie goes to the start nearest prev (the earliest when prev is
// zero).
func closestPair(start, end time.Time, dur time.Duration, prev time.Time) (time.Time, time.Time, time.Duration) {
	var (
		best     time.Time
		bestEnd  time.Time
		bestDiff time.Duration = -1
	)
	starts, ns := wallInstants(start)
	ends, ne := wallInstants(end)
	for _, s := range starts[:ns] {
		for _, e := range ends[:ne] {
			diff := absDur(e.Sub(s) - dur)
			better := bestDiff < 0 || diff < bestDiff
			if diff == bestDiff && !prev.IsZero() {
				better = absDur(s.Sub(prev)) < absDur(best.Sub(prev))
			}
			if better {
				best, bestEnd, bestDiff = s, e, diff
			}
		}
	}
	return best, bestEnd, bestDiff
}

// withinCall returns the instant a wall-clock reading t may name that
// lies in start..end (with durationSlack), else t.
func withinCall(t, start, end time.Time) time.Time {
	ts, n := wallInstants(t)
	for _, c := range ts[:n] {
		if !c.Before(start.Add(-durationSlack)) && !c.After(end.Add(durationSlack)) {
			return c
		}
	}
	return t
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
