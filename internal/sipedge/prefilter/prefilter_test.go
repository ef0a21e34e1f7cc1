package prefilter

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telguard/telguard/internal/clock"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const invite = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n" +
	"Max-Forwards: 70\r\n" +
	"To: Bob <sip:bob@biloxi.example.com>\r\n" +
	"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n" +
	"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n" +
	"CSeq: 314159 INVITE\r\n" +
	"Contact: <sip:alice@pc33.atlanta.example.com>\r\n" +
	"Content-Length: 0\r\n\r\n"

func newFilter(t testing.TB, cfg Config) (*Filter, *clock.Manual) {
	t.Helper()
	c := clock.NewManual(t0)
	if cfg.Now == nil {
		cfg.Now = c.Now
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func addr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestStartLine(t *testing.T) {
	f, _ := newFilter(t, Config{FloodRequests: 1 << 30})
	long := "INVITE sip:" + strings.Repeat("a", MaxStartLine) + "@example.com SIP/2.0\r\n\r\n"
	for _, tc := range []struct {
		name string
		pkt  string
		want Verdict
	}{
		{"invite", invite, Pass},
		{"request line only", "OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n", Pass},
		{"lower-case version", "OPTIONS sip:carol@chicago.example.com sip/2.0\r\n\r\n", Pass},
		{"tel uri", "INVITE tel:+15551234567 SIP/2.0\r\n\r\n", Pass},
		{"unknown method", "FOO sip:x@y SIP/2.0\r\n\r\n", Pass},
		{"status", "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n", Pass},
		{"status empty reason", "SIP/2.0 100 \r\n\r\n", Pass},
		{"status utf-8 reason with tab", "SIP/2.0 486 Besetzt\tgerade – später\r\n\r\n", Pass},
		{"leading crlf (RFC 3261 7.5)", "\r\n\r\n" + invite, Pass},
		{"ping", "\r\n\r\n", PassKeepAlive},
		{"pong", "\r\n", PassKeepAlive},
		{"bare lf keep-alive", "\n", PassKeepAlive},

		{"empty", "", DropMalformed},
		{"no crlf", "INVITE sip:bob@example.com SIP/2.0", DropMalformed},
		{"bare lf", "INVITE sip:bob@example.com SIP/2.0\nVia: x\n\n", DropMalformed},
		{"first line too long", long, DropMalformed},
		{"too many crlfs", strings.Repeat("\r\n", MaxStartLine) + invite, DropMalformed},
		{"double space", "INVITE  sip:bob@example.com SIP/2.0\r\n\r\n", DropMalformed},
		{"trailing space", "INVITE sip:bob@example.com SIP/2.0 \r\n\r\n", DropMalformed},
		{"space in uri", "INVITE sip:bob smith@example.com SIP/2.0\r\n\r\n", DropMalformed},
		{"no version", "INVITE sip:bob@example.com\r\n\r\n", DropMalformed},
		{"wrong version", "INVITE sip:bob@example.com SIP/3.0\r\n\r\n", DropMalformed},
		{"http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", DropMalformed},
		{"uri without scheme", "INVITE bob@example.com SIP/2.0\r\n\r\n", DropMalformed},
		{"method not a token", "INV(TE sip:bob@example.com SIP/2.0\r\n\r\n", DropMalformed},
		{"nul in uri", "INVITE sip:bob\x00@example.com SIP/2.0\r\n\r\n", DropMalformed},
		{"del in uri", "INVITE sip:bob\x7f@example.com SIP/2.0\r\n\r\n", DropMalformed},
		{"control in reason", "SIP/2.0 200 O\x01K\r\n\r\n", DropMalformed},
		{"status two digits", "SIP/2.0 20 OK\r\n\r\n", DropMalformed},
		{"status no reason sp", "SIP/2.0 200\r\n\r\n", DropMalformed},
		{"status letters", "SIP/2.0 2x0 OK\r\n\r\n", DropMalformed},
		{"stun binding request", "\x00\x01\x00\x00\x21\x12\xa4\x42abcdefghijkl", DropMalformed},
		{"nul keep-alive", "\x00\x00\x00\x00", DropMalformed},
		{"crlf then garbage", "\r\n\x00", DropMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := f.Check(addr("192.0.2.1"), []byte(tc.pkt)); got != tc.want {
				t.Fatalf("Check = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRFC4475 runs every torture message through the filter. Only messages
// whose start line breaks the grammar are dropped; the rest, including those
// RFC 4475 calls invalid for reasons in their headers or bodies, are the
// parser's business.
func TestRFC4475(t *testing.T) {
	dropped := map[string]string{
		"bigcode":  "status code 4294967301 is not three digits",
		"lwsstart": "two spaces between request-line elements",
		"lwsruri":  "space inside the Request-URI",
		"trws":     "space after SIP/2.0",
		"test":     "no SIP-Version",
		"badvers":  "SIP/7.0",
	}
	files, err := filepath.Glob("testdata/rfc4475/*.dat")
	if err != nil || len(files) < 40 {
		t.Fatalf("torture files: %d, %v", len(files), err)
	}
	f, _ := newFilter(t, Config{FloodRequests: 1 << 30})
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".dat")
		t.Run(name, func(t *testing.T) {
			pkt, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want := Pass
			if _, ok := dropped[name]; ok {
				want = DropMalformed
			}
			if got := f.Check(addr("2001:db8::1"), pkt); got != want {
				t.Fatalf("Check = %v, want %v (%s)", got, want, dropped[name])
			}
		})
	}
	// The two the brief names explicitly.
	for _, name := range []string{"wsinv", "intmeth"} {
		pkt, _ := os.ReadFile("testdata/rfc4475/" + name + ".dat")
		if got := f.Check(addr("192.0.2.7"), pkt); got != Pass {
			t.Errorf("%s: %v, want pass", name, got)
		}
	}
}

func TestOversized(t *testing.T) {
	f, _ := newFilter(t, Config{MaxPacketBytes: 100, FloodRequests: 1 << 30})
	ok := "OPTIONS sip:x@y SIP/2.0\r\n\r\n"
	ok += strings.Repeat("a", 100-len(ok))
	if got := f.Check(addr("192.0.2.1"), []byte(ok)); got != Pass {
		t.Fatalf("100 bytes: %v, want pass", got)
	}
	if got := f.Check(addr("192.0.2.1"), []byte(ok+"a")); got != DropOversized {
		t.Fatalf("101 bytes: %v, want drop_oversized", got)
	}
	d, _ := newFilter(t, Config{})
	big := invite + strings.Repeat("x", DefaultMaxPacketBytes)
	if got := d.Check(addr("192.0.2.1"), []byte(big)); got != DropOversized {
		t.Fatalf("default limit: %v, want drop_oversized", got)
	}
}

func TestBans(t *testing.T) {
	f, clk := newFilter(t, Config{FloodRequests: 1 << 30})
	pkt := []byte(invite)
	f.Ban(prefix("192.0.2.10/32"), t0.Add(time.Minute), "brute force")
	f.Ban(prefix("198.51.100.0/24"), t0.Add(time.Hour), "scanner net")
	f.Ban(prefix("198.51.100.128/25"), t0.Add(2*time.Hour), "worse half")
	f.Ban(prefix("2001:db8:bad::/48"), t0.Add(time.Hour), "v6 net")
	f.Ban(prefix("2001:db8::66/128"), t0.Add(time.Hour), "v6 host")
	f.Ban(prefix("::ffff:203.0.113.0/120"), t0.Add(time.Hour), "mapped net")
	f.Ban(prefix("10.9.9.9/8"), t0.Add(time.Hour), "host bits masked")

	for _, tc := range []struct {
		src    string
		want   Verdict
		reason string
	}{
		{"192.0.2.10", DropBanned, "brute force"},
		{"::ffff:192.0.2.10", DropBanned, "brute force"},
		{"192.0.2.11", Pass, ""},
		{"198.51.100.7", DropBanned, "scanner net"},
		{"198.51.100.200", DropBanned, "worse half"}, // most specific wins
		{"198.51.101.7", Pass, ""},
		{"2001:db8:bad:1::5", DropBanned, "v6 net"},
		{"2001:db8::66", DropBanned, "v6 host"},
		{"2001:db8::67", Pass, ""},
		{"203.0.113.99", DropBanned, "mapped net"},
		{"10.200.0.1", DropBanned, "host bits masked"},
		{"fe80::1%eth0", Pass, ""},
	} {
		if got := f.Check(addr(tc.src), pkt); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.src, got, tc.want)
		}
		_, reason, ok := f.Banned(addr(tc.src))
		if ok != (tc.want == DropBanned) || reason != tc.reason {
			t.Errorf("Banned(%s) = %q, %v; want %q", tc.src, reason, ok, tc.reason)
		}
	}
	if n := len(f.Bans()); n != 7 {
		t.Fatalf("Bans() has %d, want 7: %v", n, f.Bans())
	}

	// Unban lifts exactly the prefix named.
	f.Unban(prefix("198.51.100.128/25"))
	if _, reason, _ := f.Banned(addr("198.51.100.200")); reason != "scanner net" {
		t.Fatalf("after unbanning the /25: reason %q, want the /24's", reason)
	}
	f.Unban(prefix("::ffff:192.0.2.10/128"))
	if got := f.Check(addr("192.0.2.10"), pkt); got != Pass {
		t.Fatalf("unbanned address: %v", got)
	}

	// Expiry: the address ban ends at +1m, the others at +1h.
	f.Ban(prefix("192.0.2.10/32"), t0.Add(time.Minute), "again")
	clk.Set(t0.Add(time.Minute))
	if got := f.Check(addr("192.0.2.10"), pkt); got != Pass {
		t.Fatalf("at expiry: %v, want pass", got)
	}
	if got := f.Check(addr("198.51.100.1"), pkt); got != DropBanned {
		t.Fatalf("CIDR before its expiry: %v", got)
	}
	clk.Set(t0.Add(time.Hour))
	for _, src := range []string{"198.51.100.1", "2001:db8:bad::1", "2001:db8::66", "203.0.113.1"} {
		if got := f.Check(addr(src), pkt); got != Pass {
			t.Fatalf("%s after expiry: %v", src, got)
		}
	}
	if n := f.Stats().Bans; n != 0 {
		t.Fatalf("bans in force after expiry = %d", n)
	}
	f.Sweep(clk.Now())
	if c := f.cidrs.Load(); c != nil {
		t.Fatalf("sweep left CIDR table %+v", c)
	}
	if len(f.Bans()) != 0 {
		t.Fatalf("bans after sweep: %v", f.Bans())
	}

	// A ban with a past end does nothing; an invalid prefix is ignored.
	f.Ban(prefix("192.0.2.20/32"), t0, "stale")
	f.Ban(netip.Prefix{}, t0.Add(24*time.Hour), "invalid")
	if got := f.Check(addr("192.0.2.20"), pkt); got != Pass {
		t.Fatalf("stale ban: %v", got)
	}
}

func TestFlood(t *testing.T) {
	const n = 10
	w := 2 * time.Second
	pkt := []byte(invite)
	for _, tc := range []struct {
		name     string
		packets  int
		interval time.Duration
		banAt    int // 0-based packet index that gets DropFlood; -1 for none
	}{
		{"burst of N passes", n, 0, -1},
		{"burst of N+1 bans", n + 1, 0, n},
		{"N+1 within 7/8 window bans", n + 1, w * 7 / 8 / n, n},
		{"one per window/N never bans", 10 * n, w / n, -1},
		{"slow traffic never bans", 100, time.Second, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, clk := newFilter(t, Config{FloodRequests: n, FloodWindow: w, FloodBan: time.Minute})
			var bans []Ban
			f.OnBan(func(b Ban) { bans = append(bans, b) })
			src := addr("192.0.2.50")
			for i := range tc.packets {
				want := Pass
				if tc.banAt >= 0 && i == tc.banAt {
					want = DropFlood
				} else if tc.banAt >= 0 && i > tc.banAt {
					want = DropBanned
				}
				if got := f.Check(src, pkt); got != want {
					t.Fatalf("packet %d at +%v: %v, want %v", i, clk.Now().Sub(t0), got, want)
				}
				clk.Advance(tc.interval)
			}
			if tc.banAt < 0 {
				if len(bans) != 0 {
					t.Fatalf("banned: %v", bans)
				}
				return
			}
			if len(bans) != 1 || bans[0].Prefix != prefix("192.0.2.50/32") || !bans[0].Flood ||
				!strings.Contains(bans[0].Reason, "flood") {
				t.Fatalf("OnBan got %+v", bans)
			}
			if s := f.Stats(); s.FloodBans != 1 || s.Bans != 1 {
				t.Fatalf("stats %+v", s)
			}
			// Other sources are unaffected.
			if got := f.Check(addr("192.0.2.51"), pkt); got != Pass {
				t.Fatalf("other source: %v", got)
			}
			// The ban ends after FloodBan and the source starts afresh.
			clk.Set(bans[0].Until)
			for i := range n {
				if got := f.Check(src, pkt); got != Pass {
					t.Fatalf("after ban, packet %d: %v", i, got)
				}
			}
		})
	}
}

func TestFloodCountsAllPackets(t *testing.T) {
	f, _ := newFilter(t, Config{FloodRequests: 3})
	src := addr("192.0.2.1")
	for _, p := range []string{"\r\n\r\n", "garbage", invite} {
		f.Check(src, []byte(p))
	}
	if got := f.Check(src, []byte("\r\n\r\n")); got != DropFlood {
		t.Fatalf("4th packet (garbage and keep-alives count): %v", got)
	}
}

func TestTrusted(t *testing.T) {
	f, _ := newFilter(t, Config{
		FloodRequests:  2,
		MaxPacketBytes: 4096,
		Trusted:        []netip.Prefix{prefix("10.0.0.0/8"), prefix("2001:db8:1::1/128")},
	})
	f.Ban(prefix("10.1.2.3/32"), t0.Add(time.Hour), "engine")
	f.Ban(prefix("0.0.0.0/0"), t0.Add(time.Hour), "everything")
	f.SetCountryFilter(func(netip.Addr) (string, bool) { return "XX", true }, []string{"XX"}, nil)
	for _, src := range []string{"10.1.2.3", "::ffff:10.1.2.3", "2001:db8:1::1"} {
		for i := range 10 {
			if got := f.Check(addr(src), []byte(invite)); got != Pass {
				t.Fatalf("trusted %s packet %d: %v", src, i, got)
			}
		}
		// Packet checks still apply.
		if got := f.Check(addr(src), []byte("junk")); got != DropMalformed {
			t.Fatalf("trusted junk: %v", got)
		}
		if got := f.Check(addr(src), make([]byte, 4097)); got != DropOversized {
			t.Fatalf("trusted oversized: %v", got)
		}
	}
	if got := f.Check(addr("192.0.2.1"), []byte(invite)); got != DropBanned {
		t.Fatalf("untrusted: %v", got)
	}
	if _, err := New(Config{Trusted: []netip.Prefix{{}}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("invalid trusted prefix: %v", err)
	}
}

func TestCountry(t *testing.T) {
	f, _ := newFilter(t, Config{})
	geo := map[netip.Addr]string{addr("192.0.2.1"): "ru", addr("192.0.2.2"): "DE", addr("192.0.2.3"): "KP"}
	f.SetCountryFilter(func(a netip.Addr) (string, bool) { c, ok := geo[a]; return c, ok }, []string{"RU", "kp"}, nil)
	for _, tc := range []struct {
		src  string
		want Verdict
	}{
		{"192.0.2.1", DropCountry},
		{"::ffff:192.0.2.1", DropCountry},
		{"192.0.2.2", Pass},
		{"192.0.2.3", DropCountry},
		{"192.0.2.4", Pass}, // unknown: not denied
	} {
		if got := f.Check(addr(tc.src), []byte(invite)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.src, got, tc.want)
		}
	}
	f.SetCountryFilter(nil, []string{"RU"}, nil)
	if got := f.Check(addr("192.0.2.1"), []byte(invite)); got != Pass {
		t.Fatalf("filter off: %v", got)
	}

	// An allow list: every placed country not on it is dropped, and so is
	// a public address the database cannot place; private, CGNAT,
	// loopback and link-local sources are not.
	f.SetCountryFilter(func(a netip.Addr) (string, bool) { c, ok := geo[a]; return c, ok }, nil, []string{" de "})
	for src, want := range map[string]Verdict{"192.0.2.1": DropCountry, "192.0.2.2": Pass, "192.0.2.3": DropCountry,
		"192.0.2.4": DropCountry, "2001:db8::4": DropCountry, "10.0.0.4": Pass, "100.64.0.4": Pass, "fd00::4": Pass,
		"127.0.0.1": Pass, "fe80::1": Pass} {
		if got := f.Check(addr(src), []byte(invite)); got != want {
			t.Errorf("allow DE: %s: %v, want %v", src, got, want)
		}
	}
	if s := f.Stats(); s.Packets[DropCountry] != 7 {
		t.Errorf("country drops counted %d, want 7", s.Packets[DropCountry])
	}
}

// TestMaxFloodBans: at the flood-ban limit a flooder is throttled, not
// banned, and the ban table stops growing.
func TestMaxFloodBans(t *testing.T) {
	f, clk := newFilter(t, Config{FloodRequests: 2, MaxFloodBans: 3, FloodBan: time.Minute})
	for i := range 5 {
		src := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		for range 2 {
			f.Check(src, []byte(invite))
		}
		if got := f.Check(src, []byte(invite)); got != DropFlood {
			t.Fatalf("source %d: %v", i, got)
		}
		want := DropBanned
		if i >= 3 {
			want = DropFlood // throttled: still over the limit in this window
		}
		if got := f.Check(src, []byte(invite)); got != want {
			t.Fatalf("source %d next packet: %v, want %v", i, got, want)
		}
	}
	s := f.Stats()
	if s.Bans != 3 || s.FloodBans != 3 || s.FloodBansRefused < 2 {
		t.Fatalf("stats %+v", s)
	}
	// Engine bans are not limited.
	f.Ban(prefix("198.51.100.1/32"), t0.Add(time.Hour), "engine")
	if got := f.Check(addr("198.51.100.1"), []byte(invite)); got != DropBanned {
		t.Fatalf("engine ban at flood-ban limit: %v", got)
	}
	// When the flood bans end and are swept, there is room again.
	clk.Advance(time.Minute)
	f.Sweep(clk.Now())
	src := addr("192.0.2.100")
	for range 2 {
		f.Check(src, []byte(invite))
	}
	f.Check(src, []byte(invite))
	if _, _, ok := f.Banned(src); !ok {
		t.Fatal("no flood ban after the table emptied")
	}
}

// TestSpoofedFlood feeds a million distinct sources: tracked sources stay at
// the capacity and the heap does not grow with the number of sources.
func TestSpoofedFlood(t *testing.T) {
	const maxSources = 65536
	f, clk := newFilter(t, Config{MaxSources: maxSources})
	pkt := []byte(invite)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 1_000_000 {
		var a netip.Addr
		if i%2 == 0 {
			a = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		} else {
			// Distinct /64s: an IPv6 source is counted with its /64.
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 4: byte(i >> 24), 5: byte(i >> 16), 6: byte(i >> 8), 7: byte(i), 15: 1})
		}
		if got := f.Check(a, pkt); got != Pass {
			t.Fatalf("spoofed source %d: %v", i, got)
		}
		if i%1000 == 0 {
			clk.Advance(time.Millisecond)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	s := f.Stats()
	if s.Tracked > maxSources || s.Capacity > maxSources || s.Tracked < maxSources*9/10 {
		t.Fatalf("tracked %d, capacity %d, max %d", s.Tracked, s.Capacity, maxSources)
	}
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("1M sources: tracked %d/%d, evicted while open %d, heap growth %d bytes", s.Tracked, s.Capacity, s.Evicted, growth)
	if growth > 1<<20 {
		t.Fatalf("heap grew %d bytes over 1M distinct sources", growth)
	}
	// After a window of quiet, a sweep frees every source.
	clk.Advance(DefaultFloodWindow)
	f.Sweep(clk.Now())
	if s := f.Stats(); s.Tracked != 0 {
		t.Fatalf("tracked after sweep: %d", s.Tracked)
	}
}

// TestFlooderSurvivesSpoofing: a real flooder is still caught while a
// spoofed flood churns the table around it.
func TestFlooderSurvivesSpoofing(t *testing.T) {
	f, clk := newFilter(t, Config{MaxSources: 4096, FloodRequests: 64})
	flooder := addr("192.0.2.66")
	pkt := []byte(invite)
	var banned bool
	for i := 0; i < 64*20 && !banned; i++ {
		// 20 spoofed packets per flooder packet; 100 flooder packets/s.
		for j := range 20 {
			n := i*20 + j
			f.Check(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), pkt)
		}
		banned = f.Check(flooder, pkt) == DropFlood
		clk.Advance(10 * time.Millisecond)
	}
	if !banned {
		t.Fatalf("flooder not banned; stats %+v", f.Stats())
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{MaxPacketBytes: -1},
		{FloodRequests: -1},
		{MaxSources: -5},
		{MaxSources: 7},
		{MaxFloodBans: -1},
		{FloodWindow: time.Microsecond},
		{FloodBan: -time.Second},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
	f, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s := f.Stats(); s.Capacity != DefaultMaxSources {
		t.Fatalf("default capacity %d", s.Capacity)
	}
	if f, _ := New(Config{MaxSources: 100}); f.Stats().Capacity > 100 {
		t.Fatalf("capacity %d above 100", f.Stats().Capacity)
	}
}

func TestInvalidSource(t *testing.T) {
	f, _ := newFilter(t, Config{})
	if got := f.Check(netip.Addr{}, []byte(invite)); got != DropMalformed {
		t.Fatalf("zero source: %v", got)
	}
	if _, _, ok := f.Banned(netip.Addr{}); ok {
		t.Fatal("zero source banned")
	}
}

func TestStatsAndCollector(t *testing.T) {
	f, _ := newFilter(t, Config{FloodRequests: 1})
	f.Check(addr("192.0.2.1"), []byte(invite))
	f.Check(addr("192.0.2.1"), []byte(invite)) // flood
	f.Check(addr("192.0.2.1"), []byte(invite)) // banned
	f.Check(addr("192.0.2.2"), []byte("\r\n\r\n"))
	f.Check(addr("192.0.2.3"), nil)
	s := f.Stats()
	want := [numVerdicts]uint64{Pass: 1, DropFlood: 1, DropBanned: 1, PassKeepAlive: 1, DropMalformed: 1}
	if s.Packets != want {
		t.Fatalf("packets %v, want %v", s.Packets, want)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(NewCollector(f)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if got["telguard_sip_prefilter_packets_total/drop_flood"] != 1 || got["telguard_sip_prefilter_bans"] != 1 ||
		got["telguard_sip_prefilter_flood_bans_total"] != 1 {
		t.Fatalf("metrics %v", got)
	}
	if Verdict(200).String() != "verdict(200)" || DropCountry.String() != "drop_country" || Pass.Drop() || !DropFlood.Drop() {
		t.Fatal("verdict names")
	}
}

// TestConcurrent runs every entry point at once; run with -race.
func TestConcurrent(t *testing.T) {
	f, clk := newFilter(t, Config{FloodRequests: 50, MaxSources: 256, Trusted: []netip.Prefix{prefix("10.0.0.0/24")}})
	var bans sync.Map
	f.OnBan(func(b Ban) { bans.Store(b.Prefix, b) })
	f.SetCountryFilter(func(a netip.Addr) (string, bool) { return "ZZ", a.As4()[3] == 13 }, []string{"ZZ"}, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				src := netip.AddrFrom4([4]byte{10, 0, byte(g), byte(i % 64)})
				f.Check(src, []byte(invite))
			}
		})
	}
	wg.Go(func() {
		for i := range 500 {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 2, byte(i % 64)}), 32)
			if i%3 == 0 {
				p = prefix(fmt.Sprintf("10.0.%d.0/24", i%4))
			}
			f.Ban(p, clk.Now().Add(time.Second), "engine")
			f.Banned(p.Addr())
			f.Unban(p)
			clk.Advance(time.Millisecond)
		}
	})
	wg.Go(func() {
		for range 200 {
			f.Sweep(clk.Now())
			f.Stats()
			f.Bans()
		}
	})
	wg.Wait()
	s := f.Stats()
	var total uint64
	for _, n := range s.Packets {
		total += n
	}
	if total != 4*5000 || s.Tracked > s.Capacity {
		t.Fatalf("stats %+v", s)
	}
	bans.Range(func(k, _ any) bool {
		if k.(netip.Prefix).Addr().As4()[2] == 0 {
			t.Errorf("trusted source banned: %v", k)
		}
		return true
	})
}

