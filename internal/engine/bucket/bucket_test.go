package bucket

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestLogSlides(t *testing.T) {
	l := NewLog[string](time.Minute, 200)
	// 100 events one per 0.5 s: all inside one minute.
	var got int
	for i := 0; i < 100; i++ {
		got = l.Add("ip", t0.Add(time.Duration(i)*500*time.Millisecond))
	}
	if got != 100 {
		t.Fatalf("count after 100 events in 50 s = %d, want 100", got)
	}
	// The window is (t-60s, t]: at +61 s the events at 0, 0.5 and 1 s have
	// left.
	if c := l.Count("ip", t0.Add(61*time.Second)); c != 97 {
		t.Fatalf("count at +61s = %d, want 97", c)
	}
	// No reset at a boundary: an event right after the minute still sees
	// the previous ones.
	if c := l.Add("ip", t0.Add(60*time.Second)); c != 100 {
		t.Fatalf("count at +60s = %d, want 100 (event at 0s left, new one added)", c)
	}
	if c := l.Count("other", t0); c != 0 {
		t.Fatalf("other key count = %d", c)
	}
}

func TestLogSaturates(t *testing.T) {
	l := NewLog[int](time.Second, 5)
	for i := 0; i < 50; i++ {
		if c := l.Add(1, t0); c > 5 {
			t.Fatalf("count %d above max 5", c)
		}
	}
	if c := l.Count(1, t0); c != 5 {
		t.Fatalf("saturated count = %d, want 5", c)
	}
}

func TestLogSweepBoundsMemory(t *testing.T) {
	l := NewLog[string](time.Second, 10)
	for i := 0; i < 1000; i++ {
		l.Add(fmt.Sprint(i), t0)
	}
	if n := l.Sweep(t0.Add(2 * time.Second)); n != 0 {
		t.Fatalf("after sweep %d keys remain, want 0", n)
	}
	l.Add("x", t0.Add(2*time.Second))
	if n := l.Sweep(t0.Add(2500 * time.Millisecond)); n != 1 {
		t.Fatalf("live key swept: %d remain", n)
	}
}

func TestDistinct(t *testing.T) {
	d := NewDistinct[string, string](time.Minute, 10)
	if c := d.Add("a", "+1", t0); c != 1 {
		t.Fatal(c)
	}
	if c := d.Add("a", "+1", t0.Add(time.Second)); c != 1 {
		t.Fatalf("repeat counted: %d", c)
	}
	if c := d.Add("a", "+2", t0.Add(2*time.Second)); c != 2 {
		t.Fatal(c)
	}
	// +1 was refreshed at 1 s, so at 61.5 s it has left; +2 is still in.
	if c := d.Add("a", "+3", t0.Add(61500*time.Millisecond)); c != 2 {
		t.Fatalf("count at 61.5s = %d, want 2 (+2, +3)", c)
	}
	for i := 0; i < 100; i++ {
		d.Add("b", fmt.Sprint(i), t0)
	}
	if c := d.Add("b", "new", t0); c != 10 {
		t.Fatalf("saturated distinct = %d, want 10", c)
	}
	if n := d.Sweep(t0.Add(time.Hour)); n != 0 {
		t.Fatalf("%d keys after sweep", n)
	}
}

func BenchmarkLogAdd(b *testing.B) {
	l := NewLog[string](time.Minute, 101)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprint("acct-", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.Add(keys[i%len(keys)], t0.Add(time.Duration(i)*time.Millisecond))
	}
}

func BenchmarkDistinctAdd(b *testing.B) {
	d := NewDistinct[string, string](time.Hour, 51)
	keys := make([]string, 1000)
	vals := make([]string, 97)
	for i := range keys {
		keys[i] = fmt.Sprint("acct-", i)
	}
	for i := range vals {
		vals[i] = fmt.Sprint("+4420794600", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d.Add(keys[i%len(keys)], vals[i%len(vals)], t0.Add(time.Duration(i)*time.Millisecond))
	}
}

// Events arriving slightly out of order (two sensors, one clock) are
// counted where they belong in time.
func TestLogOutOfOrder(t *testing.T) {
	l := NewLog[string](10*time.Second, 100)
	for _, s := range []int{5, 1, 3, 2, 4, 9, 7} {
		l.Add("k", t0.Add(time.Duration(s)*time.Second))
	}
	if c := l.Count("k", t0.Add(12*time.Second)); c != 5 { // 3,4,5,7,9
		t.Fatalf("count at +12s = %d, want 5", c)
	}
	// Events later than the asked-for time are not counted in its window.
	if c := l.Count("k", t0.Add(4*time.Second)); c != 4 { // 1,2,3,4
		t.Fatalf("count at +4s = %d, want 4", c)
	}
}

// The count of a full ring is found without scanning: a check against a
// large threshold must cost about what a small one does.
func BenchmarkLogAddLarge(b *testing.B) {
	l := NewLog[string](time.Minute, 10001)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.Add("tenant", t0.Add(time.Duration(i)*time.Millisecond))
	}
}
