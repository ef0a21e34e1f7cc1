// Package prefilter owns the SIP edge's first look at a packet: a verdict,
// taken before any SIP parsing or transaction state, on whether a raw UDP
// datagram or framed TCP/TLS message is dropped. It is the cheap layer that
// keeps banned sources, floods and garbage away from the parser.
//
// Check drops, in this order:
//
//  1. DropMalformed: the source address is not valid (the zero netip.Addr;
//     sockets never produce one).
//  2. DropBanned: the source is covered by a ban in force, of a single
//     address or a CIDR (Ban, or the flood detector).
//  3. DropCountry: a country filter is set (SetCountryFilter), it knows the
//     source's country, and that country is denied or not allowed. An
//     unknown country is never dropped.
//  4. DropFlood: the source sent more than FloodRequests packets within
//     FloodWindow (every packet counts, keep-alives and garbage included).
//     The packet that crosses the limit gets DropFlood and the source is
//     banned for FloodBan, so later packets get DropBanned.
//  5. DropOversized: the packet is longer than MaxPacketBytes.
//  6. DropMalformed: the packet is empty, or its start line does not have
//     the shape RFC 3261 §25.1 gives it (see below).
//
// Sources in Config.Trusted (carriers, the PBX) skip steps 2–4: they are
// never banned, geo-filtered or flood-limited, but their packets must still
// fit and look like SIP, since the parser could do nothing else with them.
//
// The start-line check reads only the first line, within the first 1024
// bytes of the packet, and is no stricter than the RFC 3261 grammar, so valid
// SIP is never dropped. Leading CR and LF bytes are skipped (RFC 3261 §7.5);
// a packet made only of CR and LF bytes ("\r\n\r\n" ping, "\r\n" pong, RFC
// 5626) is a keep-alive and gets PassKeepAlive. Otherwise the first line must
// end in CRLF within those 1024 bytes and be one of:
//
//	Method SP Request-URI SP SIP-Version   request line
//	SIP-Version SP 3DIGIT SP Reason-Phrase status line
//
// where Method is one or more RFC 3261 token characters, Request-URI is one
// or more bytes other than SP, control characters and DEL and contains a
// ':' (every absolute URI has a scheme), SIP-Version is "SIP/2.0" in any
// case, and Reason-Phrase (possibly empty) has no control character other
// than HTAB and no DEL. Bytes of 0x80 and above (UTF-8) are allowed in the
// Request-URI and Reason-Phrase; the parser decides about them. Everything
// after the first line is left to the parser. So, for example, these are
// dropped: a request line with two spaces between elements or a space after
// the version (RFC 4475 "lwsstart", "trws"), a missing or non-2.0 version
// ("test", "badvers"), a status code that is not three digits ("bigcode"),
// a first line ended by a bare LF, a NUL or other control byte in the first
// line, and binary protocols on the SIP port (STUN keep-alives included:
// the edge cannot answer them).
//
// Check is safe for concurrent use and allocates nothing in steady state. A
// keyed hash of the source picks one of up to 64 shards, each with its own
// lock, its single-address bans (one map probe) and a fixed table of flood
// counters (one 8-entry set); CIDR bans and trusted prefixes cost one map
// probe per prefix length present. Memory is fixed at New for the flood
// counters and bounded by MaxFloodBans for the bans the detector makes.
package prefilter

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrInvalidConfig is wrapped by every error New returns.
var ErrInvalidConfig = errors.New("invalid prefilter configuration")

// Defaults for the zero values of Config.
const (
	DefaultMaxPacketBytes = 8192
	DefaultFloodRequests  = 64
	DefaultFloodWindow    = 2 * time.Second
	DefaultFloodBan       = 5 * time.Minute
	DefaultMaxSources     = 65536
	DefaultMaxFloodBans   = 65536
)

// SweepInterval is how often Run removes expired bans and idle sources.
const SweepInterval = 10 * time.Second