func TestBanForever(t *testing.T) {
	f, clk := newFilter(t, Config{})
	f.Ban(prefix("192.0.2.1/32"), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), "forever")
	f.Ban(prefix("198.51.100.0/24"), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), "forever")
	clk.Advance(100 * 365 * 24 * time.Hour)
	for _, src := range []string{"192.0.2.1", "198.51.100.1"} {
		if got := f.Check(addr(src), []byte(invite)); got != DropBanned {
			t.Fatalf("%s: %v", src, got)
		}
	}
}

// TestUnbanReported: every flood ban that ends is reported once, whether
// the source's next packet, Sweep or Unban ends it; bans made with Ban are
// not (their maker knows when they end).
func TestUnbanReported(t *testing.T) {
	f, clk := newFilter(t, Config{FloodRequests: 2, FloodBan: time.Minute})
	var ended []Ban
	f.OnUnban(func(b Ban) { ended = append(ended, b) })
	flood := func(a netip.Addr) {
		for range 3 {
			f.Check(a, []byte(invite))
		}
		if _, _, ok := f.Banned(a); !ok {
			t.Fatalf("%s not flood-banned", a)
		}
	}
	byPacket, bySweep, lifted := addr("192.0.2.1"), addr("192.0.2.2"), addr("2001:db8::3")
	flood(byPacket)
	flood(bySweep)
	flood(lifted)
	f.Ban(prefix("192.0.2.9/32"), t0.Add(time.Second), "engine")

	f.Unban(prefix("2001:db8::/64")) // an IPv6 flood ban covers the /64
	if len(ended) != 1 || ended[0].Prefix != prefix("2001:db8::/64") || ended[0].Ended != EndLifted ||
		!ended[0].Flood || !strings.Contains(ended[0].Reason, "flood") {
		t.Fatalf("after Unban: %+v", ended)
	}
	f.Unban(prefix("2001:db8::/64")) // nothing left to lift
	if len(ended) != 1 {
		t.Fatalf("a second Unban reported again: %+v", ended)
	}

	clk.Advance(time.Minute)
	if got := f.Check(byPacket, []byte(invite)); got != Pass {
		t.Fatalf("after the ban: %v", got)
	}
	if len(ended) != 2 || ended[1].Prefix != prefix("192.0.2.1/32") || ended[1].Ended != EndExpired ||
		!ended[1].Until.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after the next packet: %+v", ended)
	}
	f.Sweep(clk.Now())
	if len(ended) != 3 || ended[2].Prefix != prefix("192.0.2.2/32") || ended[2].Ended != EndExpired {
		t.Fatalf("after Sweep (the engine's ban must not be reported): %+v", ended)
	}
	f.Sweep(clk.Now())
	f.Check(byPacket, []byte(invite))
	if len(ended) != 3 {
		t.Fatalf("reported twice: %+v", ended)
	}
}

