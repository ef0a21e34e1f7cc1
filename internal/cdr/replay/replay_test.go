package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/audit"
	"github.com/telguard/telguard/internal/cdr"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

var update = flag.Bool("update", false, "rewrite the golden reports")

// replayDir runs testdata/<name>/Master.csv through its policy.yaml.
func replayDir(t *testing.T, name string, o Options) *Report {
	t.Helper()
	dir := filepath.Join("testdata", name)
	pol, err := policy.Load(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "Master.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := cdr.NewReader(f, cdr.Options{Tenant: o.Tenant, Location: pol.Tenants[o.Tenant].Location})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(t.Context(), pol, rd, o)
	if err != nil {
		t.Fatal(err)
	}
	if st := rd.Stats(); st.Skipped != 0 || st.Format != cdr.Asterisk {
		t.Fatalf("reading the sample: %+v", st)
	}
	return rep
}

// golden compares got with testdata/<name>/<file>, or rewrites it with
// -update.
func golden(t *testing.T, name, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name, file)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the report (go test -update to accept):\n%s", path, got)
	}
}

func TestNightPumpingGolden(t *testing.T) {
	rep := replayDir(t, "night-pumping", Options{Tenant: "demo"})
	var text bytes.Buffer
	if err := rep.WriteText(&text, true); err != nil {
		t.Fatal(err)
	}
	golden(t, "night-pumping", "report.txt", text.Bytes())

	// What the fraud team reads off the report, asserted apart from the
	// golden file so that a regenerated golden cannot hide a regression.
	var first *FirstBlock
	for i := range rep.FirstBlocks {
		if rep.FirstBlocks[i].Account == "1001" {
			first = &rep.FirstBlocks[i]
		}
	}
	if first == nil {
		t.Fatal("the pumping extension 1001 was never blocked")
	}
	attackStart := time.Date(2026, 3, 3, 1, 2, 0, 0, time.FixedZone("-03", -3*3600))
	if first.Time.Before(attackStart) || first.Time.After(attackStart.Add(time.Minute)) || first.Before.Calls > 3 {
		t.Errorf("1001 first blocked at %s after %d calls got through; want within the attack's first minute, ≤ 3 through", first.Time, first.Before.Calls)
	}
	if rep.Blocked.Money <= rep.Allowed.Money || first.Before.Money != 0 {
		t.Errorf("money saved %.2f, let through %.2f (1001 before its first block %.2f): the attack's cost is not what was saved",
			rep.Blocked.Money, rep.Allowed.Money, first.Before.Money)
	}
	if rep.Would.Calls == 0 || len(rep.WouldByRule) == 0 || rep.WouldByRule[0].Rule != "schedule" {
		t.Errorf("the monitored schedule shows no would-block hits: %+v", rep.WouldByRule)
	}
	honestBlocked := 0
	for _, l := range rep.Listed {
		if h := l.Time.In(attackStart.Location()).Hour(); l.Mode == event.Enforce && h >= 9 && h < 20 {
			honestBlocked++
		}
		if strings.Contains(l.To, "2079460555") {
			t.Fatalf("a listed number is not masked: %s", l.To)
		}
	}
	if honestBlocked != 1 {
		t.Errorf("%d daytime calls blocked, want 1 (2001 calling London)", honestBlocked)
	}
	if rep.Late != 0 || rep.ObserveErrors != 0 {
		t.Errorf("late %d, observe errors %d: the file is in end order within the window", rep.Late, rep.ObserveErrors)
	}
}

// TestDeterministic: the same file gives the same report, byte for byte.
func TestDeterministic(t *testing.T) {
	a, _ := json.Marshal(replayDir(t, "night-pumping", Options{Tenant: "demo"}))
	b, _ := json.Marshal(replayDir(t, "night-pumping", Options{Tenant: "demo"}))
	if !bytes.Equal(a, b) {
		t.Fatal("two replays of one file differ")
	}
}

// TestWindow: a record further out of start order than the window is
// counted late and not replayed, never decided in the past.
func TestWindow(t *testing.T) {
	rep := replayDir(t, "night-pumping", Options{Tenant: "demo", Window: time.Second})
	if rep.Late == 0 {
		t.Fatal("with a 1 s window an end-ordered file must have late records")
	}
	if rep.Calls.Calls+rep.Late != 233 {
		t.Fatalf("%d replayed + %d late, want 233", rep.Calls.Calls, rep.Late)
	}
}

