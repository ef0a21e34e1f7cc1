package decisionapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzCheckRequest feeds arbitrary bodies to POST /v1/calls/check: the
// handler must never panic, never answer 5xx (the fake engine cannot fail
// except on "panic", which the fuzzer may find and which must then be a
// contained 500), and always answer JSON: a decision or {error, field}.
func FuzzCheckRequest(f *testing.F) {
	for _, seed := range []string{
		checkBody("+5511987654321"),
		checkBody("+449091234567"),
		`{"call_id":"c","account":"a","to":"1","time":"2025-01-01T00:00:00Z","source_ip":"2001:db8::1%eth0"}`,
		`{"call_id":"c","account":"a","to":"1","from":null,"user_agent":"\u0000"}`,
		`{"call_id":1}`,
		`{"CALL_ID":"c","Account":"a","TO":"1"}`,
		`{"call_id":"c","account":"a","to":"1"}{"x":1}`,
		`[]`, `null`, `""`, `{`, ``, "\xff\xfe",
		`{"call_id":"c","account":"\ud800","to":"1"}`,
	} {
		f.Add(seed)
	}
	h := newHarness(f)
	h.eng.record = false // keep memory flat over millions of runs
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/v1/calls/check", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+keyA)
		rec := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(rec, req)
		fromEngine := strings.Contains(body, "panic")
		if rec.Code >= 500 && !(rec.Code == 500 && fromEngine) {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q for %q", ct, body)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("response is not JSON for %q: %v", body, err)
		}
		switch rec.Code {
		case http.StatusOK:
			if _, ok := out["verdict"]; !ok {
				t.Fatalf("200 without a verdict: %s", rec.Body)
			}
		default:
			if msg, _ := out["error"].(string); msg == "" {
				t.Fatalf("%d without an error message: %s", rec.Code, rec.Body)
			}
		}
	})
}
