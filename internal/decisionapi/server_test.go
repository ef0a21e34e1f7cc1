package decisionapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/event"
)

func TestCheckAnswersWithDecision(t *testing.T) {
	for _, tc := range []struct {
		name, to    string
		wantVerdict event.Verdict
		wantRules   int
	}{
		{"allow", "+5511987654321", event.Allow, 0},
		{"deny is still 200", "+449091234567", event.Deny, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			rec := h.do(t, "POST", "/v1/calls/check", keyA, checkBody(tc.to))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, body %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var raw map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"verdict", "reasons", "risk", "sip_code", "http_code"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("decision JSON lacks %q: %s", k, rec.Body)
				}
			}
			var d event.Decision
			if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tc.wantVerdict || len(d.Reasons) != tc.wantRules {
				t.Errorf("verdict %s with %d reasons, want %s with %d", d.Verdict, len(d.Reasons), tc.wantVerdict, tc.wantRules)
			}
			if tc.wantRules > 0 && (d.Reasons[0].Rule != "premium-rate" || d.Reasons[0].Mode != event.Enforce) {
				t.Errorf("reason %+v", d.Reasons[0])
			}
			ev := h.eng.lastEvent(t)
			want := event.Event{
				Kind: event.CallAttempt, Time: testNow, Tenant: tenantA, Account: "acct-1", CallID: "c1@pbx",
				From: "+551130001000", To: tc.to, SourceIP: netip.MustParseAddr("127.0.0.1"),
				UserAgent: "Asterisk PBX 20.5.0", Sensor: "api",
			}
			if ev != want {
				t.Errorf("engine got\n%+v\nwant\n%+v", ev, want)
			}
		})
	}
}

