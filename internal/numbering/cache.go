package numbering

import (
	"hash/maphash"
	"strings"
	"sync"
)

// cache is a bounded map from dialled string to result. Each shard keeps
// two generations: new entries go into cur, and when cur is full it
// becomes old and the previous old is dropped. A hit in old is copied
// back into cur. That approximates LRU with no per-entry bookkeeping and
// never holds more than the size it was given.
type cache struct {
	seed   maphash.Seed
	shards []cacheShard
}

type cacheShard struct {
	mu       sync.Mutex
	cur, old map[string]result
	genMax   int // entries per generation
}

// newCache returns a cache holding at most size entries (at least 2).
func newCache(size int) *cache {
	size = max(size, 2)
	// Shards cut lock contention; small caches keep one so that the
	// bound stays meaningful.
	shards := 1
	if size >= 4096 {
		shards = 16
	}
	genMax := max(size/shards/2, 1)
	c := &cache{seed: maphash.MakeSeed(), shards: make([]cacheShard, shards)}
	for i := range c.shards {
		c.shards[i].genMax = genMax
		c.shards[i].cur = make(map[string]result)
	}
	return c
}

func (c *cache) shard(key string) *cacheShard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

func (c *cache) get(key string) (result, bool) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.cur[key]; ok {
		return r, true
	}
	r, ok := s.old[key]
	if ok {
		s.add(strings.Clone(key), r) // the caller's key may pin a large buffer
	}
	return r, ok
}

func (c *cache) put(key string, r result) {
	s := c.shard(key)
	s.mu.Lock()
	s.add(key, r)
	s.mu.Unlock()
}

// add stores into cur, rotating generations first when cur is full.
func (s *cacheShard) add(key string, r result) {
	if len(s.cur) >= s.genMax {
		s.old, s.cur = s.cur, make(map[string]result, s.genMax)
	}
	s.cur[key] = r
}

// len reports the number of entries, counting a key in both generations
// twice; tests use it to check the bound.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.old)
		s.mu.Unlock()
	}
	return n
}
