package audit

import (
	"strings"
	"testing"
)

func TestMaskNumber(t *testing.T) {
	cases := []struct{ in, want string }{
		{"+5511987654334", "+55119******34"},
		{"+55 11 98765-4334", "+55 11 9****-**34"},
		{"1234", "****"},
		{"", ""},
		{"sip:alice", "***"},
		{"2001", "****"},
		{"004420794600", "00442*****00"},
	}
	for _, c := range cases {
		if got := MaskNumber(c.in); got != c.want {
			t.Errorf("MaskNumber(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzMaskNumber(f *testing.F) {
	f.Add("+5511987654334")
	f.Add("9,0044 20 7946 0000")
	f.Fuzz(func(t *testing.T, s string) {
		m := MaskNumber(s)
		// The masked form never reveals a run of 7 or more original digits,
		// which is the length of a subscriber number.
		run := 0
		for i := 0; i < len(m); i++ {
			if m[i] >= '0' && m[i] <= '9' {
				run++
				if run > 6 {
					t.Fatalf("MaskNumber(%q) = %q reveals %d digits in a row", s, m, run)
				}
			} else if m[i] != ' ' && m[i] != '-' {
				run = 0
			}
		}
		if strings.Count(m, "*") == 0 && len(s) >= 5 && strings.ContainsAny(s, "0123456789") {
			t.Fatalf("MaskNumber(%q) = %q masks nothing", s, m)
		}
	})
}
