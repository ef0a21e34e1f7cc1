package e2e

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A PBX named by a host name ("localhost") is the PBX for the packet
// filter too: its own requests, more than the flood limit in the window,
// all reach the phone, and the PBX is not banned.
func TestSIPEdgeHostnameUpstreamIsNotFloodBanned(t *testing.T) {
	pbx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	phone, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 12)})
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	pbxPort := pbx.LocalAddr().(*net.UDPAddr).Port
	_, guard := startSIPConfigWith(t, "udp:localhost:"+strconv.Itoa(pbxPort), "flood_requests: 5", "flood_window: 2s", "flood_ban: 1h")
	const n = 20
	for i := range n {
		msg := fmt.Sprintf("OPTIONS sip:1001@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-pbx-%d\r\n"+
			"From: <sip:pbx@127.0.0.1>;tag=p%d\r\nTo: <sip:1001@127.0.0.12>\r\nCall-ID: pbx-opt-%d\r\nCSeq: 1 OPTIONS\r\n"+
			"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", phone.LocalAddr(), pbx.LocalAddr(), i, i, i)
		if _, err := pbx.WriteToUDP([]byte(msg), net.UDPAddrFromAddrPort(mustAddrPort(guard))); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	buf := make([]byte, 65535)
	for got < n {
		phone.SetReadDeadline(time.Now().Add(3 * time.Second))
		k, _, err := phone.ReadFromUDP(buf)
		if err != nil {
			break
		}
		if strings.HasPrefix(string(buf[:k]), "OPTIONS ") {
			got++
		}
	}
	if got != n {
		t.Fatalf("the phone got %d of the PBX's %d requests: the PBX (a host name) was flood-banned", got, n)
	}
}
