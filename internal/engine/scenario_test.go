package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/clock"
	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

// The scenario tests replay testdata/<case>/events.jsonl through an engine
// running testdata/<case>/policy.yaml and compare what comes out with
// want.jsonl. testdata/README.md describes both formats.

var update = flag.Bool("update", false, "rewrite testdata/*/want.jsonl from what the engine does")

func TestScenarios(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "*", "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no scenarios in testdata/")
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			got := runScenario(t, dir)
			wantPath := filepath.Join(dir, "want.jsonl")
			if *update {
				if err := os.WriteFile(wantPath, formatOutputs(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want := readWant(t, wantPath)
			compareOutputs(t, want, got)
		})
	}
}

// inLine is one line of events.jsonl.
type inLine struct {
	Kind     string  `json:"kind"`
	Time     string  `json:"time"`
	Tenant   string  `json:"tenant"`
	Account  string  `json:"account"`
	CallID   string  `json:"call_id"`
	From     string  `json:"from"`
	To       string  `json:"to"`
	SourceIP string  `json:"source_ip"`
	Duration float64 `json:"duration_s"`
	Repeat   int     `json:"repeat"`
	Every    string  `json:"every"`
	ToStep   int64   `json:"to_step"`
	Policy   string  `json:"policy"`
	// Direction "inbound" makes a call_attempt an inbound call (from
	// "from" to the account).
	Direction string `json:"direction"`
	Seed      int64  `json:"seed"`
	// Cold on a restart line forgets the learned baselines and model, to
	// show what the snapshot brings back.
	Cold bool `json:"cold"`
	// For SIP kinds (sip_request, sip_auth_failure, sip_auth_success).
	UserAgent string         `json:"user_agent"`
	SIP       *event.SIPInfo `json:"sip"`
}

// output is one thing the runner saw: a decision, an error from an
// observe/control line, or a stats snapshot.
type output struct {
	CallID       string   `json:"call_id,omitempty"`
	Through      string   `json:"through,omitempty"` // want only: last call id of a run
	Line         int      `json:"line,omitempty"`
	Kind         string   `json:"kind,omitempty"`
	Error        string   `json:"error,omitempty"`
	Verdict      string   `json:"verdict,omitempty"`
	Rules        []string `json:"rules,omitempty"`
	Monitor      []string `json:"monitor,omitempty"`
	WouldVerdict string   `json:"would_verdict,omitempty"`
	SIPCode      *int     `json:"sip_code,omitempty"`
	BanSeconds   *int64   `json:"ban_seconds,omitempty"`
	Escalation   *string  `json:"escalation,omitempty"`
	Silent       *bool    `json:"silent,omitempty"`
	E164         *string  `json:"e164,omitempty"`
	Score        *float64 `json:"anomaly_score,omitempty"`
	Stats        *stats   `json:"stats,omitempty"`
}

type stats struct {
	Tenant        string  `json:"tenant"`
	CallsInFlight int     `json:"calls_in_flight"`
	Bans          int     `json:"bans"`
	Suspensions   int     `json:"suspensions"`
	QuotaSeconds  float64 `json:"quota_seconds"`
	QuotaMoney    float64 `json:"quota_money"`
}

// memStore applies the engine's changes the way a store would and hands the
// result back as event.State at a restart.
type memStore struct {
	mu      sync.Mutex
	tenants map[string]*tenantStore
}

type tenantStore struct {
	calls       map[string]event.Call
	quotas      map[[2]string]event.QuotaUsage
	bans        map[string]event.IPBan
	suspensions map[string]event.Suspension
}

func (m *memStore) Emit(changes ...event.Change) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range changes {
		if c.Op == event.OpDecision {
			continue
		}
		ts := m.tenants[c.Tenant()]
		if ts == nil {
			ts = &tenantStore{calls: map[string]event.Call{}, quotas: map[[2]string]event.QuotaUsage{},
				bans: map[string]event.IPBan{}, suspensions: map[string]event.Suspension{}}
			m.tenants[c.Tenant()] = ts
		}
		switch c.Op {
		case event.OpPutCall:
			ts.calls[c.Call.CallID] = *c.Call
		case event.OpDeleteCall:
			delete(ts.calls, c.Call.CallID)
		case event.OpPutQuota:
			ts.quotas[[2]string{c.Quota.Account, c.Quota.Day}] = *c.Quota
		case event.OpPutBan:
			ts.bans[c.Ban.Subject] = *c.Ban
		case event.OpDeleteBan:
			delete(ts.bans, c.Ban.Subject)
		case event.OpPutSuspension:
			ts.suspensions[c.Suspension.Account] = *c.Suspension
		case event.OpDeleteSuspension:
			delete(ts.suspensions, c.Suspension.Account)
		default:
			panic("unknown change op " + string(c.Op))
		}
	}
}

