package prefilter

import (
	"cmp"
	"container/heap"
	"math"
	"net/netip"
	"slices"
	"time"
)

// Single-address bans live in the shards' maps, beside the flood counters of
// the same sources, so a packet takes one lock. CIDR bans are few and rarely
// change (operator and engine decisions; the flood detector bans addresses
// only), so they live in one read-only table swapped on each change, which
// Check reads without a lock.

// Ban bans p (an address or a CIDR) until the given time; reason is kept for
// Banned and Bans. A ban replaces any earlier ban of the same prefix. An
// IPv4-mapped IPv6 prefix of /96 or longer is stored as the IPv4 prefix; an
// IPv6 prefix shorter than /96 does not cover IPv4 sources. Trusted sources
// are never dropped, banned or not. An invalid prefix is ignored.
func (f *Filter) Ban(p netip.Prefix, until time.Time, reason string) {
	p, ok := normalize(p)
	if !ok {
		return
	}
	b := banEntry{until: unixNano(until), reason: reason}
	if p.IsSingleIP() {
		key := banKey{a: p.Addr().As16()}
		sh := f.shardOf(key.a)
		sh.mu.Lock()
		if old, ok := sh.bans[key]; ok {
			f.deleteBan(sh, key, old)
		}
		sh.bans[key] = b
		f.version.Add(1)
		sh.mu.Unlock()
		return
	}
	f.cidrMu.Lock()
	defer f.cidrMu.Unlock()
	next := f.cidrs.Load().clone()
	next.put(p, b)
	f.storeCIDRs(next)
}

// Unban lifts the ban of exactly p. Bans of other prefixes covering the same
// sources stay. Lifting a flood ban still in force is reported to OnUnban.
func (f *Filter) Unban(p netip.Prefix) {
	p, ok := normalize(p)
	if !ok {
		return
	}
	key := banKey{a: p.Addr().As16()}
	if p.Addr().Is6() && p.Bits() == 64 {
		// A flood ban of a /64 (see Check) lives with the addresses.
		key.net = true
		sh := f.shardOf(key.a)
		sh.mu.Lock()
		old, ok := sh.bans[key]
		if ok {
			f.deleteBan(sh, key, old)
		}
		sh.mu.Unlock()
		if ok && old.flood {
			f.reportUnban(old.public(p), EndLifted)
		}
	}
	if p.IsSingleIP() {
		sh := f.shardOf(key.a)
		sh.mu.Lock()
		old, ok := sh.bans[key]
		if ok {
			f.deleteBan(sh, key, old)
		}
		sh.mu.Unlock()
		if ok && old.flood {
			why := EndLifted
			if f.now().UnixNano() >= old.until {
				why = EndExpired
			}
			f.reportUnban(old.public(p), why)
		}
		return
	}
	f.cidrMu.Lock()
	defer f.cidrMu.Unlock()
	old := f.cidrs.Load()
	if _, ok := old.get(p); !ok {
		return
	}
	next := old.clone()
	next.remove(p)
	f.storeCIDRs(next)
}

// Banned reports the ban in force covering src, the most specific one if
// several do, whether or not src is trusted.
func (f *Filter) Banned(src netip.Addr) (until time.Time, reason string, ok bool) {
	if !src.IsValid() {
		return time.Time{}, "", false
	}
	key := src.As16()
	now := f.now().UnixNano()
	sh := f.shardOf(key)
	sh.mu.Lock()
	b, found := sh.bans[banKey{a: key}]
	if !found || now >= b.until {
		if nk := netKey(key); nk != key {
			b, found = sh.bans[banKey{a: nk, net: true}]
		}
	}
	sh.mu.Unlock()
	if !found || now >= b.until {
		_, b, found = f.cidrs.Load().lookup(netip.AddrFrom16(key).Unmap(), now)
	}
	if !found {
		return time.Time{}, "", false
	}
	return time.Unix(0, b.until), b.reason, true
}

// BanVersion changes whenever a ban is made, lifted or removed after it
// ended, so a copy of Bans (the guard's kernel socket filter) knows when
// to refresh itself.
func (f *Filter) BanVersion() uint64 { return f.version.Load() }

