package sipload

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// sink counts the datagrams a loopback socket receives and remembers the
// source of the first.
func sink(t *testing.T) (netip.AddrPort, *atomic.Int64, chan netip.Addr) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadBuffer(4 << 20)
	var n atomic.Int64
	first := make(chan netip.Addr, 1)
	go func() {
		buf := make([]byte, 2048)
		for {
			_, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n.Add(1) == 1 {
				first <- src.Addr()
			}
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort(), &n, first
}

func TestFloodPacesAndUsesItsSource(t *testing.T) {
	to, got, first := sink(t)
	from := netip.MustParseAddr("127.0.0.66")
	rep, err := Flood(context.Background(), Options{From: from, To: to, Rate: 20000, Duration: 500 * time.Millisecond, Packet: []byte("OPTIONS sip:x@y SIP/2.0\r\n\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent < 5000 || rep.Sent > 12500 {
		t.Fatalf("at 20,000/s for 0.5 s sent %d packets (%s), want about 10,000", rep.Sent, rep)
	}
	if pps := rep.PPS(); pps < 10000 || pps > 25000 {
		t.Fatalf("achieved %.0f/s, want about 20,000", pps)
	}
	select {
	case src := <-first:
		if src != from {
			t.Fatalf("packets came from %s, want %s", src, from)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("nothing received")
	}
	if n := got.Load(); n == 0 || uint64(n) > rep.Sent {
		t.Fatalf("received %d of %d", n, rep.Sent)
	}
}

func TestFloodFullSpeedEndsByItself(t *testing.T) {
	to, _, _ := sink(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Flood(ctx, Options{From: loopback, To: to, Packet: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("flood ran %v past a 200 ms deadline", d)
	}
	if rep.Sent == 0 {
		t.Fatal("sent nothing")
	}
}

func TestFloodRefusesUnboundedOrEmpty(t *testing.T) {
	to := netip.MustParseAddrPort("127.0.0.1:9")
	for name, o := range map[string]Options{
		"no end":    {From: loopback, To: to, Packet: []byte("x")},
		"no packet": {From: loopback, To: to, Duration: time.Millisecond},
		"no source": {To: to, Duration: time.Millisecond, Packet: []byte("x")},
	} {
		if _, err := Flood(context.Background(), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseStats(t *testing.T) {
	f, err := os.Open("testdata/uac_stats.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ParseStats(f)
	if err != nil {
		t.Fatal(err)
	}
	if s.Created != 10000 || s.Successful != 10000 || s.Failed != 0 {
		t.Fatalf("got %+v", s)
	}
	if s.CallRate < 978 || s.CallRate > 979 {
		t.Fatalf("call rate %v, want 978.378", s.CallRate)
	}
	if s.Elapsed < 10*time.Second || s.Elapsed > 11*time.Second {
		t.Fatalf("elapsed %v", s.Elapsed)
	}
	if s.SuccessRate() != 1 {
		t.Fatalf("success rate %v", s.SuccessRate())
	}
	if _, err := ParseStats(strings.NewReader("StartTime;SuccessfulCall(C);\n")); err == nil {
		t.Fatal("a header alone parsed")
	}
}

func TestParseRTTAndPercentile(t *testing.T) {
	f, err := os.Open("testdata/uac_rtt.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := ParseRTT(f, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{0, 0, time.Millisecond, 3 * time.Millisecond}
	if fmt.Sprint(d) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", d, want)
	}
	for q, w := range map[float64]time.Duration{0.5: 0, 0.75: time.Millisecond, 0.99: 3 * time.Millisecond, 1: 3 * time.Millisecond} {
		if got := Percentile(d, q); got != w {
			t.Errorf("p%v = %v, want %v", q*100, got, w)
		}
	}
	if Percentile(nil, 0.99) != 0 {
		t.Fatal("percentile of nothing")
	}
}

func TestWriteScenarios(t *testing.T) {
	dir := t.TempDir()
	if err := WriteScenarios(dir); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"uac.xml", "uas.xml"} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil || !strings.Contains(string(b), "<scenario") {
			t.Fatalf("%s: %v", n, err)
		}
	}
}

// fakePBX answers INVITE with 180 and 200 (adding a Record-Route, as the
// guard's would appear to a caller) and BYE with 200; it records the
// Route headers of the ACK and BYE it sees.
func fakePBX(t *testing.T, answer int) (netip.AddrPort, chan string) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	routes := make(chan string, 100)
	addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
	go func() {
		buf := make([]byte, 65535)
		for {
			n, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			msg := string(buf[:n])
			hdr := func(name string) string {
				for _, l := range strings.Split(msg, "\r\n") {
					if v, ok := strings.CutPrefix(l, name+": "); ok {
						return v
					}
				}
				return ""
			}
			reply := func(code int, reason, extra string) {
				r := fmt.Sprintf("SIP/2.0 %d %s\r\nVia: %s\r\nFrom: %s\r\nTo: %s;tag=pbx\r\nCall-ID: %s\r\nCSeq: %s\r\n%sContent-Length: 0\r\n\r\n",
					code, reason, hdr("Via"), hdr("From"), hdr("To"), hdr("Call-ID"), hdr("CSeq"), extra)
				c.WriteToUDPAddrPort([]byte(r), src)
			}
			switch method, _, _ := strings.Cut(msg, " "); method {
			case "INVITE":
				reply(180, "Ringing", "")
				rr := "Record-Route: <sip:127.0.0.1:5999;lr;tg=abc>, <sip:10.0.0.1;lr>\r\n"
				reply(answer, "Answer", rr+fmt.Sprintf("Contact: <sip:pbx@%s>\r\n", addr))
			case "ACK":
				routes <- "ACK " + hdr("Route")
			case "BYE":
				routes <- "BYE " + hdr("Route")
				reply(200, "OK", "")
			}
		}
	}()
	return addr, routes
}

func TestProbeTimesCallsAndFollowsRecordRoute(t *testing.T) {
	pbx, routes := fakePBX(t, 200)
	rep, err := Probe(context.Background(), ProbeOptions{From: netip.MustParseAddr("127.0.0.3"), To: pbx, Rate: 50, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Answered < 5 || rep.Failed != 0 || rep.Calls != rep.Answered {
		t.Fatalf("got %+v", rep)
	}
	if p := rep.P(0.99); p <= 0 || p > 100*time.Millisecond {
		t.Fatalf("p99 %v", p)
	}
	// The route set is the Record-Route list reversed.
	if got := <-routes; got != "ACK <sip:10.0.0.1;lr>" {
		t.Fatalf("first route of the ACK: %q", got)
	}
}

func TestProbeCountsRefusedCalls(t *testing.T) {
	pbx, _ := fakePBX(t, 403)
	rep, err := Probe(context.Background(), ProbeOptions{From: loopback, To: pbx, Rate: 50, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Answered != 0 || rep.Failed == 0 {
		t.Fatalf("got %+v", rep)
	}
}

func TestParseResponseCompactAndSplit(t *testing.T) {
	r, ok := parseResponse([]byte("SIP/2.0 200 OK\r\ni: abc\r\nCSeq: 1 INVITE\r\nt: <sip:x@y>;tag=1\r\nm: <sip:pbx@10.0.0.5:5060;transport=udp>\r\n" +
		"Record-Route: <sip:a;lr>, \"x,y\" <sip:b;lr>\r\nRecord-Route: <sip:c;lr>\r\n\r\n"))
	if !ok || r.status != 200 || r.callID != "abc" || r.cseqMethod != "INVITE" || r.contact != "sip:pbx@10.0.0.5:5060;transport=udp" {
		t.Fatalf("got %+v", r)
	}
	if got := strings.Join(r.recordRoute, "|"); got != `<sip:a;lr>|"x,y" <sip:b;lr>|<sip:c;lr>` {
		t.Fatalf("record-route %q", got)
	}
	if _, ok := parseResponse([]byte("INVITE sip:x SIP/2.0\r\n\r\n")); ok {
		t.Fatal("a request parsed as a response")
	}
}
