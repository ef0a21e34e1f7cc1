package sipload

import (
	"bufio"
	"embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// scenarios are the SIPp scenarios of the benchmark: uac.xml (callers,
// account and number from an injection file) and uas.xml (the PBX).
//
//go:embed scenarios/*.xml
var scenarios embed.FS

// WriteScenarios writes uac.xml and uas.xml into dir, for sipp -sf.
func WriteScenarios(dir string) error {
	for _, name := range []string{"uac.xml", "uas.xml"} {
		b, err := scenarios.ReadFile("scenarios/" + name)
		if err != nil {
			return fmt.Errorf("write scenarios: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("write scenarios: %w", err)
		}
	}
	return nil
}

// Stats are the cumulative counters of a SIPp run, from the last line of
// its -trace_stat file.
type Stats struct {
	Created         int     // calls started (OutgoingCall(C) + IncomingCall(C))
	Successful      int     // SuccessfulCall(C)
	Failed          int     // FailedCall(C)
	Retransmissions int     // Retransmissions(C)
	CallRate        float64 // CallRate(C): calls started per second over the run
	Elapsed         time.Duration
}

// SuccessRate is the successful share of finished calls, 0 when none
// finished.
func (s Stats) SuccessRate() float64 {
	if n := s.Successful + s.Failed; n > 0 {
		return float64(s.Successful) / float64(n)
	}
	return 0
}

// ErrNoStats is returned when a statistics file has no data line.
var ErrNoStats = errors.New("no statistics line")

// ParseStats reads a SIPp -trace_stat file (semicolon-separated, a header
// line then one line per -fd period; the last line is cumulative at exit).
func ParseStats(r io.Reader) (Stats, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var header, last []string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		fields := strings.Split(strings.TrimSuffix(line, ";"), ";")
		if header == nil {
			header = fields
			continue
		}
		last = fields
	}
	if err := sc.Err(); err != nil {
		return Stats{}, fmt.Errorf("read sipp stats: %w", err)
	}
	if last == nil {
		return Stats{}, fmt.Errorf("read sipp stats: %w", ErrNoStats)
	}
	col := map[string]string{}
	for i, h := range header {
		if i < len(last) {
			col[h] = last[i]
		}
	}
	var s Stats
	var err error
	geti := func(name string) int {
		n, e := strconv.Atoi(col[name])
		if e != nil && err == nil {
			err = fmt.Errorf("read sipp stats: column %s: %q", name, col[name])
		}
		return n
	}
	s.Created = geti("OutgoingCall(C)") + geti("IncomingCall(C)")
	s.Successful = geti("SuccessfulCall(C)")
	s.Failed = geti("FailedCall(C)")
	s.Retransmissions = geti("Retransmissions(C)")
	if s.CallRate, _ = strconv.ParseFloat(col["CallRate(C)"], 64); err == nil {
		s.Elapsed, err = epochDiff(col["StartTime"], col["CurrentTime"])
	}
	return s, err
}

// epochDiff reads the third tab-separated part (seconds since the epoch,
// with microseconds) of SIPp's two time stamps and subtracts them.
func epochDiff(from, to string) (time.Duration, error) {
	epoch := func(s string) (float64, error) {
		f := strings.Fields(s)
		if len(f) == 0 {
			return 0, fmt.Errorf("read sipp stats: time %q", s)
		}
		return strconv.ParseFloat(f[len(f)-1], 64)
	}
	a, err := epoch(from)
	if err != nil {
		return 0, err
	}
	b, err := epoch(to)
	if err != nil {
		return 0, err
	}
	return time.Duration((b - a) * float64(time.Second)), nil
}

// ParseRTT reads a SIPp -trace_rtt file ("date_ms;response_time_ms;rtd_no"
// lines after a header) and returns the response times of rtd number rtd,
// sorted. SIPp measures them in whole milliseconds of its own event loop.
func ParseRTT(r io.Reader, rtd int) ([]time.Duration, error) {
	sc := bufio.NewScanner(r)
	var out []time.Duration
	want := strconv.Itoa(rtd)
	for sc.Scan() {
		f := strings.Split(strings.TrimSpace(sc.Text()), ";")
		if len(f) < 3 || f[2] != want {
			continue
		}
		ms, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue // the header
		}
		out = append(out, time.Duration(ms*float64(time.Millisecond)))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read sipp rtt: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// Percentile returns the q-quantile (0 ≤ q ≤ 1, nearest rank) of sorted
// durations, 0 for none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}