// A client may not move event time far from the server's clock: windows
// run on it, so it would space its own attempts out of every limit.
func TestCheckRefusesSkewedTime(t *testing.T) {
	h := newHarness(t)
	for _, skew := range []time.Duration{6 * time.Minute, -6 * time.Minute, 24 * time.Hour} {
		body := `{"call_id":"x","account":"a","to":"100","time":"` + testNow.Add(skew).Format(time.RFC3339) + `"}`
		rec := h.do(t, "POST", "/v1/calls/check", keyB, body)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"field":"time"`) {
			t.Errorf("skew %v: %d %s, want 400 naming time", skew, rec.Code, rec.Body)
		}
	}
}

func TestCheckEventFields(t *testing.T) {
	h := newHarness(t)
	rec := h.do(t, "POST", "/v1/calls/check", keyB,
		`{"call_id":"x","account":"a","to":"100","source_ip":"::ffff:192.0.2.7","time":"`+testNow.Add(-90*time.Second).In(time.FixedZone("", -3*3600)).Format(time.RFC3339Nano)+`"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	ev := h.eng.lastEvent(t)
	if ev.Tenant != tenantB {
		t.Errorf("tenant %q, want the key's tenant %q", ev.Tenant, tenantB)
	}
	if want := testNow.Add(-90 * time.Second); !ev.Time.Equal(want) {
		t.Errorf("time %v, want the request's %v", ev.Time, want)
	}
	if ev.SourceIP != netip.MustParseAddr("192.0.2.7") {
		t.Errorf("source ip %v, want it unmapped", ev.SourceIP)
	}
	var d event.Decision
	json.Unmarshal(rec.Body.Bytes(), &d)
	if d.Reasons == nil {
		t.Error(`"reasons" is null, want []`)
	}
}

func TestCheckRejectsBadInput(t *testing.T) {
	long := func(n int) string { return strings.Repeat("9", n) }
	for _, tc := range []struct {
		name, body, field, msg string
	}{
		{"unknown field", `{"call_id":"c","account":"a","to":"1","tenant":"other"}`, "tenant", "unknown field"},
		{"wrong type", `{"call_id":"c","account":"a","to":12345}`, "to", "must be a string"},
		{"wrong type call_id", `{"call_id":["c"],"account":"a","to":"1"}`, "call_id", "must be a string"},
		{"missing call_id", `{"account":"a","to":"1"}`, "call_id", "required"},
		{"long call_id", `{"call_id":"` + long(129) + `","account":"a","to":"1"}`, "call_id", "longer"},
		{"call_id with space", `{"call_id":"a b","account":"a","to":"1"}`, "call_id", "visible"},
		{"call_id with control", `{"call_id":"a\u0001","account":"a","to":"1"}`, "call_id", "visible"},
		{"missing account", `{"call_id":"c","to":"1"}`, "account", "required"},
		{"long account", `{"call_id":"c","account":"` + long(129) + `","to":"1"}`, "account", "longer"},
		{"account with newline", `{"call_id":"c","account":"a\nINFO forged","to":"1"}`, "account", "control"},
		{"missing to", `{"call_id":"c","account":"a"}`, "to", "required"},
		{"empty to", `{"call_id":"c","account":"a","to":""}`, "to", "required"},
		{"long to", `{"call_id":"c","account":"a","to":"` + long(65) + `"}`, "to", "longer"},
		{"long from", `{"call_id":"c","account":"a","to":"1","from":"` + long(65) + `"}`, "from", "longer"},
		{"bad source_ip", `{"call_id":"c","account":"a","to":"1","source_ip":"300.1.1.1"}`, "source_ip", "IP"},
		{"long user_agent", `{"call_id":"c","account":"a","to":"1","user_agent":"` + long(257) + `"}`, "user_agent", "longer"},
		{"bad time", `{"call_id":"c","account":"a","to":"1","time":"yesterday"}`, "time", "RFC 3339"},
		{"empty body", ``, "", "empty"},
		{"array", `[1,2]`, "", "JSON object"},
		{"string", `"hello"`, "", "JSON object"},
		{"malformed", `{"call_id":`, "", "malformed"},
		{"syntax", `{"call_id" "c"}`, "", "malformed"},
		{"trailing data", `{"call_id":"c","account":"a","to":"1"} {}`, "", "after the JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			rec := h.do(t, "POST", "/v1/calls/check", keyA, tc.body)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", rec.Code, rec.Body)
			}
			e := errorOf(t, rec)
			if e.Field != tc.field {
				t.Errorf("field %q, want %q (error %q)", e.Field, tc.field, e.Error)
			}
			if !strings.Contains(e.Error, tc.msg) {
				t.Errorf("error %q does not mention %q", e.Error, tc.msg)
			}
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	h := newHarness(t)
	big := `{"call_id":"c","account":"a","to":"1","user_agent":"` + strings.Repeat("x", 20<<10) + `"}`
	for _, path := range []string{"/v1/calls/check", "/v1/calls/c/ended"} {
		rec := h.do(t, "POST", path, keyA, big)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("%s: status %d, want 413; body %s", path, rec.Code, rec.Body)
		}
		errorOf(t, rec)
	}
	// Trailing whitespace past the limit is still too large.
	rec := h.do(t, "POST", "/v1/calls/check", keyA, checkBody("1")+strings.Repeat(" ", 17<<10))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("padded body: status %d, want 413", rec.Code)
	}
}

