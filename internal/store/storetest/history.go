package storetest

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/store"
)

// sampleRecord is a finished call with every field set.
func sampleRecord(callID string, start time.Time) event.CallRecord {
	return event.CallRecord{
		Account: "1001", CallID: callID, From: "+5511987654334", To: "00441632960123",
		Direction: event.Outbound, SourceIP: netip.MustParseAddr("192.0.2.10"),
		Start: start, Answer: start.Add(4 * time.Second), End: start.Add(94 * time.Second),
		Billsec: 90 * time.Second, Disposition: "ANSWERED",
	}
}

func history(t *testing.T, s store.Store, tenant string, from, to time.Time) []event.CallRecord {
	t.Helper()
	var out []event.CallRecord
	if err := s.History(t.Context(), tenant, from, to, func(r event.CallRecord) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatalf("History(%q): %v", tenant, err)
	}
	return out
}

func putHistory(t *testing.T, s store.Store, tenant string, recs ...event.CallRecord) int {
	t.Helper()
	res, err := s.PutHistory(t.Context(), tenant, recs)
	if err != nil {
		t.Fatalf("PutHistory(%q): %v", tenant, err)
	}
	return res.New
}

func testHistoryRoundTrip(t *testing.T, s store.Store) {
	answered := sampleRecord("c1", base)
	missed := event.CallRecord{Account: "1002", CallID: "c2", To: "0800123456", Direction: event.Inbound,
		Start: base.Add(time.Minute), End: base.Add(time.Minute + 20*time.Second), Disposition: "NO ANSWER"}
	if n := putHistory(t, s, "t1", answered, missed); n != 2 {
		t.Fatalf("PutHistory stored %d new calls, want 2", n)
	}
	got := history(t, s, "t1", time.Time{}, time.Time{})
	answered.Tenant, missed.Tenant = "t1", "t1"
	want := []event.CallRecord{answered, missed}
	for i := range got {
		if !got[i].Start.Equal(want[i].Start) || !got[i].End.Equal(want[i].End) || !got[i].Answer.Equal(want[i].Answer) {
			t.Fatalf("call %d times: got %+v, want %+v", i, got[i], want[i])
		}
		got[i].Start, got[i].End, got[i].Answer = want[i].Start, want[i].End, want[i].Answer
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("History:\n got %+v\nwant %+v", got, want)
	}
	if got[1].Answered() {
		t.Fatal("an unanswered call came back answered")
	}
}

func testHistoryIdempotent(t *testing.T, s store.Store) {
	recs := []event.CallRecord{sampleRecord("c1", base), sampleRecord("c2", base.Add(time.Second))}
	putHistory(t, s, "t1", recs...)
	changed := sampleRecord("c1", base.Add(time.Hour))
	res, err := s.PutHistory(t.Context(), "t1", append(recs, changed, sampleRecord("c3", base)))
	if err != nil || res.New != 1 || res.Changed != 1 {
		t.Fatalf("second import: %+v, %v; want 1 new (c3) and 1 changed (c1)", res, err)
	}
	// The same records again, an unanswered one among them: nothing new,
	// nothing changed (a NULL answer compares equal to itself).
	missed := event.CallRecord{Account: "1002", CallID: "c4", To: "0800123456", Start: base, End: base.Add(time.Second)}
	putHistory(t, s, "t1", missed)
	if res, err := s.PutHistory(t.Context(), "t1", append(recs, missed)); err != nil || res != (store.PutResult{}) {
		t.Fatalf("identical re-import: %+v, %v; want nothing new or changed", res, err)
	}
	got := history(t, s, "t1", time.Time{}, time.Time{})
	if len(got) != 4 {
		t.Fatalf("%d calls stored, want 4", len(got))
	}
	for _, r := range got {
		if r.CallID == "c1" && !r.Start.Equal(base) {
			t.Fatalf("a re-imported call replaced the stored one: %+v", r)
		}
	}
}

