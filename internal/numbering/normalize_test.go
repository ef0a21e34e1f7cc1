package numbering

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

var (
	rulesGB = DialRules{HomeCountry: "GB", OutsideLine: []string{"9"}}
	rulesUS = DialRules{HomeCountry: "US", OutsideLine: []string{"9"}, InternationalPrefixes: []string{"011"}}
	rulesBR = DialRules{HomeCountry: "BR"} // everything from metadata
)

func mustNormalizer(t testing.TB, r DialRules, cacheSize int) *Normalizer {
	t.Helper()
	n, err := NewNormalizer(r, cacheSize)
	if err != nil {
		t.Fatalf("NewNormalizer(%+v): %v", r, err)
	}
	return n
}

func TestNormalize(t *testing.T) {
	london := Number{E164: "+442079460000", CountryCode: 44, Region: "GB", Type: FixedLine}
	londonAbroad := london
	londonAbroad.International = true
	nyc := Number{E164: "+12125551234", CountryCode: 1, Region: "US", Type: FixedLineOrMobile}
	nycAbroad := nyc
	nycAbroad.International = true
	saoPauloMobile := Number{E164: "+5511987654321", CountryCode: 55, Region: "BR", Type: Mobile}

	tests := []struct {
		rules DialRules
		in    string
		want  Number
	}{
		// GB: national, international and PBX forms of one London number.
		{rulesGB, "+44 20 7946 0000", london},
		{rulesGB, "020 7946 0000", london},
		{rulesGB, "(020) 7946-0000", london},
		{rulesGB, "020.7946.0000", london},
		{rulesGB, "2079460000", london}, // without the national prefix
		{rulesGB, "00 44 20 7946 0000", london},
		{rulesGB, "9 020 7946 0000", london}, // outside line
		{rulesGB, "9,02079460000", london},   // outside line and pause
		{rulesGB, "9p02079460000", london},   // 'p' pause
		{rulesGB, "9,,0044 20 7946 0000", london},
		{rulesGB, "447400123456", Number{E164: "+447400123456", CountryCode: 44, Region: "GB", Type: Mobile}}, // home code without '+'
		{rulesGB, "sip:+442079460000@pbx.example.com;user=phone", london},
		{rulesGB, "SIP:02079460000@10.0.0.1", london},
		{rulesGB, "sips:00442079460000@pbx.example.com", london},
		{rulesGB, "tel:+44-20-7946-0000", london},
		{rulesGB, "tel:+442079460000;phone-context=example.com", london},
		{rulesGB, "<sip:02079460000@pbx>", london},
		{rulesGB, "sip:+442079460000@sbc-01.customer-trunks.eu-west-2.voice.example.com:5061;transport=tls;user=phone", london},
		{rulesGB, "0033 1 23 45 67 89", Number{E164: "+33123456789", CountryCode: 33, Region: "FR", Type: FixedLine, International: true}},
		{rulesGB, "07400 123456", Number{E164: "+447400123456", CountryCode: 44, Region: "GB", Type: Mobile}},
		// Crown dependencies share +44 but have their own regions.
		{rulesGB, "07911 123456", Number{E164: "+447911123456", CountryCode: 44, Region: "GG", Type: Mobile}},
		{rulesGB, "07624 123456", Number{E164: "+447624123456", CountryCode: 44, Region: "IM", Type: Mobile}},

		// US with outside line 9 and IDD 011.
		{rulesUS, "2125551234", nyc},
		{rulesUS, "12125551234", nyc},
		{rulesUS, "1 (212) 555-1234", nyc},
		{rulesUS, "212.555.1234", nyc},
		{rulesUS, "+1 212 555 1234", nyc},
		{rulesUS, "912125551234", nyc},
		{rulesUS, "92125551234", nyc},
		{rulesUS, "9,12125551234", nyc},
		{rulesUS, "sip:12125551234@gw.example.net", nyc},
		{rulesUS, "011 44 20 7946 0000", londonAbroad},
		{rulesUS, "011+44 20 7946 0000", londonAbroad},
		{rulesUS, "9011442079460000", londonAbroad},
		{rulesUS, "9011+442079460000", londonAbroad},
		{rulesUS, "9,011 44 20 7946 0000", londonAbroad},
		// Jamaica is on +1: same calling code, so not International.
		{rulesUS, "1 876 555 1234", Number{E164: "+18765551234", CountryCode: 1, Region: "JM", Type: Mobile, International: true}}, // Jamaica is abroad, +1 or not,
		// +7 is shared by Russia and Kazakhstan.
		{rulesUS, "011 7 701 123 4567", Number{E164: "+77011234567", CountryCode: 7, Region: "KZ", Type: Mobile, International: true}},

		// BR with everything from metadata.
		{rulesBR, "+55 11 98765-4321", saoPauloMobile},
		{rulesBR, "011 98765-4321", saoPauloMobile},
		{rulesBR, "(11) 98765-4321", saoPauloMobile},
		{rulesBR, "11987654321", saoPauloMobile},
		{rulesBR, "0 15 11 98765 4321", saoPauloMobile}, // carrier selection code 15
		{rulesBR, "0 21 11 98765 4321", saoPauloMobile}, // carrier selection code 21
		{rulesBR, "(11) 3456-7890", Number{E164: "+551134567890", CountryCode: 55, Region: "BR", Type: FixedLine}},
		{rulesBR, "0014 1 212 555 1234", nycAbroad}, // IDD 00 + carrier 14
		{rulesBR, "0021 44 20 7946 0000", londonAbroad},
		{rulesBR, "0041+44 20 7946 0000", londonAbroad},
		{rulesBR, "sip:+5511987654321@sbc.example.com.br", saoPauloMobile},
		{rulesBR, "0800 123 4567", Number{E164: "+558001234567", CountryCode: 55, Region: "BR", Type: TollFree}},
		{rulesBR, "4004-1234", Number{E164: "+5540041234", CountryCode: 55, Region: "BR", Type: SharedCost}}, // subscriber-only: no area code exists

		// Italian numbers keep their leading zero.
		{rulesBR, "+39 06 1234 5678", Number{E164: "+390612345678", CountryCode: 39, Region: "IT", Type: FixedLine, International: true}},
	}
	for _, tt := range tests {
		t.Run(tt.rules.HomeCountry+"/"+tt.in, func(t *testing.T) {
			n := mustNormalizer(t, tt.rules, -1)
			got, err := n.Normalize(tt.in)
			if err != nil {
				t.Fatalf("Normalize(%q) error: %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Normalize(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

// TestNormalizeTypes pins what the phonenumbers v1.8.1 metadata says
// about the ranges fraud policy cares about.
func TestNormalizeTypes(t *testing.T) {
	tests := []struct {
		in         string
		wantType   Type
		wantRegion string
	}{
		{"+449098790000", PremiumRate, "GB"}, // 09 premium
		// The metadata has no UK shared-cost range: 0842-0845 and
		// 0870-0873 ("service charge" numbers) are premium rate.
		{"+448451234567", PremiumRate, "GB"},
		{"+448700123456", PremiumRate, "GB"},
		{"+443001234567", UAN, "GB"}, // 03 non-geographic
		{"+445512345678", UAN, "GB"}, // 055 corporate
		{"+447012345678", PersonalNumber, "GB"},
		{"+445612345678", VoIP, "GB"},
		{"+448001234567", TollFree, "GB"},
		{"+5511987654321", Mobile, "BR"},
		{"+551134567890", FixedLine, "BR"},
		{"+553001234567", SharedCost, "BR"},
		{"+12125551234", FixedLineOrMobile, "US"}, // the US cannot tell
		{"+19005551234", PremiumRate, "US"},
		{"+18005550199", TollFree, "US"},
		{"+870773111632", Satellite, "001"},
		{"+881612345678", Satellite, "001"},
		{"+882345678901", InternationalNetwork, "001"}, // metadata: invalid
		{"+8835100012345", InternationalNetwork, "001"},
		{"+979123456789", PremiumRate, "001"},
		{"+80012345678", TollFree, "001"},
		{"+44207946000", Invalid, "GB"},   // 9 digits: a possible GB length, but not for 020
		{"+4402079460000", Invalid, "GB"}, // "+44 (0)20…": the 0 is kept, so it is invalid
		{"+5590987654321", Invalid, "BR"}, // libphonenumber's own parser would drop the 90
		{"+19995551234", Invalid, "US"},   // invalid +1: main region
		{"+3900612345678", Invalid, "IT"},
	}
	n := mustNormalizer(t, rulesGB, -1)
	for _, tt := range tests {
		got, err := n.Normalize(tt.in)
		if err != nil {
			t.Errorf("Normalize(%q) error: %v", tt.in, err)
			continue
		}
		if got.Type != tt.wantType || got.Region != tt.wantRegion || got.E164 != tt.in {
			t.Errorf("Normalize(%q) = %+v, want type %s region %s", tt.in, got, tt.wantType, tt.wantRegion)
		}
	}
}

func TestNormalizeErrors(t *testing.T) {
	tests := []struct {
		rules DialRules
		in    string
		want  error
	}{
		{rulesGB, "", ErrEmpty},
		{rulesGB, "   ", ErrEmpty},
		{rulesGB, "sip:@pbx.example.com", ErrEmpty},
		{rulesGB, "tel:", ErrEmpty},
		{rulesGB, "+", ErrEmpty},
		{rulesGB, "(--)", ErrEmpty},
		{rulesGB, "9,", ErrEmpty},
		{rulesGB, "sip:alice@pbx.example.com", ErrBadCharacter},
		{rulesGB, "1-800-FLOWERS", ErrBadCharacter},
		{rulesGB, "*72", ErrBadCharacter},
		{rulesGB, "#31#02079460000", ErrBadCharacter},
		{rulesGB, "+44 20 7946 0000 x12", ErrBadCharacter},
		{rulesGB, "02079460000\x00", ErrBadCharacter},
		{rulesGB, "０２０７９４６００００", ErrBadCharacter}, // full-width digits
		{rulesGB, "++442079460000", ErrBadCharacter},
		{rulesGB, "44+2079460000", ErrBadCharacter},
		{rulesGB, "1,02079460000", ErrBadCharacter}, // pause after something that is not an outside line
		{rulesGB, "9,0,02079460000", ErrBadCharacter},
		{rulesGB, "2001", ErrTooShort}, // internal extension
		{rulesGB, "92001", ErrTooShort},
		{rulesGB, "999", ErrTooShort}, // emergency: a short code, not E.164
		{rulesGB, "0", ErrTooShort},
		{rulesGB, "+44", ErrTooShort},
		{rulesGB, "+44 20", ErrTooShort},
		{rulesGB, "+8821", ErrTooShort},
		{rulesUS, "2001", ErrTooShort},
		{rulesUS, "911", ErrTooShort},
		{rulesUS, "555 1234", ErrTooShort}, // local number without its area code
		{rulesBR, "2001", ErrTooShort},
		{rulesGB, "+44 2079 4600 0012 34", ErrTooLong},            // 16 digits
		{rulesGB, "0207946000012345", ErrTooLong},                 // national, 17 digits as E.164
		{rulesGB, strings.Repeat("1", MaxInputLen+1), ErrTooLong}, // input cap
		{rulesGB, "+" + strings.Repeat(" ", MaxInputLen) + "1", ErrTooLong},
		{rulesGB, "sip:" + strings.Repeat("1", MaxInputLen+1) + "@pbx", ErrTooLong},
		{rulesGB, "sip:+442079460000@" + strings.Repeat("a", 512), ErrTooLong},
		{rulesGB, "+999 123456", ErrUnknownCountryCode},
		{rulesGB, "00 999 123456", ErrUnknownCountryCode},
		{rulesUS, "011 28 1234 5678", ErrUnknownCountryCode},
	}
	for _, tt := range tests {
		t.Run(tt.rules.HomeCountry+"/"+tt.in, func(t *testing.T) {
			n := mustNormalizer(t, tt.rules, -1)
			got, err := n.Normalize(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Normalize(%q) = %+v, %v; want error %v", tt.in, got, err, tt.want)
			}
			if got != (Number{}) {
				t.Errorf("Normalize(%q) returned %+v with its error", tt.in, got)
			}
			// Error text must not carry the number.
			if digits := onlyDigits(tt.in); len(digits) >= 6 && strings.Contains(onlyDigits(err.Error()), digits) {
				t.Errorf("error %q contains the dialled digits", err)
			}
		})
	}
}

func onlyDigits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func TestNormalizeOutsideLineZero(t *testing.T) {
	// A BR PBX with outside line 0, which is also the trunk prefix and the
	// start of the IDD: the stripped reading wins only when it is valid.
	n := mustNormalizer(t, DialRules{HomeCountry: "BR", OutsideLine: []string{"0"}}, -1)
	for in, want := range map[string]string{
		"0 11 98765 4321":        "+5511987654321", // outside line + area + number
		"0 011 98765 4321":       "+5511987654321", // outside line + national format
		"011 98765 4321":         "+5511987654321", // national format without outside line
		"0 0014 1 212 555 1234":  "+12125551234",   // outside line + IDD
		"0014 1 212 555 1234":    "+12125551234",   // IDD alone
		"0,0021 44 20 7946 0000": "+442079460000",
	} {
		got, err := n.Normalize(in)
		if err != nil || got.E164 != want {
			t.Errorf("Normalize(%q) = %+v, %v; want %s", in, got, err, want)
		}
	}
}

func TestNormalizeExplicitNationalPrefix(t *testing.T) {
	n := mustNormalizer(t, DialRules{HomeCountry: "GB", NationalPrefix: "0", InternationalPrefixes: []string{"00"}}, -1)
	for _, in := range []string{"020 7946 0000", "2079460000", "0044 20 7946 0000"} {
		got, err := n.Normalize(in)
		if err != nil || got.E164 != "+442079460000" || got.Type != FixedLine {
			t.Errorf("Normalize(%q) = %+v, %v", in, got, err)
		}
	}
	if _, err := n.Normalize("2001"); !errors.Is(err, ErrTooShort) {
		t.Errorf("Normalize(2001) error = %v, want ErrTooShort", err)
	}
}

func TestDialRulesValidate(t *testing.T) {
	good := []DialRules{
		{HomeCountry: "BR"},
		rulesGB, rulesUS,
		{HomeCountry: "DE", OutsideLine: []string{"0"}, InternationalPrefixes: []string{"00"}, NationalPrefix: "0"},
	}
	for _, r := range good {
		if err := r.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", r, err)
		}
	}
	bad := []DialRules{
		{},
		{HomeCountry: "br"},
		{HomeCountry: "UK"}, // the ISO code is GB
		{HomeCountry: "001"},
		{HomeCountry: "BR", OutsideLine: []string{""}},
		{HomeCountry: "BR", OutsideLine: []string{"9a"}},
		{HomeCountry: "BR", InternationalPrefixes: []string{"+"}},
		{HomeCountry: "BR", InternationalPrefixes: []string{"000000000"}},
		{HomeCountry: "BR", NationalPrefix: "O"},
	}
	for _, r := range bad {
		err := r.Validate()
		if !errors.Is(err, ErrInvalidRules) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidRules", r, err)
		}
		if _, err := NewNormalizer(r, 0); !errors.Is(err, ErrInvalidRules) {
			t.Errorf("NewNormalizer(%+v) = %v, want ErrInvalidRules", r, err)
		}
	}
}

func TestParseType(t *testing.T) {
	for _, typ := range allTypes {
		got, err := ParseType(string(typ))
		if err != nil || got != typ {
			t.Errorf("ParseType(%q) = %q, %v", typ, got, err)
		}
	}
	if got, err := ParseType(" PREMIUM_RATE "); err != nil || got != PremiumRate {
		t.Errorf("ParseType(PREMIUM_RATE) = %q, %v", got, err)
	}
	for _, s := range []string{"", "premium", "premium-rate", "sattelite"} {
		if _, err := ParseType(s); !errors.Is(err, ErrUnknownType) {
			t.Errorf("ParseType(%q) error = %v, want ErrUnknownType", s, err)
		}
	}
}

// cacheInputs mixes valid, invalid and failing inputs.
var cacheInputs = []string{
	"020 7946 0000", "+442079460000", "9,0044 20 7946 0000", "+449098790000",
	"+882345678901", "2001", "sip:alice@x", "", "+999 1", "07911 123456",
	"+5511987654321", "+44207946000",
}

func TestNormalizerCacheMatchesUncached(t *testing.T) {
	cached := mustNormalizer(t, rulesGB, 4) // tiny, so entries rotate out and back in
	plain := mustNormalizer(t, rulesGB, -1)
	for round := 0; round < 3; round++ {
		for _, in := range cacheInputs {
			g1, e1 := cached.Normalize(in)
			g2, e2 := plain.Normalize(in)
			if g1 != g2 || fmt.Sprint(e1) != fmt.Sprint(e2) {
				t.Errorf("round %d %q: cached %+v, %v; uncached %+v, %v", round, in, g1, e1, g2, e2)
			}
		}
	}
}

func TestNormalizerCacheBounded(t *testing.T) {
	for _, size := range []int{2, 10, 100, 5000} {
		n := mustNormalizer(t, rulesGB, size)
		for i := 0; i < 3*size+100; i++ {
			if _, err := n.Normalize(fmt.Sprintf("+4420%08d", i)); err != nil {
				t.Fatal(err)
			}
			if l := n.cache.len(); l > size {
				t.Fatalf("size %d: cache holds %d entries after %d inserts", size, l, i+1)
			}
		}
	}
	if n := mustNormalizer(t, rulesGB, 0); n.cache == nil {
		t.Error("cacheSize 0 disabled the cache; want the default size")
	}
	if n := mustNormalizer(t, rulesGB, -1); n.cache != nil {
		t.Error("negative cacheSize kept a cache")
	}
}

func TestNormalizerConcurrent(t *testing.T) {
	n := mustNormalizer(t, rulesGB, 8)
	want := make([]Number, len(cacheInputs))
	for i, in := range cacheInputs {
		want[i], _ = mustNormalizer(t, rulesGB, -1).Normalize(in)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				k := (i + g) % len(cacheInputs)
				if got, _ := n.Normalize(cacheInputs[k]); got != want[k] {
					t.Errorf("Normalize(%q) = %+v, want %+v", cacheInputs[k], got, want[k])
					return
				}
			}
		}()
	}
	wg.Wait()
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"+44 20 7946 0000", "020 7946 0000", "9,0044 20 7946 0000", "9011+442079460000",
		"011 44 20 7946 0000", "sip:+442079460000@pbx;user=phone", "tel:+1-212-555-1234",
		"0 15 11 98765 4321", "0014 1 212 555 1234", "2001", "*72#", "+882345678901",
		"+3900612345678", "00000000", "+0", "9p9p9", ",,,", "+5590987654321", "<sip:9@",
		"1 876 555 1234", "\xff\xfe", strings.Repeat("9", 64),
	} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(1))
		f.Add(s, uint8(2))
	}
	norms := []*Normalizer{
		mustNormalizer(f, rulesGB, -1),
		mustNormalizer(f, rulesUS, -1),
		mustNormalizer(f, DialRules{HomeCountry: "BR", OutsideLine: []string{"0"}}, -1),
	}
	f.Fuzz(func(t *testing.T, in string, which uint8) {
		n := norms[int(which)%len(norms)]
		got, err := n.Normalize(in)
		if err != nil {
			if got != (Number{}) {
				t.Fatalf("Normalize(%q) returned %+v with error %v", in, got, err)
			}
			for _, sentinel := range []error{ErrEmpty, ErrBadCharacter, ErrTooShort, ErrTooLong, ErrUnknownCountryCode} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("Normalize(%q) error %v wraps no sentinel", in, err)
		}
		e := got.E164
		if len(e) < 2 || len(e) > 16 || e[0] != '+' || onlyDigits(e[1:]) != e[1:] {
			t.Fatalf("Normalize(%q) = %q, not + and 1-15 digits", in, e)
		}
		again, err := n.Normalize(e)
		if err != nil || again != got {
			t.Fatalf("Normalize(%q) = %+v, but Normalize(%q) = %+v, %v", in, got, e, again, err)
		}
	})
}

