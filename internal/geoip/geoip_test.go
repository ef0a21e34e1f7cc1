package geoip_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/telguard/telguard/internal/geoip"
	"github.com/telguard/telguard/internal/geoip/geoiptest"
)

func open(t testing.TB, networks map[string]string) *geoip.Reader {
	t.Helper()
	path := filepath.Join(t.TempDir(), "country.mmdb")
	geoiptest.Write(t, path, networks)
	r, err := geoip.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestCountry(t *testing.T) {
	r := open(t, map[string]string{
		"127.0.0.66/32":   "kp", // lower case in the file: still KP
		"127.0.0.0/24":    "BR",
		"198.51.100.0/24": "DE",
		"2001:db8:1::/48": "FR",
	})
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.66", "KP"},
		{"127.0.0.2", "BR"},
		{"::ffff:127.0.0.2", "BR"},
		{"198.51.100.7", "DE"},
		{"198.51.101.7", ""},
		{"2001:db8:1::5", "FR"},
		{"fe80::1%eth0", ""},
		{"2001:db8:2::5", ""},
		{"10.0.0.1", ""},
	} {
		for range 2 { // uncached, then cached
			if got := r.Country(netip.MustParseAddr(tc.addr)); got != tc.want {
				t.Errorf("Country(%s) = %q, want %q", tc.addr, got, tc.want)
			}
		}
	}
	if got := r.Country(netip.Addr{}); got != "" {
		t.Errorf("invalid address: %q", got)
	}
	if c, ok := r.Lookup(netip.MustParseAddr("10.0.0.1")); ok || c != "" {
		t.Errorf("Lookup of an unknown address: %q, %v", c, ok)
	}
}

func TestOpenRefusesWhatIsNotACountryDatabase(t *testing.T) {
	dir := t.TempDir()
	if _, err := geoip.Open(filepath.Join(dir, "missing.mmdb")); err == nil {
		t.Fatal("a missing file opened")
	}
	junk := filepath.Join(dir, "junk.mmdb")
	os.WriteFile(junk, []byte("not a maxmind database"), 0o644)
	if _, err := geoip.Open(junk); err == nil {
		t.Fatal("a junk file opened")
	}
	// An ASN database: records without a country.
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-ASN", IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	asn := netip.MustParsePrefix("198.51.100.0/24")
	if err := tree.Insert(ipnet(asn), mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(64500)}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "asn.mmdb")
	f, _ := os.Create(path)
	tree.WriteTo(f)
	f.Close()
	if _, err := geoip.Open(path); !errors.Is(err, geoip.ErrNoCountry) {
		t.Fatalf("an ASN database: %v, want ErrNoCountry", err)
	}
}

// TestCountryAllocatesNothing: the packet filter calls Country for every
// packet of an unbanned source.
func TestCountryAllocatesNothing(t *testing.T) {
	r := open(t, map[string]string{"127.0.0.0/24": "BR", "2001:db8::/32": "FR"})
	a4, a6 := netip.MustParseAddr("127.0.0.9"), netip.MustParseAddr("2001:db8::9")
	r.Country(a4)
	r.Country(a6)
	if n := testing.AllocsPerRun(1000, func() { r.Country(a4); r.Country(a6) }); n != 0 {
		t.Fatalf("%v allocations per lookup", n)
	}
}

func BenchmarkCountry(b *testing.B) {
	nets := map[string]string{}
	// A few thousand networks, so the tree is deep like a real one's.
	for i := range 4096 {
		nets[netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i >> 8), byte(i), 0, 0}), 16).String()] = []string{"BR", "DE", "US", "KP"}[i%4]
	}
	r := open(b, nets)
	addrs := []netip.Addr{netip.MustParseAddr("1.2.3.4"), netip.MustParseAddr("13.37.0.1"), netip.MustParseAddr("15.255.1.1")}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.Country(addrs[i%len(addrs)])
			i++
		}
	})
}

// Once a record's country is cached (its first lookup decodes it), a
// lookup allocates nothing: the SIP pre-filter calls it per packet.
func TestCountryCachedAllocatesNothing(t *testing.T) {
	r := open(t, map[string]string{"198.51.100.0/24": "DE", "203.0.113.0/24": "BR"})
	a, b := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.9")
	r.Country(a)
	r.Country(b)
	if n := testing.AllocsPerRun(100, func() {
		if r.Country(a) != "DE" || r.Country(b) != "BR" {
			t.Fatal("wrong country")
		}
	}); n != 0 {
		t.Fatalf("a cached lookup allocates %v times", n)
	}
}
