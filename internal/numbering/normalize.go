package numbering

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// MaxInputLen caps the number part of a dialled string (a URI's user part),
// to bound the work an attacker can cause. Anything longer is ErrTooLong.
const MaxInputLen = 64

// maxURILen caps a whole dialled string, host and parameters included.
const maxURILen = 512

// maxE164Digits is the E.164 limit, country code included.
const maxE164Digits = 15

// DefaultCacheSize is the cache size NewNormalizer uses when given 0.
const DefaultCacheSize = 65536

// Normalizer normalises dialled strings for one set of dial rules. It is
// safe for concurrent use. It keeps a bounded cache of recent results
// because libphonenumber parsing is the slow part of a decision.
type Normalizer struct {
	rules   DialRules
	home    regionInfo
	outside []string // longest first, so "90" is tried before "9"
	idd     []string // longest first; empty means use home.idd
	cache   *cache   // nil when disabled
}

// NewNormalizer validates r and returns a Normalizer for it. cacheSize
// bounds the number of cached results: 0 means DefaultCacheSize, and a
// negative size disables the cache.
func NewNormalizer(r DialRules, cacheSize int) (*Normalizer, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("new normalizer: %w", err)
	}
	n := &Normalizer{
		rules:   r,
		home:    regionMeta()[r.HomeCountry],
		outside: longestFirst(r.OutsideLine),
		idd:     longestFirst(r.InternationalPrefixes),
	}
	if cacheSize == 0 {
		cacheSize = DefaultCacheSize
	}
	if cacheSize > 0 {
		n.cache = newCache(cacheSize)
	}
	return n, nil
}

func longestFirst(ss []string) []string {
	out := slices.Clone(ss)
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// result is what the cache holds: Normalize's two return values.
type result struct {
	num Number
	err error
}

// Normalize turns a dialled string into a Number. It accepts what PBXs
// send: "+44…", "0044…", "011…", "9011+44…", "9,0044…", spaces, dashes,
// dots, slashes and parentheses, sip:/sips:/tel: URIs (the user part is
// used), national numbers with or without the national prefix, and
// subscriber-only numbers where the metadata allows them.
//
// What cannot become a well-formed E.164 number is an error wrapping one
// of ErrEmpty, ErrBadCharacter, ErrTooShort, ErrTooLong or
// ErrUnknownCountryCode. A well-formed number that libphonenumber says
// does not exist is not an error: it comes back with Type Invalid.
func (n *Normalizer) Normalize(dialled string) (Number, error) {
	if len(dialled) > maxURILen {
		return Number{}, fmt.Errorf("normalize: input is %d bytes, over %d: %w", len(dialled), maxURILen, ErrTooLong)
	}
	user := userPart(dialled)
	if len(user) > MaxInputLen {
		return Number{}, fmt.Errorf("normalize: number part is %d bytes, over %d: %w", len(user), MaxInputLen, ErrTooLong)
	}
	// The cache is keyed by the user part: short keys, and one entry for
	// all the ways a URI can wrap the same number.
	if n.cache == nil {
		return n.normalize(user)
	}
	if r, ok := n.cache.get(user); ok {
		return r.num, r.err
	}
	num, err := n.normalize(user)
	// Clone: the caller's string may point into a large packet buffer
	// that the cache must not keep alive.
	n.cache.put(strings.Clone(user), result{num, err})
	return num, err
}

// normalize does the work for a user part of at most MaxInputLen bytes.
func (n *Normalizer) normalize(user string) (Number, error) {
	s, err := clean(user)
	if err != nil {
		return Number{}, fmt.Errorf("normalize: %w", err)
	}

	// An explicit pause says the digits before it are an outside line.
	if i := strings.IndexByte(s, ','); i >= 0 {
		head, tail := s[:i], strings.TrimLeft(s[i:], ",")
		if !slices.Contains(n.outside, head) {
			return Number{}, fmt.Errorf("normalize: pause after %d digits that are not an outside-line code: %w", len(head), ErrBadCharacter)
		}
		if strings.IndexByte(tail, ',') >= 0 {
			return Number{}, fmt.Errorf("normalize: more than one pause: %w", ErrBadCharacter)
		}
		if tail == "" {
			return Number{}, fmt.Errorf("normalize: nothing after the outside-line code: %w", ErrEmpty)
		}
		return n.parse(tail)
	}

	// Without a pause an outside-line code is stripped only when the rest
	// is then a valid number; otherwise the whole string may be one.
	// Preference: stripped and valid, whole and valid, stripped and
	// well-formed, whole and well-formed; else the whole string's error,
	// since that is what was dialled.
	var firstOK *Number
	var lastErr error
	try := func(cand string) bool {
		num, err := n.parse(cand)
		switch {
		case err != nil:
			lastErr = err
		case num.Type != Invalid:
			firstOK = &num
			return true
		case firstOK == nil:
			firstOK = &num
		}
		return false
	}
	for _, o := range n.outside {
		if len(s) > len(o) && strings.HasPrefix(s, o) && try(s[len(o):]) {
			return *firstOK, nil
		}
	}
	if try(s) || firstOK != nil {
		return *firstOK, nil
	}
	return Number{}, lastErr
}

// userPart strips a sip:, sips: or tel: scheme, a leading '<', and
// everything from the first '@' or ';' on.
func userPart(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "<")
	for _, scheme := range []string{"sip:", "sips:", "tel:"} {
		if len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) {
			s = s[len(scheme):]
			break
		}
	}
	if i := strings.IndexAny(s, "@;"); i >= 0 {
		s = s[:i]
	}
	return s
}

