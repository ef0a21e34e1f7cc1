package e2e

import (
	"os"
	"reflect"
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

// Every field of the sip: section is in docs/sip.md's field table.
func TestDocsSIPEveryField(t *testing.T) {
	doc, err := os.ReadFile("../../docs/sip.md")
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeFor[config.SIP]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("sip.%s is not documented in docs/sip.md", name)
		}
	}
}
