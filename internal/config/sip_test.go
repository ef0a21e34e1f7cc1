package config

import (
	"errors"
	"strings"
	"testing"
)

func TestSIPValidation(t *testing.T) {
	const base = "sip:\n  listen: [\"udp:127.0.0.1:5060\"]\n  upstream: \"udp:127.0.0.1:5070\"\n"
	for _, tc := range []struct {
		name, extra, wantErr string
	}{
		{"geoip deny", "  geoip_db: /var/lib/GeoIP/GeoLite2-Country.mmdb\n  deny_countries: [KP, ir]\n", ""},
		{"geoip allow", "  geoip_db: country.mmdb\n  allow_countries: [BR, PT]\n", ""},
		{"countries without a database", "  deny_countries: [KP]\n", "sip.deny_countries: needs sip.geoip_db"},
		{"allow without a database", "  allow_countries: [BR]\n", "sip.allow_countries: needs sip.geoip_db"},
		{"country name", "  geoip_db: c.mmdb\n  deny_countries: [KP, Iran]\n", `sip.deny_countries[1]: want a two-letter ISO 3166-1 code such as BR, got "Iran"`},
		{"digits", "  geoip_db: c.mmdb\n  allow_countries: [\"B1\"]\n", "sip.allow_countries[0]"},
		{"nat contact", "  geoip_db: c.mmdb\n  deny_countries: [KP]\n  nat_contact: keep\n", ""},
		{"tls cas without a tls upstream", "  upstream_tls_cas: /etc/telguard/pbx-ca.pem\n", "sip.upstream_tls_cas: only for a tls upstream"},
		{"nat contact typo", "  nat_contact: fix\n", `sip.nat_contact: want rewrite or keep, got "fix"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("c.yaml", []byte(base+tc.extra))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.SIP.GeoIPDB == "" || len(c.SIP.DenyCountries)+len(c.SIP.AllowCountries) == 0 {
					t.Fatalf("geoip settings lost: %+v", c.SIP)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// Carriers are listed on their own: a trusted peer only bypasses
// screening, a carrier's INVITEs are also reported as inbound calls.
func TestSIPCarriers(t *testing.T) {
	const base = "sip:\n  listen: [\"udp:127.0.0.1:5060\"]\n  upstream: \"udp:127.0.0.1:5070\"\n"
	c, err := Parse("c.yaml", []byte(base+"  trusted: [\"10.1.0.0/16\"]\n  carriers: [\"198.51.100.0/24\", \"203.0.113.7\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	carriers, err := c.SIP.CarrierPrefixes()
	if err != nil || len(carriers) != 2 || carriers[0].String() != "198.51.100.0/24" || carriers[1].String() != "203.0.113.7/32" {
		t.Errorf("carriers = %v, %v; want 198.51.100.0/24 and 203.0.113.7/32", carriers, err)
	}
	trusted, err := c.SIP.TrustedPrefixes()
	if err != nil || len(trusted) != 1 || trusted[0].String() != "10.1.0.0/16" {
		t.Errorf("trusted = %v, %v; want only 10.1.0.0/16", trusted, err)
	}
	_, err = Parse("c.yaml", []byte(base+"  carriers: [\"198.51.100.0/24\", \"carrier.example\"]\n"))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `sip.carriers[1]: want a CIDR or an address, got "carrier.example"`) {
		t.Errorf("err = %v, want sip.carriers[1] named", err)
	}
	// In simulation mode the carrier is a loopback address like the rest.
	if _, err := Parse("c.yaml", []byte(base+"  simulation: true\n  carriers: [\"127.0.0.2/32\"]\n")); err != nil {
		t.Errorf("simulation with a loopback carrier: %v", err)
	}
}