func TestAuth(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ name, header string }{
		{"missing", ""},
		{"wrong key", "Bearer nope"},
		{"empty key", "Bearer "},
		{"other scheme", "Basic " + keyA},
		{"key without scheme", keyA},
		{"key prefix", "Bearer " + keyA[:len(keyA)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, route := range []struct{ method, path string }{
				{"POST", "/v1/calls/check"}, {"POST", "/v1/calls/c/answered"}, {"POST", "/v1/calls/c/ended"},
				{"GET", "/v1/decisions"}, {"POST", "/v1/policy/reload"}, {"POST", "/v1/accounts/a/unsuspend"},
			} {
				req, _ := http.NewRequest(route.method, route.path, strings.NewReader(checkBody("1")))
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				rec := httptest.NewRecorder()
				h.srv.Handler().ServeHTTP(rec, req)
				if rec.Code != http.StatusUnauthorized {
					t.Errorf("%s %s: status %d, want 401", route.method, route.path, rec.Code)
					continue
				}
				if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("%s %s: WWW-Authenticate %q", route.method, route.path, got)
				}
				errorOf(t, rec)
			}
		})
	}
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "/v1/calls/check", strings.NewReader(checkBody("1")))
		req.Header.Set("Authorization", "bearer "+keyA)
		rec := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("status %d", rec.Code)
		}
	})
	t.Run("probes need no key", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			if rec := h.do(t, "GET", p, "", ""); rec.Code != http.StatusOK {
				t.Errorf("%s: status %d", p, rec.Code)
			}
		}
	})
}

func TestTenantIsolation(t *testing.T) {
	h := newHarness(t)
	if rec := h.do(t, "POST", "/v1/calls/check", keyA, checkBody("1")); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	h.eng.suspended[tenantA+"/acct-1"] = true
	// Tenant B's key cannot touch tenant A's call or account.
	for _, p := range []string{"/v1/calls/c1@pbx/answered", "/v1/calls/c1@pbx/ended", "/v1/accounts/acct-1/unsuspend"} {
		rec := h.do(t, "POST", p, keyB, "")
		if rec.Code != http.StatusNotFound {
			t.Errorf("%s with another tenant's key: status %d, want 404", p, rec.Code)
		}
	}
	h.do(t, "GET", "/v1/decisions", keyB, "")
	if h.log.tenant != tenantB {
		t.Errorf("decisions asked for tenant %q, want the key's %q", h.log.tenant, tenantB)
	}
	// Tenant A's key can.
	if rec := h.do(t, "POST", "/v1/calls/c1@pbx/answered", keyA, ""); rec.Code != http.StatusNoContent {
		t.Errorf("answered with own key: %d %s", rec.Code, rec.Body)
	}
}

func TestAnsweredAndEnded(t *testing.T) {
	h := newHarness(t)
	h.do(t, "POST", "/v1/calls/check", keyA, checkBody("1"))

	rec := h.do(t, "POST", "/v1/calls/c1@pbx/answered", keyA, `{"time":"2025-03-01T12:00:05Z"}`)
	if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Fatalf("answered: %d %q", rec.Code, rec.Body)
	}
	ev := h.eng.lastEvent(t)
	if ev.Kind != event.CallAnswered || ev.CallID != "c1@pbx" || ev.Tenant != tenantA || ev.Sensor != "api" ||
		!ev.Time.Equal(testNow.Add(5*time.Second)) {
		t.Errorf("answered event %+v", ev)
	}

	rec = h.do(t, "POST", "/v1/calls/c1@pbx/ended", keyA, `{"duration_s":61.5}`)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("ended: %d %s", rec.Code, rec.Body)
	}
	ev = h.eng.lastEvent(t)
	if ev.Kind != event.CallEnded || ev.Duration != 61500*time.Millisecond || !ev.Time.Equal(testNow) {
		t.Errorf("ended event %+v", ev)
	}

	// The call is gone now: 404 naming call_id.
	rec = h.do(t, "POST", "/v1/calls/c1@pbx/ended", keyA, "")
	if rec.Code != http.StatusNotFound {
		t.Fatalf("second ended: %d", rec.Code)
	}
	if e := errorOf(t, rec); e.Field != "call_id" {
		t.Errorf("field %q", e.Field)
	}

	// A call id with a slash travels percent-encoded.
	h.do(t, "POST", "/v1/calls/check", keyA, `{"call_id":"a/b","account":"a","to":"1"}`)
	if rec := h.do(t, "POST", "/v1/calls/a%2Fb/answered", keyA, ""); rec.Code != http.StatusNoContent {
		t.Errorf("escaped call id: %d %s", rec.Code, rec.Body)
	}

	for _, tc := range []struct {
		name, path, body string
		code             int
		field            string
	}{
		{"negative duration", "/v1/calls/c/ended", `{"duration_s":-1}`, 400, "duration_s"},
		{"huge duration", "/v1/calls/c/ended", `{"duration_s":1e300}`, 400, "duration_s"},
		{"string duration", "/v1/calls/c/ended", `{"duration_s":"60"}`, 400, "duration_s"},
		{"unknown field on answered", "/v1/calls/c/answered", `{"duration_s":1}`, 400, "duration_s"},
		{"bad time", "/v1/calls/c/answered", `{"time":"noon"}`, 400, "time"},
		{"bad call id", "/v1/calls/a%20b/answered", ``, 400, "call_id"},
		{"engine says bad event", "/v1/calls/bad-event/answered", ``, 400, ""},
		{"unknown call", "/v1/calls/nope/answered", ``, 404, "call_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.do(t, "POST", tc.path, keyA, tc.body)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d; %s", rec.Code, tc.code, rec.Body)
			}
			if e := errorOf(t, rec); e.Field != tc.field {
				t.Errorf("field %q, want %q (%s)", e.Field, tc.field, e.Error)
			}
		})
	}
}