// states returns every tenant's durable state, in a stable order.
func (m *memStore) states() map[string]event.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]event.State{}
	for id, ts := range m.tenants {
		var st event.State
		for _, k := range sortedKeys(ts.calls) {
			st.Calls = append(st.Calls, ts.calls[k])
		}
		qk := make([][2]string, 0, len(ts.quotas))
		for k := range ts.quotas {
			qk = append(qk, k)
		}
		slices.SortFunc(qk, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
		for _, k := range qk {
			st.Quotas = append(st.Quotas, ts.quotas[k])
		}
		for _, k := range sortedKeys(ts.bans) {
			st.Bans = append(st.Bans, ts.bans[k])
		}
		for _, k := range sortedKeys(ts.suspensions) {
			st.Suspensions = append(st.Suspensions, ts.suspensions[k])
		}
		out[id] = st
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func loadPolicy(dir, name string) (*policy.Policy, error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	return policy.Parse(name, data, func(f string) ([]byte, error) {
		return os.ReadFile(filepath.Join(dir, f))
	})
}

func runScenario(t *testing.T, dir string) []output {
	t.Helper()
	pol, err := loadPolicy(dir, "policy.yaml")
	if err != nil {
		t.Fatalf("load policy: %v", err)
	}
	f, err := os.Open(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	store := &memStore{tenants: map[string]*tenantStore{}}
	clk := clock.NewManual(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC))
	eng := engine.New(pol, engine.Options{Clock: clk, Sink: store})
	ctx := context.Background()
	var out []output
	var now time.Time
	var history []event.CallRecord // calls of history lines, for train
	sc := bufio.NewScanner(f)
	for lineNo := 1; sc.Scan(); lineNo++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		var in inLine
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			t.Fatalf("events.jsonl:%d: %v", lineNo, err)
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("events.jsonl:%d: %s", lineNo, fmt.Sprintf(format, args...))
		}
		if in.Time != "" {
			ts, err := time.Parse(time.RFC3339, in.Time)
			if err != nil {
				fail("time: %v", err)
			}
			now = ts
		} else if now.IsZero() {
			fail("the first line needs a time")
		}
		if in.Tenant == "" {
			in.Tenant = "demo"
		}
		clk.Set(now)
		errOut := func(err error) {
			if err != nil {
				out = append(out, output{Line: lineNo, Kind: in.Kind, Error: err.Error()})
			}
		}
		switch in.Kind {
		case "call_attempt", "call_answered", "call_ended", "sip_request", "sip_auth_failure", "sip_auth_success":
			n := max(in.Repeat, 1)
			every := time.Second
			if in.Every != "" {
				if every, err = time.ParseDuration(in.Every); err != nil {
					fail("every: %v", err)
				}
			}
			var ip netip.Addr
			if in.SourceIP != "" {
				if ip, err = netip.ParseAddr(in.SourceIP); err != nil {
					fail("source_ip: %v", err)
				}
			}
			for i := 1; i <= n; i++ {
				ev := event.Event{
					Kind: event.Kind(in.Kind), Time: now, Tenant: in.Tenant, Account: in.Account,
					CallID: in.CallID, From: in.From, To: in.To, SourceIP: ip,
					Duration:  time.Duration(in.Duration * float64(time.Second)),
					UserAgent: in.UserAgent, SIP: in.SIP, Direction: event.Direction(in.Direction),
				}
				if in.Repeat > 0 {
					ev.CallID = fmt.Sprintf("%s-%d", in.CallID, i)
					ev.Time = now.Add(time.Duration(i-1) * every)
					clk.Set(ev.Time)
				}
				if in.ToStep != 0 {
					ev.To = stepNumber(t, in.To, in.ToStep*int64(i-1))
				}
				if in.Kind == "call_attempt" || strings.HasPrefix(in.Kind, "sip_") {
					out = append(out, decisionOutput(eng.Decide(ctx, ev)))
				} else if err := eng.Observe(ctx, ev); err != nil {
					out = append(out, output{Line: lineNo, Kind: in.Kind, Error: fmt.Sprintf("%s: %v", ev.CallID, err)})
				}
			}
			if in.Repeat > 0 {
				now = now.Add(time.Duration(n-1) * every)
			}
		case "history":
			// A finished call repeated: attempt, answer 5 s later, end
			// after duration_s. Decisions are not output; a blocked one
			// shows as an observe error.
			n := max(in.Repeat, 1)
			every := time.Hour
			if in.Every != "" {
				if every, err = time.ParseDuration(in.Every); err != nil {
					fail("every: %v", err)
				}
			}
			ip, _ := netip.ParseAddr(in.SourceIP)
			dur := time.Duration(in.Duration * float64(time.Second))
			for i := 1; i <= n; i++ {
				rec := event.CallRecord{Tenant: in.Tenant, Account: in.Account, CallID: fmt.Sprintf("%s-%d", in.CallID, i),
					To: in.To, SourceIP: ip, Start: now.Add(time.Duration(i-1) * every)}
				if in.ToStep != 0 {
					rec.To = stepNumber(t, in.To, in.ToStep*int64(i-1))
				}
				rec.End = rec.Start.Add(5 * time.Second)
				if dur > 0 {
					rec.Answer, rec.Billsec = rec.End, dur
					rec.End = rec.Answer.Add(dur)
				}
				for _, ev := range rec.Events("test") {
					clk.Set(ev.Time)
					if ev.Kind == event.CallAttempt {
						eng.Decide(ctx, ev)
					} else if err := eng.Observe(ctx, ev); err != nil {
						out = append(out, output{Line: lineNo, Kind: in.Kind, Error: fmt.Sprintf("%s: %v", ev.CallID, err)})
					}
				}
				history = append(history, rec)
				now = rec.End
			}
		case "train":
			// Trains the anomaly model on the history lines so far and
			// puts it in force.
			tr := engine.NewTrainer(eng.Policy(), engine.TrainOptions{Seed: in.Seed})
			for _, r := range history {
				tr.Add(r)
			}
			m, err := tr.Forest()
			if err == nil {
				err = eng.SetModel(m)
			}
			errOut(err)
		case "restart":
			// Durable state comes back from the store, and the learned
			// baselines from a snapshot, as the daemon does.
			p := eng.Policy()
			states := store.states()
			snap, err := eng.ExportBaselines()
			if err != nil {
				fail("export baselines: %v", err)
			}
			model := eng.Model()
			eng = engine.New(p, engine.Options{Clock: clk, Sink: store})
			for _, id := range sortedKeys(states) {
				eng.Restore(id, states[id])
			}
			if !in.Cold {
				errOut(eng.ImportBaselines(snap))
				errOut(eng.SetModel(model))
			}
		case "reload":
			p, err := loadPolicy(dir, in.Policy)
			if err != nil {
				errOut(err)
				continue
			}
			eng.SetPolicy(p)
		case "unsuspend":
			errOut(eng.Unsuspend(ctx, in.Tenant, in.Account, "test"))
		case "sweep":
			eng.Sweep(now)
		case "stats":
			o := output{Line: lineNo, Kind: "stats", Stats: &stats{Tenant: in.Tenant}}
			for _, s := range eng.Stats(now) {
				if s.Tenant == in.Tenant {
					o.Stats = &stats{Tenant: s.Tenant, CallsInFlight: s.CallsInFlight, Bans: s.Bans, Suspensions: s.Suspensions,
						QuotaSeconds: round2(s.QuotaSeconds), QuotaMoney: round2(s.QuotaMoney)}
				}
			}
			out = append(out, o)
		default:
			fail("unknown kind %q", in.Kind)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func round2(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 2, 64), 64)
	return v
}

// stepNumber adds d to the number formed by the trailing digits of s.
func stepNumber(t *testing.T, s string, d int64) string {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	// Keep it short enough for int64 and keep leading digits fixed.
	if len(s)-i > 9 {
		i = len(s) - 9
	}
	n, err := strconv.ParseInt(s[i:], 10, 64)
	if err != nil {
		t.Fatalf("to_step: %q has no trailing digits", s)
	}
	return s[:i] + fmt.Sprintf("%0*d", len(s)-i, n+d)
}

func decisionOutput(d event.Decision) output {
	o := output{CallID: d.CallID, Verdict: string(d.Verdict), WouldVerdict: string(d.WouldVerdict)}
	for _, r := range d.Reasons {
		id := r.Rule
		if r.Level != "" {
			id += ":" + r.Level
		}
		o.Rules = append(o.Rules, id)
		if r.Mode == event.Monitor {
			o.Monitor = append(o.Monitor, r.Rule)
		}
	}
	sort.Strings(o.Rules)
	sort.Strings(o.Monitor)
	if d.SIPCode != 0 {
		o.SIPCode = &d.SIPCode
	}
	if d.BanSeconds != 0 {
		o.BanSeconds = &d.BanSeconds
	}
	if d.Escalation != "" {
		o.Escalation = &d.Escalation
	}
	if d.Silent {
		o.Silent = &d.Silent
	}
	if d.Destination.E164 != "" {
		o.E164 = &d.Destination.E164
	}
	if d.AnomalyScore != 0 {
		sc := round2(d.AnomalyScore)
		o.Score = &sc
	}
	return o
}

// formatOutputs writes outputs as want.jsonl, folding runs of identical
// decisions on consecutive call ids (x-1, x-2, …) into one line with
// "through".
func formatOutputs(outs []output) []byte {
	var b bytes.Buffer
	for i := 0; i < len(outs); {
		o := outs[i]
		j := i + 1
		if base, n, ok := splitID(o.CallID); ok && o.Line == 0 {
			for j < len(outs) {
				b2, n2, ok2 := splitID(outs[j].CallID)
				next := outs[j]
				next.CallID = o.CallID
				if !ok2 || b2 != base || n2 != n+(j-i) || !reflect.DeepEqual(next, o) {
					break
				}
				j++
			}
			if j-i > 1 {
				o.Through = outs[j-1].CallID
			}
		}
		line, err := json.Marshal(o)
		if err != nil {
			panic(err)
		}
		b.Write(line)
		b.WriteByte('\n')
		i = j
	}
	return b.Bytes()
}

func splitID(id string) (base string, n int, ok bool) {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(id[i+1:])
	return id[:i], n, err == nil && n > 0
}

func readWant(t *testing.T, path string) []output {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s is missing; run go test -run TestScenarios -update and review it", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	var want []output
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		var o output
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		if o.Through == "" {
			want = append(want, o)
			continue
		}
		base, from, ok1 := splitID(o.CallID)
		base2, to, ok2 := splitID(o.Through)
		if !ok1 || !ok2 || base != base2 || to < from {
			t.Fatalf("%s:%d: through %q does not continue call_id %q", path, i+1, o.Through, o.CallID)
		}
		for n := from; n <= to; n++ {
			x := o
			x.CallID, x.Through = fmt.Sprintf("%s-%d", base, n), ""
			want = append(want, x)
		}
	}
	return want
}

