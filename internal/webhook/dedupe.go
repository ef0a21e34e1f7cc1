package webhook

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The dedupe index remembers every event id the ingress queued within the
// dedupe window (24 h by default), so that a provider's retry of an event
// already queued is answered 200 and not queued again.
//
// JetStream can do this alone (its duplicate window), but it keeps each id
// of the window in memory at about 120 bytes (BENCHMARKS §6): 1 GB a day
// at 100 webhooks a second. The index keeps a 16-byte digest per id
// instead, and it survives a restart; JetStream's window is then kept
// short (DedupeOverlap) and only closes the race between two copies of
// one event arriving together, both missing the index before either is
// queued.
//
// The window is cut into dedupeBuckets time buckets. The newest takes the
// new ids in a map; once a bucket is closed, its ids are sorted into a
// slice in the background, about 16 bytes an id; a bucket wholly older
// than the window is dropped with its file. Each bucket's ids are also
// appended to a file of their own (DIR/<bucket>.ids, 16 bytes an id) once
// a second, so a restart loads them back; a crash loses at most the last
// second's ids, whose events may then be queued twice (consumers are
// idempotent by id anyway).

// DedupeOverlap is the duplicate window to give the queue when the index
// is in use: longer than any publish can take, so that of two copies of
// one event arriving together the queue refuses the second.
const DedupeOverlap = 2 * time.Minute

// dedupeBuckets is how many time buckets the window is cut into: an id is
// remembered for between the window and 1/24 more.
const dedupeBuckets = 24

// maxDedupeIDs bounds the ids remembered (3.2 GB of digests); past it the
// oldest bucket is forgotten early, logged and counted. Only verified
// events add ids, at most each source's rate limit.
const maxDedupeIDs = 200_000_000

// dedupeKey is the first 16 bytes of SHA-256 of the dedupe key (source and
// event id): collisions are out of reach for 2^64 ids.
type dedupeKey struct{ hi, lo uint64 }

func keyOf(s string) dedupeKey {
	sum := sha256.Sum256([]byte(s))
	return dedupeKey{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])}
}

func (k dedupeKey) compare(o dedupeKey) int {
	if c := cmp.Compare(k.hi, o.hi); c != 0 {
		return c
	}
	return cmp.Compare(k.lo, o.lo)
}

type dedupeBucket struct {
	id      int64                  // start time / span
	open    map[dedupeKey]struct{} // until sorted is ready
	sorted  []dedupeKey            // once sealed
	pending []dedupeKey            // added, not yet written to the file
	n       int
	files   []string // the files it was loaded from, removed with it
	dropped bool
}

func (b *dedupeBucket) has(k dedupeKey) bool {
	if b.open != nil {
		_, ok := b.open[k]
		return ok
	}
	_, ok := slices.BinarySearchFunc(b.sorted, k, dedupeKey.compare)
	return ok
}

// dedupeIndex is the index; see above. Safe for concurrent use.
type dedupeIndex struct {
	dir    string // "" keeps the index in memory only
	span   time.Duration
	window time.Duration
	log    *slog.Logger

	mu       sync.RWMutex
	buckets  []*dedupeBucket // oldest first
	ids      int
	dropped  int64    // ids forgotten early because of maxDedupeIDs
	toRemove []string // files of dropped buckets, removed by the next flush
	sealing  sync.WaitGroup
	maxIDs   int

	fileMu sync.Mutex // serialises flushes: writes, then removals
}

