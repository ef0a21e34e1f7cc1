package sipedge

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telguard/telguard/internal/sipedge/prefilter"
)

// runBPF interprets the subset of classic BPF banProgram emits, on a
// datagram whose IP header is hdr, and returns what the kernel would:
// 0 to drop.
func runBPF(t *testing.T, prog []bpfInsn, hdr []byte) uint32 {
	t.Helper()
	var a uint32
	for pc, steps := 0, 0; pc < len(prog); pc++ {
		if steps++; steps > len(prog) {
			t.Fatal("the program loops")
		}
		in := prog[pc]
		switch in.code {
		case bpfLD | bpfB | bpfABS:
			a = uint32(hdr[int32(in.k)-netOff])
		case bpfLD | bpfW | bpfABS:
			off := int32(in.k) - netOff
			a = binary.BigEndian.Uint32(hdr[off : off+4])
		case bpfALU | bpfAND | bpfK:
			a &= in.k
		case bpfJMP | bpfJEQ | bpfK:
			if a == in.k {
				pc += int(in.jt)
			} else {
				pc += int(in.jf)
			}
		case bpfJMP | bpfJA:
			pc += int(in.k)
		case bpfRET | bpfK:
			return in.k
		default:
			t.Fatalf("instruction %d: unexpected code %#x", pc, in.code)
		}
	}
	t.Fatal("the program ran off its end")
	return 0
}

func ipHeader(a netip.Addr) []byte {
	if a.Is4() {
		h := make([]byte, 20)
		h[0] = 0x45
		src := a.As4()
		copy(h[12:], src[:])
		return h
	}
	h := make([]byte, 40)
	h[0] = 0x60
	src := a.As16()
	copy(h[8:], src[:])
	return h
}

func TestBanProgram(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ban := func(p string, d time.Duration) prefilter.Ban {
		return prefilter.Ban{Prefix: netip.MustParsePrefix(p), Until: now.Add(d)}
	}
	bans := []prefilter.Ban{
		ban("192.0.2.66/32", time.Hour),
		ban("198.51.100.0/24", time.Minute),
		ban("203.0.113.128/25", 2*time.Minute),
		ban("2001:db8::66/128", time.Hour),
		ban("2001:db8:1::/48", time.Hour),
		ban("192.0.2.99/32", -time.Second), // ended
		ban("10.0.0.0/8", time.Hour),       // covers a trusted peer: the pre-filter decides
	}
	prog, next, n := banProgram(bans, []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32")}, now, maxKernelBans)
	if n != 5 || !next.Equal(now.Add(time.Minute)) {
		t.Fatalf("held %d bans, next refresh %v; want 5 and the /24's end", n, next)
	}
	for _, tc := range []struct {
		src  string
		drop bool
	}{
		{"192.0.2.66", true},
		{"192.0.2.67", false},
		{"198.51.100.1", true},
		{"198.51.101.1", false},
		{"203.0.113.200", true},
		{"203.0.113.100", false},
		{"192.0.2.99", false},
		{"10.9.9.9", false},
		{"2001:db8::66", true},
		{"2001:db8::67", false},
		{"2001:db8:1:ffff::1", true},
		{"2001:db8:2::1", false},
		{"::1", false},
	} {
		got := runBPF(t, prog, ipHeader(netip.MustParseAddr(tc.src)))
		if (got == 0) != tc.drop {
			t.Errorf("%s: returned %#x, want drop %v", tc.src, got, tc.drop)
		}
	}

	// No bans: accept everything. Too many: the longest-lasting are held.
	prog, next, n = banProgram(nil, nil, now, maxKernelBans)
	if n != 0 || !next.IsZero() || runBPF(t, prog, ipHeader(netip.MustParseAddr("192.0.2.1"))) == 0 {
		t.Fatal("an empty ban list drops")
	}
	var many []prefilter.Ban
	for i := range maxKernelBans + 50 {
		many = append(many, ban(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}).String()+"/32", time.Duration(i+1)*time.Second))
	}
	prog, _, n = banProgram(many, nil, now, maxKernelBans)
	if n != maxKernelBans || len(prog) > maxInsn {
		t.Fatalf("held %d bans in %d instructions", n, len(prog))
	}
	if runBPF(t, prog, ipHeader(netip.MustParseAddr("100.64.1.49"))) != 0 || runBPF(t, prog, ipHeader(netip.MustParseAddr("100.64.0.0"))) == 0 {
		t.Fatal("the cap kept the wrong bans")
	}
}

