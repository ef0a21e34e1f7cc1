package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// SIP configures the inline SIP edge, a guard in front of one PBX. It is
// off unless Listen is set.
type SIP struct {
	// Listen lists "network:host:port" addresses, e.g. "udp:0.0.0.0:5060",
	// "tcp:[::]:5060", "tls:0.0.0.0:5061". At least one listener of the
	// PBX's transport and address family: the PBX is reached from it.
	Listen []string `yaml:"listen"`
	// TLSCert and TLSKey are the PEM certificate chain and key of the tls
	// listeners; required when there is one.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TLSClientCAs is a PEM file of CAs; when set, TLS clients must
	// present a certificate one of them issued (mutual TLS for trunks).
	TLSClientCAs string `yaml:"tls_client_cas"`
	// Upstream is the PBX, "udp:host:port", "tcp:host:port" or
	// "tls:host:port" (which need a tcp or tls listener of the PBX's
	// address family).
	Upstream string `yaml:"upstream"`
	// UpstreamTLSCAs is a PEM file of the CAs a tls upstream's certificate
	// must chain to; empty: the system's roots.
	UpstreamTLSCAs string `yaml:"upstream_tls_cas"`
	// Advertise is the host the guard puts in Via and Record-Route;
	// required when a listener is on a wildcard address.
	Advertise string `yaml:"advertise"`
	// Tenant is the policy tenant the edge's events belong to. Default:
	// api.default_tenant.
	Tenant string `yaml:"tenant"`
	// Trusted are peers (an SBC, an office network, a second PBX) that
	// bypass screening, with no events; the upstream is always trusted.
	Trusted []string `yaml:"trusted"`
	// Carriers are the carriers' signalling addresses: trusted like
	// Trusted, and their initial INVITEs are reported to the engine as
	// inbound calls (never blocked), so Wangiri callbacks are caught.
	Carriers []string `yaml:"carriers"`
	// AccountFrom: from_user (default), auth_user or pai.
	AccountFrom string `yaml:"account_from"`
	// Flood limits, per source address, before any parsing: more than
	// FloodRequests packets in FloodWindow bans the source for FloodBan.
	// Defaults 64, 2s, 5m (like Kamailio's pike).
	FloodRequests int           `yaml:"flood_requests"`
	FloodWindow   time.Duration `yaml:"flood_window"`
	FloodBan      time.Duration `yaml:"flood_ban"`
	// MaxPacketBytes drops larger packets unparsed. Default 8192.
	MaxPacketBytes int `yaml:"max_packet_bytes"`
	// GeoIPDB is a MaxMind DB (mmdb) file with countries: GeoLite2 or
	// GeoIP2 Country or City, or DB-IP's country database. Read at start.
	GeoIPDB string `yaml:"geoip_db"`
	// DenyCountries (ISO 3166-1 alpha-2 codes) are dropped before any
	// parsing; AllowCountries, when set, drops every country not in it.
	// Addresses the database cannot place (private, loopback) pass. Both
	// need GeoIPDB. Trusted peers and the upstream are never geo-filtered.
	DenyCountries  []string `yaml:"deny_countries"`
	AllowCountries []string `yaml:"allow_countries"`
	// NATContact: "rewrite" (default) puts the source address in place of
	// a caller's private or CGNAT Contact, so the PBX reaches phones
	// behind NAT; "keep" leaves Contacts alone.
	NATContact string `yaml:"nat_contact"`
	// Simulation makes the edge take each message's event time from its
	// X-Telguard-Time header, answer with the engine's decision in
	// X-Telguard-Decision, and keep engine bans out of the packet
	// filter: for a dedicated daemon that `telguard sim` drives. The
	// headers come from whoever sends, so every listener and the
	// upstream must be loopback addresses.
	Simulation bool `yaml:"simulation"`
}

// Enabled reports whether the SIP edge is configured.
func (s SIP) Enabled() bool { return len(s.Listen) > 0 }

// TrustedPrefixes parses Trusted.
func (s SIP) TrustedPrefixes() ([]netip.Prefix, error) {
	return parsePrefixes("sip.trusted", s.Trusted)
}