// openDedupe loads the index kept in dir (created if need be) and drops
// the files of buckets older than the window. A damaged file is read up to
// its last whole id.
func openDedupe(dir string, window time.Duration, now time.Time, log *slog.Logger) (*dedupeIndex, error) {
	x := &dedupeIndex{dir: dir, window: window, span: max(window/dedupeBuckets, time.Second), log: log, maxIDs: maxDedupeIDs}
	if dir == "" {
		return x, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open dedupe index: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open dedupe index: %w", err)
	}
	// Files are named by the Unix second their bucket started, so they
	// are placed right whatever the window was when they were written.
	// A file from the future (the clock was set back) joins the current
	// bucket; one wholly older than the window is removed.
	oldest, current := x.bucketOf(now.Add(-window)), x.bucketOf(now)
	byID := map[int64]*dedupeBucket{}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".ids")
		sec, err := strconv.ParseInt(name, 10, 64)
		if !ok || err != nil || !e.Type().IsRegular() {
			continue
		}
		file := filepath.Join(dir, e.Name())
		id := min(x.bucketOf(time.Unix(sec, 0)), current)
		if id < oldest {
			if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("open dedupe index: %w", err)
			}
			continue
		}
		keys, err := readIDs(file, x.maxIDs)
		if err != nil {
			return nil, fmt.Errorf("open dedupe index: %w", err)
		}
		b := byID[id]
		if b == nil {
			b = &dedupeBucket{id: id}
			byID[id] = b
			x.buckets = append(x.buckets, b)
		}
		b.sorted = append(b.sorted, keys...)
		b.files = append(b.files, file)
	}
	for _, b := range x.buckets {
		slices.SortFunc(b.sorted, dedupeKey.compare)
		b.sorted = slices.CompactFunc(b.sorted, func(a, b dedupeKey) bool { return a == b })
		b.n = len(b.sorted)
		x.ids += b.n
	}
	slices.SortFunc(x.buckets, func(a, b *dedupeBucket) int { return cmp.Compare(a.id, b.id) })
	x.enforceCap()
	return x, nil
}

func (x *dedupeIndex) bucketOf(t time.Time) int64 { return t.UnixNano() / int64(x.span) }

// readIDs reads a bucket file. A torn tail (a crash in a write) is cut
// off the file, so that what is appended next is read back aligned; a file
// larger than max ids is damaged and is read as empty.
func readIDs(file string, max int) ([]dedupeKey, error) {
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size/16 > int64(max) {
		return nil, f.Truncate(0)
	}
	if size%16 != 0 {
		if err := f.Truncate(size / 16 * 16); err != nil {
			return nil, err
		}
		size = size / 16 * 16
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, err
	}
	keys := make([]dedupeKey, 0, len(data)/16)
	for i := 0; i+16 <= len(data); i += 16 {
		keys = append(keys, dedupeKey{binary.BigEndian.Uint64(data[i:]), binary.BigEndian.Uint64(data[i+8:])})
	}
	return keys, nil
}

// seen reports whether key was added within the window.
func (x *dedupeIndex) seen(k dedupeKey) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for i := len(x.buckets) - 1; i >= 0; i-- {
		if x.buckets[i].has(k) {
			return true
		}
	}
	return false
}

// add records key as queued at now.
func (x *dedupeIndex) add(k dedupeKey, now time.Time) {
	id := x.bucketOf(now)
	x.mu.Lock()
	defer x.mu.Unlock()
	n := len(x.buckets)
	if n == 0 || x.buckets[n-1].id < id || x.buckets[n-1].open == nil {
		// A sealed newest bucket means the clock went back: the new ids
		// go to a fresh bucket, never into the sealed one.
		if n > 0 {
			id = max(id, x.buckets[n-1].id)
		}
		x.roll(id, now)
		n = len(x.buckets)
	}
	// A request that took a while may carry a time of the bucket before:
	// the newest bucket takes it all the same (kept a little longer).
	b := x.buckets[n-1]
	if _, ok := b.open[k]; ok {
		return
	}
	b.open[k] = struct{}{}
	b.n++
	x.ids++
	if x.dir != "" {
		b.pending = append(b.pending, k)
	}
	if x.ids > x.maxIDs {
		x.enforceCap()
	}
}

