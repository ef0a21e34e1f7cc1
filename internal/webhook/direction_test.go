package webhook

import (
	"testing"

	"github.com/telguard/telguard/internal/event"
)

// A provider's inbound calls reach the engine marked inbound; outbound
// and unknown ones stay outbound (the engine's default). The mapping's
// own values and default come before the built-in reading.
func TestNormalizeDirection(t *testing.T) {
	custom := Mapping{Preset: "flat", Directions: map[string]event.Direction{"MT": event.Inbound, "MO": event.Outbound, "internal": event.Outbound}}
	fixed := Mapping{Preset: "nested-call", DefaultDirection: event.Inbound}
	tests := []struct {
		name string
		m    Mapping
		body string
		want Direction
		eng  event.Direction
	}{
		{"flat inbound", Mapping{Preset: "flat"}, `{"call_id":"c","status":"ringing","direction":"Inbound"}`, DirectionInbound, event.Inbound},
		{"flat incoming", Mapping{Preset: "flat"}, `{"call_id":"c","status":"ringing","direction":"incoming"}`, DirectionInbound, event.Inbound},
		{"flat outbound-api", Mapping{Preset: "flat"}, `{"call_id":"c","status":"ringing","direction":"outbound-api"}`, DirectionOutbound, ""},
		{"flat none", Mapping{Preset: "flat"}, `{"call_id":"c","status":"ringing"}`, DirectionUnknown, ""},
		{"envelope inbound", Mapping{Preset: "envelope-data"}, `{"type":"call.started","data":{"call_id":"c","direction":"inbound"}}`, DirectionInbound, event.Inbound},
		{"nested inbound", Mapping{Preset: "nested-call"}, `{"event":"ringing","call":{"id":"c","direction":"inbound"}}`, DirectionInbound, event.Inbound},
		{"custom value", custom, `{"call_id":"c","status":"ringing","direction":"mt"}`, DirectionInbound, event.Inbound},
		{"custom over built-in", custom, `{"call_id":"c","status":"ringing","direction":"internal"}`, DirectionOutbound, ""},
		{"custom pointer", Mapping{Preset: "flat", Direction: "/leg/dir"}, `{"call_id":"c","status":"ringing","direction":"outbound","leg":{"dir":"in"}}`, DirectionInbound, event.Inbound},
		{"default when absent", fixed, `{"event":"ringing","call":{"id":"c"}}`, DirectionInbound, event.Inbound},
		{"default when unknown", fixed, `{"event":"ringing","call":{"id":"c","direction":"sideways"}}`, DirectionInbound, event.Inbound},
		{"payload over default", fixed, `{"event":"ringing","call":{"id":"c","direction":"outbound"}}`, DirectionOutbound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce, err := mustNormalizer(t, tt.m).Normalize(envelope(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if ce.Direction != tt.want || ce.Event().Direction != tt.eng {
				t.Fatalf("direction %q, engine %q; want %q, %q", ce.Direction, ce.Event().Direction, tt.want, tt.eng)
			}
		})
	}
	for _, bad := range []Mapping{
		{Preset: "flat", Directions: map[string]event.Direction{"x": "sideways"}},
		{Preset: "flat", Directions: map[string]event.Direction{"x": ""}},
		{Preset: "flat", DefaultDirection: "up"},
	} {
		if _, err := NewNormalizer(bad); err == nil {
			t.Errorf("mapping %+v accepted", bad)
		}
	}
}
