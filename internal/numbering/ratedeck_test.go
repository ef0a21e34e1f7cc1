package numbering

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestParseRateDeck(t *testing.T) {
	const deck = `# carrier deck, June
prefix,rate_per_minute,currency

1,0.008
1876, 0.21 ,USD
44,0.012,GBP
447,0.045,GBP
+4479,0.09,GBP
882,2.5
`
	d, err := ParseRateDeck(strings.NewReader(deck), "june.csv")
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 6 || d.Name() != "june.csv" {
		t.Errorf("Len = %d, Name = %q", d.Len(), d.Name())
	}
	tests := []struct {
		e164 string
		want Rate
		ok   bool
	}{
		{"+12125551234", Rate{"1", 0.008, "USD"}, true},
		{"+18765551234", Rate{"1876", 0.21, "USD"}, true},
		{"+442079460000", Rate{"44", 0.012, "GBP"}, true},
		{"+447400123456", Rate{"447", 0.045, "GBP"}, true},
		{"+447911123456", Rate{"4479", 0.09, "GBP"}, true},
		{"+882345678901", Rate{"882", 2.5, "USD"}, true},
		{"+33123456789", Rate{}, false},
	}
	for _, tt := range tests {
		got, ok := d.Lookup(tt.e164)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v, %v", tt.e164, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseRateDeckCRLFAndNoHeader(t *testing.T) {
	d, err := ParseRateDeck(strings.NewReader("44,0.01\r\n\r\n# x\r\n33,0.02,EUR\r\n"), "win.csv")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := d.Lookup("+33123456789"); r != (Rate{"33", 0.02, "EUR"}) {
		t.Errorf("Lookup = %+v", r)
	}
}

func TestParseRateDeckErrors(t *testing.T) {
	tests := []struct {
		deck string
		want string // exact error text before ": bad rate deck"
	}{
		{"44,0.01\n4a,0.02\n", `d.csv:2: bad prefix "4a": 'a' is not a digit`},
		{"44,0.01\n,0.02\n", `d.csv:2: bad prefix "": no digits`},
		{"1234567890123456,0.02\n", `d.csv:1: bad prefix "1234567890123456": 16 digits, over 15`},
		{"# c\n\n44,-0.01\n", `d.csv:3: bad rate "-0.01": want a finite number ≥ 0`},
		{"44,NaN\n", `d.csv:1: bad rate "NaN": want a finite number ≥ 0`},
		{"44,+Inf\n", `d.csv:1: bad rate "+Inf": want a finite number ≥ 0`},
		{"44,1e400\n", `d.csv:1: bad rate "1e400": not a number`},
		{"44,cheap\n", `d.csv:1: bad rate "cheap": not a number`},
		{"44,0.01,usd\n", `d.csv:1: bad currency "usd": want 3 upper-case letters`},
		{"44,0.01,EURO\n", `d.csv:1: bad currency "EURO": want 3 upper-case letters`},
		{"44\n", `d.csv:1: want prefix,rate_per_minute[,currency], got 1 fields`},
		{"44,0.01,USD,x\n", `d.csv:1: want prefix,rate_per_minute[,currency], got 4 fields`},
		{"44,0.01\n33,0.02\n+44,0.03\n", `d.csv:3: duplicate prefix 44`},
		{"44,0.01\nprefix,rate_per_minute\n", `d.csv:2: bad prefix "prefix": 'p' is not a digit`}, // header only first
		{"44,0.01\n" + strings.Repeat("9", 300) + ",1\n", `d.csv:2: line too long (max 256 bytes)`},
		{"# nothing\n", `d.csv: no rates`},
		{"", `d.csv: no rates`},
	}
	for _, tt := range tests {
		_, err := ParseRateDeck(strings.NewReader(tt.deck), "d.csv")
		if !errors.Is(err, ErrBadRateDeck) {
			t.Errorf("deck %q: error = %v, want ErrBadRateDeck", tt.deck, err)
			continue
		}
		if got := strings.TrimSuffix(err.Error(), ": "+ErrBadRateDeck.Error()); got != tt.want {
			t.Errorf("deck %q:\n got %s\nwant %s", tt.deck, got, tt.want)
		}
	}
}

func TestParseRateDeckTooManyRows(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a million-row deck")
	}
	var b strings.Builder
	for i := 0; i <= MaxRateRows; i++ {
		fmt.Fprintf(&b, "%d,0.01\n", 10_000_000+i)
	}
	_, err := ParseRateDeck(strings.NewReader(b.String()), "big.csv")
	if want := fmt.Sprintf("big.csv:%d: too many rows", MaxRateRows+1); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %v, want prefix %q", err, want)
	}
}