// With a real socket: a banned source's datagrams are dropped by the
// kernel (the pre-filter never sees them), another source's are not, and
// when the ban is lifted the source is back.
func TestKernelDropsBannedSources(t *testing.T) {
	f, err := prefilter.New(prefilter.Config{})
	if err != nil {
		t.Fatal(err)
	}
	up := newPeer(t)
	reg := prometheus.NewRegistry()
	_, port := startGuard(t, &fakeEngine{}, up.port(), reg, func(c *Config) { c.Filter = f })
	banned, other := newPeerAt(t, "127.0.0.7"), newPeerAt(t, "127.0.0.8")
	f.Ban(netip.MustParsePrefix("127.0.0.7/32"), time.Now().Add(time.Hour), "test")
	waitKernelBans(t, reg, 1)

	seen := func() uint64 {
		s := f.Stats()
		var n uint64
		for _, c := range s.Packets {
			n += c
		}
		return n
	}
	before := seen()
	for range 20 {
		banned.send(port, invite)
	}
	other.send(port, invite)
	up.expectRequest("INVITE")
	if got := seen() - before; got != 1 {
		t.Fatalf("the pre-filter saw %d packets, want 1 (the banned source's 20 dropped in the kernel)", got)
	}

	f.Unban(netip.MustParsePrefix("127.0.0.7/32"))
	waitKernelBans(t, reg, 0)
	banned.send(port, strings.Replace(invite, "call-1@test", "call-2@test", 1))
	up.expectRequest("INVITE")
}

func waitKernelBans(t *testing.T, reg *prometheus.Registry, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "telguard_sip_kernel_bans" && len(mf.GetMetric()) == 1 &&
				mf.GetMetric()[0].GetGauge().GetValue() == float64(want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the socket filter does not hold %s bans", strconv.Itoa(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FuzzBanProgram: for any set of bans (up to 16, IPv4 and IPv6 mixed)
// and any source, the compiled filter drops exactly when one of the bans'
// prefixes covers the source. bans is read as records of one length byte
// (its top bit: IPv6) followed by the address's 4 or 16 bytes.
func FuzzBanProgram(f *testing.F) {
	f.Add([]byte{24, 192, 0, 2, 0}, []byte{192, 0, 2, 7})
	f.Add([]byte{0x80 | 127, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{32, 10, 0, 0, 1, 16, 172, 16, 0, 0, 0x80 | 64, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 198, 51, 100, 9},
		[]byte{172, 16, 9, 9})
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte, src []byte) {
		sa, ok := netip.AddrFromSlice(src)
		if !ok {
			return
		}
		sa = sa.Unmap()
		var bans []prefilter.Ban
		for len(raw) > 0 && len(bans) < 16 {
			size := 4
			if raw[0]&0x80 != 0 {
				size = 16
			}
			if len(raw) < 1+size {
				break
			}
			a, _ := netip.AddrFromSlice(raw[1 : 1+size])
			bits := int(raw[0]&0x7f) % (a.BitLen() + 1)
			raw = raw[1+size:]
			p, err := a.Prefix(bits)
			if err != nil {
				continue
			}
			bans = append(bans, prefilter.Ban{Prefix: p, Until: now.Add(time.Duration(len(bans)+1) * time.Minute)})
		}
		if len(bans) == 0 {
			return
		}
		prog, _, n := banProgram(bans, nil, now, maxKernelBans)
		if n != len(bans) {
			t.Fatalf("%d of %d bans held", n, len(bans))
		}
		covered := false
		for _, b := range bans {
			covered = covered || b.Prefix.Contains(sa)
		}
		if dropped := runBPF(t, prog, ipHeader(sa)) == 0; dropped != covered {
			t.Fatalf("bans %v, source %v: dropped %v", bans, sa, dropped)
		}
	})
}

// 256 IPv6 /128 bans, the longest program the guard builds, attach to a
// real socket, and a banned address's datagrams are dropped by the kernel.
func TestKernelHolds256IPv6Bans(t *testing.T) {
	needIPv6(t)
	f, err := prefilter.New(prefilter.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	until := time.Now().Add(time.Hour)
	for i := range maxKernelBans {
		a := netip.MustParseAddr("2001:db8::").As16()
		a[14], a[15] = byte(i>>8), byte(i)
		f.Ban(netip.PrefixFrom(netip.AddrFrom16(a), 128), until, "test")
	}
	startGuard(t, &fakeEngine{}, newPeer(t).port(), reg, func(c *Config) {
		c.Listen = []string{"udp:127.0.0.1:0", "udp:[::1]:0"}
		c.Filter = f
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := gaugeValues(t, reg, "telguard_sip_kernel_bans")
		if len(got) == 2 && got[0] == maxKernelBans && got[1] == maxKernelBans {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kernel bans per listener = %v, want %d on both", got, maxKernelBans)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if errs := counterSum(t, reg, "telguard_sip_kernel_filter_errors_total"); errs != 0 {
		t.Fatalf("the kernel refused %v filters", errs)
	}
}

func gaugeValues(t *testing.T, reg *prometheus.Registry, name string) []float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				out = append(out, m.GetGauge().GetValue())
			}
		}
	}
	return out
}

