package decisionapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
)

// fakeDLQ holds dead letters per tenant.
type fakeDLQ struct {
	mu       sync.Mutex
	byTenant map[string][]DeadLetter
	replayed []string
}

func (f *fakeDLQ) DeadLetters(_ context.Context, tenant string, limit int) ([]DeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.byTenant[tenant]
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (f *fakeDLQ) ReplayDeadLetter(_ context.Context, tenant, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.byTenant[tenant] {
		if d.ID == id {
			f.replayed = append(f.replayed, tenant+"/"+id)
			return nil
		}
	}
	return ErrNoDeadLetter
}

func TestDeadLetterRoutes(t *testing.T) {
	h := newHarness(t)
	if rec := h.do(t, "GET", "/v1/webhooks/dlq", keyA, ""); rec.Code != http.StatusNotImplemented {
		t.Fatalf("without a spool: %d, want 501", rec.Code)
	}
	dlq := &fakeDLQ{byTenant: map[string][]DeadLetter{
		tenantA: {{ID: "d1", Destination: "crm-a", Attempts: 7}, {ID: "d2", Destination: "crm-a"}},
		tenantB: {{ID: "d3", Destination: "crm-b"}},
	}}
	h.srv.SetDeadLetters(dlq)

	rec := h.do(t, "GET", "/v1/webhooks/dlq?limit=1", keyA, "")
	var page deadLetterPage
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &page) != nil || len(page.DeadLetters) != 1 || page.DeadLetters[0].ID != "d1" {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
	if rec := h.do(t, "GET", "/v1/webhooks/dlq?limit=0", keyA, ""); rec.Code != http.StatusBadRequest {
		t.Fatalf("limit=0: %d, want 400", rec.Code)
	}
	// Tenant B's dead letter is not tenant A's to replay.
	if rec := h.do(t, "POST", "/v1/webhooks/dlq/d3/replay", keyA, ""); rec.Code != http.StatusNotFound {
		t.Fatalf("other tenant's replay: %d, want 404", rec.Code)
	}
	if rec := h.do(t, "POST", "/v1/webhooks/dlq/d1/replay", keyA, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("replay: %d %s", rec.Code, rec.Body)
	}
	if rec := h.do(t, "POST", "/v1/webhooks/dlq/d1/replay", "", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("no key: %d, want 401", rec.Code)
	}
	if len(dlq.replayed) != 1 || dlq.replayed[0] != tenantA+"/d1" {
		t.Fatalf("replayed %v", dlq.replayed)
	}
}