func testHistoryTenantIsolation(t *testing.T, s store.Store) {
	putHistory(t, s, "t1", sampleRecord("c1", base))
	if n := putHistory(t, s, "t2", sampleRecord("c1", base)); n != 1 {
		t.Fatalf("the same call id in another tenant: stored %d, want 1", n)
	}
	putHistory(t, s, "t2", sampleRecord("c2", base))
	if got := history(t, s, "t1", time.Time{}, time.Time{}); len(got) != 1 || got[0].Tenant != "t1" {
		t.Fatalf("t1 sees %+v", got)
	}
	if got := history(t, s, "t3", time.Time{}, time.Time{}); len(got) != 0 {
		t.Fatalf("an unknown tenant sees %d calls", len(got))
	}
	other := sampleRecord("c9", base)
	other.Tenant = "t2"
	if _, err := s.PutHistory(t.Context(), "t1", []event.CallRecord{other}); !errors.Is(err, store.ErrInvalidRecord) {
		t.Fatalf("storing t2's call under t1: %v, want ErrInvalidRecord", err)
	}
}

func testHistoryRangeAndOrder(t *testing.T, s store.Store) {
	// Out of order, with two calls at the same instant, over more than one
	// page of History.
	const n = 2503
	recs := make([]event.CallRecord, 0, n)
	for i := n - 1; i >= 0; i-- {
		recs = append(recs, sampleRecord(fmt.Sprintf("c%05d", i), base.Add(time.Duration(i/2)*time.Second)))
	}
	putHistory(t, s, "t1", recs...)
	all := history(t, s, "t1", time.Time{}, time.Time{})
	if len(all) != n {
		t.Fatalf("History returned %d calls, want %d", len(all), n)
	}
	for i, r := range all {
		if want := fmt.Sprintf("c%05d", i); r.CallID != want {
			t.Fatalf("call %d is %s, want %s (start order, then call id)", i, r.CallID, want)
		}
	}
	from, to := base.Add(100*time.Second), base.Add(200*time.Second)
	got := history(t, s, "t1", from, to)
	if len(got) != 200 || got[0].CallID != "c00200" || got[199].CallID != "c00399" {
		t.Fatalf("[from, to) gave %d calls from %s", len(got), got[0].CallID)
	}
	stop := errors.New("stop")
	calls := 0
	err := s.History(t.Context(), "t1", time.Time{}, time.Time{}, func(event.CallRecord) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Fatalf("fn's error: History returned %v after %d calls, want stop after 3", err, calls)
	}
}

func testHistoryInvalid(t *testing.T, s store.Store) {
	bad := []event.CallRecord{
		{CallID: "", Start: base, End: base},
		{CallID: "x", End: base},
		{CallID: "x", Start: base, End: base.Add(-time.Second)},
		{CallID: "x", Start: base, End: base, Billsec: -time.Second},
		// Past 2262 a time is stored clamped and the call is never read back.
		{CallID: "x", Start: time.Date(2286, 11, 20, 0, 0, 0, 0, time.UTC), End: time.Date(2286, 11, 20, 0, 1, 0, 0, time.UTC)},
		{CallID: "x", Start: base, End: base.Add(time.Minute), Answer: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)},
		{CallID: "x", Start: time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), End: base},
	}
	for i, b := range bad {
		if _, err := s.PutHistory(t.Context(), "t1", []event.CallRecord{sampleRecord("ok", base), b}); !errors.Is(err, store.ErrInvalidRecord) {
			t.Errorf("bad record %d: %v, want ErrInvalidRecord", i, err)
		}
	}
	if _, err := s.PutHistory(t.Context(), "", []event.CallRecord{sampleRecord("ok", base)}); !errors.Is(err, store.ErrInvalidRecord) {
		t.Errorf("empty tenant: %v, want ErrInvalidRecord", err)
	}
	if got := history(t, s, "t1", time.Time{}, time.Time{}); len(got) != 0 {
		t.Fatalf("a batch with a bad record stored %d calls; want none", len(got))
	}
}