func TestDecisions(t *testing.T) {
	h := newHarness(t)
	h.log.page = []event.Decision{{ID: 7, Tenant: tenantA, Verdict: event.Deny, Reasons: []event.Reason{{Rule: "r1", Mode: event.Enforce}}}, {ID: 6, Tenant: tenantA, Verdict: event.Allow}}
	h.log.next = "opaque-cursor-2"

	rec := h.do(t, "GET", "/v1/decisions?account=acct-1&verdict=deny&rule=r1&call_id=c1&since=2025-03-01T00:00:00Z&until=2025-03-02T00:00:00Z&limit=2&cursor=opaque-cursor-1", keyA, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	q := h.log.q
	if h.log.tenant != tenantA || q.Account != "acct-1" || q.Verdict != "deny" || q.Rule != "r1" || q.CallID != "c1" ||
		!q.Since.Equal(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)) || !q.Until.Equal(time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)) ||
		q.Limit != 2 || q.Cursor != "opaque-cursor-1" {
		t.Errorf("query passed as %+v for %q", q, h.log.tenant)
	}
	var body struct {
		Decisions  []map[string]any `json:"decisions"`
		NextCursor *string          `json:"next_cursor"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Decisions) != 2 || body.NextCursor == nil || *body.NextCursor != "opaque-cursor-2" {
		t.Errorf("body %s", rec.Body)
	}
	if body.Decisions[1]["reasons"] == nil {
		t.Errorf("reasons of a decision without any is null: %s", rec.Body)
	}

	h.log.page, h.log.next = nil, ""
	rec = h.do(t, "GET", "/v1/decisions", keyA, "")
	if got := strings.TrimSpace(rec.Body.String()); got != `{"decisions":[],"next_cursor":""}` {
		t.Errorf("empty page = %s", got)
	}
	if h.log.q.Limit != 0 {
		t.Errorf("default limit passed as %d, want 0 (the store's default)", h.log.q.Limit)
	}

	for _, tc := range []struct{ query, field string }{
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"since=yesterday", "since"},
		{"until=2025-13-01T00:00:00Z", "until"},
		{"since=2025-03-02T00:00:00Z&until=2025-03-01T00:00:00Z", "until"},
		{"verdict=maybe", "verdict"},
		{"acount=x", "acount"},
		{"account=a&account=b", "account"},
		{"call_id=a%20b", "call_id"},
		{"cursor=garbage", "cursor"},
		{"cursor=" + strings.Repeat("c", 600), "cursor"},
		{"account=%zz", ""},
	} {
		rec := h.do(t, "GET", "/v1/decisions?"+tc.query, keyA, "")
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", tc.query, rec.Code)
			continue
		}
		if e := errorOf(t, rec); e.Field != tc.field {
			t.Errorf("%s: field %q, want %q (%s)", tc.query, e.Field, tc.field, e.Error)
		}
	}
}

func TestReload(t *testing.T) {
	h := newHarness(t)
	rec := h.do(t, "POST", "/v1/policy/reload", keyA, "")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"status":"reloaded"}` {
		t.Fatalf("reload: %d %s", rec.Code, rec.Body)
	}
	h.rel.err = errors.New(`load policy: policies/acme.yaml:12: rule "irsf": unknown field "treshold"`)
	rec = h.do(t, "POST", "/v1/policy/reload", keyA, "")
	if rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("refused reload: %d", rec.Code)
	}
	if e := errorOf(t, rec); e.Error != h.rel.err.Error() {
		t.Errorf("error %q, want the reloader's message %q", e.Error, h.rel.err)
	}
}

