package webhook

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// The envelope the ingress writes by hand must read back exactly as the
// one json.Marshal writes, or workers would see other ids, times or bodies.
func TestAppendEnvelopeDecodesAsMarshal(t *testing.T) {
	at := time.Date(2026, 11, 27, 16, 0, 0, 123456789, time.FixedZone("X", 3600))
	for _, c := range []struct{ source, tenant, id, body string }{
		{"telco", "acme", "evt-1", `{"a":1}`},
		{"t_2-x", `ten"ant\<&>`, `id"with\quotes<&>~!`, ""},
		{"telco", "ünï", "x", "\x00\xff binary"},
	} {
		src, err := newSource(c.source, SourceConfig{Tenant: c.tenant, Verifier: VerifierConfig{Secrets: []Secret{{Key: keyA}}}}, nil, at)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeEnvelope(src.appendEnvelope(nil, c.id, at, []byte(c.body)))
		if err != nil {
			t.Fatalf("%q: %v", c.id, err)
		}
		std, _ := json.Marshal(Envelope{Source: c.source, Tenant: c.tenant, ID: c.id, Received: at.UTC(), Body: []byte(c.body)})
		want, _ := DecodeEnvelope(std)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %+v\nwant %+v", c.id, got, want)
		}
	}
}

func FuzzAppendEnvelope(f *testing.F) {
	f.Add("acme", "evt-1", []byte(`{"a":1}`), int64(0))
	f.Add(`a"b\c`, `x"\y`, []byte{0, 0xff}, int64(-1))
	f.Fuzz(func(t *testing.T, tenant, id string, body []byte, nanos int64) {
		if !ValidID(id) || tenant == "" {
			return
		}
		at := time.Unix(0, nanos)
		src, err := newSource("telco", SourceConfig{Tenant: tenant, Verifier: VerifierConfig{Secrets: []Secret{{Key: keyA}}}}, nil, at)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeEnvelope(src.appendEnvelope([]byte("junk"), id, at, body)[4:])
		if err != nil {
			t.Fatal(err)
		}
		std, _ := json.Marshal(Envelope{Source: "telco", Tenant: tenant, ID: id, Received: at.UTC(), Body: body})
		want, err := DecodeEnvelope(std)
		if err != nil {
			return // a time json.Marshal refuses (year outside 0-9999) cannot be compared
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
	})
}

// The fast envelope decoder must take what the ingress writes, and
// whatever it takes must read as json.Unmarshal reads it.
func FuzzDecodeOwnEnvelope(f *testing.F) {
	src, err := newSource("telco", SourceConfig{Tenant: "acme", Verifier: VerifierConfig{Secrets: []Secret{{Key: keyA}}}}, nil, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	own := src.appendEnvelope(nil, "evt-1", time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC), []byte(`{"a":1}`))
	if _, ok := decodeOwnEnvelope(own); !ok {
		f.Fatalf("own envelope not taken by the fast path: %s", own)
	}
	f.Add(own)
	f.Add([]byte(`{"source":"a","tenant":"b","id":"c","received":"2026-01-02T03:04:05Z","body":""}`))
	f.Add([]byte(`{"source":"a","tenant":"b","id":"c","received":"2026-01-02T03:04:05+01:00","body":"eA=="}`))
	f.Add([]byte(`{"source":"a","tenant":"b\u00e9","id":"c","received":"2026-01-02T03:04:05Z","body":"eA"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodeOwnEnvelope(data)
		if !ok {
			return
		}
		var want Envelope
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("fast path took what json refuses (%v): %q", err, data)
		}
		if len(got.Body) == 0 && len(want.Body) == 0 {
			got.Body, want.Body = nil, nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n fast %+v\n json %+v", data, got, want)
		}
	})
}
