package prefilter

// The flood detector counts packets per source in a fixed-size,
// set-associative table: a source's hash picks a set of 8 entries; a source
// not in its set takes a free entry or the least recently used one. Memory is
// allocated once by New and never grows, whatever the number of distinct
// sources. With a keyed hash an attacker
// cannot aim spoofed sources at a set, so to make the table forget a real
// flooding source, 8 other sources must land in its set between two of its
// packets: with the default 8192 sets and a source at the slowest flooding
// rate (32 packets/s), that takes over 2 million spoofed packets per second;
// a faster flooder needs proportionally more. Eviction of a source whose
// window is still open is counted in Stats.Evicted.
//
// Each entry counts in 8 slots of FloodWindow/8. The count for a packet is
// the sum of its own slot and the 7 before it, which covers between 7/8 of
// the window and all of it, never more. So a source is banned only if more
// than FloodRequests of its packets arrived within less than FloodWindow (no
// false bans), and always once more than FloodRequests arrive within
// 7/8 of FloodWindow.

const (
	ways       = 8 // entries per set
	floodSlots = 8 // slots per window
)

// set is one set of the table, laid out by field so a lookup reads the
// stamps and addresses (three cache lines) and writes one entry's counters.
// 512 bytes, pointer-free so the GC never scans the table.
type set struct {
	addr  [ways][16]byte
	stamp [ways]uint64 // recency in the shard; 0 marks a free entry
	last  [ways]int64  // slot number of the newest packet counted
	n     [ways]counts
}

type counts [floodSlots]uint32

type sourceTable struct {
	sets    []set
	tick    uint64
	tracked int
}

func (t *sourceTable) init(sets int) { t.sets = make([]set, sets) }

// count adds a packet from key at slot to s and returns the source's count
// over the window, and whether room was made by dropping a source whose
// window was still open.
func (t *sourceTable) count(s *set, key [16]byte, slot int64) (n int64, forgot bool) {
	t.tick++
	victim := 0
	for i := range ways {
		if s.stamp[i] != 0 && s.addr[i] == key {
			s.stamp[i] = t.tick
			return s.n[i].add(&s.last[i], slot), false
		}
		if s.stamp[victim] != 0 && (s.stamp[i] == 0 || s.stamp[i] < s.stamp[victim]) {
			victim = i
		}
	}
	if s.stamp[victim] == 0 {
		t.tracked++
	} else {
		forgot = slot-s.last[victim] < floodSlots
	}
	s.addr[victim], s.stamp[victim], s.last[victim] = key, t.tick, slot
	s.n[victim] = counts{}
	s.n[victim][slotIndex(slot)] = 1
	return 1, forgot
}

// forget frees key's entry, if any.
func (t *sourceTable) forget(s *set, key [16]byte) {
	for i := range ways {
		if s.stamp[i] != 0 && s.addr[i] == key {
			s.stamp[i] = 0
			t.tracked--
			return
		}
	}
}

// sweep frees the entries with nothing counted in the window ending at slot.
func (t *sourceTable) sweep(slot int64) {
	for j := range t.sets {
		s := &t.sets[j]
		for i := range ways {
			if s.stamp[i] != 0 && slot-s.last[i] >= floodSlots {
				s.stamp[i] = 0
				t.tracked--
			}
		}
	}
}

// add counts a packet at slot, where *last is the newest slot counted, and
// returns the count over the window. A slot older than *last (the clock
// stepped back) counts in *last.
func (c *counts) add(last *int64, slot int64) int64 {
	if slot > *last {
		if slot-*last >= floodSlots {
			*c = counts{}
		} else {
			for s := *last + 1; s <= slot; s++ {
				c[slotIndex(s)] = 0
			}
		}
		*last = slot
	}
	i := slotIndex(*last)
	if c[i] < ^uint32(0) {
		c[i]++
	}
	var sum int64
	for _, n := range c {
		sum += int64(n)
	}
	return sum
}

func slotIndex(slot int64) uint64 { return uint64(slot) % floodSlots }