func TestUnsuspend(t *testing.T) {
	h := newHarness(t)
	h.eng.suspended[tenantA+"/acct 9"] = true
	rec := h.do(t, "POST", "/v1/accounts/acct%209/unsuspend", keyA, "")
	if rec.Code != http.StatusNoContent {
		t.Fatalf("unsuspend: %d %s", rec.Code, rec.Body)
	}
	if len(h.eng.actors) != 1 || !strings.HasPrefix(h.eng.actors[0], "api key:") || strings.Contains(h.eng.actors[0], keyA) {
		t.Errorf("actors %q", h.eng.actors)
	}
	rec = h.do(t, "POST", "/v1/accounts/acct%209/unsuspend", keyA, "")
	if rec.Code != http.StatusNotFound {
		t.Fatalf("second unsuspend: %d", rec.Code)
	}
	errorOf(t, rec)
	if rec := h.do(t, "POST", "/v1/accounts/a%0Ab/unsuspend", keyA, ""); rec.Code != http.StatusBadRequest {
		t.Errorf("control character in id: %d", rec.Code)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	h := newHarness(t)
	if rec := h.do(t, "GET", "/healthz", "", ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), "ok") {
		t.Errorf("healthz %d %s", rec.Code, rec.Body)
	}
	if rec := h.do(t, "GET", "/readyz", "", ""); rec.Code != 200 {
		t.Errorf("readyz %d", rec.Code)
	}
	h.ready = errors.New("store: dial postgres://secret@db: refused")
	rec := h.do(t, "GET", "/readyz", "", "")
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("not ready: %d", rec.Code)
	}
	if e := errorOf(t, rec); strings.Contains(e.Error, "secret") {
		t.Errorf("readyz leaks the checker's error: %q", e.Error)
	}
	h.do(t, "GET", "/readyz", "", "")
	if n := strings.Count(h.logs.String(), `"msg":"not ready"`); n != 1 {
		t.Errorf("not-ready logged %d times, want once per change", n)
	}
	if rec := h.do(t, "GET", "/healthz", "", ""); rec.Code != 200 {
		t.Errorf("healthz while not ready: %d", rec.Code)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{"GET", "/v1/calls/check", 405, "POST"},
		{"DELETE", "/healthz", 405, "GET, HEAD"},
		{"POST", "/v1/decisions", 405, "GET, HEAD"},
		{"GET", "/v1/calls/c1/answered", 405, "POST"},
		{"GET", "/nope", 404, ""},
		{"POST", "/v1/calls", 404, ""},
		{"GET", "/v1/decisions/", 404, ""},
	} {
		rec := h.do(t, tc.method, tc.path, keyA, "")
		if rec.Code != tc.code {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, rec.Code, tc.code)
			continue
		}
		errorOf(t, rec)
		if got := rec.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
}