// TopBans keeps the n bans ending last (addresses and CIDRs alike), skips
// ended ones, and sees a change at once.
func TestTopBans(t *testing.T) {
	f, clk := newFilter(t, Config{})
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		f.Ban(netip.PrefixFrom(a, 32), t0.Add(time.Duration(i+1)*time.Minute), "test")
	}
	f.Ban(prefix("203.0.113.0/24"), t0.Add(2000*time.Minute), "cidr")
	top := f.TopBans(10)
	if len(top) != 10 || top[0].Prefix != prefix("203.0.113.0/24") || top[1].Prefix != prefix("198.51.3.231/32") ||
		top[9].Prefix != prefix("198.51.3.223/32") {
		t.Fatalf("top 10 = %v", top)
	}
	if again := f.TopBans(10); &again[0] != &top[0] {
		t.Error("unchanged bans were walked again")
	}
	f.Unban(prefix("203.0.113.0/24"))
	if top = f.TopBans(10); top[0].Prefix != prefix("198.51.3.231/32") {
		t.Fatalf("after an unban, top = %v", top[0])
	}
	clk.Advance(999*time.Minute + time.Second)
	if top = f.TopBans(10); len(top) != 1 || top[0].Prefix != prefix("198.51.3.231/32") {
		t.Fatalf("after most bans ended, top = %v", top)
	}
}

