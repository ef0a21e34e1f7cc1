package sipedge

import (
	"strconv"
	"testing"
	"time"
)

func TestFIFOCacheStaysBoundedAndExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newFIFOCache[string, int](3, time.Minute)
	for i := range 10 {
		c.put(strconv.Itoa(i), i, now)
	}
	if n := c.len(); n != 3 {
		t.Fatalf("len = %d after 10 puts into 3 slots", n)
	}
	if _, ok := c.get("0", now); ok {
		t.Error("the oldest entry survived eviction")
	}
	if v, ok := c.get("9", now); !ok || v != 9 {
		t.Errorf("newest entry = %d, %v", v, ok)
	}
	if !c.update("8", now, func(v *int) { *v = 80 }) {
		t.Error("update of a live entry failed")
	}
	if v, _ := c.get("8", now); v != 80 {
		t.Errorf("updated entry = %d, want 80", v)
	}
	if !c.remove("7") || c.remove("7") {
		t.Error("remove should report the entry once")
	}
	if _, ok := c.get("9", now.Add(time.Minute)); ok {
		t.Error("an entry outlived its ttl")
	}
	if n := c.len(); n != 0 {
		t.Errorf("len = %d after everything expired", n)
	}
}