func TestNotConfigured(t *testing.T) {
	srv, err := New(Config{Keys: map[string]string{keyA: tenantA}}, newFakeEngine(), nil, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{srv: srv}
	for _, p := range []struct{ method, path string }{{"GET", "/v1/decisions"}, {"POST", "/v1/policy/reload"}} {
		if rec := h.do(t, p.method, p.path, keyA, ""); rec.Code != http.StatusNotImplemented {
			t.Errorf("%s without a backend: %d", p.path, rec.Code)
		}
	}
	if rec := h.do(t, "GET", "/readyz", "", ""); rec.Code != 200 {
		t.Errorf("readyz without a checker: %d", rec.Code)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	eng := newFakeEngine()
	for _, tc := range []struct {
		name string
		cfg  Config
		eng  Engine
	}{
		{"no engine", Config{Keys: map[string]string{keyA: tenantA}}, nil},
		{"no keys", Config{}, eng},
		{"empty tenant", Config{Keys: map[string]string{keyA: ""}}, eng},
		{"empty key", Config{Keys: map[string]string{"": tenantA}}, eng},
		{"key with space", Config{Keys: map[string]string{"a key": tenantA}}, eng},
		{"negative body limit", Config{Keys: map[string]string{keyA: tenantA}, MaxBodyBytes: -1}, eng},
	} {
		_, err := New(tc.cfg, tc.eng, nil, nil, nil, nil, nil)
		if err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		} else if strings.Contains(err.Error(), "a key") {
			t.Errorf("%s: error names the key: %v", tc.name, err)
		}
	}
}

// TestPanicIsContained drives a real listener: a panicking engine gives the
// client a 500 JSON answer on a connection that stays usable, one log line,
// and the server keeps serving.
func TestPanicIsContained(t *testing.T) {
	h := newHarness(t)
	base := h.start(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
	post := func(body string) (*http.Response, []byte) {
		req, _ := http.NewRequest("POST", base+"/v1/calls/check", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+keyA)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request failed (connection dropped?): %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := post(checkBody("panic"))
	if resp.StatusCode != 500 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(b), `"error"`) {
		t.Fatalf("panic answered %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	for range 3 {
		if resp, b := post(checkBody("1")); resp.StatusCode != 200 {
			t.Fatalf("after panic: %d %s", resp.StatusCode, b)
		}
	}
	if n := strings.Count(h.logs.String(), "handler panicked"); n != 1 {
		t.Errorf("panic logged %d times, want 1", n)
	}
}

// start serves h on a real listener until the test ends.
func (h *harness) start(t *testing.T) string {
	t.Helper()
	if err := h.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return "http://" + h.srv.Addr()
}

func TestRunServesAndShutsDown(t *testing.T) {
	h := newHarness(t)
	if h.srv.Addr() != "" {
		t.Errorf("Addr before Listen = %q", h.srv.Addr())
	}
	if err := h.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := h.srv.Addr()
	if strings.HasSuffix(addr, ":0") || addr == "" {
		t.Fatalf("Addr after Listen = %q, want the bound port", addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Run(ctx) }()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after a clean shutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err := h.srv.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestMetricsExposed(t *testing.T) {
	h := newHarness(t)
	h.do(t, "POST", "/v1/calls/check", keyA, checkBody("+449091234567"))
	h.do(t, "POST", "/v1/calls/check", keyA, checkBody("1"))
	h.do(t, "POST", "/v1/calls/check", keyA, `{}`)
	h.do(t, "POST", "/v1/calls/some-unique-call-id/answered", keyA, "")
	h.do(t, "GET", "/nope/secret-path", "", "")
	rec := h.do(t, "GET", "/metrics", "", "")
	if rec.Code != 200 {
		t.Fatalf("metrics %d", rec.Code)
	}
	text := rec.Body.String()
	for _, want := range []string{
		`telguard_api_requests_total{code="200",route="POST /v1/calls/check"} 2`,
		`telguard_api_requests_total{code="400",route="POST /v1/calls/check"} 1`,
		`telguard_api_requests_total{code="404",route="POST /v1/calls/{call_id}/answered"} 1`,
		`telguard_api_requests_total{code="404",route="unmatched"} 1`,
		`telguard_decisions_total{verdict="deny"} 1`,
		`telguard_decisions_total{verdict="allow"} 1`,
		`telguard_rule_hits_total{mode="enforce",rule="premium-rate"} 1`,
		`telguard_decision_seconds_bucket{le="1e-06"}`,
		`telguard_decision_seconds_count 2`,
		`telguard_api_request_seconds_count{route="POST /v1/calls/check"} 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, leak := range []string{"some-unique-call-id", "secret-path"} {
		if strings.Contains(text, leak) {
			t.Errorf("metrics carry the raw path %q", leak)
		}
	}
}

func TestSecondServerSharesMetrics(t *testing.T) {
	h := newHarness(t)
	if _, err := New(Config{Keys: map[string]string{keyA: tenantA}}, h.eng, nil, nil, nil, h.reg, nil); err != nil {
		t.Fatalf("second server on the same registry: %v", err)
	}
}

func TestLogsHideNumbersAndKeys(t *testing.T) {
	h := newHarness(t)
	h.do(t, "POST", "/v1/calls/check", keyA, checkBody("+5511987654321"))
	h.do(t, "POST", "/v1/calls/check", keyA, `{"call_id":"c","account":"a","to":"+5511987654321","from":12}`)
	h.do(t, "POST", "/v1/calls/check", "wrong-"+keyA, checkBody("+5511987654321"))
	h.eng.suspended[tenantA+"/acct-1"] = true
	h.do(t, "POST", "/v1/accounts/acct-1/unsuspend", keyA, "")
	h.rel.err = errTest
	h.do(t, "POST", "/v1/policy/reload", keyA, "")
	logs := h.logs.String()
	if !strings.Contains(logs, "call checked") {
		t.Fatalf("no debug log of the decision: %s", logs)
	}
	for _, secret := range []string{"987654321", "551130001000", keyA} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
}

// A daemon dedicated to simulation may accept any event time; the engine
// then sees the time the client sent.
func TestCheckAnyEventTimeWhenConfigured(t *testing.T) {
	h := newHarness(t)
	h.srv.cfg.AnyEventTime = true
	at := testNow.Add(30 * 24 * time.Hour)
	rec := h.do(t, "POST", "/v1/calls/check", keyB, `{"call_id":"x","account":"a","to":"100","time":"`+at.Format(time.RFC3339)+`"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if ev := h.eng.lastEvent(t); !ev.Time.Equal(at) {
		t.Fatalf("engine saw time %v, want %v", ev.Time, at)
	}
}

// An inbound call (a ring the tenant receives) reaches the engine marked
// inbound with its caller, so Wangiri callbacks can be recognised; a
// direction the API does not know is refused, naming the field.
func TestCheckDirection(t *testing.T) {
	h := newHarness(t)
	rec := h.do(t, "POST", "/v1/calls/check", keyB, `{"call_id":"r1","account":"a","from":"+882345678901","to":"1001","direction":"inbound"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("inbound: %d %s", rec.Code, rec.Body)
	}
	if ev := h.eng.lastEvent(t); ev.Direction != event.Inbound || ev.From != "+882345678901" {
		t.Fatalf("engine got direction %q from %q, want inbound from the caller", ev.Direction, ev.From)
	}
	rec = h.do(t, "POST", "/v1/calls/check", keyB, `{"call_id":"o1","account":"a","to":"100","direction":"outbound"}`)
	if ev := h.eng.lastEvent(t); rec.Code != http.StatusOK || ev.Direction.IsInbound() {
		t.Fatalf("outbound: %d %s, direction %q", rec.Code, rec.Body, ev.Direction)
	}
	for body, field := range map[string]string{
		`{"call_id":"x","account":"a","to":"100","direction":"sideways"}`: "direction",
		`{"call_id":"x","account":"a","to":"100","direction":"inbound"}`:  "from",
	} {
		rec := h.do(t, "POST", "/v1/calls/check", keyB, body)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"field":"`+field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", body, rec.Code, rec.Body, field)
		}
	}
}
