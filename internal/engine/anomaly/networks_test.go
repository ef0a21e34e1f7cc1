package anomaly

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestNetworksLearnAndForget(t *testing.T) {
	n := NewNetworks()
	office := netip.MustParseAddr("198.51.100.7")
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	if n.Known(office, 1, 0) || n.History(t0) != 0 {
		t.Fatal("an empty set knows something")
	}
	n.Observe(office, t0)
	n.Observe(netip.MustParseAddr("198.51.100.200"), t0.Add(time.Hour)) // same /24
	if n.Known(office, 3, 24*time.Hour) {
		t.Error("two calls within an hour made the network known (want 3 over a day)")
	}
	n.Observe(netip.MustParseAddr("198.51.100.9"), t0.Add(25*time.Hour))
	if !n.Known(netip.MustParseAddr("198.51.100.99"), 3, 24*time.Hour) {
		t.Error("three calls over a day from one /24: not known")
	}
	if n.Known(netip.MustParseAddr("198.51.101.7"), 1, 0) {
		t.Error("the next /24 is known")
	}
	v6 := netip.MustParseAddr("2001:db8:1:2::5")
	n.Observe(v6, t0)
	if !n.Known(netip.MustParseAddr("2001:db8:1:ffff::1"), 1, 0) || n.Known(netip.MustParseAddr("2001:db8:2::1"), 1, 0) {
		t.Error("IPv6 is judged by /48")
	}
	if mapped := netip.MustParseAddr("::ffff:198.51.100.1"); !n.Known(mapped, 1, 0) {
		t.Error("an IPv4-mapped address is not its IPv4 network")
	}
	if got := n.History(t0.Add(48 * time.Hour)); got != 48*time.Hour {
		t.Errorf("history %v, want 48h", got)
	}
	// Bounded: past MaxNetworks the least recently used goes.
	for i := range MaxNetworks + 10 {
		n.Observe(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), t0.Add(time.Duration(100+i)*time.Hour))
	}
	if n.Len() != MaxNetworks {
		t.Errorf("%d networks kept, want %d", n.Len(), MaxNetworks)
	}
	if n.Known(office, 1, 0) {
		t.Error("the least recently used network survived the eviction")
	}
}

func TestNetworksRoundTrip(t *testing.T) {
	n := NewNetworks()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for i := range 20 {
		n.Observe(netip.MustParseAddr(fmt.Sprintf("192.0.%d.1", i%5)), t0.Add(time.Duration(i)*time.Hour))
	}
	n.Observe(netip.MustParseAddr("2001:db8::1"), t0)
	data, _ := n.MarshalBinary()
	var m Networks
	if err := m.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	again, _ := m.MarshalBinary()
	if string(again) != string(data) || m.Len() != 6 || !m.Known(netip.MustParseAddr("192.0.4.9"), 4, 15*time.Hour) {
		t.Errorf("round trip changed the set (%d networks)", m.Len())
	}
	for _, bad := range [][]byte{nil, []byte("TGNW"), data[:len(data)-1], append(append([]byte{}, data...), 0)} {
		if err := new(Networks).UnmarshalBinary(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("UnmarshalBinary(%d bytes) = %v; want ErrCorrupt", len(bad), err)
		}
	}
}

func FuzzNetworksUnmarshal(f *testing.F) {
	n := NewNetworks()
	n.Observe(netip.MustParseAddr("192.0.2.1"), time.Unix(1e9, 0))
	seed, _ := n.MarshalBinary()
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Networks
		if m.UnmarshalBinary(data) != nil {
			return
		}
		if m.Len() > MaxNetworks {
			t.Fatalf("%d networks decoded", m.Len())
		}
		out, _ := m.MarshalBinary()
		var again Networks
		if err := again.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-decoding what was decoded: %v", err)
		}
	})
}

func TestSnapshotRoundTrip(t *testing.T) {
	b := officeBaseline(t)
	n := NewNetworks()
	n.Observe(netip.MustParseAddr("198.51.100.7"), monday)
	in := []TenantBaselines{
		{Tenant: "acme", Networks: n, Accounts: []AccountBaseline{{"1001", b}, {"1002", NewBaseline(BaselineConfig{})}}},
		{Tenant: "empty"},
	}
	data, err := MarshalSnapshot(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := UnmarshalSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Tenant != "acme" || len(out[0].Accounts) != 2 || out[1].Networks != nil {
		t.Fatalf("decoded %+v", out)
	}
	got := out[0].Accounts[0].Baseline
	at := monday.AddDate(0, 0, 29).Add(10 * time.Hour)
	if got.Warm() != b.Warm() || got.Calls() != b.Calls() || got.Expected(at) != b.Expected(at) {
		t.Error("a baseline changed in the snapshot")
	}
	if !out[0].Networks.Known(netip.MustParseAddr("198.51.100.1"), 1, 0) {
		t.Error("the networks were lost")
	}
	for _, bad := range [][]byte{nil, []byte("TGBS\x01"), data[:len(data)-3], append(append([]byte{}, data...), 1)} {
		if _, err := UnmarshalSnapshot(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("UnmarshalSnapshot(%d bytes) = %v; want ErrCorrupt", len(bad), err)
		}
	}
}

func FuzzSnapshotUnmarshal(f *testing.F) {
	n := NewNetworks()
	n.Observe(netip.MustParseAddr("192.0.2.1"), time.Unix(1e9, 0))
	b := NewBaseline(BaselineConfig{})
	b.Observe(Call{ID: "x", Time: time.Unix(1e9, 0), E164: "+4930123", Country: "DE"})
	seed, _ := MarshalSnapshot([]TenantBaselines{{Tenant: "t", Networks: n, Accounts: []AccountBaseline{{"a", b}}}})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := UnmarshalSnapshot(data)
		if err != nil {
			return
		}
		again, err := MarshalSnapshot(out)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnmarshalSnapshot(again); err != nil {
			t.Fatalf("re-decoding what was decoded: %v", err)
		}
	})
}
