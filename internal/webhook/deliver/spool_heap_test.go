package deliver

import (
	"fmt"
	"testing"
	"time"
)

// claim hands out due entries oldest first, skips what is not due, busy,
// rescheduled or removed, and gives a released entry out again.
func TestSpoolClaimOrder(t *testing.T) {
	s, err := openSpool(t.TempDir(), 100, false)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, at := range []time.Duration{3, 1, 2, 10} {
		j := job{ID: fmt.Sprintf("crm-msg_%032d", i), NotBefore: t0.Add(at * time.Second)}
		if _, err := s.add(j); err != nil {
			t.Fatal(err)
		}
	}
	id := func(i int) string { return fmt.Sprintf("crm-msg_%032d", i) }
	got := s.claim(t0.Add(5*time.Second), 10)
	if len(got) != 3 || got[0] != id(1) || got[1] != id(2) || got[2] != id(0) {
		t.Fatalf("claim = %v, want ids 1, 2, 0 (the three due, oldest first)", got)
	}
	if again := s.claim(t0.Add(5*time.Second), 10); len(again) != 0 {
		t.Fatalf("busy entries claimed again: %v", again)
	}
	// Reschedule 1 later, release 2 as it is, remove 0.
	if err := s.put(job{ID: id(1), NotBefore: t0.Add(20 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	s.release(id(1))
	s.release(id(2))
	if err := s.remove(id(0)); err != nil {
		t.Fatal(err)
	}
	if got := s.claim(t0.Add(5*time.Second), 10); len(got) != 1 || got[0] != id(2) {
		t.Fatalf("after release: %v, want only id 2", got)
	}
	if got := s.claim(t0.Add(30*time.Second), 10); len(got) != 2 || got[0] != id(3) || got[1] != id(1) {
		t.Fatalf("later: %v, want ids 3 then 1", got)
	}
}

// A large backlog is claimed without sorting it all each time.
func BenchmarkSpoolClaim(b *testing.B) {
	s, err := openSpool(b.TempDir(), 200000, false)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.mu.Lock()
	for i := range 60000 {
		s.schedule(fmt.Sprintf("crm-msg_%032d", i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	s.mu.Unlock()
	b.ResetTimer()
	for b.Loop() {
		ids := s.claim(t0.Add(time.Hour), 32)
		for _, id := range ids {
			s.release(id)
		}
	}
}