// Bans returns the bans in force, ordered by prefix.
func (f *Filter) Bans() []Ban {
	now := f.now().UnixNano()
	var out []Ban
	for i := range f.shards {
		sh := &f.shards[i]
		sh.mu.Lock()
		for k, b := range sh.bans {
			if now < b.until {
				out = append(out, b.public(k.prefix()))
			}
		}
		sh.mu.Unlock()
	}
	f.cidrs.Load().each(func(p netip.Prefix, b banEntry) {
		if now < b.until {
			out = append(out, b.public(p))
		}
	})
	slices.SortFunc(out, func(x, y Ban) int {
		return cmp.Or(x.Prefix.Addr().Compare(y.Prefix.Addr()), cmp.Compare(x.Prefix.Bits(), y.Prefix.Bits()))
	})
	return out
}

// TopBans returns at most n of the bans in force, those ending last
// first: what the guard's kernel socket filter holds. It keeps only n while
// it walks the shards (a bounded heap, not a copy and sort of every ban),
// and answers from a cache until the bans change, so several listeners
// refreshing at once cost one walk. The slice is shared: do not modify it.
func (f *Filter) TopBans(n int) []Ban {
	if n <= 0 {
		return nil
	}
	f.topMu.Lock()
	defer f.topMu.Unlock()
	v := f.version.Load()
	now := f.now().UnixNano()
	if f.top != nil && v == f.topVersion && n == f.topN && (len(f.top) == 0 || now < f.top[len(f.top)-1].Until.UnixNano()) {
		return f.top
	}
	h := make(banHeap, 0, n)
	offer := func(p netip.Prefix, b banEntry) {
		if now >= b.until {
			return
		}
		if len(h) < n {
			heap.Push(&h, b.public(p))
			return
		}
		if b.until > h[0].Until.UnixNano() {
			h[0] = b.public(p)
			heap.Fix(&h, 0)
		}
	}
	for i := range f.shards {
		sh := &f.shards[i]
		sh.mu.Lock()
		for k, b := range sh.bans {
			if now < b.until && (len(h) < n || b.until > h[0].Until.UnixNano()) {
				offer(k.prefix(), b)
			}
		}
		sh.mu.Unlock()
	}
	f.cidrs.Load().each(offer)
	out := []Ban(h)
	slices.SortFunc(out, func(x, y Ban) int {
		return cmp.Or(y.Until.Compare(x.Until), x.Prefix.Addr().Compare(y.Prefix.Addr()), cmp.Compare(x.Prefix.Bits(), y.Prefix.Bits()))
	})
	if out == nil {
		out = []Ban{}
	}
	f.top, f.topVersion, f.topN = out, v, n
	return out
}

// banHeap is a min-heap of bans by end.
type banHeap []Ban

func (h banHeap) Len() int           { return len(h) }
func (h banHeap) Less(i, j int) bool { return h[i].Until.Before(h[j].Until) }
func (h banHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *banHeap) Push(x any)        { *h = append(*h, x.(Ban)) }
func (h *banHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	*h = old[:len(old)-1]
	return b
}

// unixNano is t.UnixNano, saturating outside the years 1678–2262 where
// UnixNano is undefined, so a ban "until the year 3000" stays in force.
func unixNano(t time.Time) int64 {
	switch {
	case t.After(maxNano):
		return math.MaxInt64
	case t.Before(minNano):
		return math.MinInt64
	}
	return t.UnixNano()
}

var (
	maxNano = time.Unix(0, math.MaxInt64)
	minNano = time.Unix(0, math.MinInt64)
)

func (b banEntry) public(p netip.Prefix) Ban {
	return Ban{Prefix: p, Until: time.Unix(0, b.until), Reason: b.reason, Flood: b.flood}
}

// shardOf is the shard of an address (As16): that of its /64 for IPv6, so
// an address's bans and its /64's flood ban are under one lock.
func (f *Filter) shardOf(key [16]byte) *shard {
	return f.shardFor(f.hash(netKey(key)))
}

// banKey keys the shards' bans: an address, or (net) the IPv6 /64 a
// flood ban covers.
type banKey struct {
	a   [16]byte
	net bool
}

func (k banKey) prefix() netip.Prefix {
	a := netip.AddrFrom16(k.a).Unmap()
	if k.net {
		return netip.PrefixFrom(a, 64)
	}
	return netip.PrefixFrom(a, a.BitLen())
}

// netKey is an address's flood key (As16 form): an IPv4 address itself,
// an IPv6 address's /64. One host on IPv6 gets a /64 to pick addresses
// from; counted and banned per /128 it could rotate through them and
// exhaust MaxFloodBans.
func netKey(key [16]byte) [16]byte {
	if [12]byte(key[:12]) == [12]byte{10: 0xff, 11: 0xff} {
		return key // IPv4 (mapped)
	}
	clear(key[8:])
	return key
}

