package prefilter

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCheck feeds arbitrary sources and packets. Invariants: no panic; an
// oversized packet is always dropped as oversized; a packet that starts with
// a well-formed request line and CRLF is never malformed; the start-line
// check alone only ever passes, drops as malformed or oversized.
func FuzzCheck(f *testing.F) {
	files, _ := filepath.Glob("testdata/rfc4475/*.dat")
	for _, file := range files {
		pkt, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte{192, 0, 2, 1}, "INVITE", pkt)
	}
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}, "OPTIONS", []byte("\r\n\r\n"))
	f.Add([]byte{}, "", []byte("SIP/2.0 200 OK\r\n\r\n"))
	f.Add([]byte{1}, "!~", []byte{})

	const maxPacket = 2048
	filter, err := New(Config{MaxPacketBytes: maxPacket, FloodRequests: 1 << 30, MaxSources: 1024})
	if err != nil {
		f.Fatal(err)
	}
	filter.Ban(netip.MustParsePrefix("192.0.2.128/25"), farFuture, "fuzz")

	f.Fuzz(func(t *testing.T, srcBytes []byte, method string, pkt []byte) {
		src := netip.AddrFrom16([16]byte(append(srcBytes, make([]byte, 16)...)[:16]))
		if len(srcBytes) <= 4 {
			src = netip.AddrFrom4([4]byte(append(srcBytes, make([]byte, 4)...)[:4]))
		}
		banned := false
		if _, _, ok := filter.Banned(src); ok {
			banned = true
		}

		v := filter.Check(src, pkt)
		if banned && v != DropBanned {
			t.Fatalf("banned source %v got %v", src, v)
		}
		if !banned && len(pkt) > maxPacket && v != DropOversized {
			t.Fatalf("oversized packet (%d bytes) got %v", len(pkt), v)
		}
		if c := classify(pkt, maxPacket); c != Pass && c != PassKeepAlive && c != DropMalformed && c != DropOversized {
			t.Fatalf("classify returned %v", c)
		}

		// A well-formed request line in front of anything is never malformed.
		tok := make([]byte, 0, len(method))
		for i := 0; i < len(method); i++ {
			if class[method[i]]&tokenByte != 0 {
				tok = append(tok, method[i])
			}
		}
		if len(tok) == 0 {
			tok = []byte("INVITE")
		}
		msg := append(append(tok, " sip:alice@example.com SIP/2.0\r\n"...), pkt...)
		v = classify(msg, maxPacket)
		switch {
		case len(msg) > maxPacket && v != DropOversized:
			t.Fatalf("oversized request got %v", v)
		case len(msg) <= maxPacket && len(tok)+33 <= MaxStartLine && v != Pass:
			t.Fatalf("request line %q got %v", msg[:min(len(msg), 80)], v)
		}
	})
}