func BenchmarkTopBans65536(b *testing.B) {
	f, _ := newFilter(b, Config{})
	for i := range 65536 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		f.Ban(netip.PrefixFrom(a, 32), t0.Add(time.Duration(i+1)*time.Second), "test")
	}
	for i := 0; b.Loop(); i++ {
		f.Ban(prefix("192.0.2.1/32"), t0.Add(time.Duration(i+1)*time.Second), "test") // a change each time
		f.TopBans(256)
	}
}

// An IPv6 flooder rotating through the addresses of its /64 is counted and
// banned as the /64: one ban, not one per address (which would exhaust
// MaxFloodBans); its neighbour /64 is not touched.
func TestIPv6FloodIsBannedPerSlash64(t *testing.T) {
	f, _ := newFilter(t, Config{FloodRequests: 5, MaxFloodBans: 2, FloodBan: time.Minute})
	var bans []Ban
	f.OnBan(func(b Ban) { bans = append(bans, b) })
	var last Verdict
	for i := range 50 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 8: byte(i), 15: byte(i + 1)})
		last = f.Check(a, []byte(invite))
	}
	if last != DropBanned || len(bans) != 1 || bans[0].Prefix != prefix("2001:db8:0:1::/64") {
		t.Fatalf("last verdict %v, bans %v: want one ban of 2001:db8:0:1::/64", last, bans)
	}
	if _, _, ok := f.Banned(addr("2001:db8:0:1:ffff::9")); !ok {
		t.Error("another address of the /64 is not banned")
	}
	if got := f.Check(addr("2001:db8:0:2::1"), []byte(invite)); got != Pass {
		t.Errorf("the next /64: %v, want pass", got)
	}
	if got := f.TopBans(5); len(got) != 1 || got[0].Prefix != prefix("2001:db8:0:1::/64") {
		t.Errorf("TopBans = %v", got)
	}
	f.Unban(prefix("2001:db8:0:1::/64"))
	if got := f.Check(addr("2001:db8:0:1::7"), []byte(invite)); got != Pass {
		t.Errorf("after unban: %v, want pass", got)
	}
}
