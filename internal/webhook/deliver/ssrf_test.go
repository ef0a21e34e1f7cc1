package deliver

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// No test here sends a packet anywhere but 127.0.0.0/8: blocked addresses
// are refused by Check or by the dialer's Control, before connect.

func TestGuardBlocksInternalRanges(t *testing.T) {
	blockedAddrs := []string{
		"0.0.0.0", "0.1.2.3", // unspecified, "this network"
		"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.1.1", // RFC 1918
		"100.64.0.1", "100.127.255.254", // CGNAT
		"127.0.0.1", "127.255.255.254", // loopback
		"169.254.0.1", "169.254.169.254", // link-local, metadata
		"192.0.0.8", "192.0.2.1", "198.51.100.7", "203.0.113.9", // IETF, documentation
		"192.88.99.1", "198.18.0.1", "198.19.255.255", // 6to4 relay, benchmarking
		"224.0.0.1", "239.255.255.250", // multicast
		"240.0.0.1", "255.255.255.255", // reserved, broadcast
		"::", "::1", "::127.0.0.1", // unspecified, loopback, IPv4-compatible
		"fe80::1", "fe80::1%eth0", "fec0::1", // link-local, site-local
		"fc00::1", "fd12:3456::1", "fd00:ec2::254", // ULA, metadata
		"ff02::1", "ff05::2", // multicast
		"2001:db8::1", "3fff::1", "100::1", "2001::1", "2001:2::1", // documentation, discard, Teredo, benchmarking
		"64:ff9b:1::1",                                                  // local-use NAT64
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", // IPv4-mapped
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::c0a8:101", // NAT64 of loopback, metadata, private
		"2002:7f00:1::1", "2002:a00:1::", "2002:a9fe:a9fe::1", // 6to4 of loopback, private, metadata
	}
	g := Guard{}
	for _, s := range blockedAddrs {
		if err := g.Check(netip.MustParseAddr(s)); !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("%s: allowed", s)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8",
		"64:ff9b::808:808", "2002:808:808::1", "100.63.255.255", "100.128.0.0", "172.32.0.1", "11.0.0.1"} {
		if err := g.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: refused: %v", s, err)
		}
	}
	if err := g.Check(netip.Addr{}); err == nil {
		t.Error("the zero address allowed")
	}
}

func TestGuardAllowlist(t *testing.T) {
	g := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("127.0.0.1/32")}}
	for _, s := range []string{"10.20.1.2", "::ffff:10.20.1.2", "127.0.0.1"} {
		if err := g.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s refused despite the allowlist: %v", s, err)
		}
	}
	for _, s := range []string{"10.21.0.1", "127.0.0.2", "169.254.169.254"} {
		if err := g.Check(netip.MustParseAddr(s)); err == nil {
			t.Errorf("%s allowed outside the allowlist", s)
		}
	}
}

func TestClientRefusesLoopbackAndDoesNotFollowRedirects(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
	}))
	defer srv.Close()

	resp, err := Guard{}.Client(2*time.Second, nil).Post(srv.URL, "application/json", nil)
	if err == nil {
		resp.Body.Close()
		t.Fatal("loopback reached without an allowlist")
	}
	if !errors.Is(err, ErrBlockedAddress) || hits != 0 {
		t.Fatalf("err %v, hits %d", err, hits)
	}

	allow := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	resp, err = allow.Client(2*time.Second, nil).Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || hits != 1 {
		t.Fatalf("redirect followed: status %d, hits %d", resp.StatusCode, hits)
	}
}

// dnsServer answers every A query with 127.0.0.1 and every AAAA query
// with ::1: a public-looking name that resolves to loopback (rebinding).
func dnsServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:n]); resp != nil {
				_, _ = pc.WriteTo(resp, addr)
			}
		}
	}()
	return pc.LocalAddr().String()
}

func dnsAnswer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	// Walk the question name to find its type.
	i := 12
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	question := q[12 : i+5]
	resp := append([]byte{}, q[:2]...)                      // id
	resp = append(resp, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0) // response, 1 question, 1 answer
	resp = append(resp, question...)
	resp = append(resp, 0xc0, 12) // the name, by pointer
	switch qtype {
	case 1: // A
		resp = append(resp, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1)
	case 28: // AAAA
		resp = append(resp, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16)
		resp = append(resp, net.IPv6loopback...)
	default:
		resp[7] = 0 // no answer
		resp = resp[:12+len(question)]
	}
	return resp
}

func TestDialerRefusesNameResolvingToLoopback(t *testing.T) {
	dns := dnsServer(t)
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", dns) // never the system's resolver
	}}
	// The resolver works: the name really does resolve to loopback.
	addrs, err := resolver.LookupHost(context.Background(), "crm.example.net")
	if err != nil || len(addrs) == 0 {
		t.Fatalf("lookup: %v %v", addrs, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	_, err = Guard{}.Dialer(2*time.Second, resolver).DialContext(context.Background(), "tcp", net.JoinHostPort("crm.example.net", port))
	if !errors.Is(err, ErrBlockedAddress) {
		t.Fatalf("dial of a name resolving to loopback: %v, want ErrBlockedAddress", err)
	}
	// With loopback allowlisted the same name connects: the refusal above
	// was the guard, not the resolver.
	allow := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}}
	c, err := allow.Dialer(2*time.Second, resolver).DialContext(context.Background(), "tcp4", net.JoinHostPort("crm.example.net", port))
	if err != nil {
		t.Fatalf("allowlisted dial: %v", err)
	}
	c.Close()
}