func TestUnknownTenant(t *testing.T) {
	pol, err := policy.Load("testdata/night-pumping/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rd, _ := cdr.NewReader(strings.NewReader(""), cdr.Options{Format: cdr.Asterisk})
	if _, err := Run(t.Context(), pol, rd, Options{Tenant: "nope"}); !errors.Is(err, ErrTenant) {
		t.Fatalf("a tenant the policy lacks: %v, want ErrTenant", err)
	}
	// A record of another tenant is refused too, not judged by demo's rules.
	other := calls(1, false)
	(*other)[0].Tenant = "other"
	if _, err := Run(t.Context(), pol, other, Options{Tenant: "demo"}); !errors.Is(err, ErrTenant) {
		t.Fatalf("a record of another tenant: %v, want ErrTenant", err)
	}
}

// BenchmarkReplay measures calls replayed per second through the example
// policy, parsing included.
func BenchmarkReplay(b *testing.B) {
	data, err := os.ReadFile("testdata/night-pumping/Master.csv")
	if err != nil {
		b.Fatal(err)
	}
	pol, err := policy.Load("testdata/night-pumping/policy.yaml")
	if err != nil {
		b.Fatal(err)
	}
	calls := 0
	for b.Loop() {
		rd, err := cdr.NewReader(bytes.NewReader(data), cdr.Options{Tenant: "demo", Location: pol.Tenants["demo"].Location})
		if err != nil {
			b.Fatal(err)
		}
		rep, err := Run(b.Context(), pol, rd, Options{Tenant: "demo"})
		if err != nil {
			b.Fatal(err)
		}
		calls += rep.Calls.Calls
	}
	b.ReportMetric(float64(calls)/b.Elapsed().Seconds(), "calls/s")
}

// TestDuplicates: a file concatenated twice replays each call once, and
// the second copy is reported as duplicates, not as late records.
func TestDuplicates(t *testing.T) {
	data, err := os.ReadFile("testdata/night-pumping/Master.csv")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load("testdata/night-pumping/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	twice := append(append([]byte{}, data...), data...)
	rd, err := cdr.NewReader(bytes.NewReader(twice), cdr.Options{Tenant: "demo", Location: pol.Tenants["demo"].Location})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(t.Context(), pol, rd, Options{Tenant: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	once := replayDir(t, "night-pumping", Options{Tenant: "demo"})
	if rep.Calls != once.Calls || rep.Blocked != once.Blocked || rep.Late != 0 || rep.Duplicates != 233 || rep.ObserveErrors != 0 {
		t.Fatalf("twice: calls %+v blocked %+v late %d duplicates %d observe errors %d; once: calls %+v blocked %+v",
			rep.Calls, rep.Blocked, rep.Late, rep.Duplicates, rep.ObserveErrors, once.Calls, once.Blocked)
	}
}

// TestAccountNumbersMasked: an account that is a phone number (FreeSWITCH
// falls back to the caller id number) is personal data: the report masks
// it as audit.MaskNumber does everywhere, in text and JSON; an extension
// stays readable.
func TestAccountNumbersMasked(t *testing.T) {
	pol, err := policy.Load("testdata/night-pumping/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const raw = "+5511987654334"
	csv := "account,to,start,billsec\n" +
		raw + ",+442079460124,2026-03-02T11:00:00-03:00,60\n" +
		"2001,+442079460125,2026-03-02T11:05:00-03:00,60\n"
	rd, err := cdr.NewReader(strings.NewReader(csv), cdr.Options{Tenant: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(t.Context(), pol, rd, Options{Tenant: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	want := audit.MaskNumber(raw)
	accounts := map[string]bool{}
	for _, f := range rep.FirstBlocks {
		accounts[f.Account] = true
	}
	if !accounts[want] || !accounts["2001"] || len(rep.FirstBlocks) != 2 {
		t.Fatalf("first blocks %+v; want %s and 2001", rep.FirstBlocks, want)
	}
	for _, tp := range rep.TopAccounts {
		if tp.Key != want && tp.Key != "2001" {
			t.Errorf("top account %q, want %s or 2001", tp.Key, want)
		}
	}
	for _, l := range rep.Listed {
		if l.Account != want && l.Account != "2001" {
			t.Errorf("listed account %q, want %s or 2001", l.Account, want)
		}
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text, true); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(rep)
	for name, out := range map[string]string{"text": text.String(), "json": string(js)} {
		if strings.Contains(out, "987654") {
			t.Errorf("the %s report holds the account's number in clear:\n%s", name, out)
		}
		if !strings.Contains(out, want) {
			t.Errorf("the %s report lacks the masked account %s", name, want)
		}
	}
}

// sliceSource yields records from a slice.
type sliceSource []event.CallRecord

func (s *sliceSource) Next() (event.CallRecord, error) {
	if len(*s) == 0 {
		return event.CallRecord{}, io.EOF
	}
	r := (*s)[0]
	*s = (*s)[1:]
	return r, nil
}

// calls makes n unanswered calls a second apart, from distinct accounts,
// in start order or, reversed, each before the last.
func calls(n int, reversed bool) *sliceSource {
	base := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	out := make(sliceSource, n)
	for i := range out {
		at := base.Add(time.Duration(i) * time.Second)
		if reversed {
			at = base.Add(time.Duration(n-i) * time.Second)
		}
		out[i] = event.CallRecord{Tenant: "demo", CallID: fmt.Sprintf("c%d", i), Account: fmt.Sprintf("a%d", i),
			To: "011987654321", Direction: event.Outbound, Start: at, End: at.Add(10 * time.Second)}
	}
	return &out
}

// TestMemoryBounds: what a replay holds is bounded whatever the input. A
// file in reverse order within the window would all be held for
// reordering; past MaxPending the earliest is run and what comes after
// it is late. Past MaxAccounts, accounts never blocked are forgotten.
func TestMemoryBounds(t *testing.T) {
	pol, err := policy.Load("testdata/night-pumping/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(t.Context(), pol, calls(1000, true), Options{Tenant: "demo", MaxPending: 100})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Calls.Calls+rep.Late != 1000 || rep.Calls.Calls > 101 || rep.Late == 0 {
		t.Fatalf("reversed with 100 pending: %d replayed, %d late; want at most 101 replayed, the rest late", rep.Calls.Calls, rep.Late)
	}
	rep, err = Run(t.Context(), pol, calls(1000, false), Options{Tenant: "demo", MaxAccounts: 50})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Calls.Calls != 1000 || rep.AccountsForgotten < 900 {
		t.Fatalf("1000 accounts with room for 50: %d replayed, %d forgotten", rep.Calls.Calls, rep.AccountsForgotten)
	}
}