func TestDefaultRateDeck(t *testing.T) {
	d := DefaultRateDeck()
	n := mustNormalizer(t, rulesGB, -1)
	// Every calling code libphonenumber knows has a rate.
	for cc := range callingCodes() {
		if _, ok := d.Lookup(fmt.Sprintf("+%d0000000", cc)); !ok {
			t.Errorf("no default rate for +%d", cc)
		}
	}
	rate := func(in string) float64 {
		num, err := n.Normalize(in)
		if err != nil {
			t.Fatalf("Normalize(%q): %v", in, err)
		}
		r, ok := d.Lookup(num.E164)
		if !ok || r.Currency != "USD" || math.IsNaN(r.PerMinute) {
			t.Fatalf("Lookup(%s) = %+v, %v", num.E164, r, ok)
		}
		return r.PerMinute
	}
	if us, gb := rate("+12125551234"), rate("02079460000"); us > 0.02 || gb > 0.02 {
		t.Errorf("US %.3f, GB %.3f: want cheap", us, gb)
	}
	if jm, us := rate("+18765551234"), rate("+12125551234"); jm <= us {
		t.Errorf("Jamaica %.3f not above US %.3f: NANP rows missing?", jm, us)
	}
	for _, in := range []string{"+870773111632", "+881612345678", "+882345678901", "+8835100012345", "+979123456789"} {
		if r := rate(in); r < 1 || r > 3 {
			t.Errorf("%s: %.2f USD/min, want 1-3", in, r)
		}
	}
}

func FuzzParseRateDeck(f *testing.F) {
	for _, s := range []string{
		"prefix,rate_per_minute,currency\n44,0.01,GBP\n1876,0.2\n",
		"# c\n\n1,0.008\r\n",
		"44,-1\n", "44,NaN\n", "4a,1\n", "44,1\n44,2\n", ",,,\n", "+,1\n",
		"44,0.01,usd\n", strings.Repeat("9", 300), "\x00\n\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, err := ParseRateDeck(strings.NewReader(in), "fuzz.csv")
		if err != nil {
			if !errors.Is(err, ErrBadRateDeck) {
				t.Fatalf("error %v does not wrap ErrBadRateDeck", err)
			}
			return
		}
		if d.Len() == 0 {
			t.Fatal("empty deck without error")
		}
		// Every row read back: look each prefix up as a number.
		for _, line := range strings.Split(in, "\n") {
			f := strings.Split(strings.TrimSpace(line), ",")
			p, problem := checkPrefix(strings.TrimSpace(f[0]))
			if problem != "" {
				continue // comment, blank or header
			}
			r, ok := d.Lookup(p)
			if !ok || r.Prefix != p || r.PerMinute < 0 || math.IsNaN(r.PerMinute) || math.IsInf(r.PerMinute, 0) || !isCurrency(r.Currency) {
				t.Fatalf("Lookup(%s) = %+v, %v", p, r, ok)
			}
		}
	})
}

func BenchmarkRateLookup(b *testing.B) {
	d := DefaultRateDeck()
	nums := []string{"+442079460000", "+18765551234", "+5511987654321", "+882345678901", "+12125551234"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Lookup(nums[i%len(nums)])
	}
}
