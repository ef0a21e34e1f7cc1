package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/telguard/telguard/internal/event"
)

var received = time.Date(2025, 1, 2, 3, 10, 0, 0, time.UTC)

func envelope(body string) Envelope {
	return Envelope{Source: "telco", Tenant: "acme", ID: "evt-1", Received: received, Body: []byte(body)}
}

func mustNormalizer(t testing.TB, m Mapping) *Normalizer {
	t.Helper()
	n, err := NewNormalizer(m)
	if err != nil {
		t.Fatalf("NewNormalizer: %v", err)
	}
	return n
}

func TestNormalizePresets(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		preset, body string
		want         CallEvent
	}{
		{"flat", `{"call_id":"c1","status":"completed","direction":"outbound","from":"+441234","to":"+33123",
			"duration":42,"recording_url":"https://rec/1","account":"acc-1","timestamp":"2025-01-02T03:04:05Z"}`,
			CallEvent{Kind: event.CallEnded, State: "completed", Time: at, CallID: "c1", Direction: DirectionOutbound,
				From: "+441234", To: "+33123", Account: "acc-1", Duration: 42 * time.Second, Recording: "https://rec/1"}},
		{"envelope-data", `{"type":"call.answered","timestamp":"2025-01-02T03:04:05Z","data":{"call_id":"c2",
			"direction":"inbound","from":"+441234","to":"+33123","duration":0,"recording_url":null,"account_id":"acc-1"}}`,
			CallEvent{Kind: event.CallAnswered, State: "call.answered", Time: at, CallID: "c2", Direction: DirectionInbound,
				From: "+441234", To: "+33123", Account: "acc-1"}},
		{"nested-call", `{"event":"hangup","occurred_at":1735787045,"account":{"id":"acc-1"},"call":{"id":"c3",
			"direction":"outbound-dial","from":{"number":"+441234"},"to":{"number":33123},"duration":"61.5",
			"recording":{"url":"https://rec/3"}}}`,
			CallEvent{Kind: event.CallEnded, State: "hangup", Time: at, CallID: "c3", Direction: DirectionOutbound,
				From: "+441234", To: "33123", Account: "acc-1", Duration: 61500 * time.Millisecond, Recording: "https://rec/3"}},
		// No timestamp in the payload: the time of receipt.
		{"flat", `{"call_id":"c4","status":"Ringing"}`,
			CallEvent{Kind: event.CallAttempt, State: "Ringing", Time: received, CallID: "c4"}},
		// A timestamp far in the future is not believed.
		{"flat", `{"call_id":"c5","status":"in-progress","timestamp":"2030-01-01T00:00:00Z"}`,
			CallEvent{Kind: event.CallAnswered, State: "in-progress", Time: received, CallID: "c5"}},
	}
	for _, tt := range tests {
		t.Run(tt.preset, func(t *testing.T) {
			got, err := mustNormalizer(t, Mapping{Preset: tt.preset}).Normalize(envelope(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			tt.want.ID, tt.want.Source, tt.want.Tenant = "evt-1", "telco", "acme"
			if got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestNormalizeCustomMapping(t *testing.T) {
	n := mustNormalizer(t, Mapping{
		Preset: "flat", CallID: "/ids/0", State: "/x~1state", Duration: "/ms", DurationUnit: "ms",
		States: map[string]event.Kind{"Talking": event.CallAnswered},
	})
	ev, err := n.Normalize(envelope(`{"ids":["k9"],"x/state":"talking","ms":1500}`))
	if err != nil || ev.CallID != "k9" || ev.Kind != event.CallAnswered || ev.Duration != 1500*time.Millisecond {
		t.Fatalf("%+v, %v", ev, err)
	}
	// The engine's event carries the tenant from the envelope, never the payload.
	e := ev.Event()
	if e.Tenant != "acme" || e.Kind != event.CallAnswered || e.CallID != "k9" || e.Sensor != "webhook" {
		t.Fatalf("event %+v", e)
	}
}

func TestNormalizeRefuses(t *testing.T) {
	n := mustNormalizer(t, Mapping{Preset: "flat"})
	for name, body := range map[string]string{
		"not json":          `{"call_id":`,
		"no call id":        `{"status":"ended"}`,
		"unknown state":     `{"call_id":"c","status":"recording.ready"}`,
		"no state":          `{"call_id":"c"}`,
		"object call id":    `{"call_id":{"a":1},"status":"ended"}`,
		"negative duration": `{"call_id":"c","status":"ended","duration":-1}`,
		"huge duration":     `{"call_id":"c","status":"ended","duration":1e30}`,
		"bad time":          `{"call_id":"c","status":"ended","timestamp":"yesterday"}`,
		"time out of range": `{"call_id":"c","status":"ended","timestamp":-5}`,
		"bool from":         `{"call_id":"c","status":"ended","from":true}`,
	} {
		if ev, err := n.Normalize(envelope(body)); !errors.Is(err, ErrUnmapped) {
			t.Errorf("%s: %+v, %v; want ErrUnmapped", name, ev, err)
		} else if strings.Contains(err.Error(), "recording.ready") {
			t.Errorf("%s: error echoes a payload value: %v", name, err)
		}
	}
}

func TestNewNormalizerRefuses(t *testing.T) {
	for name, m := range map[string]Mapping{
		"unknown preset": {Preset: "vendorx"},
		"no call id":     {State: "/s"},
		"no state":       {CallID: "/c"},
		"relative":       {CallID: "c", State: "/s"},
		"too deep":       {CallID: strings.Repeat("/a", 17), State: "/s"},
		"too long":       {CallID: "/" + strings.Repeat("a", 300), State: "/s"},
		"bad unit":       {Preset: "flat", DurationUnit: "h"},
		"bad kind":       {Preset: "flat", States: map[string]event.Kind{"x": event.SIPRequest}},
	} {
		if _, err := NewNormalizer(m); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCapString(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	if s := capString(long, 255); len(s) > 255 || !utf8.ValidString(s) {
		t.Fatalf("cut %d bytes, valid %v", len(s), utf8.ValidString(s))
	}
	if s := capString("a\x00b\nc\xff", 10); s != "abc" {
		t.Fatalf("control characters kept: %q", s)
	}
}

func FuzzNormalize(f *testing.F) {
	f.Add(`{"call_id":"c1","status":"completed","duration":42,"timestamp":"2025-01-02T03:04:05Z"}`, "flat", "/call_id", "")
	f.Add(`{"type":"call.ended","data":{"call_id":"x"}}`, "envelope-data", "", "")
	f.Add(`{"event":"hangup","call":{"id":1,"duration":"1e3"}}`, "nested-call", "/call/id", "/call/duration")
	f.Add(`[[[[[]]]]]`, "", "/0/0/0", "/0")
	f.Fuzz(func(t *testing.T, body, preset, p1, p2 string) {
		n, err := NewNormalizer(Mapping{Preset: preset, CallID: p1, Duration: p2, State: "/status",
			Time: p2, DurationUnit: "ms"})
		if err != nil {
			return
		}
		ev, err := n.Normalize(envelope(body))
		if err != nil {
			if !errors.Is(err, ErrUnmapped) {
				t.Fatalf("error not ErrUnmapped: %v", err)
			}
			return
		}
		for _, s := range []string{ev.CallID, ev.State, ev.From, ev.To, ev.Account} {
			if len(s) > maxValueLength || !utf8.ValidString(s) {
				t.Fatalf("unbounded or invalid value %q", s)
			}
		}
		if len(ev.Recording) > maxRecordingLength || ev.CallID == "" || !ev.Kind.Valid() {
			t.Fatalf("bad event %+v", ev)
		}
		if ev.Duration < 0 || ev.Duration > maxDuration || ev.Time.After(received.Add(maxFutureSkew)) {
			t.Fatalf("duration or time out of bounds: %+v", ev)
		}
	})
}

func BenchmarkNormalize(b *testing.B) {
	n := mustNormalizer(b, Mapping{Preset: "nested-call"})
	env := envelope(`{"event":"hangup","occurred_at":1735787045,"account":{"id":"acc-1"},"call":{"id":"c3",
		"direction":"outbound","from":{"number":"+441234"},"to":{"number":"+33123"},"duration":61}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.Normalize(env); err != nil {
			b.Fatal(err)
		}
	}
}

// Only whole, known direction values count: "internal", "international"
// or "intl" are not inbound (an inbound call skips the toll checks), and
// fall to the default like any unknown value.
func TestDirectionExactValues(t *testing.T) {
	n := mustNormalizer(t, Mapping{Preset: "flat"})
	for value, want := range map[string]Direction{
		"inbound": DirectionInbound, " Incoming ": DirectionInbound, "in": DirectionInbound, "MT": DirectionInbound, "terminating": DirectionInbound,
		"outbound": DirectionOutbound, "outgoing": DirectionOutbound, "outbound-api": DirectionOutbound, "mo": DirectionOutbound,
		"internal": DirectionUnknown, "international": DirectionUnknown, "intl": DirectionUnknown, "inside": DirectionUnknown,
		"outer": DirectionUnknown, "": DirectionUnknown,
	} {
		if got := n.readDirection(value); got != want {
			t.Errorf("direction %q read as %q, want %q", value, got, want)
		}
	}
}
