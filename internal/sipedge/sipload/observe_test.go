package sipload

import (
	"math"
	"net"
	"os"
	"strings"
	"testing"
)

const exposition = `# HELP telguard_sip_prefilter_packets_total Packets checked.
# TYPE telguard_sip_prefilter_packets_total counter
telguard_sip_prefilter_packets_total{verdict="drop_banned"} 1.5e+06
telguard_sip_prefilter_packets_total{verdict="pass"} 300
telguard_sip_requests_total{method="INVITE",verdict="allow"} 10
telguard_sip_requests_total{method="BYE",verdict="follow_up"} 9
telguard_sip_forward_seconds_bucket{le="1e-05"} 0
telguard_sip_forward_seconds_bucket{le="5e-05"} 50
telguard_sip_forward_seconds_bucket{le="0.0001"} 90
telguard_sip_forward_seconds_bucket{le="0.001"} 100
telguard_sip_forward_seconds_bucket{le="+Inf"} 100
telguard_sip_forward_seconds_count 100
`

func TestParseMetricsSumAndQuantile(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if v := m.Sum("telguard_sip_prefilter_packets_total", `verdict="drop_banned"`); v != 1.5e6 {
		t.Fatalf("drop_banned = %v", v)
	}
	if v := m.Sum("telguard_sip_requests_total"); v != 19 {
		t.Fatalf("all requests = %v", v)
	}
	before := Metrics{`telguard_sip_forward_seconds_bucket{le="5e-05"}`: 40, `telguard_sip_forward_seconds_bucket{le="0.0001"}`: 40,
		`telguard_sip_forward_seconds_bucket{le="0.001"}`: 40, `telguard_sip_forward_seconds_bucket{le="+Inf"}`: 40}
	// Between the scrapes: 10 under 50 µs, 40 under 100 µs, 10 under 1 ms.
	if q := HistogramQuantile(before, m, "telguard_sip_forward_seconds", 0.5); q != 1e-4 {
		t.Fatalf("p50 = %v", q)
	}
	if q := HistogramQuantile(before, m, "telguard_sip_forward_seconds", 0.99); q != 1e-3 {
		t.Fatalf("p99 = %v", q)
	}
	if q := HistogramQuantile(m, m, "telguard_sip_forward_seconds", 0.5); !math.IsNaN(q) {
		t.Fatalf("nothing observed gave %v", q)
	}
}

func TestReadProcMemoryOfSelf(t *testing.T) {
	m, err := ReadProcMemory(os.Getpid())
	if err != nil {
		t.Skip(err) // not Linux
	}
	if m.RSS <= 0 || m.Peak < m.RSS {
		t.Fatalf("got %+v", m)
	}
	if err := ResetPeak(os.Getpid()); err != nil {
		t.Logf("reset: %v", err)
	}
}

func TestUDPDropsOfABoundSocket(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := os.Stat("/proc/net/udp"); err != nil {
		t.Skip(err)
	}
	if _, err := UDPDrops(uint16(c.LocalAddr().(*net.UDPAddr).Port)); err != nil {
		t.Fatal(err)
	}
	line := "  1: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 42\n"
	if n, err := parseUDPDrops(strings.NewReader(line), 0x13C4); err != nil || n != 42 {
		t.Fatalf("got %d, %v", n, err)
	}
}

func TestParseSNMP(t *testing.T) {
	const snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n" +
		"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n" +
		"Udp: 71554260 41 13160010 84721119 13156166 0\n"
	n, err := parseSNMP(strings.NewReader(snmp), "Udp:", "RcvbufErrors")
	if err != nil || n != 13156166 {
		t.Fatalf("RcvbufErrors = %d, %v", n, err)
	}
	if _, err := parseSNMP(strings.NewReader(snmp), "Udp:", "Nope"); err == nil {
		t.Fatal("a missing counter was found")
	}
	if _, err := UDPRcvbufErrors(); err != nil {
		t.Fatalf("this system: %v", err)
	}
}
