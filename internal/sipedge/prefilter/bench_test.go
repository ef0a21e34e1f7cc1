package prefilter

import (
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/geoip"
	"github.com/telguard/telguard/internal/geoip/geoiptest"
)

var farFuture = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

// The benchmarks use the real clock: reading it is part of Check's cost.

func sources(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	return out
}

// BenchmarkCheckPass: valid INVITEs from 1,000 sources, none over the flood
// limit.
func BenchmarkCheckPass(b *testing.B) {
	f, err := New(Config{FloodRequests: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	src, pkt := sources(1000), []byte(invite)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if f.Check(src[i%len(src)], pkt) != Pass {
			b.Fatal("not passed")
		}
		i++
	}
}

// BenchmarkCheckPassParallel: as above, from every CPU at once.
func BenchmarkCheckPassParallel(b *testing.B) {
	f, err := New(Config{FloodRequests: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	src, pkt := sources(1000), []byte(invite)
	var worker atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(worker.Add(1)) * 337 // workers apart, as real sources would be
		for pb.Next() {
			f.Check(src[i%len(src)], pkt)
			i++
		}
	})
}

// BenchmarkCheckBanned: packets from a banned address, with CIDR bans of
// three lengths also in force.
func BenchmarkCheckBanned(b *testing.B) {
	f, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	f.Ban(netip.MustParsePrefix("192.0.2.66/32"), farFuture, "bench")
	f.Ban(netip.MustParsePrefix("198.51.100.0/24"), farFuture, "bench")
	f.Ban(netip.MustParsePrefix("203.0.113.0/25"), farFuture, "bench")
	f.Ban(netip.MustParsePrefix("100.64.0.0/10"), farFuture, "bench")
	for _, bc := range []struct{ name, src string }{{"address", "192.0.2.66"}, {"cidr", "198.51.100.7"}} {
		b.Run(bc.name, func(b *testing.B) {
			src, pkt := netip.MustParseAddr(bc.src), []byte(invite)
			b.ReportAllocs()
			for b.Loop() {
				if f.Check(src, pkt) != DropBanned {
					b.Fatal("not banned")
				}
			}
		})
	}
}

// BenchmarkCheckSpoofedFlood: every packet from a new source, the table full
// and evicting.
func BenchmarkCheckSpoofedFlood(b *testing.B) {
	f, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	pkt := []byte(invite)
	b.ReportAllocs()
	var i uint32
	for b.Loop() {
		f.Check(netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}), pkt)
		i++
	}
	b.ReportMetric(float64(f.Stats().Tracked), "tracked")
}

// BenchmarkClassify: the start-line check alone.
func BenchmarkClassify(b *testing.B) {
	pkt := []byte(invite)
	b.ReportAllocs()
	for b.Loop() {
		classify(pkt, DefaultMaxPacketBytes)
	}
}

// BenchmarkCheckCountry: the country filter on, with a GeoIP database of
// 4,096 networks: packets from a denied country, and from an allowed one
// (which also pays the flood count).
func BenchmarkCheckCountry(b *testing.B) {
	nets := map[string]string{}
	for i := range 4096 {
		nets[netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i >> 8), byte(i), 0, 0}), 16).String()] = []string{"BR", "DE", "US", "KP"}[i%4]
	}
	path := filepath.Join(b.TempDir(), "country.mmdb")
	geoiptest.Write(b, path, nets)
	geo, err := geoip.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer geo.Close()
	f, err := New(Config{FloodRequests: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	f.SetCountryFilter(geo.Lookup, []string{"KP"}, nil)
	for _, bc := range []struct {
		name string
		src  netip.Addr
		want Verdict
	}{
		{"denied", netip.MustParseAddr("0.3.1.1"), DropCountry},
		{"allowed", netip.MustParseAddr("0.1.1.1"), Pass},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pkt := []byte(invite)
			b.ReportAllocs()
			for b.Loop() {
				if f.Check(bc.src, pkt) != bc.want {
					b.Fatal("wrong verdict")
				}
			}
		})
	}
}