// clean drops visual separators and returns only digits, '+' and ','
// (pauses, with 'p' mapped to ','). It rejects everything else.
func clean(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
			b.WriteByte(c)
		case c == '+' || c == ',':
			b.WriteByte(c)
		case c == 'p' || c == 'P':
			b.WriteByte(',')
		case c == ' ' || c == '\t' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/':
		case c == '*' || c == '#':
			return "", fmt.Errorf("%q at byte %d (service codes are not numbers): %w", c, i, ErrBadCharacter)
		case c >= 0x80:
			return "", fmt.Errorf("non-ASCII byte at %d: %w", i, ErrBadCharacter)
		case c < 0x20 || c == 0x7f:
			return "", fmt.Errorf("control byte at %d: %w", i, ErrBadCharacter)
		default:
			return "", fmt.Errorf("%q at byte %d: %w", c, i, ErrBadCharacter)
		}
	}
	if digits == 0 {
		return "", fmt.Errorf("no digits: %w", ErrEmpty)
	}
	return b.String(), nil
}

// parse reads digits with at most one '+' (no pauses) after any
// outside-line code has been stripped.
func (n *Normalizer) parse(s string) (Number, error) {
	if i := strings.IndexByte(s, '+'); i >= 0 {
		head, rest := s[:i], s[i+1:]
		if strings.IndexByte(rest, '+') >= 0 {
			return Number{}, fmt.Errorf("normalize: more than one '+': %w", ErrBadCharacter)
		}
		// "011+44…": some PBXs keep the '+' after the IDD they added.
		if head != "" && !n.isIDD(head) {
			return Number{}, fmt.Errorf("normalize: '+' after %d digits that are not an international prefix: %w", len(head), ErrBadCharacter)
		}
		if rest == "" {
			return Number{}, fmt.Errorf("normalize: nothing after '+': %w", ErrTooShort)
		}
		return n.international(rest)
	}
	if rest, ok := n.stripIDD(s); ok {
		return n.international(rest)
	}
	return n.national(s)
}

// isIDD reports whether s is exactly an international prefix.
func (n *Normalizer) isIDD(s string) bool {
	if len(n.idd) > 0 {
		return slices.Contains(n.idd, s)
	}
	return n.home.iddFull != nil && n.home.iddFull.MatchString(s)
}

// stripIDD removes a leading international prefix. Like libphonenumber it
// refuses when a '0' follows, since no country calling code starts with 0.
func (n *Normalizer) stripIDD(s string) (string, bool) {
	end := 0
	if len(n.idd) > 0 {
		for _, p := range n.idd {
			if strings.HasPrefix(s, p) {
				end = len(p)
				break
			}
		}
	} else if n.home.idd != nil {
		if loc := n.home.idd.FindStringIndex(s); loc != nil {
			end = loc[1]
		}
	}
	if end == 0 || end >= len(s) || s[end] == '0' {
		return "", false
	}
	return s[end:], true
}

// international reads a country calling code and national significant
// number. It does not let libphonenumber parse the digits: its parser
// strips national prefixes even after a '+' (+55 90 9… loses the 90), and
// telguard must judge the digits the carrier will see.
func (n *Normalizer) international(digits string) (Number, error) {
	if len(digits) > maxE164Digits {
		return Number{}, fmt.Errorf("normalize: %d digits after the international prefix, over %d: %w", len(digits), maxE164Digits, ErrTooLong)
	}
	for l := 1; l <= 3 && l <= len(digits); l++ {
		cc, _ := strconv.Atoi(digits[:l])
		if !callingCodes()[cc] {
			continue
		}
		nsn := digits[l:]
		if nsn == "" {
			return Number{}, fmt.Errorf("normalize: country code +%d with no number after it: %w", cc, ErrTooShort)
		}
		// Calling codes are prefix-free, so the first match is the one.
		return n.finish(libNumber(cc, nsn))
	}
	return Number{}, fmt.Errorf("normalize: no known country calling code in the first %d digits: %w", min(3, len(digits)), ErrUnknownCountryCode)
}

// libNumber builds a phonenumbers.PhoneNumber the way its parser would,
// including the leading zeros it keeps apart (Italian fixed lines).
func libNumber(cc int, nsn string) *phonenumbers.PhoneNumber {
	v, _ := strconv.ParseUint(nsn, 10, 64) // ≤ 15 digits: cannot overflow
	cc32, one := int32(cc), true
	pn := &phonenumbers.PhoneNumber{CountryCode: &cc32, NationalNumber: &v}
	if len(nsn) > 1 && nsn[0] == '0' {
		pn.ItalianLeadingZero = &one
		zeros := int32(1)
		// As in libphonenumber: an all-zero number keeps its last 0 in
		// NationalNumber.
		for int(zeros) < len(nsn)-1 && nsn[zeros] == '0' {
			zeros++
		}
		if zeros > 1 {
			pn.NumberOfLeadingZeros = &zeros
		}
	}
	return pn
}

