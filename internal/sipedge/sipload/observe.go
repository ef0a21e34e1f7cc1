package sipload

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Metrics is one scrape of a Prometheus text exposition: the value of each
// sample, keyed by its name and labels exactly as written
// (`telguard_sip_prefilter_packets_total{verdict="drop_banned"}`).
type Metrics map[string]float64

// ParseMetrics reads the Prometheus text format; comments are skipped.
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return m, nil
}

// Sum adds the samples named name whose labels contain every one of
// labels (each written `key="value"`), e.g.
// Sum("telguard_sip_requests_total", `method="INVITE"`).
func (m Metrics) Sum(name string, labels ...string) float64 {
	var s float64
next:
	for k, v := range m {
		n, rest, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				continue next
			}
		}
		s += v
	}
	return s
}

// HistogramQuantile estimates the q-quantile of histogram name between two
// scrapes (after minus before) as the upper bound of the bucket it falls
// in, the way a reader of the buckets would state it ("p99 ≤ 250 µs").
// It returns +Inf when it falls past the last finite bucket, and NaN
// when nothing was observed.
func HistogramQuantile(before, after Metrics, name string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	for k, v := range after {
		n, rest, _ := strings.Cut(k, "{")
		if n != name+"_bucket" {
			continue
		}
		_, le, ok := strings.Cut(rest, `le="`)
		if !ok {
			continue
		}
		le, _, _ = strings.Cut(le, `"`)
		bound, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{bound, v - before[k]})
	}
	if len(bs) == 0 {
		return math.NaN()
	}
	for i := 1; i < len(bs); i++ { // few buckets: insertion sort
		for j := i; j > 0 && bs[j].le < bs[j-1].le; j-- {
			bs[j], bs[j-1] = bs[j-1], bs[j]
		}
	}
	total := bs[len(bs)-1].n // the +Inf bucket counts everything
	if total <= 0 {
		return math.NaN()
	}
	for _, b := range bs {
		if b.n >= q*total {
			return b.le
		}
	}
	return math.Inf(1)
}

// ProcMemory is a process's resident memory from /proc/PID/status.
type ProcMemory struct {
	RSS  int64 // VmRSS, bytes
	Peak int64 // VmHWM (peak RSS since start or the last ResetPeak), bytes
	Anon int64 // RssAnon: heap and stacks, bytes
	File int64 // RssFile: mapped files (the binary, a memory-mapped database), bytes
}

// ReadProcMemory reads /proc/PID/status.
func ReadProcMemory(pid int) (ProcMemory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcMemory{}, fmt.Errorf("read memory: %w", err)
	}
	defer f.Close()
	return parseProcStatus(f)
}

func parseProcStatus(r io.Reader) (ProcMemory, error) {
	var m ProcMemory
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(value)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "VmRSS":
			m.RSS = kb << 10
		case "VmHWM":
			m.Peak = kb << 10
		case "RssAnon":
			m.Anon = kb << 10
		case "RssFile":
			m.File = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("read memory: %w", err)
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("read memory: no VmRSS")
	}
	return m, nil
}

// ResetPeak resets a process's VmHWM to its current RSS (Linux ≥ 4.0,
// writing "5" to /proc/PID/clear_refs), so a later ReadProcMemory reports
// the peak of what happened in between.
func ResetPeak(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak memory: %w", err)
	}
	return nil
}

// UDPDrops returns the kernel's drop counter of the IPv4 UDP sockets bound
// to port, from /proc/net/udp: datagrams lost because the socket's receive
// buffer was full, and those its socket filter refused.
func UDPDrops(port uint16) (uint64, error) {
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		return 0, fmt.Errorf("read udp drops: %w", err)
	}
	defer f.Close()
	return parseUDPDrops(f, port)
}

func parseUDPDrops(r io.Reader, port uint16) (uint64, error) {
	sc := bufio.NewScanner(r)
	suffix := fmt.Sprintf(":%04X", port)
	var drops uint64
	found := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 13 || !strings.HasSuffix(f[1], suffix) {
			continue
		}
		n, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err != nil {
			continue
		}
		drops += n
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read udp drops: %w", err)
	}
	if !found {
		return 0, fmt.Errorf("read udp drops: no socket on port %d", port)
	}
	return drops, nil
}

// UDPRcvbufErrors returns the system's count of UDP datagrams lost because
// a socket's receive buffer was full (RcvbufErrors in /proc/net/snmp):
// every socket's, so on a quiet machine an upper bound of one socket's.
func UDPRcvbufErrors() (uint64, error) {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return 0, fmt.Errorf("read udp receive buffer errors: %w", err)
	}
	defer f.Close()
	return parseSNMP(f, "Udp:", "RcvbufErrors")
}

// parseSNMP reads one counter of /proc/net/snmp: a header line of names
// and a line of values, both starting with prefix.
func parseSNMP(r io.Reader, prefix, name string) (uint64, error) {
	sc := bufio.NewScanner(r)
	var names []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != prefix {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == name && i < len(f) {
				return strconv.ParseUint(f[i], 10, 64)
			}
		}
		break
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s %s counter", prefix, name)
}
