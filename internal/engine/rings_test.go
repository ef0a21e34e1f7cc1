package engine

import (
	"fmt"
	"testing"
	"time"
)

// The numbers that rang a tenant (wangiri.callbacks: tenant) are bounded:
// past maxTenantRings the one whose latest ring is oldest goes, so a
// number that rings again is kept over one that rang once after it, and
// the order list does not grow past twice the table.
func TestTenantRingsBounded(t *testing.T) {
	s := newTenantState("t0")
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	num := func(i int) string { return fmt.Sprintf("+1876555%04d", i) }
	for i := range maxTenantRings {
		s.ringTenant(num(i), at.Add(time.Duration(i)*time.Second))
	}
	s.ringTenant(num(0), at.Add(time.Duration(maxTenantRings)*time.Second)) // rings again
	s.ringTenant("+18765559999x", at.Add(time.Duration(maxTenantRings+1)*time.Second))
	if len(s.rings) != maxTenantRings {
		t.Fatalf("%d numbers kept, want %d", len(s.rings), maxTenantRings)
	}
	if _, ok := s.rings[num(0)]; !ok {
		t.Error("the number that rang again was evicted")
	}
	if _, ok := s.rings[num(1)]; ok {
		t.Error("the oldest ring was kept")
	}
	for i := range 3 * maxTenantRings { // one number ringing over and over
		s.ringTenant(num(5), at.Add(time.Duration(2*maxTenantRings+i)*time.Second))
	}
	if len(s.ringOrder) > 2*maxTenantRings+1 || len(s.rings) != maxTenantRings {
		t.Fatalf("order list %d, table %d after repeated rings", len(s.ringOrder), len(s.rings))
	}
}