// Config configures a Filter. Zero values take the defaults above.
type Config struct {
	// MaxPacketBytes is the longest packet or message let through. UDP SIP
	// should stay under ~1300 bytes to avoid fragmentation, but INVITEs with
	// rich SDP exceed that, so the default is 8192.
	MaxPacketBytes int
	// FloodRequests is how many packets one source may send within
	// FloodWindow; one more bans it (like Kamailio's pike module).
	FloodRequests int
	// FloodWindow is the window FloodRequests is counted over.
	FloodWindow time.Duration
	// FloodBan is how long the flood detector bans a source.
	FloodBan time.Duration
	// MaxSources bounds the sources the flood detector tracks at once. It is
	// rounded down to a multiple of 8; at least 8. Memory is about 64 bytes
	// per source, allocated once by New.
	MaxSources int
	// MaxFloodBans bounds the single-address bans the flood detector holds
	// at once (give or take one per concurrent Check), so a flood from many
	// (spoofed) sources cannot grow the ban table without bound. At the
	// limit a flooding source is not banned but still throttled: its packets
	// above FloodRequests per window get DropFlood. Ended bans count until
	// removed (Check removes an address's on its next packet; Run sweeps
	// every SweepInterval). Bans made with Ban are not limited: the engine
	// bounds them.
	MaxFloodBans int
	// Trusted sources (carriers, the PBX) are never banned, geo-filtered or
	// flood-limited.
	Trusted []netip.Prefix
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verdict is what Check decided about a packet.
type Verdict uint8

// Verdicts. Pass and PassKeepAlive let the packet through; the rest drop it.
const (
	Pass          Verdict = iota // hand to the SIP parser
	PassKeepAlive                // CRLF keep-alive (RFC 5626): answer or ignore, do not parse
	DropBanned                   // source covered by a ban in force
	DropFlood                    // source over the flood limit (and now banned)
	DropOversized                // longer than MaxPacketBytes
	DropMalformed                // empty, no valid source, or start line not SIP-shaped
	DropCountry                  // source in a denied country
	numVerdicts
)

var verdictNames = [numVerdicts]string{"pass", "pass_keepalive", "drop_banned", "drop_flood", "drop_oversized", "drop_malformed", "drop_country"}

// String returns the verdict's metric label, e.g. "drop_flood".
func (v Verdict) String() string {
	if v < numVerdicts {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Drop reports whether the packet is to be dropped.
func (v Verdict) Drop() bool { return v >= DropBanned }

// Ban is a ban in force, or, as OnUnban reports it, one that ended.
type Ban struct {
	Prefix netip.Prefix // a single address is a /32 or /128
	Until  time.Time
	Reason string
	Flood  bool // made by the flood detector, not by Ban
	// Ended is "" for a ban in force; in what OnUnban reports it is
	// EndExpired (Until passed) or EndLifted (Unban ended it before).
	Ended string
}

// Why a ban ended, in Ban.Ended.
const (
	EndExpired = "expired"
	EndLifted  = "lifted"
)

// Stats is a snapshot of a Filter's counters.
type Stats struct {
	Packets          [numVerdicts]uint64 // packets checked, indexed by Verdict
	Tracked          int                 // sources the flood detector holds state for
	Capacity         int                 // most sources it can hold (MaxSources rounded down)
	Evicted          uint64              // sources whose state was dropped for room while their window was still open
	Bans             int                 // bans in force (addresses and prefixes)
	FloodBans        uint64              // bans made by the flood detector
	FloodBansRefused uint64              // floods throttled but not banned because MaxFloodBans bans were held
}

// Filter is the pre-filter. Make one with New.
type Filter struct {
	maxPacket     int
	floodRequests int64
	slotWidth     int64 // FloodWindow / floodSlots, nanoseconds
	banFor        time.Duration
	maxFloodBans  int64
	floodReason   string
	now           func() time.Time
	seed          maphash.Seed
	trusted       *prefixTable // read-only after New

	shards        []shard
	setsPerShard  uint64
	capacity      int
	cidrMu        sync.Mutex                  // serialises CIDR ban writers
	cidrs         atomic.Pointer[prefixTable] // copy on write; nil when none
	country       atomic.Pointer[countryFilter]
	onBan         atomic.Pointer[func(Ban)]
	onUnban       atomic.Pointer[func(Ban)]
	floodBansHeld atomic.Int64 // flood bans in the shards' maps
	floodBans     atomic.Uint64
	floodRefused  atomic.Uint64
	version       atomic.Uint64 // see BanVersion

	topMu      sync.Mutex // TopBans' cache
	topVersion uint64
	topN       int
	top        []Ban
}

// shard holds the state of the sources whose hash falls in it. Padding keeps
// two shards' hot words off one cache line.
type shard struct {
	mu      sync.Mutex
	bans    map[banKey]banEntry // single addresses (As16 of the unmapped address) and IPv6 /64 flood bans
	table   sourceTable
	packets [numVerdicts]atomic.Uint64
	evicted uint64 // under mu
	_       [64]byte
}

type banEntry struct {
	until  int64 // unix nanoseconds
	reason string
	flood  bool
}

type countryFilter struct {
	lookup  func(netip.Addr) (string, bool)
	denied  map[string]struct{} // upper case; nil when none
	allowed map[string]struct{} // upper case; nil: every country not denied
}

// New returns a Filter for cfg.
func New(cfg Config) (*Filter, error) {
	def := func(v *int, d int, name string) error {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			return fmt.Errorf("%w: %s %d is negative", ErrInvalidConfig, name, *v)
		}
		return nil
	}
	for _, c := range []struct {
		v    *int
		d    int
		name string
	}{
		{&cfg.MaxPacketBytes, DefaultMaxPacketBytes, "max packet bytes"},
		{&cfg.FloodRequests, DefaultFloodRequests, "flood requests"},
		{&cfg.MaxSources, DefaultMaxSources, "max sources"},
		{&cfg.MaxFloodBans, DefaultMaxFloodBans, "max flood bans"},
	} {
		if err := def(c.v, c.d, c.name); err != nil {
			return nil, err
		}
	}
	if cfg.FloodWindow == 0 {
		cfg.FloodWindow = DefaultFloodWindow
	}
	if cfg.FloodBan == 0 {
		cfg.FloodBan = DefaultFloodBan
	}
	if cfg.FloodWindow < time.Millisecond {
		return nil, fmt.Errorf("%w: flood window %v below 1ms", ErrInvalidConfig, cfg.FloodWindow)
	}
	if cfg.FloodBan < 0 {
		return nil, fmt.Errorf("%w: flood ban %v is negative", ErrInvalidConfig, cfg.FloodBan)
	}
	if cfg.MaxSources < ways {
		return nil, fmt.Errorf("%w: max sources %d below %d", ErrInvalidConfig, cfg.MaxSources, ways)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	trusted := &prefixTable{}
	for _, p := range cfg.Trusted {
		np, ok := normalize(p)
		if !ok {
			return nil, fmt.Errorf("%w: trusted prefix %q", ErrInvalidConfig, p)
		}
		trusted.put(np, banEntry{until: math.MaxInt64})
	}

	sets := cfg.MaxSources / ways
	nShards := min(64, sets)
	perShard := sets / nShards
	f := &Filter{
		maxPacket:     cfg.MaxPacketBytes,
		floodRequests: int64(cfg.FloodRequests),
		slotWidth:     int64(cfg.FloodWindow) / floodSlots,
		banFor:        cfg.FloodBan,
		maxFloodBans:  int64(cfg.MaxFloodBans),
		floodReason:   fmt.Sprintf("flood: more than %d packets in %v", cfg.FloodRequests, cfg.FloodWindow),
		now:           cfg.Now,
		seed:          maphash.MakeSeed(),
		shards:        make([]shard, nShards),
		setsPerShard:  uint64(perShard),
		capacity:      nShards * perShard * ways,
	}
	if !trusted.empty() {
		f.trusted = trusted
	}
	for i := range f.shards {
		f.shards[i].bans = make(map[banKey]banEntry)
		f.shards[i].table.init(perShard)
	}
	return f, nil
}

// Check returns the verdict for pkt from src. See the package comment for
// what is dropped and in which order.
func (f *Filter) Check(src netip.Addr, pkt []byte) Verdict {
	if !src.IsValid() {
		f.shards[0].packets[DropMalformed].Add(1)
		return DropMalformed
	}
	key := src.As16() // IPv4 and IPv4-mapped IPv6 give the same key; zone dropped
	a := netip.AddrFrom16(key).Unmap()
	h := f.hash(netKey(key)) // an IPv6 source is counted with its /64
	sh := f.shardFor(h)
	v := Pass
	if f.trusted == nil || !f.trusted.contains(a) {
		v = f.screen(sh, h, a, key)
	}
	if v == Pass {
		v = classify(pkt, f.maxPacket)
	}
	sh.packets[v].Add(1)
	return v
}

// screen applies the source checks: bans, country, flood.
func (f *Filter) screen(sh *shard, h uint64, a netip.Addr, key [16]byte) Verdict {
	t := f.now()
	now := t.UnixNano()
	if c := f.cidrs.Load(); c != nil && c.match(a, now) {
		return DropBanned
	}
	fkey := banKey{a: netKey(key), net: !a.Is4()}
	sh.mu.Lock()
	for _, k := range [2]banKey{{a: key}, fkey} {
		b, ok := sh.bans[k]
		if !ok {
			continue
		}
		if now < b.until {
			sh.mu.Unlock()
			return DropBanned
		}
		f.deleteBan(sh, k, b)
		if b.flood {
			// Rare (once per ban): report outside the lock.
			sh.mu.Unlock()
			f.reportUnban(b.public(k.prefix()), EndExpired)
			sh.mu.Lock()
		}
	}
	if cf := f.country.Load(); cf != nil {
		// The lookup may be slow (an mmdb read): not under the lock.
		sh.mu.Unlock()
		if cf.denies(a) {
			return DropCountry
		}
		sh.mu.Lock()
	}
	set := &sh.table.sets[mulHi(h>>32, f.setsPerShard)]
	n, forgot := sh.table.count(set, fkey.a, floorDiv(now, f.slotWidth))
	if forgot {
		sh.evicted++
	}
	if n <= f.floodRequests {
		sh.mu.Unlock()
		return Pass
	}
	var ban Ban
	banned := false
	if f.floodBansHeld.Load() < f.maxFloodBans {
		until := t.Add(f.banFor)
		sh.bans[fkey] = banEntry{until: unixNano(until), reason: f.floodReason, flood: true}
		f.version.Add(1)
		f.floodBansHeld.Add(1)
		f.floodBans.Add(1)
		sh.table.forget(set, fkey.a) // the ban takes over; start afresh when it ends
		ban = Ban{Prefix: fkey.prefix(), Until: until, Reason: f.floodReason, Flood: true}
		banned = true
	} else {
		f.floodRefused.Add(1)
	}
	sh.mu.Unlock()
	if banned {
		if fn := f.onBan.Load(); fn != nil {
			(*fn)(ban)
		}
	}
	return DropFlood
}

// OnBan sets the function called, synchronously from Check and outside any
// lock, each time the flood detector bans a source; nil removes it. It must
// not block: hand the ban off (e.g. a non-blocking channel send).
func (f *Filter) OnBan(fn func(Ban)) {
	if fn == nil {
		f.onBan.Store(nil)
		return
	}
	f.onBan.Store(&fn)
}

// OnUnban sets the function called each time a ban the flood detector
// made ends: it expired (noticed on the source's next packet or by Sweep,
// so Until says when it really ended) or Unban lifted it. Bans made with
// Ban are not reported: whoever made them knows when they end. nil removes
// it. Like OnBan it runs outside any lock and must not block.
func (f *Filter) OnUnban(fn func(Ban)) {
	if fn == nil {
		f.onUnban.Store(nil)
		return
	}
	f.onUnban.Store(&fn)
}

func (f *Filter) reportUnban(b Ban, why string) {
	if fn := f.onUnban.Load(); fn != nil {
		b.Ended = why
		(*fn)(b)
	}
}

// SetCountryFilter drops packets from sources that lookup places in a
// denied country: one in denied, or, when allowed is not empty, one not in
// allowed. Codes are ISO 3166-1 alpha-2, compared case-insensitively. A
// source lookup cannot place is let through by a deny list; an allow list
// lets it through only when it is not a public address (private, CGNAT,
// loopback, link-local: see public). A nil lookup, or empty denied and
// allowed lists, turns the filter off. lookup is called for every packet
// of an unbanned, untrusted source, outside the filter's locks: it must be
// cheap and safe for concurrent use (*geoip.Reader's Lookup is).
func (f *Filter) SetCountryFilter(lookup func(netip.Addr) (country string, ok bool), denied, allowed []string) {
	if lookup == nil || len(denied)+len(allowed) == 0 {
		f.country.Store(nil)
		return
	}
	set := func(codes []string) map[string]struct{} {
		if len(codes) == 0 {
			return nil
		}
		m := make(map[string]struct{}, len(codes))
		for _, c := range codes {
			m[strings.ToUpper(strings.TrimSpace(c))] = struct{}{}
		}
		return m
	}
	f.country.Store(&countryFilter{lookup: lookup, denied: set(denied), allowed: set(allowed)})
}

func (cf *countryFilter) denies(a netip.Addr) bool {
	c, ok := cf.lookup(a)
	if !ok || c == "" {
		// An allow list lets in only what it names: a public address the
		// database cannot place is not on it. Private, CGNAT, loopback and
		// link-local sources stay (no database places them).
		return cf.allowed != nil && public(a)
	}
	var buf [8]byte
	if len(c) > len(buf) {
		return cf.allowed != nil
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		buf[i] = b
	}
	// Map index by converted bytes: no allocation.
	if _, ok := cf.denied[string(buf[:len(c)])]; ok {
		return true
	}
	if cf.allowed == nil {
		return false
	}
	_, ok = cf.allowed[string(buf[:len(c)])]
	return !ok
}

// Stats returns the counters. It takes each shard's lock briefly.
func (f *Filter) Stats() Stats {
	s := Stats{
		Capacity:         f.capacity,
		FloodBans:        f.floodBans.Load(),
		FloodBansRefused: f.floodRefused.Load(),
	}
	now := f.now().UnixNano()
	for i := range f.shards {
		sh := &f.shards[i]
		for v := range s.Packets {
			s.Packets[v] += sh.packets[v].Load()
		}
		sh.mu.Lock()
		s.Tracked += sh.table.tracked
		s.Evicted += sh.evicted
		for _, b := range sh.bans {
			if now < b.until {
				s.Bans++
			}
		}
		sh.mu.Unlock()
	}
	if c := f.cidrs.Load(); c != nil {
		c.each(func(_ netip.Prefix, b banEntry) {
			if now < b.until {
				s.Bans++
			}
		})
	}
	return s
}

// Sweep removes the bans that ended by now and forgets sources idle for a
// whole window, so memory returns after a flood. Check treats both as absent
// anyway; Sweep only frees them. Run calls it every SweepInterval.
func (f *Filter) Sweep(now time.Time) {
	n := now.UnixNano()
	slot := floorDiv(n, f.slotWidth)
	var ended []Ban
	for i := range f.shards {
		sh := &f.shards[i]
		sh.mu.Lock()
		for k, b := range sh.bans {
			if n >= b.until {
				f.deleteBan(sh, k, b)
				if b.flood {
					ended = append(ended, b.public(k.prefix()))
				}
			}
		}
		sh.table.sweep(slot)
		sh.mu.Unlock()
		for _, b := range ended {
			f.reportUnban(b, EndExpired)
		}
		ended = ended[:0]
	}
	f.cidrMu.Lock()
	defer f.cidrMu.Unlock()
	old := f.cidrs.Load()
	if old == nil {
		return
	}
	next, expired := &prefixTable{}, false
	old.each(func(p netip.Prefix, b banEntry) {
		if n >= b.until {
			expired = true
			return
		}
		next.put(p, b)
	})
	if expired {
		f.storeCIDRs(next)
	}
}

// Run sweeps every SweepInterval until ctx is done, then returns nil.
func (f *Filter) Run(ctx context.Context) error {
	tick := time.NewTicker(SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			f.Sweep(f.now())
		}
	}
}

// hash is keyed by a per-Filter random seed, so an attacker cannot aim
// spoofed sources at one shard or set. Its low half picks the shard, its high
// half the set within the shard.
func (f *Filter) hash(key [16]byte) uint64 { return maphash.Bytes(f.seed, key[:]) }

func (f *Filter) shardFor(h uint64) *shard {
	return &f.shards[mulHi(uint64(uint32(h)), uint64(len(f.shards)))]
}

// mulHi maps x uniformly onto [0, n) for x uniform in [0, 2^32).
func mulHi(x, n uint64) uint64 {
	hi, _ := bits.Mul64(x<<32, n)
	return hi
}

// floorDiv divides rounding toward negative infinity, so slot numbers stay
// monotonic across the Unix epoch (test clocks).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// cgnat is RFC 6598 shared address space: not public, though
// netip.Addr.IsPrivate does not say so.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// public reports a global unicast address outside private (RFC 1918, IPv6
// ULA) and CGNAT space: one a country database should place.
func public(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a)
}
