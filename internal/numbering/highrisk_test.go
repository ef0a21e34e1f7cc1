package numbering

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestDefaultHighRiskMatch(t *testing.T) {
	h := DefaultHighRisk()
	n := mustNormalizer(t, rulesUS, -1)
	tests := []struct {
		in       string
		wantRule string // "" for no match
	}{
		{"+53 7 123 4567", "CU"},
		{"+252 61 234 5678", "SO"},
		{"+370 612 34567", "LT"},
		{"+675 7012 3456", "PG"},
		{"+290 22158", "SH"},
		{"+1 876 555 1234", "+1876"},
		{"1 809 555 1234", "+1809"},
		{"+1 268 555 1234", "+1268"},
		{"+870 773 111 632", "+870"},
		{"+881 612 345 678", "+881"},
		{"+882 345 678 901", "+882"}, // invalid per metadata, still matched
		{"+883 510 001 2345", "+883"},
		{"+979 123 456 789", "+979"},
		{"+371 9000 0000", "+3719"}, // Latvian premium
		{"+371 2123 4567", ""},      // Latvian mobile
		{"+1 212 555 1234", ""},
		{"+44 20 7946 0000", ""},
		{"+55 11 98765 4321", ""},
		{"+49 30 12345678", ""},
	}
	for _, tt := range tests {
		num, err := n.Normalize(tt.in)
		if err != nil {
			t.Fatalf("Normalize(%q): %v", tt.in, err)
		}
		rule, ok := h.Match(num)
		if rule != tt.wantRule || ok != (tt.wantRule != "") {
			t.Errorf("Match(%s) = %q, %v; want %q", num.E164, rule, ok, tt.wantRule)
		}
	}
}

func TestHighRiskWith(t *testing.T) {
	h, err := DefaultHighRisk().With([]string{"DE"}, []string{"+4930"}, []string{"CU"}, []string{"1876"})
	if err != nil {
		t.Fatal(err)
	}
	check := func(h *HighRisk, e164, want string) {
		t.Helper()
		rule, ok := h.Match(Number{E164: e164, Region: regionOf(t, e164)})
		if rule != want || ok != (want != "") {
			t.Errorf("Match(%s) = %q, %v; want %q", e164, rule, ok, want)
		}
	}
	check(h, "+4930123456", "+4930")
	check(h, "+4989123456", "DE")
	check(h, "+5371234567", "")
	check(h, "+18765551234", "")
	// The default list is unchanged.
	check(DefaultHighRisk(), "+5371234567", "CU")
	check(DefaultHighRisk(), "+18765551234", "+1876")
	check(DefaultHighRisk(), "+4930123456", "")

	var none *HighRisk
	if _, ok := none.Match(Number{E164: "+870773111632", Region: "001"}); ok {
		t.Error("nil list matched")
	}
}

func regionOf(t *testing.T, e164 string) string {
	num, err := mustNormalizer(t, rulesGB, -1).Normalize(e164)
	if err != nil {
		t.Fatalf("Normalize(%q): %v", e164, err)
	}
	return num.Region
}

func TestHighRiskErrors(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		addC, addP, remC, remP []string
	}{
		{"unknown country", []string{"XX"}, nil, nil, nil},
		{"lower-case country", []string{"cu"}, nil, nil, nil},
		{"UK is not ISO", []string{"UK"}, nil, nil, nil},
		{"bad prefix", nil, []string{"+53a"}, nil, nil},
		{"empty prefix", nil, []string{"+"}, nil, nil},
		{"remove absent country", nil, nil, []string{"DE"}, nil},
		{"remove country listed as prefix", nil, nil, []string{"JM"}, nil},
		{"remove prefix listed as country", nil, nil, nil, []string{"+53"}},
	} {
		if _, err := DefaultHighRisk().With(tc.addC, tc.addP, tc.remC, tc.remP); !errors.Is(err, ErrBadHighRisk) {
			t.Errorf("%s: error = %v, want ErrBadHighRisk", tc.name, err)
		}
	}
	if _, err := NewHighRisk([]string{"CU"}, []string{"882"}); err != nil {
		t.Errorf("NewHighRisk: %v", err)
	}
}

// TestHighRiskDocumented keeps HIGHRISK.md and the built-in list in step.
func TestHighRiskDocumented(t *testing.T) {
	doc, err := os.ReadFile("HIGHRISK.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "| `") {
			rows++
		}
	}
	if rows != len(defaultHighRisk) {
		t.Errorf("HIGHRISK.md has %d rows, the built-in list %d entries", rows, len(defaultHighRisk))
	}
	h := DefaultHighRisk()
	for _, e := range defaultHighRisk {
		if !strings.Contains(string(doc), "| `"+e.key+"` |") {
			t.Errorf("HIGHRISK.md does not list %s", e.key)
		}
	}
	if got := len(h.Countries()) + len(h.Prefixes()); got != len(defaultHighRisk) {
		t.Errorf("DefaultHighRisk has %d entries, want %d (duplicates?)", got, len(defaultHighRisk))
	}
}

func BenchmarkHighRiskMatch(b *testing.B) {
	h := DefaultHighRisk()
	nums := []Number{
		{E164: "+442079460000", Region: "GB"},
		{E164: "+18765551234", Region: "JM"},
		{E164: "+5371234567", Region: "CU"},
		{E164: "+882345678901", Region: "001"},
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Match(nums[i%len(nums)])
	}
}
