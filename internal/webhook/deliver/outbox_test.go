package deliver

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func testJob(i int, at time.Time) job {
	id := fmt.Sprintf("crm-msg_%032x", i)
	return job{ID: id, Destination: "crm", MsgID: id[4:], Type: "call.ended",
		Body: []byte(fmt.Sprintf(`{"type":"call.ended","data":{"n":%d,"pad":"%0200d"}}`, i, i)), NotBefore: at, Created: at}
}

func openTestOutbox(t testing.TB, dir string, segMax int64) *outbox {
	t.Helper()
	o, err := openOutbox(dir, 1<<20, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if segMax > 0 {
		o.segMax = segMax
	}
	t.Cleanup(o.close)
	return o
}

func pendingIDs(o *outbox) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ids []string
	for id, e := range o.index {
		if e.loc.n > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// What was added, rescheduled, delivered and dead-lettered before a
// restart is what the outbox holds after it: the pending deliveries whole,
// at their latest not-before time, and nothing delivered.
func TestOutboxReplay(t *testing.T) {
	dir := t.TempDir()
	o := openTestOutbox(t, dir, 0)
	at := time.Unix(1_700_000_000, 0).UTC()
	for i := range 10 {
		if added, err := o.add(testJob(i, at)); err != nil || !added {
			t.Fatalf("add %d: %v %v", i, added, err)
		}
	}
	if added, _ := o.add(testJob(3, at)); added {
		t.Fatal("a pending delivery was added twice")
	}
	ids := o.claim(at, 10)
	if len(ids) != 10 {
		t.Fatalf("claimed %d", len(ids))
	}
	for _, i := range []int{0, 1, 2} {
		if err := o.delivered(testJob(i, at).ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.remove(testJob(3, at).ID); err != nil {
		t.Fatal(err)
	}
	later := testJob(4, at)
	later.Attempts, later.NotBefore, later.LastError = 1, at.Add(time.Hour), "503 Service Unavailable"
	if err := o.put(later); err != nil {
		t.Fatal(err)
	}
	o.close()

	o2 := openTestOutbox(t, dir, 0)
	want := []string{}
	for i := 4; i < 10; i++ {
		want = append(want, testJob(i, at).ID)
	}
	if got := pendingIDs(o2); !slices.Equal(got, want) {
		t.Fatalf("after restart: %v\nwant %v", got, want)
	}
	j, err := o2.read(later.ID)
	if err != nil || j.Attempts != 1 || !j.NotBefore.Equal(later.NotBefore) || j.LastError != later.LastError || string(j.Body) != string(later.Body) {
		t.Fatalf("rescheduled delivery after restart: %+v, %v", j, err)
	}
	if ids := o2.claim(at, 100); len(ids) != 5 || slices.Contains(ids, later.ID) {
		t.Fatalf("due after restart: %v (the rescheduled one is not due)", ids)
	}
}

// A record cut short by a crash in the middle of a write ends its segment:
// everything before it is kept, and new records go to a new segment.
func TestOutboxTornTail(t *testing.T) {
	dir := t.TempDir()
	o := openTestOutbox(t, dir, 0)
	at := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		if _, err := o.add(testJob(i, at)); err != nil {
			t.Fatal(err)
		}
	}
	o.close()
	seg := filepath.Join(dir, fmt.Sprintf("%016d.seg", 1))
	rec, _ := putRecord(testJob(3, at))
	f, err := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(rec[:len(rec)/2])
	f.Close()
	o2 := openTestOutbox(t, dir, 0)
	if n := len(pendingIDs(o2)); n != 3 {
		t.Fatalf("%d pending after a torn tail, want 3", n)
	}
	if _, err := o2.add(testJob(4, at)); err != nil {
		t.Fatal(err)
	}
	o2.close()
	if n := len(pendingIDs(openTestOutbox(t, dir, 0))); n != 4 {
		t.Fatalf("%d pending after a write past the torn tail, want 4", n)
	}
}

// Segments go once their deliveries are done; one delivery retrying for
// hours does not pin its segment: it is copied forward, and after a
// restart it is still there, once.
func TestOutboxSegmentsAreReclaimed(t *testing.T) {
	dir := t.TempDir()
	o := openTestOutbox(t, dir, 4<<10) // a few records per segment
	at := time.Unix(1_700_000_000, 0)
	stuck := testJob(0, at)
	if _, err := o.add(stuck); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 2000; i++ {
		j := testJob(i, at)
		if _, err := o.add(j); err != nil {
			t.Fatal(err)
		}
		if ids := o.claim(at, 10); len(ids) > 0 {
			for _, id := range ids {
				if id == stuck.ID {
					stuck.Attempts++
					stuck.NotBefore = at.Add(time.Hour)
					if err := o.put(stuck); err != nil {
						t.Fatal(err)
					}
					o.release(id)
					continue
				}
				if err := o.delivered(id); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if n := o.segments(); n > compactSlack+4 {
		t.Fatalf("%d segments kept for one pending delivery", n)
	}
	files, _ := os.ReadDir(dir)
	if len(files) != o.segments() {
		t.Fatalf("%d files for %d segments", len(files), o.segments())
	}
	got, err := o.read(stuck.ID)
	if err != nil || got.Attempts != stuck.Attempts {
		t.Fatalf("stuck delivery: %+v %v", got, err)
	}
	pending := pendingIDs(o)
	o.close()
	o2 := openTestOutbox(t, dir, 0)
	if after := pendingIDs(o2); !slices.Equal(after, pending) || !slices.Contains(after, stuck.ID) {
		t.Fatalf("after restart %v, before %v", after, pending)
	}
}

// Concurrent adders and deliverers (the workers and the senders): what
// was added and not delivered is exactly what a reopened outbox holds.
func TestOutboxConcurrent(t *testing.T) {
	dir := t.TempDir()
	o := openTestOutbox(t, dir, 64<<10)
	at := time.Unix(1_700_000_000, 0)
	const writers, per = 4, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				if _, err := o.add(testJob(w*per+i, at)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var mu sync.Mutex
	delivered := map[string]bool{}
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for range 3 {
		senders.Go(func() {
			for {
				ids := o.claim(at, 8)
				for n, id := range ids {
					if n%3 == 2 {
						o.release(id)
						continue
					}
					if err := o.delivered(id); err != nil {
						t.Error(err)
					}
					mu.Lock()
					delivered[id] = true
					mu.Unlock()
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	senders.Wait()
	o.close()
	o2 := openTestOutbox(t, dir, 0)
	got := pendingIDs(o2)
	if len(got)+len(delivered) != writers*per {
		t.Fatalf("%d pending + %d delivered, want %d", len(got), len(delivered), writers*per)
	}
	for _, id := range got {
		if delivered[id] {
			t.Fatalf("%s delivered and pending again", id)
		}
	}
}

// An outbox of the first versions (one JSON file per delivery) is moved
// into the log.
func TestOutboxImportsFileSpool(t *testing.T) {
	dir := t.TempDir()
	old, err := openSpool(filepath.Join(dir, "outbox"), 100, false)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_700_000_000, 0)
	for i := range 5 {
		if _, err := old.add(testJob(i, at)); err != nil {
			t.Fatal(err)
		}
	}
	o, err := openOutbox(filepath.Join(dir, "log"), 100, false, filepath.Join(dir, "outbox"))
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	if n := o.len(); n != 5 {
		t.Fatalf("%d imported, want 5", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "outbox")); !os.IsNotExist(err) {
		t.Fatalf("old outbox left behind: %v", err)
	}
	if j, err := o.read(testJob(2, at).ID); err != nil || string(j.Body) != string(testJob(2, at).Body) {
		t.Fatalf("imported delivery: %+v %v", j, err)
	}
}

// BenchmarkOutboxForwardDeliver is one delivery's life in the outbox as
// the pipeline does it from several goroutines: stored, claimed, read,
// done.
func BenchmarkOutboxForwardDeliver(b *testing.B) {
	o := openTestOutbox(b, b.TempDir(), 0)
	at := time.Unix(1_700_000_000, 0)
	var n sync.Mutex
	i := 0
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			i++
			k := i
			n.Unlock()
			if _, err := o.add(testJob(k, at)); err != nil {
				b.Fatal(err)
			}
			for _, id := range o.claim(at, 1) {
				if _, err := o.read(id); err != nil {
					b.Fatal(err)
				}
				if err := o.delivered(id); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// A delivery survives its record, and no payload makes decodePut panic
// or accept a record with bytes left over.
func FuzzDecodePut(f *testing.F) {
	at := time.Unix(1_700_000_000, 123)
	j := testJob(7, at)
	j.Attempts, j.LastError, j.Failed = 3, "503 Service Unavailable", at.Add(time.Minute)
	rec, _ := putRecord(j)
	f.Add(rec[recordHeader:])
	f.Add([]byte{putVersion})
	f.Fuzz(func(t *testing.T, p []byte) {
		got, err := decodePut(p)
		if err != nil {
			return
		}
		again, err := putRecord(got)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodePut(again[recordHeader:])
		if err != nil || back.ID != got.ID || string(back.Body) != string(got.Body) || back.Attempts != got.Attempts ||
			!back.NotBefore.Equal(got.NotBefore) || !back.Failed.Equal(got.Failed) {
			t.Fatalf("round trip: %+v → %+v, %v", got, back, err)
		}
	})
}

// A destination down for long leaves a live set of many segments; the
// outbox then writes each delivery about once, instead of copying whole
// segments forward at every new one. When it comes back and delivers
// most of them while more come in and a quarter wait for a retry hours
// away, what it copies stays a small multiple of what it was asked.
func TestOutboxLargeLiveSetIsNotRecopied(t *testing.T) {
	dir := t.TempDir()
	o := openTestOutbox(t, dir, 16<<10)
	at := time.Unix(1_700_000_000, 0)
	var logged int64 // bytes of the records asked for
	add := func(i int) {
		j := testJob(i, at.Add(time.Duration(i))) // due in the order added
		if i%4 == 0 && i >= 3000 {
			j.NotBefore = at.Add(24 * time.Hour)
		}
		rec, _ := putRecord(j)
		logged += int64(len(rec))
		if _, err := o.add(j); err != nil {
			t.Fatal(err)
		}
	}
	written := func() int64 {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.written
	}
	for i := range 3000 { // ~370 bytes each: ~70 segments, all live
		add(i)
	}
	if logged <= 8*o.segMax {
		t.Fatalf("only %d live bytes: the live set should span more than 8 segments", logged)
	}
	if w := written(); w > logged {
		t.Fatalf("%d bytes written for %d live bytes", w, logged)
	}
	for i := 3000; i < 12000; i++ {
		add(i)
		for _, id := range o.claim(at.Add(time.Hour), 1) {
			logged += int64(len(frame(recDone, []byte(id))))
			if err := o.delivered(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	w, segs := written(), o.segments()
	t.Logf("%d bytes written for %d bytes of records, %d segments", w, logged, segs)
	if w > 3*logged {
		t.Fatalf("%d bytes written for %d bytes of records", w, logged)
	}
	if w == logged {
		t.Fatal("nothing was copied forward: the test does not exercise compaction")
	}
	pending := pendingIDs(o)
	if live := int64(len(pending)) * 400; int64(segs)*o.segMax > 3*live+(compactSlack+4)*o.segMax {
		t.Fatalf("%d segments kept for %d pending deliveries", segs, len(pending))
	}
	o.close()
	if after := pendingIDs(openTestOutbox(t, dir, 0)); !slices.Equal(after, pending) {
		t.Fatalf("%d pending after a restart, %d before", len(after), len(pending))
	}
}

// A write that fails half-way (disk full, I/O error) fails its puts, and
// leaves nothing that hides later ones: every put that returned nil is
// there after a restart, even when no new segment can be made.
func TestOutboxFailedWriteLeavesNoTornRecord(t *testing.T) {
	for _, truncFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("truncate fails %v", truncFails), func(t *testing.T) {
			dir := t.TempDir()
			o := openTestOutbox(t, dir, 0)
			at := time.Unix(1_700_000_000, 0)
			if _, err := o.add(testJob(0, at)); err != nil {
				t.Fatal(err)
			}
			o.mu.Lock()
			o.faults.write = func(f *os.File, b []byte, off int64) (int, error) {
				n, _ := f.WriteAt(b[:len(b)/2], off)
				return n, errors.New("no space left on device")
			}
			o.faults.create = func(string) (*os.File, error) { return nil, errors.New("no space left on device") }
			if truncFails {
				o.faults.truncate = func(*os.File, int64) error { return errors.New("input/output error") }
			}
			o.mu.Unlock()
			if _, err := o.add(testJob(1, at)); err == nil {
				t.Fatal("a failed write reported success")
			}
			o.mu.Lock()
			o.faults.write = nil
			o.mu.Unlock()
			var ok []string
			for i := 2; i < 5; i++ {
				if _, err := o.add(testJob(i, at)); err == nil {
					ok = append(ok, testJob(i, at).ID)
				}
			}
			if truncFails && len(ok) > 0 {
				t.Fatalf("%d puts accepted after a torn record that could not be cut off", len(ok))
			}
			o.close()
			after := pendingIDs(openTestOutbox(t, dir, 0))
			for _, id := range append(ok, testJob(0, at).ID) {
				if !slices.Contains(after, id) {
					t.Fatalf("%s was stored and is lost after a restart (pending %v)", id, after)
				}
			}
		})
	}
}

// A redelivery of an event whose first put is still being written waits
// for that write: if it fails, the redelivery stores the delivery, rather
// than reporting it stored already and letting the queue forget it.
func TestOutboxAddWaitsForReservation(t *testing.T) {
	dir := t.TempDir()
	o := openTestOutbox(t, dir, 0)
	at := time.Unix(1_700_000_000, 0)
	started, release := make(chan struct{}), make(chan struct{})
	calls := 0
	o.faults.write = func(f *os.File, b []byte, off int64) (int, error) {
		if calls++; calls == 1 {
			close(started)
			<-release
			return 0, errors.New("input/output error")
		}
		return f.WriteAt(b, off)
	}
	first := make(chan error, 1)
	go func() {
		_, err := o.add(testJob(1, at))
		first <- err
	}()
	<-started
	go func() {
		time.Sleep(20 * time.Millisecond)
		close(release)
	}()
	added, err := o.add(testJob(1, at))
	if ferr := <-first; ferr == nil {
		t.Fatal("the failed write reported success")
	}
	if err == nil && !added {
		t.Fatal("the redelivery was told the delivery was stored while its write failed")
	}
	if err == nil && !slices.Contains(pendingIDs(o), testJob(1, at).ID) {
		t.Fatal("the redelivery was acked and the delivery is not stored")
	}
}

// A record whose checksum holds but which does not decode (written by a
// later version, or a bug) is counted, and the records after it are read.
func TestOutboxUndecodableRecordIsCounted(t *testing.T) {
	dir := t.TempDir()
	at := time.Unix(1_700_000_000, 0)
	var data []byte
	bad := frame(recPut, []byte{putVersion + 1, 'x'})
	good, _ := putRecord(testJob(2, at))
	data = append(append(data, bad...), good...)
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%016d.seg", 1)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	o := openTestOutbox(t, dir, 0)
	if o.unreadable != 1 {
		t.Fatalf("%d unreadable records counted, want 1", o.unreadable)
	}
	if !slices.Equal(pendingIDs(o), []string{testJob(2, at).ID}) {
		t.Fatalf("pending %v", pendingIDs(o))
	}
}

// copyDir copies the segment files of src into a new directory: what a
// process killed at that instant leaves (its writes are in the page cache).
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	files, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, fe := range files {
		data, err := os.ReadFile(filepath.Join(src, fe.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, fe.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// Killed again and again across many segments, with compaction at work
// and the write under way cut at a random byte: after each restart the
// outbox holds exactly the deliveries whose last put returned nil and
// that were not delivered or dead-lettered, each at its last version.
func TestOutboxCrashAcrossSegments(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	o := openTestOutbox(t, dir, 8<<10)
	at := time.Unix(1_700_000_000, 0)
	want := map[string]int{} // id → attempts of its last put
	next := 0
	for round := range 6 {
		for range 1500 {
			switch r := rng.IntN(10); {
			case r < 5 || len(want) == 0:
				j := testJob(next, at)
				next++
				if rng.IntN(3) == 0 {
					j.NotBefore = at.Add(time.Hour) // waits: pins its segment
				}
				if _, err := o.add(j); err != nil {
					t.Fatal(err)
				}
				want[j.ID] = 0
			default:
				ids := o.claim(at, 1)
				if len(ids) == 0 {
					continue
				}
				id := ids[0]
				switch {
				case r < 8:
					if err := o.delivered(id); err != nil {
						t.Fatal(err)
					}
					delete(want, id)
				case r < 9:
					if err := o.remove(id); err != nil {
						t.Fatal(err)
					}
					delete(want, id)
				default:
					j, err := o.read(id)
					if err != nil {
						t.Fatal(err)
					}
					j.Attempts++
					if err := o.put(j); err != nil {
						t.Fatal(err)
					}
					o.release(id)
					want[id] = j.Attempts
				}
			}
		}
		// The kill: a copy of the files as they are, the newest segment
		// ending in part of a record whose write never returned.
		dir = copyDir(t, dir)
		segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
		slices.Sort(segs)
		if len(segs) < 3 {
			t.Fatalf("round %d: %d segments; the test should span several", round, len(segs))
		}
		torn, _ := putRecord(testJob(1<<30, at))
		f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(torn[:1+rng.IntN(len(torn)-1)])
		f.Close()
		o.close()
		o = openTestOutbox(t, dir, 8<<10)
		got := pendingIDs(o)
		if len(got) != len(want) {
			t.Fatalf("round %d: %d pending after the kill, want %d", round, len(got), len(want))
		}
		for id, attempts := range want {
			j, err := o.read(id)
			if err != nil || j.Attempts != attempts {
				t.Fatalf("round %d: %s after the kill: %+v %v, want attempts %d", round, id, j.Attempts, err, attempts)
			}
		}
	}
}

// A machine crash without sync can leave a hole (zeros, or stale bytes)
// in the middle of a segment with good records after it: those are read,
// and the hole is counted so that the deliverer reports it.
func TestOutboxHoleInSegment(t *testing.T) {
	dir := t.TempDir()
	at := time.Unix(1_700_000_000, 0)
	var data []byte
	rec := func(i int) []byte { r, _ := putRecord(testJob(i, at)); return r }
	data = append(data, rec(1)...)
	data = append(data, make([]byte, 4096)...)
	data = append(data, rec(2)[:100]...) // and a torn record inside the hole
	data = append(data, rec(3)...)
	data = append(data, frame(recDone, []byte(testJob(1, at).ID))...)
	data = append(data, rec(4)...)
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%016d.seg", 1)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	o := openTestOutbox(t, dir, 0)
	if want := []string{testJob(3, at).ID, testJob(4, at).ID}; !slices.Equal(pendingIDs(o), want) {
		t.Fatalf("pending %v, want %v: the records after the hole", pendingIDs(o), want)
	}
	if o.holes != 1 {
		t.Fatalf("%d holes counted, want 1", o.holes)
	}
}