// compareOutputs requires got to match want one for one, in order: an
// attempt missing from want, or an unexpected error, fails.
func compareOutputs(t *testing.T, want, got []output) {
	t.Helper()
	show := func(o output) string { b, _ := json.Marshal(o); return string(b) }
	for i := 0; i < max(len(want), len(got)); i++ {
		switch {
		case i >= len(want):
			t.Errorf("unexpected output #%d: %s", i+1, show(got[i]))
			continue
		case i >= len(got):
			t.Errorf("missing output #%d: want %s", i+1, show(want[i]))
			continue
		}
		w, g := want[i], got[i]
		// Optional fields are compared only where want gives them.
		if w.SIPCode == nil {
			g.SIPCode = nil
		} else if g.SIPCode == nil {
			g.SIPCode = new(int)
		}
		if w.BanSeconds == nil {
			g.BanSeconds = nil
		} else if g.BanSeconds == nil {
			g.BanSeconds = new(int64)
		}
		if w.Escalation == nil {
			g.Escalation = nil
		}
		if w.Silent == nil {
			g.Silent = nil
		} else if g.Silent == nil {
			g.Silent = new(bool)
		}
		if w.E164 == nil {
			g.E164 = nil
		}
		if w.Score == nil {
			g.Score = nil
		}
		if w.Line == 0 {
			g.Line = 0 // decisions are matched by call id, not line
		}
		if !reflect.DeepEqual(w, g) {
			t.Errorf("output #%d:\n got %s\nwant %s", i+1, show(g), show(w))
			if i > 0 && t.Failed() && testing.Verbose() {
				continue
			}
		}
	}
}
