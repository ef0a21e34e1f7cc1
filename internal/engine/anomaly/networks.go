package anomaly

import (
	"net/netip"
	"slices"
	"time"
)

// Networks remembers the source networks a tenant's calls come from: an
// IPv4 /24 or an IPv6 /48 per entry, with when it was first and last seen
// on an answered call and how many. A stolen credential used from
// somewhere else shows as a call from a network the tenant never used.
// Memory is bounded: past MaxNetworks the least recently used entry goes.
type Networks struct {
	first   int64 // unix seconds of the first observation: the history's start
	nets    map[netip.Prefix]*netSeen
	evicted int64 // networks dropped to stay within MaxNetworks
}

type netSeen struct {
	First, Last int64 // unix seconds
	Calls       int64
}

// MaxNetworks bounds the networks remembered per tenant.
const MaxNetworks = 1024

// NewNetworks returns an empty set.
func NewNetworks() *Networks { return &Networks{nets: map[netip.Prefix]*netSeen{}} }

// NetworkOf returns the network ip is judged by: its /24 (IPv4) or /48
// (IPv6). Addresses inside one provider allocation move around; a /24 or
// /48 is what one site keeps.
func NetworkOf(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

// Observe records an answered call from ip at t.
func (n *Networks) Observe(ip netip.Addr, t time.Time) {
	if !ip.IsValid() {
		return
	}
	at := t.Unix()
	if n.first == 0 || at < n.first {
		n.first = at
	}
	p := NetworkOf(ip)
	if s := n.nets[p]; s != nil {
		s.Calls++
		s.First, s.Last = min(s.First, at), max(s.Last, at)
		return
	}
	if len(n.nets) >= MaxNetworks {
		var old netip.Prefix
		oldest := int64(1<<63 - 1)
		for q, s := range n.nets {
			if s.Last < oldest || s.Last == oldest && q.Addr().Less(old.Addr()) {
				old, oldest = q, s.Last
			}
		}
		delete(n.nets, old)
		n.evicted++
	}
	n.nets[p] = &netSeen{First: at, Last: at, Calls: 1}
}

// History is how long the set has been learning at t: from the first
// observation to t.
func (n *Networks) History(t time.Time) time.Duration {
	if n == nil || n.first == 0 {
		return 0
	}
	return time.Duration(t.Unix()-n.first) * time.Second
}

// Known reports whether ip's network is an established one: seen on at
// least minCalls answered calls spread over at least span, so that a
// network an attacker used for an hour never becomes known.
func (n *Networks) Known(ip netip.Addr, minCalls int, span time.Duration) bool {
	if n == nil || !ip.IsValid() {
		return false
	}
	s := n.nets[NetworkOf(ip)]
	return s != nil && s.Calls >= int64(minCalls) && time.Duration(s.Last-s.First)*time.Second >= span
}

// Seen reports whether ip's network is remembered at all, established or
// not.
func (n *Networks) Seen(ip netip.Addr) bool {
	if n == nil || !ip.IsValid() {
		return false
	}
	return n.nets[NetworkOf(ip)] != nil
}

// SeenSince reports whether ip's network was seen on an answered call at
// or after since.
func (n *Networks) SeenSince(ip netip.Addr, since time.Time) bool {
	if n == nil || !ip.IsValid() {
		return false
	}
	s := n.nets[NetworkOf(ip)]
	return s != nil && s.Last >= since.Unix()
}

// Evicted returns how many networks were dropped to stay within
// MaxNetworks (since the set was made; not persisted).
func (n *Networks) Evicted() int64 { return n.evicted }

// Len returns how many networks are remembered.
func (n *Networks) Len() int { return len(n.nets) }

const networksMagic, networksVersion = "TGNW", 1

// MarshalBinary encodes the set, networks in address order so the same set
// always gives the same bytes.
func (n *Networks) MarshalBinary() ([]byte, error) {
	keys := make([]netip.Prefix, 0, len(n.nets))
	for p := range n.nets {
		keys = append(keys, p)
	}
	slices.SortFunc(keys, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return n.appendKeys(make([]byte, 0, 16+len(keys)*32), keys), nil
}

// appendBinary appends what MarshalBinary returns.
func (n *Networks) appendBinary(out []byte) []byte {
	keys := make([]netip.Prefix, 0, len(n.nets))
	for p := range n.nets {
		keys = append(keys, p)
	}
	slices.SortFunc(keys, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return n.appendKeys(out, keys)
}

func (n *Networks) appendKeys(out []byte, keys []netip.Prefix) []byte {
	out = append(out, networksMagic...)
	out = append(out, networksVersion)
	out = appendVarint(out, n.first)
	out = appendVarint(out, int64(len(keys)))
	for _, p := range keys {
		s := n.nets[p]
		b, _ := p.MarshalBinary()
		out = appendString(out, string(b))
		out = appendVarint(out, s.First)
		out = appendVarint(out, s.Last)
		out = appendVarint(out, s.Calls)
	}
	return out
}

// UnmarshalBinary decodes what MarshalBinary wrote; anything else is
// ErrCorrupt.
func (n *Networks) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	r.header(networksMagic, networksVersion)
	g := Networks{first: r.varint(), nets: map[netip.Prefix]*netSeen{}}
	k := r.count(MaxNetworks)
	for range k {
		var p netip.Prefix
		if r.err || p.UnmarshalBinary([]byte(r.string(32))) != nil || !p.IsValid() {
			return ErrCorrupt
		}
		s := &netSeen{First: r.varint(), Last: r.varint(), Calls: r.varint()}
		if s.Calls < 0 || s.Last < s.First {
			return ErrCorrupt
		}
		g.nets[NetworkOf(p.Addr())] = s
	}
	if r.err || len(r.b) != 0 {
		return ErrCorrupt
	}
	*n = g
	return nil
}

// Clone returns a deep copy.
func (n *Networks) Clone() *Networks {
	c := &Networks{first: n.first, nets: make(map[netip.Prefix]*netSeen, len(n.nets)), evicted: n.evicted}
	for p, s := range n.nets {
		v := *s
		c.nets[p] = &v
	}
	return c
}
