package engine

import (
	"testing"

	"github.com/telguard/telguard/internal/event"
)

// The engine's own severity must order verdicts exactly as event's does,
// unknown ones failing closed as deny.
func TestSeverityAsEvent(t *testing.T) {
	for _, v := range []event.Verdict{event.Allow, event.Challenge, event.Throttle, event.Deny, event.Ban, "", "block", "ALLOW"} {
		if severity(v) != v.Severity() || blocks(v) != v.Blocks() {
			t.Errorf("%q: severity %d blocks %v; event says %d %v", v, severity(v), blocks(v), v.Severity(), v.Blocks())
		}
	}
}