// testHistoryDelete: a tenant's history is deleted on request, before a
// date or whole, and no other tenant's goes with it; PruneHistory ages out
// every tenant's calls.
func testHistoryDelete(t *testing.T, s store.Store) {
	for _, ten := range []string{"t1", "t2"} {
		putHistory(t, s, ten, sampleRecord("old", base), sampleRecord("new", base.Add(48*time.Hour)))
	}
	n, err := s.DeleteHistory(t.Context(), "t1", base.Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("DeleteHistory(t1, before) = %d, %v; want 1", n, err)
	}
	if got := history(t, s, "t1", time.Time{}, time.Time{}); len(got) != 1 || got[0].CallID != "new" {
		t.Fatalf("t1 after deleting before a date: %+v", got)
	}
	if got := history(t, s, "t2", time.Time{}, time.Time{}); len(got) != 2 {
		t.Fatalf("deleting t1's history took %d of t2's calls", 2-len(got))
	}
	if n, err := s.DeleteHistory(t.Context(), "t1", time.Time{}); err != nil || n != 1 {
		t.Fatalf("DeleteHistory(t1, all) = %d, %v; want 1", n, err)
	}
	if got := history(t, s, "t1", time.Time{}, time.Time{}); len(got) != 0 {
		t.Fatalf("t1 after deleting all: %+v", got)
	}
	if _, err := s.DeleteHistory(t.Context(), "", time.Time{}); err == nil {
		t.Fatal("DeleteHistory with no tenant was accepted")
	}
	if n, err := s.PruneHistory(t.Context(), time.Time{}); err != nil || n != 0 {
		t.Fatalf("PruneHistory(zero) = %d, %v; want 0, nil", n, err)
	}
	putHistory(t, s, "t3", sampleRecord("old", base))
	if n, err := s.PruneHistory(t.Context(), base.Add(time.Hour)); err != nil || n != 2 {
		t.Fatalf("PruneHistory = %d, %v; want 2 (t2's and t3's old calls)", n, err)
	}
	if got := history(t, s, "t2", time.Time{}, time.Time{}); len(got) != 1 || got[0].CallID != "new" {
		t.Fatalf("t2 after PruneHistory: %+v", got)
	}
}

// testHistoryFromApply stores calls the engine finished (OpPutHistory in
// a batch of changes, as the daemon's writer does) where History reads
// them, under their own tenant; an id already stored keeps its first
// record, so a call imported from a CDR is not replaced by its live twin.
func testHistoryFromApply(t *testing.T, s store.Store) {
	live := sampleRecord("live-1", base)
	live.Tenant, live.Flagged = "t1", true
	other := sampleRecord("live-2", base.Add(time.Second))
	other.Tenant = "t2"
	twin := sampleRecord("live-1", base.Add(time.Hour))
	twin.Tenant = "t1"
	apply(t, s, event.Change{Op: event.OpPutHistory, History: &live}, event.Change{Op: event.OpPutHistory, History: &other})
	apply(t, s, event.Change{Op: event.OpPutHistory, History: &twin})
	got := history(t, s, "t1", time.Time{}, time.Time{})
	if len(got) != 1 || got[0].CallID != "live-1" || !got[0].Start.Equal(base) || got[0].To != live.To || !got[0].Flagged {
		t.Fatalf("t1's history: %+v; want live-1 as first stored, flagged", got)
	}
	if got := history(t, s, "t2", time.Time{}, time.Time{}); len(got) != 1 || got[0].CallID != "live-2" {
		t.Fatalf("t2's history: %+v", got)
	}
	bad := event.CallRecord{Tenant: "t1", CallID: "bad", Start: base, End: base.Add(-time.Second)}
	if err := s.Apply(t.Context(), []event.Change{{Op: event.OpPutHistory, History: &bad}}); !errors.Is(err, store.ErrInvalidChange) {
		t.Fatalf("a call ending before it starts: %v; want ErrInvalidChange", err)
	}
}
