package deliver

import (
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The outbox is an append-only log of segment files (Config.Dir/log),
// with its index in memory. Every change is a record appended to the
// newest segment: "put" stores a delivery whole (a new one, a rescheduled
// one, or one moved by compaction), "done" ends one (delivered or
// dead-lettered). Replaying the segments in order rebuilds the outbox.
//
// Writes are group-committed: whoever appends while no write is under way
// writes everything appended so far in one write(2) (and one fsync with
// Sync) and then applies it to the index; whoever appends meanwhile waits
// for that batch or the next. A put returns once its record is written —
// in the page cache, which a process crash does not lose; fsynced with
// Sync — so Forward still stores a delivery before the queue forgets its
// event. A "done" for a delivered event does not wait: lost in a crash,
// it costs one redelivery under the same webhook-id, which receivers
// deduplicate; a "done" for a dead letter waits, like the put into the
// dead-letter spool before it.
//
// Segments are closed at segmentSize and deleted from the oldest on once
// no pending delivery lives in them (only the oldest may go: its puts
// are what the "done" records of later segments cancel). A few deliveries
// retrying for hours would pin old segments, so when a segment is closed
// the live records of the oldest ones are copied forward (as puts) if
// more than half of their bytes are dead, or if the log holds more dead
// bytes than live ones plus compactSlack segments. A destination down for
// long makes a large live set with nothing dead: it is never copied.
// Copies go into a segment of their own (not a rotation, so they cannot
// trigger another compaction), at most one segment's worth per rotation,
// and are read outside mu: the log is written about twice at worst.
//
// A record is [length u32][crc32c u32][type u8][payload]; the payload is a
// put's delivery (see putRecord) or a done's id. A record cut short by a crash fails its
// length or checksum, and reading that segment stops there: the write it
// belonged to never returned. After a restart new records go to a new
// segment, never after a torn tail.
const (
	segmentSize       = 8 << 20
	compactSlack      = 4 // segments' worth of dead bytes beyond the live ones before the oldest is copied whatever its share
	maxRecord         = 4 << 20
	recordHeader      = 9
	recPut       byte = 1
	recDone      byte = 2
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errOutboxClosed means the outbox was closed.
var errOutboxClosed = errors.New("outbox closed")

type segment struct {
	id        uint64
	f         *os.File
	size      int64
	live      int   // pending deliveries whose current record is here
	liveBytes int64 // their records' bytes; the rest of size is dead
}

// loc is where a delivery's current record is.
type loc struct {
	seg uint64
	off int64
	n   int
}

type outboxEntry struct {
	loc loc
	at  time.Time // not before
}

// logOp is one record on its way to the log.
type logOp struct {
	kind byte // recPut or recDone
	id   string
	rec  []byte    // the framed record
	at   time.Time // put: not before

	seq uint64
	at2 loc // where it was written
	err error
}

type outbox struct {
	dir    string
	max    int
	sync   bool
	segMax int64 // segmentSize; smaller in tests

	mu       sync.Mutex
	cond     *sync.Cond
	index    map[string]*outboxEntry
	busy     map[string]bool // claimed, or reserved by add
	writing  map[string]bool // reserved by add, record not written yet
	due      dueHeap
	segs     []*segment // oldest first; the last is the one written
	pending  []*logOp
	flushing bool
	seq      uint64 // ops submitted
	applied  uint64 // ops written (or failed) and applied
	closed   bool
	wbuf     []byte
	written  int64 // bytes written to segments, compaction copies included
	faults   faults
	// broken is set when a failed write left bytes that could neither be
	// cut off nor left behind for a new segment: every later write fails
	// (workers nak, the queue keeps the events) until a restart, which
	// starts a new segment after them.
	broken error
	// unreadable counts records that passed their checksum and did not
	// decode when the log was opened: deliveries lost, said loudly.
	unreadable int
	// holes counts stretches of bad bytes with good records after them
	// (a machine crash without sync), skipped when the log was opened.
	holes int
}

// faults replaces file operations in tests; nil ones are the real ones.
type faults struct {
	write    func(f *os.File, b []byte, off int64) (int, error)
	truncate func(f *os.File, size int64) error
	create   func(name string) (*os.File, error)
}

// openOutbox replays the log in dir (creating it) and starts a new
// segment. Deliveries left by the file-per-delivery outbox of earlier
// versions (legacy, "" for none) are moved into the log.
func openOutbox(dir string, max int, syncWrites bool, legacy string) (*outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	o := &outbox{dir: dir, max: max, sync: syncWrites, segMax: segmentSize, index: map[string]*outboxEntry{}, busy: map[string]bool{}, writing: map[string]bool{}}
	o.cond = sync.NewCond(&o.mu)
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	var ids []uint64
	for _, de := range names {
		if n, ok := strings.CutSuffix(de.Name(), ".seg"); ok {
			if id, err := strconv.ParseUint(n, 10, 64); err == nil {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := o.replay(id); err != nil {
			o.close()
			return nil, fmt.Errorf("open outbox: %w", err)
		}
	}
	next := uint64(1)
	if len(ids) > 0 {
		next = ids[len(ids)-1] + 1
	}
	if err := o.newSegment(next); err != nil {
		o.close()
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	o.mu.Lock()
	o.dropOldLocked()
	for id, e := range o.index {
		heap.Push(&o.due, dueEntry{at: e.at, id: id})
	}
	o.mu.Unlock()
	if legacy != "" {
		if err := o.importLegacy(legacy); err != nil {
			o.close()
			return nil, fmt.Errorf("open outbox: %w", err)
		}
	}
	return o, nil
}

func (o *outbox) segPath(id uint64) string {
	return filepath.Join(o.dir, fmt.Sprintf("%016d.seg", id))
}

// goodRecord reports whether a whole record with a matching checksum
// starts at data[off:], and its length after the header's first 8 bytes.
func goodRecord(data []byte, off int) (int, bool) {
	if off+recordHeader > len(data) {
		return 0, false
	}
	n := int(binary.LittleEndian.Uint32(data[off:]))
	sum := binary.LittleEndian.Uint32(data[off+4:])
	if n < 1 || n > maxRecord || off+8+n > len(data) || crc32.Checksum(data[off+8:off+8+n], crcTable) != sum {
		return 0, false
	}
	return n, true
}

// replay reads segment id into the index. Bad bytes end it (a torn tail:
// the write they belonged to never returned) unless a good record follows
// them: then they are a hole left by a machine crash, counted, and the
// records after it are read — their writes returned, and at least once
// beats never.
func (o *outbox) replay(id uint64) error {
	f, err := os.Open(o.segPath(id))
	if err != nil {
		return err
	}
	data, err := os.ReadFile(o.segPath(id))
	if err != nil {
		f.Close()
		return err
	}
	seg := &segment{id: id, f: f, size: int64(len(data))}
	o.segs = append(o.segs, seg)
	for off := 0; off+recordHeader <= len(data); {
		n, ok := goodRecord(data, off)
		if !ok {
			// Checksumming candidates costs up to maxRecord each; a
			// budget keeps crafted bytes from stalling the start.
			next, budget := off+1, 16*int64(o.segMax)
			for ; next+recordHeader <= len(data) && budget > 0; next++ {
				if n, ok = goodRecord(data, next); ok {
					break
				}
				if c := int(binary.LittleEndian.Uint32(data[next:])); c <= maxRecord && next+8+c <= len(data) {
					budget -= int64(c)
				}
			}
			if !ok {
				break // a torn tail
			}
			o.holes++
			off = next
		}
		kind, payload := data[off+8], data[off+9:off+8+n]
		switch kind {
		case recPut:
			j, err := decodePut(payload)
			if err != nil {
				o.unreadable++
				break // out of the switch: the records after it are read
			}
			o.applyPut(j.ID, loc{seg: id, off: int64(off), n: 8 + n}, j.NotBefore)
		case recDone:
			o.applyDone(string(payload))
		}
		off += 8 + n
	}
	return nil
}

// importLegacy moves the JSON files of an old outbox directory into the
// log, then removes them.
func (o *outbox) importLegacy(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	old, err := openSpool(dir, 1<<30, false)
	if err != nil {
		return err
	}
	for id := range old.index {
		j, err := old.read(id)
		if err != nil {
			return err
		}
		if _, err := o.add(j); err != nil {
			return err
		}
		if err := old.remove(id); err != nil {
			return err
		}
	}
	_ = os.Remove(dir) // only if empty
	return nil
}

func (o *outbox) newSegment(id uint64) error {
	create := o.faults.create
	if create == nil {
		create = func(name string) (*os.File, error) {
			return os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
		}
	}
	f, err := create(o.segPath(id))
	if err != nil {
		return err
	}
	if o.sync {
		syncDir(o.dir)
	}
	o.segs = append(o.segs, &segment{id: id, f: f})
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func (o *outbox) segByID(id uint64) *segment {
	for i := len(o.segs) - 1; i >= 0; i-- {
		if o.segs[i].id == id {
			return o.segs[i]
		}
	}
	return nil
}

// applyPut points id at l. Callers hold mu (or are replaying).
func (o *outbox) applyPut(id string, l loc, at time.Time) {
	if e := o.index[id]; e != nil {
		o.unlive(e.loc)
		e.loc, e.at = l, at
	} else {
		o.index[id] = &outboxEntry{loc: l, at: at}
	}
	if s := o.segByID(l.seg); s != nil {
		s.live++
		s.liveBytes += int64(l.n)
	}
}

// unlive counts the record at l dead.
func (o *outbox) unlive(l loc) {
	if s := o.segByID(l.seg); s != nil && l.n > 0 {
		s.live--
		s.liveBytes -= int64(l.n)
	}
}

func (o *outbox) applyDone(id string) {
	e := o.index[id]
	if e == nil {
		return
	}
	o.unlive(e.loc)
	delete(o.index, id)
	delete(o.busy, id)
}

// dropOldLocked deletes the oldest segments while no delivery lives in
// them. Callers hold mu.
func (o *outbox) dropOldLocked() {
	for len(o.segs) > 1 && o.segs[0].live <= 0 {
		s := o.segs[0]
		s.f.Close()
		_ = os.Remove(o.segPath(s.id))
		o.segs = o.segs[1:]
	}
}

func frame(kind byte, payload []byte) []byte {
	rec := make([]byte, recordHeader+len(payload))
	binary.LittleEndian.PutUint32(rec, uint32(1+len(payload)))
	rec[8] = kind
	copy(rec[9:], payload)
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[8:], crcTable))
	return rec
}

// A put's payload is the job in a compact binary form (JSON cost more
// than the write it went with): a version byte, then the strings ID,
// Destination, MsgID, Type and LastError each as a uvarint length and
// bytes, Attempts as a varint, NotBefore, Created and Failed as varint
// Unix nanoseconds (0 for the zero time), and the body, length-prefixed.
const putVersion = 1

func putRecord(j job) ([]byte, error) {
	p := make([]byte, 0, 64+len(j.ID)+len(j.Destination)+len(j.MsgID)+len(j.Type)+len(j.LastError)+len(j.Body))
	p = append(p, putVersion)
	for _, s := range []string{j.ID, j.Destination, j.MsgID, j.Type, j.LastError} {
		p = binary.AppendUvarint(p, uint64(len(s)))
		p = append(p, s...)
	}
	p = binary.AppendVarint(p, int64(j.Attempts))
	for _, t := range []time.Time{j.NotBefore, j.Created, j.Failed} {
		p = binary.AppendVarint(p, unixNano(t))
	}
	p = binary.AppendUvarint(p, uint64(len(j.Body)))
	p = append(p, j.Body...)
	if len(p)+recordHeader > maxRecord {
		return nil, fmt.Errorf("outbox write: delivery of %d bytes is too large", len(p))
	}
	return frame(recPut, p), nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

var errBadPut = errors.New("outbox: malformed delivery record")

// decodePut reads a put's payload.
func decodePut(p []byte) (job, error) {
	var j job
	if len(p) < 1 || p[0] != putVersion {
		return j, errBadPut
	}
	p = p[1:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return "", false
		}
		s := string(p[k : k+int(n)])
		p = p[k+int(n):]
		return s, true
	}
	num := func() (int64, bool) {
		v, k := binary.Varint(p)
		if k <= 0 {
			return 0, false
		}
		p = p[k:]
		return v, true
	}
	ok := true
	for _, dst := range []*string{&j.ID, &j.Destination, &j.MsgID, &j.Type, &j.LastError} {
		if ok {
			*dst, ok = str()
		}
	}
	var n int64
	if ok {
		n, ok = num()
		j.Attempts = int(n)
	}
	for _, dst := range []*time.Time{&j.NotBefore, &j.Created, &j.Failed} {
		if ok {
			if n, ok = num(); ok && n != 0 {
				*dst = time.Unix(0, n)
			}
		}
	}
	if ok {
		var body string
		body, ok = str()
		j.Body = []byte(body)
	}
	if !ok || len(p) != 0 || !entryID.MatchString(j.ID) {
		return job{}, errBadPut
	}
	return j, nil
}

// submit appends op and, unless wait is false and a write is already
// under way, returns once it is written and applied.
func (o *outbox) submit(op *logOp, wait bool) error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return errOutboxClosed
	}
	if o.broken != nil {
		o.mu.Unlock()
		return o.broken
	}
	o.seq++
	op.seq = o.seq
	o.pending = append(o.pending, op)
	if o.flushing {
		if !wait {
			o.mu.Unlock()
			return nil
		}
		for o.applied < op.seq {
			o.cond.Wait()
		}
		err := op.err
		o.mu.Unlock()
		return err
	}
	o.flushing = true
	o.flushLocked()
	o.flushing = false
	err := op.err
	o.mu.Unlock()
	return err
}

// flushLocked writes and applies batches until nothing is pending. A
// batch fits in what is left of the segment (at least one record goes);
// a full segment is closed, compacted from and replaced before the next.
// Called with mu held and flushing set; mu is released during each write.
func (o *outbox) flushLocked() {
	for len(o.pending) > 0 {
		if o.broken != nil {
			for _, op := range o.pending {
				o.apply(op, o.broken)
			}
			o.applied = o.pending[len(o.pending)-1].seq
			o.pending = nil
			o.cond.Broadcast()
			return
		}
		seg := o.segs[len(o.segs)-1]
		if seg.size >= o.segMax {
			o.compactLocked()
			if err := o.newSegment(o.segs[len(o.segs)-1].id + 1); err == nil {
				seg = o.segs[len(o.segs)-1]
			}
		}
		room, k := o.segMax-seg.size, 0
		for n := int64(0); k < len(o.pending); k++ {
			n += int64(len(o.pending[k].rec))
			if k > 0 && n > room {
				break
			}
		}
		batch := o.pending[:k:k]
		if o.pending = o.pending[k:]; len(o.pending) == 0 {
			o.pending = nil
		}
		buf := o.wbuf[:0]
		for _, op := range batch {
			op.at2 = loc{seg: seg.id, off: seg.size + int64(len(buf)), n: len(op.rec)}
			buf = append(buf, op.rec...)
		}
		o.mu.Unlock()
		var n int
		var err error
		if o.faults.write != nil {
			n, err = o.faults.write(seg.f, buf, seg.size)
		} else {
			n, err = seg.f.WriteAt(buf, seg.size)
		}
		if err == nil && o.sync {
			err = seg.f.Sync()
		}
		o.mu.Lock()
		o.written += int64(n)
		if cap(buf) <= 1<<20 {
			o.wbuf = buf[:0]
		}
		if err == nil {
			seg.size += int64(n)
		} else {
			err = fmt.Errorf("outbox write: %w", err)
			o.cutTornLocked(seg, seg.size+int64(n), err)
		}
		for _, op := range batch {
			o.apply(op, err)
		}
		o.applied = batch[len(batch)-1].seq
		o.dropOldLocked()
		o.cond.Broadcast()
	}
}

// cutTornLocked handles a failed write to seg, which now ends at end: the
// bytes past seg.size may be a torn record, after which a replay would
// stop and lose whatever is written next. They are cut off; if that
// fails, writing moves to a new segment; if that fails too, the outbox
// is broken. Called with mu held.
func (o *outbox) cutTornLocked(seg *segment, end int64, werr error) {
	truncate := o.faults.truncate
	if truncate == nil {
		truncate = (*os.File).Truncate
	}
	if end == seg.size || truncate(seg.f, seg.size) == nil {
		return
	}
	seg.size = end // whatever it holds, nothing more goes after it
	if o.newSegment(seg.id+1) == nil {
		return
	}
	o.broken = fmt.Errorf("outbox broken until restart after %w", werr)
}

func (o *outbox) apply(op *logOp, err error) {
	if err != nil {
		op.err = err
		if op.kind == recPut && o.writing[op.id] {
			delete(o.index, op.id)
			delete(o.writing, op.id)
			delete(o.busy, op.id)
		}
		return
	}
	switch op.kind {
	case recPut:
		if o.writing[op.id] {
			delete(o.index, op.id) // the reservation
			delete(o.writing, op.id)
			delete(o.busy, op.id)
		}
		o.applyPut(op.id, op.at2, op.at)
		heap.Push(&o.due, dueEntry{at: op.at, id: op.id})
	case recDone:
		o.applyDone(op.id)
	}
}

// compactLocked copies the live records of the oldest segments forward
// into a segment of their own, placed after the one just filled, so that
// the oldest can go (see the top of this file). Only the flush loop
// changes where a record is, and it is here, so the records picked stay
// where they are while mu is released to read and write them.
func (o *outbox) compactLocked() {
	var live, dead int64
	for _, s := range o.segs {
		live += s.liveBytes
		dead += s.size - s.liveBytes
	}
	force := dead > live+compactSlack*o.segMax
	from := map[uint64]bool{}
	budget := o.segMax
	for _, s := range o.segs[:len(o.segs)-1] {
		if s.live <= 0 {
			continue // goes once those before it do
		}
		if !force && 2*(s.size-s.liveBytes) <= s.size || len(from) > 0 && s.liveBytes > budget {
			break
		}
		from[s.id] = true
		budget -= s.liveBytes
	}
	if len(from) == 0 {
		return
	}
	type move struct {
		id       string
		from, to loc
		at       time.Time
	}
	var moves []move
	for id, e := range o.index {
		if e.loc.n > 0 && from[e.loc.seg] {
			moves = append(moves, move{id: id, from: e.loc, at: e.at})
		}
	}
	slices.SortFunc(moves, func(a, b move) int {
		if c := cmp.Compare(a.from.seg, b.from.seg); c != 0 {
			return c
		}
		return cmp.Compare(a.from.off, b.from.off)
	})
	if err := o.newSegment(o.segs[len(o.segs)-1].id + 1); err != nil {
		return // tried again at the next rotation
	}
	cs := o.segs[len(o.segs)-1]
	files := map[uint64]*os.File{}
	for id := range from {
		files[id] = o.segByID(id).f
	}
	o.mu.Unlock()
	var buf []byte
	var err error
	for i := range moves {
		m := &moves[i]
		m.to = loc{seg: cs.id, off: int64(len(buf)), n: m.from.n}
		buf = slices.Grow(buf, m.from.n)[:len(buf)+m.from.n]
		if _, err = files[m.from.seg].ReadAt(buf[m.to.off:], m.from.off); err != nil {
			break
		}
	}
	n := 0
	if err == nil {
		n, err = cs.f.WriteAt(buf, 0)
		if err == nil && o.sync {
			err = cs.f.Sync()
		}
	}
	o.mu.Lock()
	cs.size += int64(n)
	o.written += int64(n)
	if err != nil {
		// The originals stay where they are; copies written here repeat
		// them and are harmless, a torn one ends this segment.
		return
	}
	for _, m := range moves {
		o.applyPut(m.id, m.to, m.at)
	}
	o.dropOldLocked()
}

// add stores j unless a delivery with its id is pending; added reports
// which. One whose first put is still being written is not pending yet:
// add waits for that write, and stores j itself if it failed.
func (o *outbox) add(j job) (added bool, err error) {
	rec, err := putRecord(j)
	if err != nil {
		return false, err
	}
	o.mu.Lock()
	for o.writing[j.ID] {
		o.cond.Wait()
	}
	if _, ok := o.index[j.ID]; ok {
		o.mu.Unlock()
		return false, nil
	}
	if len(o.index) >= o.max {
		o.mu.Unlock()
		return false, ErrSpoolFull
	}
	o.index[j.ID] = &outboxEntry{at: time.Time{}.Add(1<<63 - 1)} // reserved until written
	o.busy[j.ID] = true
	o.writing[j.ID] = true
	o.mu.Unlock()
	if err := o.submit(&logOp{kind: recPut, id: j.ID, rec: rec, at: j.NotBefore}, true); err != nil {
		o.mu.Lock()
		if o.writing[j.ID] {
			delete(o.index, j.ID)
			delete(o.writing, j.ID)
			delete(o.busy, j.ID)
			o.cond.Broadcast() // to adds of the same id waiting for this one
		}
		o.mu.Unlock()
		return false, err
	}
	return true, nil
}

// put stores j over the pending delivery with its id (a retry
// rescheduled). The caller holds the claim and releases it afterwards.
func (o *outbox) put(j job) error {
	rec, err := putRecord(j)
	if err != nil {
		return err
	}
	return o.submit(&logOp{kind: recPut, id: j.ID, rec: rec, at: j.NotBefore}, true)
}

// read returns the pending delivery id.
func (o *outbox) read(id string) (job, error) {
	o.mu.Lock()
	e := o.index[id]
	var (
		rec []byte
		err error
	)
	switch s := (*segment)(nil); {
	case e == nil || e.loc.n == 0:
		err = fmt.Errorf("outbox read %s: %w", id, os.ErrNotExist)
	default:
		if s = o.segByID(e.loc.seg); s == nil {
			err = fmt.Errorf("outbox read %s: segment %d gone", id, e.loc.seg)
			break
		}
		rec = make([]byte, e.loc.n)
		_, err = s.f.ReadAt(rec, e.loc.off)
	}
	o.mu.Unlock()
	if err != nil {
		return job{}, err
	}
	if len(rec) < recordHeader || rec[8] != recPut {
		return job{}, fmt.Errorf("outbox read %s: not a delivery record", id)
	}
	j, err := decodePut(rec[recordHeader:])
	if err != nil {
		return job{}, fmt.Errorf("outbox read %s: %w", id, err)
	}
	return j, nil
}

// remove ends the pending delivery id once the record saying so is
// written (a dead-lettered delivery).
func (o *outbox) remove(id string) error {
	return o.submit(&logOp{kind: recDone, id: id, rec: frame(recDone, []byte(id))}, true)
}

// delivered ends the pending delivery id without waiting for the record
// (see the top of this file); it stays claimed until then.
func (o *outbox) delivered(id string) error {
	return o.submit(&logOp{kind: recDone, id: id, rec: frame(recDone, []byte(id))}, false)
}

// claim returns up to limit ids due at now, oldest first, and marks them
// busy until release, remove or delivered.
func (o *outbox) claim(now time.Time, limit int) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ids []string
	for len(ids) < limit && len(o.due) > 0 && !o.due[0].at.After(now) {
		e := heap.Pop(&o.due).(dueEntry)
		ent, ok := o.index[e.id]
		if !ok || o.busy[e.id] || !ent.at.Equal(e.at) {
			continue // stale: removed, rescheduled, or already claimed
		}
		o.busy[e.id] = true
		ids = append(ids, e.id)
	}
	return ids
}

// release ends an attempt that left the delivery pending; it is due again
// at its (possibly new) not-before time.
func (o *outbox) release(id string) {
	o.mu.Lock()
	delete(o.busy, id)
	if e, ok := o.index[id]; ok {
		heap.Push(&o.due, dueEntry{at: e.at, id: id})
	}
	o.mu.Unlock()
}

// len counts the pending deliveries whose records are written.
func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.index) - len(o.writing)
}

// segments counts the segment files kept.
func (o *outbox) segments() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.segs)
}

// close writes what is pending and closes the segment files. Later
// writes fail.
func (o *outbox) close() {
	o.mu.Lock()
	for o.flushing {
		o.cond.Wait()
	}
	if len(o.pending) > 0 && !o.closed && len(o.segs) > 0 {
		o.flushing = true
		o.flushLocked()
		o.flushing = false
	}
	o.closed = true
	for _, s := range o.segs {
		s.f.Close()
	}
	o.mu.Unlock()
}
