package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startSIPConfig starts the daemon with a sip section: the guard on a free
// UDP port of 127.0.0.1 in front of a PBX on 127.0.0.1:pbx, plus extra
// lines (indented two spaces, as keys of sip:). It returns the guard's
// address.
func startSIPConfig(t *testing.T, pbx int, extra ...string) (*daemon, string) {
	t.Helper()
	return startSIPConfigWith(t, "udp:127.0.0.1:"+strconv.Itoa(pbx), extra...)
}

// startSIPConfigWith is startSIPConfig with the upstream given as is.
func startSIPConfigWith(t *testing.T, upstream string, extra ...string) (*daemon, string) {
	t.Helper()
	dir := workdir(t)
	guard := freeUDP(t, "127.0.0.1")
	cfg := fmt.Sprintf("sip:\n  listen: [\"udp:127.0.0.1:%d\"]\n  upstream: %q\n", guard, upstream)
	for _, l := range extra {
		cfg += "  " + l + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "telguard.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, withKey(), "--config", "telguard.yaml")
	return d, "127.0.0.1:" + strconv.Itoa(guard)
}

// sendFrom sends n copies of pkt to dst from ip.
func sendFrom(t *testing.T, ip, dst string, pkt []byte, n int) {
	t.Helper()
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)}, net.UDPAddrFromAddrPort(mustAddrPort(dst)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range n {
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
}

// Every ban is in the decisions log and so is its end: a flood ban that
// expires is recorded under ban.lifted with its reason, and one still in
// force when telguard stops is recorded as lifted.
func TestSIPEdgeFloodUnbanInDecisionsLog(t *testing.T) {
	pbx := freeUDP(t, "127.0.0.1")
	d, guard := startSIPConfig(t, pbx, "flood_requests: 5", "flood_window: 2s", "flood_ban: 1s")
	opts := []byte("OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: broken\r\n\r\n")

	sendFrom(t, "127.0.0.4", guard, opts, 10) // banned for 1 s
	waitFor(t, func() bool {
		_, body := d.do("GET", "/v1/decisions?rule=sip.flood", nil)
		return strings.Contains(string(body), `"source_ip":"127.0.0.4"`)
	}, "the flood ban in the decisions log")
	_, body := d.do("GET", "/v1/decisions?rule=ban.lifted", nil)
	if strings.Contains(string(body), "127.0.0.4") {
		t.Fatalf("an unban is on record while the ban is in force: %s", body)
	}

	// The ban ends after 1 s; the source's next packet finds it over.
	time.Sleep(1500 * time.Millisecond)
	sendFrom(t, "127.0.0.4", guard, opts, 1)
	waitFor(t, func() bool {
		_, body := d.do("GET", "/v1/decisions?rule=ban.lifted", nil)
		return strings.Contains(string(body), `"source_ip":"127.0.0.4"`) &&
			strings.Contains(string(body), "ban by sip.flood expired (flood: more than 5 packets in 2s)")
	}, "the flood ban's end in the decisions log")
}

// A flood ban still in force when telguard stops is lifted by the stop
// (flood bans live in memory), and that is on record too.
func TestSIPEdgeFloodBanLiftedAtStop(t *testing.T) {
	pbx := freeUDP(t, "127.0.0.1")
	d, guard := startSIPConfig(t, pbx, "flood_requests: 5", "flood_ban: 1h")
	sendFrom(t, "127.0.0.6", guard, []byte("OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n\r\n"), 10)
	waitFor(t, func() bool {
		_, body := d.do("GET", "/v1/decisions?rule=sip.flood", nil)
		return strings.Contains(string(body), `"source_ip":"127.0.0.6"`)
	}, "the flood ban in the decisions log")
	d.stop()

	d = start(t, d.dir, withKey(), "--config", "telguard.yaml")
	_, body := d.do("GET", "/v1/decisions?rule=ban.lifted", nil)
	if !strings.Contains(string(body), `"source_ip":"127.0.0.6"`) || !strings.Contains(string(body), "lifted before it expired") {
		t.Fatalf("the flood ban lifted by the stop is not on record: %s", body)
	}
}
