package deliver

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// ErrSpoolFull means a spool holds its maximum number of entries.
var ErrSpoolFull = errors.New("delivery spool full")

// ErrNotFound means no dead letter has the id given.
var ErrNotFound = errors.New("no such dead letter")

// entryID is the form of a spool entry's id (and file name): the
// destination name, a dash, and the message id. Checked before any path is
// built from an id a user typed.
var entryID = regexp.MustCompile(`^[a-z0-9_-]{1,64}-msg_[0-9a-f]{32}$`)

// job is one event on its way to one destination.
type job struct {
	ID          string    `json:"id"` // entryID
	Destination string    `json:"destination"`
	MsgID       string    `json:"msg_id"` // webhook-id: the same on every attempt
	Type        string    `json:"type"`   // "call.ended": what the body is, for listings
	Body        []byte    `json:"body"`   // rendered once, sent as is on every attempt
	Attempts    int       `json:"attempts"`
	NotBefore   time.Time `json:"not_before"`
	Created     time.Time `json:"created"`
	LastError   string    `json:"last_error,omitempty"` // status or transport error, never the body
	Failed      time.Time `json:"failed,omitzero"`      // when it was dead-lettered
}

// spool is a directory of jobs, one JSON file each, with an index in
// memory. It is the outbound queue (pending and deferred deliveries) and,
// in a second directory, the dead-letter store. Writes go to a temporary
// file that is renamed into place, so a crash leaves either the old entry
// or the new one; with sync they are fsynced too.
type spool struct {
	dir  string
	max  int
	sync bool

	mu      sync.Mutex
	index   map[string]time.Time // id → not before
	busy    map[string]bool      // ids being attempted
	writing map[string]bool      // ids reserved by add whose file is not written yet
	// due orders entries by not-before time so claim pops what is due
	// instead of scanning and sorting the whole index (a backlog of 60,000
	// spent most of its CPU there). Entries go stale when an id is
	// removed, rescheduled or claimed; claim checks each against the index
	// and drops the stale ones.
	due dueHeap
}

type dueEntry struct {
	at time.Time
	id string
}

type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// schedule records id's not-before time. Callers hold mu.
func (s *spool) schedule(id string, at time.Time) {
	s.index[id] = at
	heap.Push(&s.due, dueEntry{at: at, id: id})
}

func openSpool(dir string, max int, sync bool) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s := &spool{dir: dir, max: max, sync: sync, index: map[string]time.Time{}, busy: map[string]bool{}, writing: map[string]bool{}}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	for _, de := range names {
		name := de.Name()
		if strings.HasPrefix(name, ".tmp-") {
			_ = os.Remove(filepath.Join(dir, name)) // a write cut short by a crash
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || !entryID.MatchString(id) {
			continue
		}
		j, err := s.read(id)
		if err != nil {
			return nil, fmt.Errorf("open spool: %w", err)
		}
		s.schedule(id, j.NotBefore)
	}
	return s, nil
}

func (s *spool) path(id string) string { return filepath.Join(s.dir, id+".json") }

// add stores j unless an entry with its id is already there; added
// reports which.
func (s *spool) add(j job) (added bool, err error) {
	s.mu.Lock()
	if _, ok := s.index[j.ID]; ok {
		s.mu.Unlock()
		return false, nil
	}
	if len(s.index) >= s.max {
		s.mu.Unlock()
		return false, ErrSpoolFull
	}
	s.index[j.ID] = time.Time{}.Add(1<<63 - 1) // reserved, not due, until written
	s.busy[j.ID] = true
	s.writing[j.ID] = true
	s.mu.Unlock()
	err = s.write(j)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy, j.ID)
	delete(s.writing, j.ID)
	if err != nil {
		delete(s.index, j.ID)
		return false, err
	}
	s.schedule(j.ID, j.NotBefore)
	return true, nil
}

// put stores j over any entry with its id (a retry rescheduled).
func (s *spool) put(j job) error {
	if err := s.write(j); err != nil {
		return err
	}
	s.mu.Lock()
	s.schedule(j.ID, j.NotBefore)
	s.mu.Unlock()
	return nil
}

func (s *spool) write(j job) error {
	data, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("spool write: %w", err)
	}
	f, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("spool write: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && s.sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path(j.ID))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("spool write: %w", err)
	}
	if s.sync {
		if d, err := os.Open(s.dir); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	return nil
}

func (s *spool) read(id string) (job, error) {
	data, err := os.ReadFile(s.path(id))
	if err != nil {
		return job{}, fmt.Errorf("spool read: %w", err)
	}
	var j job
	if err := json.Unmarshal(data, &j); err != nil {
		return job{}, fmt.Errorf("spool read %s: %w", id, err)
	}
	return j, nil
}

func (s *spool) remove(id string) error {
	err := os.Remove(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	s.mu.Lock()
	delete(s.index, id)
	delete(s.busy, id)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("spool remove: %w", err)
	}
	return nil
}

// claim returns up to limit ids due at now, oldest first, and marks them
// busy until release or remove.
func (s *spool) claim(now time.Time, limit int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for len(ids) < limit && len(s.due) > 0 && !s.due[0].at.After(now) {
		e := heap.Pop(&s.due).(dueEntry)
		at, ok := s.index[e.id]
		if !ok || s.busy[e.id] || !at.Equal(e.at) {
			continue // stale: removed, rescheduled, or already claimed
		}
		s.busy[e.id] = true
		ids = append(ids, e.id)
	}
	return ids
}

// release ends an attempt that left the entry in place; it is due again at
// its (possibly new) not-before time.
func (s *spool) release(id string) {
	s.mu.Lock()
	delete(s.busy, id)
	if at, ok := s.index[id]; ok {
		heap.Push(&s.due, dueEntry{at: at, id: id})
	}
	s.mu.Unlock()
}

// len counts the entries whose files are written: one being added is not
// there yet for a reader.
func (s *spool) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.index) - len(s.writing)
}
