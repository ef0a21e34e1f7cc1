package numbering

import (
	"errors"
	"testing"
)

func TestPrefixTable(t *testing.T) {
	var tab PrefixTable[string]
	for _, p := range []string{"1", "+1876", "44", "447", "4479", "882"} {
		if err := tab.Insert(p, "v"+p); err != nil {
			t.Fatalf("Insert(%q): %v", p, err)
		}
	}
	if err := tab.Insert("44", "v44 again"); err != nil { // replaces
		t.Fatal(err)
	}
	if tab.Len() != 6 {
		t.Errorf("Len = %d, want 6", tab.Len())
	}
	tests := []struct {
		in, wantV, wantP string
		ok               bool
	}{
		{"+18765551234", "v+1876", "1876", true},
		{"+12125551234", "v1", "1", true},
		{"+447911123456", "v4479", "4479", true},
		{"+447400123456", "v447", "447", true},
		{"+442079460000", "v44 again", "44", true},
		{"442079460000", "v44 again", "44", true}, // '+' is optional
		{"+44", "v44 again", "44", true},
		{"+4", "", "", false},
		{"+33123456789", "", "", false},
		{"", "", "", false},
		{"+4x4", "", "", false}, // stops at the non-digit
		{"+88", "", "", false},
	}
	for _, tt := range tests {
		v, p, ok := tab.Longest(tt.in)
		if v != tt.wantV || p != tt.wantP || ok != tt.ok {
			t.Errorf("Longest(%q) = %q, %q, %v; want %q, %q, %v", tt.in, v, p, ok, tt.wantV, tt.wantP, tt.ok)
		}
	}
}

func TestPrefixTableZeroValue(t *testing.T) {
	var tab PrefixTable[int]
	if _, _, ok := tab.Longest("+44"); ok || tab.Len() != 0 {
		t.Error("empty table matched")
	}
}

func TestPrefixTableInsertErrors(t *testing.T) {
	var tab PrefixTable[int]
	for _, p := range []string{"", "+", "4a", "+ 44", "++44", "-1", "1234567890123456"} {
		if err := tab.Insert(p, 1); !errors.Is(err, ErrBadPrefix) {
			t.Errorf("Insert(%q) error = %v, want ErrBadPrefix", p, err)
		}
	}
	if tab.Len() != 0 {
		t.Errorf("Len = %d after failed inserts", tab.Len())
	}
}
