// Package geoiptest writes small MaxMind DB files for tests: each network
// maps to a country, as a GeoIP2 Country database would say.
package geoiptest

import (
	"cmp"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Write writes an mmdb file to path in which each CIDR of networks is in
// the given country; a network inside another takes precedence over it (ISO 3166-1 alpha-2). Reserved ranges (loopback,
// RFC 1918) may be given: tests on loopback need them.
func Write(t testing.TB, path string, networks map[string]string) {
	t.Helper()
	write(t, path, networks, 6)
}

// WriteIPv4 is Write for an IPv4-only database (IP version 4 in its
// metadata), as some free country databases are.
func WriteIPv4(t testing.TB, path string, networks map[string]string) {
	t.Helper()
	write(t, path, networks, 4)
}

func write(t testing.TB, path string, networks map[string]string, ipVersion int) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoIP2-Country",
		IncludeReservedNetworks: true,
		RecordSize:              24,
		IPVersion:               ipVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Wider networks first, so a narrower one inside it wins.
	cidrs := slices.Collect(maps.Keys(networks))
	slices.SortFunc(cidrs, func(a, b string) int { return cmp.Compare(bits(a), bits(b)) })
	for _, cidr := range cidrs {
		country := networks[cidr]
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{
			"country": mmdbtype.Map{"iso_code": mmdbtype.String(country)},
		}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatalf("insert %s: %v", cidr, err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func bits(cidr string) int {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return -1
	}
	return p.Bits()
}
