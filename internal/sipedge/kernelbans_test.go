package sipedge

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
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
	prog, next, n := banProgram(bans, []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32")}, now)
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
	prog, next, n = banProgram(nil, nil, now)
	if n != 0 || !next.IsZero() || runBPF(t, prog, ipHeader(netip.MustParseAddr("192.0.2.1"))) == 0 {
		t.Fatal("an empty ban list drops")
	}
	var many []prefilter.Ban
	for i := range maxKernelBans + 50 {
		many = append(many, ban(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}).String()+"/32", time.Duration(i+1)*time.Second))
	}
	prog, _, n = banProgram(many, nil, now)
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

// FuzzBanProgram: for any ban and any source, the compiled filter drops
// exactly when the ban's prefix covers the source.
func FuzzBanProgram(f *testing.F) {
	f.Add([]byte{192, 0, 2, 0}, uint8(24), []byte{192, 0, 2, 7})
	f.Add([]byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(127), []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ban []byte, bits uint8, src []byte) {
		ba, ok1 := netip.AddrFromSlice(ban)
		sa, ok2 := netip.AddrFromSlice(src)
		if !ok1 || !ok2 {
			return
		}
		ba, sa = ba.Unmap(), sa.Unmap()
		p, err := ba.Prefix(int(bits) % (ba.BitLen() + 1))
		if err != nil {
			return
		}
		prog, _, n := banProgram([]prefilter.Ban{{Prefix: p, Until: now.Add(time.Hour)}}, nil, now)
		if n != 1 {
			t.Fatalf("%v not held", p)
		}
		dropped := runBPF(t, prog, ipHeader(sa)) == 0
		if dropped != p.Contains(sa) {
			t.Fatalf("ban %v, source %v: dropped %v", p, sa, dropped)
		}
	})
}