// When the kernel refuses a new filter, the old one (with a ban since
// lifted) must not stay: the lifted source gets through again, the refusal
// is counted, and refreshing goes on once the kernel takes filters again.
func TestKernelFilterRefusalDoesNotKeepLiftedBans(t *testing.T) {
	s, f, reg, up := newFilteredGuard(t)
	var refuse atomic.Bool
	s.attachFilter = func(c *net.UDPConn, prog []bpfInsn) error {
		if refuse.Load() {
			return errors.New("injected: out of memory")
		}
		return attachSocketFilter(c, prog)
	}
	port := runGuard(t, s)
	lifted := newPeerAt(t, "127.0.0.7")
	f.Ban(netip.MustParsePrefix("127.0.0.7/32"), time.Now().Add(time.Hour), "test")
	f.Ban(netip.MustParsePrefix("127.0.0.9/32"), time.Now().Add(time.Hour), "test")
	waitKernelBans(t, reg, 2)

	refuse.Store(true)
	f.Unban(netip.MustParsePrefix("127.0.0.7/32"))
	deadline := time.Now().Add(5 * time.Second)
	for counterSum(t, reg, "telguard_sip_kernel_filter_errors_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no refusal counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitKernelBans(t, reg, 0)
	lifted.send(port, invite)
	up.expectRequest("INVITE")

	refuse.Store(false)
	f.Ban(netip.MustParsePrefix("127.0.0.10/32"), time.Now().Add(time.Hour), "test")
	waitKernelBans(t, reg, 2)
}

// counterSum adds up every series of a counter vector in reg.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// A burst of bans (a distributed flood) rebuilds the socket filter at most
// once a second, not at every ban.
func TestKernelFilterRebuildsAtMostOnceASecond(t *testing.T) {
	s, f, reg, _ := newFilteredGuard(t)
	var attaches atomic.Int32
	s.attachFilter = func(c *net.UDPConn, prog []bpfInsn) error {
		attaches.Add(1)
		return attachSocketFilter(c, prog)
	}
	runGuard(t, s)
	waitKernelBans(t, reg, 0)
	start := time.Now()
	for i := range 40 {
		f.Ban(netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32), time.Now().Add(time.Hour), "test")
		time.Sleep(25 * time.Millisecond)
	}
	waitKernelBans(t, reg, 40)
	elapsed := time.Since(start)
	if n, most := attaches.Load(), int32(elapsed/kernelBanMinInterval)+2; n > most {
		t.Fatalf("%d filters attached in %v, want at most %d", n, elapsed.Round(time.Millisecond), most)
	}
}

// newFilteredGuard returns a guard on a loopback UDP port in front of a
// test peer (returned, as the PBX), with a packet filter and its own
// metrics registry; the test sets attachFilter before running it.
func newFilteredGuard(t *testing.T) (*Server, *prefilter.Filter, *prometheus.Registry, *peer) {
	t.Helper()
	f, err := prefilter.New(prefilter.Config{})
	if err != nil {
		t.Fatal(err)
	}
	up := newPeer(t)
	reg := prometheus.NewRegistry()
	s, err := New(Config{Listen: []string{"udp:127.0.0.1:0"}, Upstream: "udp:127.0.0.1:" + strconv.Itoa(up.port()),
		Tenant: "demo", Filter: f}, &fakeEngine{}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, f, reg, up
}