// CarrierPrefixes parses Carriers.
func (s SIP) CarrierPrefixes() ([]netip.Prefix, error) {
	return parsePrefixes("sip.carriers", s.Carriers)
}

// parsePrefixes parses a list of CIDRs or single addresses.
func parsePrefixes(field string, list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for i, v := range list {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, fmt.Errorf("%w: %s[%d]: want a CIDR or an address, got %q", ErrInvalid, field, i, v)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// validate checks the sip section.
func (s SIP) validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	if !s.Enabled() {
		return nil
	}
	if s.Upstream == "" {
		return bad("sip.upstream", "the PBX to protect, e.g. udp:127.0.0.1:5070, is required when sip.listen is set")
	}
	switch s.AccountFrom {
	case "from_user", "auth_user", "pai":
	default:
		return bad("sip.account_from", "want from_user, auth_user or pai, got %q", s.AccountFrom)
	}
	if _, err := s.TrustedPrefixes(); err != nil {
		return err
	}
	if _, err := s.CarrierPrefixes(); err != nil {
		return err
	}
	upNet, _, _ := strings.Cut(strings.ToLower(s.Upstream), ":")
	if s.UpstreamTLSCAs != "" && !strings.HasPrefix(upNet, "tls") {
		return bad("sip.upstream_tls_cas", "only for a tls upstream (sip.upstream: tls:host:port)")
	}
	switch s.NATContact {
	case "", "rewrite", "keep":
	default:
		return bad("sip.nat_contact", "want rewrite or keep, got %q", s.NATContact)
	}
	for i, l := range s.Listen {
		network, _, _ := strings.Cut(strings.ToLower(l), ":")
		if strings.HasPrefix(network, "tls") && (s.TLSCert == "" || s.TLSKey == "") {
			return bad(fmt.Sprintf("sip.listen[%d]", i), "a tls listener needs sip.tls_cert and sip.tls_key")
		}
	}
	for _, list := range []struct {
		field string
		codes []string
	}{{"sip.deny_countries", s.DenyCountries}, {"sip.allow_countries", s.AllowCountries}} {
		field, codes := list.field, list.codes
		if len(codes) > 0 && s.GeoIPDB == "" {
			return bad(field, "needs sip.geoip_db, a MaxMind DB file of countries")
		}
		for i, c := range codes {
			if !isCountryCode(c) {
				return bad(fmt.Sprintf("%s[%d]", field, i), "want a two-letter ISO 3166-1 code such as BR, got %q", c)
			}
		}
	}
	if s.Simulation {
		if err := s.validateSimulation(); err != nil {
			return err
		}
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		return bad("sip.tls_cert", "give both sip.tls_cert and sip.tls_key, or neither")
	}
	return nil
}

// validateSimulation refuses simulation mode unless every listener and
// the upstream are loopback addresses: the mode trusts headers any sender
// can write (the event time) and tells senders which rule caught them.
func (s SIP) validateSimulation() error {
	for i, l := range s.Listen {
		if !loopbackSpec(l) {
			return fmt.Errorf("%w: sip.listen[%d]: sip.simulation needs loopback listeners (127.0.0.1, [::1]), got %q", ErrInvalid, i, l)
		}
	}
	if !loopbackSpec(s.Upstream) {
		return fmt.Errorf("%w: sip.upstream: sip.simulation needs a loopback upstream (127.0.0.1, [::1]), got %q", ErrInvalid, s.Upstream)
	}
	return nil
}

// loopbackSpec reports a "network:host:port" address whose host is a
// loopback IP literal. Names are refused: what they resolve to can change.
func loopbackSpec(spec string) bool {
	_, hostport, ok := strings.Cut(spec, ":")
	if !ok {
		return false
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// isCountryCode reports a two-letter code, either case.
func isCountryCode(c string) bool {
	if len(c) != 2 {
		return false
	}
	for i := range 2 {
		b := c[i] | 0x20 // lower case
		if b < 'a' || b > 'z' {
			return false
		}
	}
	return true
}