// national reads a number dialled without an international prefix.
func (n *Normalizer) national(digits string) (Number, error) {
	if len(digits) < phonenumbers.MIN_LENGTH_FOR_NSN {
		return Number{}, fmt.Errorf("normalize: %d digit is too few for any number: %w", len(digits), ErrTooShort)
	}
	if n.rules.NationalPrefix != "" {
		nsn := digits
		if len(digits) > len(n.rules.NationalPrefix) {
			nsn = strings.TrimPrefix(digits, n.rules.NationalPrefix)
		}
		if len(nsn)+len(strconv.Itoa(n.home.countryCode)) > maxE164Digits {
			return Number{}, fmt.Errorf("normalize: %d-digit national number is over E.164's %d digits: %w", len(nsn), maxE164Digits, ErrTooLong)
		}
		return n.finish(libNumber(n.home.countryCode, nsn))
	}
	// libphonenumber knows each country's trunk prefix and carrier-code
	// rules, and a home country code dialled without '+'.
	pn, err := phonenumbers.Parse(digits, n.rules.HomeCountry)
	if err != nil {
		return Number{}, fmt.Errorf("normalize: %w", libError(err))
	}
	return n.finish(pn)
}

// libError maps a phonenumbers parse error to one of ours.
func libError(err error) error {
	switch {
	case errors.Is(err, phonenumbers.ErrTooShortNSN), errors.Is(err, phonenumbers.ErrTooShortAfterIDD):
		return fmt.Errorf("too few digits for any number: %w", ErrTooShort)
	case errors.Is(err, phonenumbers.ErrNumTooLong):
		return fmt.Errorf("too many digits for any number: %w", ErrTooLong)
	case errors.Is(err, phonenumbers.ErrInvalidCountryCode):
		return fmt.Errorf("country calling code after the international prefix: %w", ErrUnknownCountryCode)
	}
	// ErrNotANumber: clean has already removed all that could cause it.
	return fmt.Errorf("parse: %v: %w", err, ErrBadCharacter)
}

// finish checks the length of pn and classifies it.
func (n *Normalizer) finish(pn *phonenumbers.PhoneNumber) (Number, error) {
	cc := int(pn.GetCountryCode())
	nsn := phonenumbers.GetNationalSignificantNumber(pn)
	ccs := strconv.Itoa(cc)
	if len(ccs)+len(nsn) > maxE164Digits {
		return Number{}, fmt.Errorf("normalize: +%d number of %d digits in all is over E.164's %d: %w", cc, len(ccs)+len(nsn), maxE164Digits, ErrTooLong)
	}
	switch phonenumbers.IsPossibleNumberWithReason(pn) {
	case phonenumbers.TOO_SHORT:
		return Number{}, fmt.Errorf("normalize: %d digits is too few for a +%d number: %w", len(nsn), cc, ErrTooShort)
	case phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
		return Number{}, fmt.Errorf("normalize: %d digits is a local-only +%d number that needs an area code: %w", len(nsn), cc, ErrTooShort)
	case phonenumbers.INVALID_COUNTRY_CODE:
		return Number{}, fmt.Errorf("normalize: +%d: %w", cc, ErrUnknownCountryCode)
	}
	// A number is valid exactly when it has a type, which saves a pass of
	// IsValidNumber.
	region, typ := classify(cc, nsn)
	num := Number{
		E164:        "+" + ccs + nsn,
		CountryCode: cc,
		Region:      region,
		Type:        fromLib(typ),
	}
	if num.Region == "" {
		num.Region = phonenumbers.GetRegionCodeForCountryCode(cc)
	}
	num.International = cc != n.home.countryCode || !sameDomesticArea(n.rules.HomeCountry, num.Region)
	// The metadata knows few satellite and international-network ranges
	// and calls the rest invalid; telguard must still see them for what
	// they are, because that is where IRSF numbers live.
	switch cc {
	case 870, 881:
		num.Type = Satellite
	case 882, 883:
		num.Type = InternationalNetwork
	}
	return num, nil
}

// domesticAreas are regions that share a calling code and call each other
// as domestic calls. Any other pair of regions on one code (the US and
// Jamaica on +1, Russia and Kazakhstan on +7) is an international call,
// and revenue-share fraud knows it: the Caribbean NANP ranges are among the
// most abused destinations.
var domesticAreas = []map[string]bool{
	{"US": true, "CA": true, "PR": true, "VI": true, "GU": true, "AS": true, "MP": true, "UM": true},
	{"GB": true, "GG": true, "JE": true, "IM": true},
}

func sameDomesticArea(home, region string) bool {
	if home == region {
		return true
	}
	for _, a := range domesticAreas {
		if a[home] && a[region] {
			return true
		}
	}
	return false
}