// deleteBan removes key's ban b from sh; sh.mu must be held.
func (f *Filter) deleteBan(sh *shard, key banKey, b banEntry) {
	delete(sh.bans, key)
	f.version.Add(1)
	if b.flood {
		f.floodBansHeld.Add(-1)
	}
}

// storeCIDRs publishes t; f.cidrMu must be held.
func (f *Filter) storeCIDRs(t *prefixTable) {
	if t.empty() {
		t = nil
	}
	f.cidrs.Store(t)
	f.version.Add(1)
}

// normalize returns p masked, zone-free and, when it covers IPv4-mapped
// addresses only, as an IPv4 prefix.
func normalize(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() {
		return netip.Prefix{}, false
	}
	a, n := p.Addr(), p.Bits()
	if a.Is4In6() && n >= 96 {
		a, n = a.Unmap(), n-96
	}
	return netip.PrefixFrom(a.WithZone(""), n).Masked(), true
}

// prefixTable holds prefixes of a few lengths: one map per length present,
// so a lookup costs one map probe per length, longest first. Methods on a
// nil table behave as on an empty one.
type prefixTable struct {
	v4, v6 []prefixLen // by bits, descending
}

type prefixLen struct {
	bits int
	m    map[[16]byte]banEntry // key: As16 of the masked address
}

func (t *prefixTable) empty() bool { return t == nil || len(t.v4)+len(t.v6) == 0 }

func (t *prefixTable) family(a netip.Addr) *[]prefixLen {
	if a.Is4() {
		return &t.v4
	}
	return &t.v6
}

// put adds or replaces p, which must be normalized.
func (t *prefixTable) put(p netip.Prefix, b banEntry) {
	fam := t.family(p.Addr())
	i, found := slices.BinarySearchFunc(*fam, p.Bits(), func(l prefixLen, bits int) int { return cmp.Compare(bits, l.bits) })
	if !found {
		*fam = slices.Insert(*fam, i, prefixLen{bits: p.Bits(), m: make(map[[16]byte]banEntry)})
	}
	(*fam)[i].m[p.Addr().As16()] = b
}

func (t *prefixTable) get(p netip.Prefix) (banEntry, bool) {
	if t == nil {
		return banEntry{}, false
	}
	for _, l := range *t.family(p.Addr()) {
		if l.bits == p.Bits() {
			b, ok := l.m[p.Addr().As16()]
			return b, ok
		}
	}
	return banEntry{}, false
}

func (t *prefixTable) remove(p netip.Prefix) {
	fam := t.family(p.Addr())
	for i, l := range *fam {
		if l.bits == p.Bits() {
			delete(l.m, p.Addr().As16())
			if len(l.m) == 0 {
				*fam = slices.Delete(*fam, i, i+1)
			}
			return
		}
	}
}

// lookup returns the longest prefix covering a (unmapped, zone-free) whose
// entry is still in force at now.
func (t *prefixTable) lookup(a netip.Addr, now int64) (netip.Prefix, banEntry, bool) {
	if t == nil {
		return netip.Prefix{}, banEntry{}, false
	}
	fam := t.v6
	if a.Is4() {
		fam = t.v4
	}
	for _, l := range fam {
		p, err := a.Prefix(l.bits)
		if err != nil {
			continue
		}
		if b, ok := l.m[p.Addr().As16()]; ok && now < b.until {
			return p, b, true
		}
	}
	return netip.Prefix{}, banEntry{}, false
}

func (t *prefixTable) match(a netip.Addr, now int64) bool {
	_, _, ok := t.lookup(a, now)
	return ok
}

func (t *prefixTable) contains(a netip.Addr) bool { return t.match(a, 0) }

func (t *prefixTable) each(fn func(netip.Prefix, banEntry)) {
	if t == nil {
		return
	}
	for _, l := range t.v4 {
		for k, b := range l.m {
			fn(netip.PrefixFrom(netip.AddrFrom16(k).Unmap(), l.bits), b)
		}
	}
	for _, l := range t.v6 {
		for k, b := range l.m {
			fn(netip.PrefixFrom(netip.AddrFrom16(k), l.bits), b)
		}
	}
}

func (t *prefixTable) clone() *prefixTable {
	c := &prefixTable{}
	t.each(c.put)
	return c
}