// benchInputs are distinct dialled strings across countries and forms.
func benchInputs(count int) []string {
	forms := []string{"+4420%08d", "07400%06d", "0033 1 %08d", "011 55 11 9%08d", "+1 212 %07d", "+1876 %07d", "9,0049 30 %08d"}
	out := make([]string, count)
	for i := range out {
		out[i] = fmt.Sprintf(forms[i%len(forms)], i%1_000_000)
	}
	return out
}

func BenchmarkNormalize(b *testing.B) {
	n := mustNormalizer(b, DialRules{HomeCountry: "GB", OutsideLine: []string{"9"}, InternationalPrefixes: []string{"00", "011"}}, -1)
	in := benchInputs(1 << 16)
	for _, s := range in[:100] { // warm libphonenumber's regexp cache
		n.Normalize(s)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := n.Normalize(in[i%len(in)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeCached(b *testing.B) {
	n := mustNormalizer(b, DialRules{HomeCountry: "GB", OutsideLine: []string{"9"}, InternationalPrefixes: []string{"00", "011"}}, 0)
	in := benchInputs(1024)
	for _, s := range in {
		n.Normalize(s)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := n.Normalize(in[i%len(in)]); err != nil {
			b.Fatal(err)
		}
	}
}

func TestInternationalWithinSharedCode(t *testing.T) {
	us, err := NewNormalizer(DialRules{HomeCountry: "US", OutsideLine: []string{"9"}, InternationalPrefixes: []string{"011"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := NewNormalizer(DialRules{HomeCountry: "GB"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n    *Normalizer
		in   string
		intl bool
	}{
		{us, "+18765550123", true},  // Jamaica
		{us, "+18095550123", true},  // Dominican Republic
		{us, "+14165550123", false}, // Toronto: NANP domestic
		{us, "+12125550123", false},
		{gb, "+447911123456", false}, // Guernsey mobile from GB
		{gb, "+12125550123", true},
	} {
		num, err := c.n.Normalize(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if num.International != c.intl {
			t.Errorf("%s from %s: international %v, want %v (region %s)", c.in, c.n.rules.HomeCountry, num.International, c.intl, num.Region)
		}
	}
}
