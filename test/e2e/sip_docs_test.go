package e2e

import (
	"strings"
	"testing"

	"github.com/telguard/telguard/internal/config"
)

// Every ```yaml block of docs/sip.md holding "sip:" is a configuration
// telguard accepts: the examples are copied into real config files.
func TestDocsSIPConfigExamples(t *testing.T) {
	n := 0
	for _, b := range readBlocks(t, "../../docs/sip.md") {
		if b.lang != "yaml" || !strings.Contains(b.body, "sip:") {
			continue
		}
		n++
		if _, err := config.Parse("docs/sip.md", []byte(b.body)); err != nil {
			t.Errorf("docs/sip.md:%d: %v", b.line, err)
		}
	}
	if n < 3 {
		t.Fatalf("found %d sip configuration examples in docs/sip.md", n)
	}
}