// roll opens the bucket id, seals the one before it in the background and
// drops the buckets wholly older than the window. Called with mu held.
func (x *dedupeIndex) roll(id int64, now time.Time) {
	if n := len(x.buckets); n > 0 && x.buckets[n-1].open != nil {
		b := x.buckets[n-1]
		m := b.open // no longer written: only the newest bucket takes ids
		x.sealing.Add(1)
		go func() {
			defer x.sealing.Done()
			s := make([]dedupeKey, 0, len(m))
			for k := range m {
				s = append(s, k)
			}
			slices.SortFunc(s, dedupeKey.compare)
			x.mu.Lock()
			b.sorted, b.open = s, nil
			x.mu.Unlock()
		}()
	}
	x.buckets = append(x.buckets, &dedupeBucket{id: id, open: map[dedupeKey]struct{}{}})
	x.expireLocked(now)
}

// expire drops the buckets wholly older than the window at now, so that
// a quiet ingress forgets on time too.
func (x *dedupeIndex) expire(now time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.expireLocked(now)
}

func (x *dedupeIndex) expireLocked(now time.Time) {
	oldest := x.bucketOf(now.Add(-x.window))
	for len(x.buckets) > 0 && x.buckets[0].id < oldest {
		x.drop()
	}
}

// enforceCap forgets the oldest buckets while there are too many ids.
func (x *dedupeIndex) enforceCap() {
	for x.ids > x.maxIDs && len(x.buckets) > 1 {
		n := x.buckets[0].n
		x.drop()
		x.dropped += int64(n)
		x.log.Warn("webhook dedupe index full; the oldest ids were forgotten before the window ended", "ids", n, "limit", x.maxIDs)
	}
}

// drop removes the oldest bucket; its files are removed by the next
// flush, off the request path. Called with mu held.
func (x *dedupeIndex) drop() {
	b := x.buckets[0]
	x.buckets = x.buckets[1:]
	x.ids -= b.n
	b.pending, b.dropped = nil, true
	if x.dir != "" {
		x.toRemove = append(x.toRemove, b.files...)
		x.toRemove = append(x.toRemove, x.file(b.id))
	}
}

// file is where bucket id's new ids are appended: named by the Unix second
// the bucket starts.
func (x *dedupeIndex) file(id int64) string {
	start := time.Unix(0, id*int64(x.span))
	return filepath.Join(x.dir, strconv.FormatInt(start.Unix(), 10)+".ids")
}

// flush appends the ids added since the last flush to their buckets'
// files, then removes the files of buckets dropped meanwhile (so a file is
// never written again after its removal). The files are not synced: a
// crash may lose the last second.
func (x *dedupeIndex) flush() error {
	if x.dir == "" {
		return nil
	}
	x.fileMu.Lock()
	defer x.fileMu.Unlock()
	type batch struct {
		id   int64
		keys []dedupeKey
	}
	var todo []batch
	x.mu.Lock()
	for _, b := range x.buckets {
		if len(b.pending) > 0 {
			todo = append(todo, batch{b.id, b.pending})
			b.pending = nil
		}
	}
	remove := x.toRemove
	x.toRemove = nil
	x.mu.Unlock()
	var errs []error
	var buf []byte
	for _, t := range todo {
		buf = buf[:0]
		for _, k := range t.keys {
			buf = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(buf, k.hi), k.lo)
		}
		if err := appendWhole(x.file(t.id), buf); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range remove {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("write dedupe index: %w", err)
	}
	return nil
}

// appendWhole appends data, a whole number of ids, to file. A write that
// fails partway is cut back to the last whole id, so that the ids written
// after it are read back as written.
func appendWhole(file string, data []byte) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		if st, serr := f.Stat(); serr == nil {
			_ = f.Truncate(st.Size() / 16 * 16)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// stats returns the ids remembered and those forgotten early.
func (x *dedupeIndex) stats() (ids int, dropped int64) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.ids, x.dropped
}

// close waits for sealing to finish and writes what is pending.
func (x *dedupeIndex) close() error {
	x.sealing.Wait()
	return x.flush()
}
