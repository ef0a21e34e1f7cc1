package deliver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrBlockedAddress means an outbound connection was refused because the
// address it resolved to is internal (see Guard).
var ErrBlockedAddress = errors.New("destination address not allowed")

// blocked are the ranges an outbound webhook must never reach unless
// allowlisted: anything that is not a public unicast address.
var blocked = mustPrefixes(
	// IPv4
	"0.0.0.0/8",       // "this network", unspecified
	"10.0.0.0/8",      // RFC 1918
	"100.64.0.0/10",   // CGNAT, RFC 6598
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, incl. cloud metadata 169.254.169.254
	"172.16.0.0/12",   // RFC 1918
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // TEST-NET-1
	"192.88.99.0/24",  // 6to4 relay anycast
	"192.168.0.0/16",  // RFC 1918
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // TEST-NET-2
	"203.0.113.0/24",  // TEST-NET-3
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, incl. broadcast 255.255.255.255
	// IPv6 (IPv4-mapped, NAT64 and 6to4 are checked by their IPv4 inside)
	"::/96",          // unspecified, loopback, IPv4-compatible (deprecated)
	"64:ff9b:1::/48", // local-use NAT64, RFC 8215
	"100::/64",       // discard-only
	"2001::/23",      // IETF protocol assignments, incl. Teredo 2001::/32
	"2001:db8::/32",  // documentation
	"3fff::/20",      // documentation, RFC 9637
	"fc00::/7",       // unique local, incl. metadata fd00:ec2::254
	"fe80::/10",      // link-local
	"fec0::/10",      // site-local (deprecated)
	"ff00::/8",       // multicast
)

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Guard decides which addresses outbound deliveries may connect to: public
// unicast addresses, and whatever Allow lists explicitly (for a CRM on the
// internal network).
type Guard struct {
	Allow []netip.Prefix
}

// Check returns ErrBlockedAddress (wrapped) when ip may not be reached.
func (g Guard) Check(ip netip.Addr) error {
	ip = ip.WithZone("")
	if !ip.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrBlockedAddress)
	}
	for _, p := range g.Allow {
		if p.Contains(ip) || p.Contains(ip.Unmap()) {
			return nil
		}
	}
	if internal(ip) {
		return fmt.Errorf("%w: %s is not a public address", ErrBlockedAddress, ip)
	}
	return nil
}

// internal reports whether ip is anything but public unicast, looking
// through the IPv6 forms that embed an IPv4 address.
func internal(ip netip.Addr) bool {
	switch {
	case ip.Is4In6():
		return internal(ip.Unmap())
	case nat64.Contains(ip):
		b := ip.As16()
		return internal(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		b := ip.As16()
		return internal(netip.AddrFrom4([4]byte(b[2:6])))
	}
	for _, p := range blocked {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// control is a net.Dialer Control function: it runs after name resolution,
// on the address about to be connected, so a DNS answer that changes
// between a check and the connection (rebinding) cannot get past it.
func (g Guard) control(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("%w: network %s", ErrBlockedAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrBlockedAddress, err)
	}
	return g.Check(ap.Addr())
}

// Dialer returns a dialer that refuses blocked addresses at connect time.
// resolver nil is the system resolver.
func (g Guard) Dialer(timeout time.Duration, resolver *net.Resolver) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: g.control, Resolver: resolver}
}

// Client returns an HTTP client for outbound deliveries: connections go
// through the guarded dialer, no proxy is used (a proxy would connect on
// our behalf, past the check), and redirects are not followed (the 3xx is
// the answer, and counts as a failure).
func (g Guard) Client(timeout time.Duration, resolver *net.Resolver) *http.Client {
	d := g.Dialer(timeout, resolver)
	return &http.Client{
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           64,
			MaxIdleConnsPerHost:    8,
			IdleConnTimeout:        90 * time.Second,
			TLSHandshakeTimeout:    timeout,
			ResponseHeaderTimeout:  timeout,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       timeout,
	}
}
