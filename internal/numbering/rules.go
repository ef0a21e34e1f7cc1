package numbering

import (
	"fmt"
	"regexp"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// DialRules describe how a tenant's PBX sends dialled strings.
type DialRules struct {
	HomeCountry string // ISO 3166 alpha-2, e.g. "BR"; required

	// OutsideLine lists the digits dialled to get an outside line (e.g.
	// "9", "0"). They are stripped when what follows is then a valid
	// number; a ',' or 'p' pause after them is stripped too, and makes
	// the stripping unconditional.
	OutsideLine []string

	// InternationalPrefixes lists the IDD prefixes, e.g. "00", "011".
	// Empty means the home country's from libphonenumber metadata, which
	// may be a pattern: for BR it is 00 followed by a two-digit carrier
	// selection code (0014, 0021, 0041…).
	InternationalPrefixes []string

	// NationalPrefix is the trunk prefix, e.g. "0". Empty means the
	// metadata's rule, which also strips Brazilian carrier codes
	// (0 15 11 9xxxx-xxxx) and does similar per-country rewrites.
	NationalPrefix string
}

// maxPrefixDigits bounds the digit strings in DialRules; real ones are 1-4.
const maxPrefixDigits = 8

// Validate checks the rules and names the first field that is wrong.
func (r DialRules) Validate() error {
	if r.HomeCountry == "" {
		return fmt.Errorf("check dial rules: home country is required: %w", ErrInvalidRules)
	}
	if _, ok := regionMeta()[r.HomeCountry]; !ok {
		return fmt.Errorf("check dial rules: home country %q is not an upper-case ISO 3166 code libphonenumber knows: %w",
			r.HomeCountry, ErrInvalidRules)
	}
	for _, p := range r.OutsideLine {
		if !isDigits(p, maxPrefixDigits) {
			return fmt.Errorf("check dial rules: outside line %q must be 1-%d digits: %w", p, maxPrefixDigits, ErrInvalidRules)
		}
	}
	for _, p := range r.InternationalPrefixes {
		if !isDigits(p, maxPrefixDigits) {
			return fmt.Errorf("check dial rules: international prefix %q must be 1-%d digits: %w", p, maxPrefixDigits, ErrInvalidRules)
		}
	}
	if r.NationalPrefix != "" && !isDigits(r.NationalPrefix, maxPrefixDigits) {
		return fmt.Errorf("check dial rules: national prefix %q must be 1-%d digits: %w", r.NationalPrefix, maxPrefixDigits, ErrInvalidRules)
	}
	return nil
}

// isDigits reports whether s is 1 to max ASCII digits.
func isDigits(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// regionInfo is the part of a region's metadata the normaliser needs that
// phonenumbers does not export one by one.
type regionInfo struct {
	countryCode int
	idd         *regexp.Regexp // anchored at the start; nil if the region has none
	iddFull     *regexp.Regexp // the same, anchored at both ends
}

// regionMeta maps geographic region codes to their metadata, read once.
// phonenumbers.MetadataCollection is not safe for concurrent first use,
// hence the Once.
var regionMeta = sync.OnceValue(func() map[string]regionInfo {
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		// The metadata is embedded in the phonenumbers module; failing to
		// read it is a broken build, not a runtime condition.
		panic(fmt.Sprintf("numbering: read libphonenumber metadata: %v", err))
	}
	m := make(map[string]regionInfo, len(coll.Metadata))
	for _, md := range coll.Metadata {
		id := md.GetId()
		if id == "001" { // non-geographic entities are never a home
			continue
		}
		ri := regionInfo{countryCode: int(md.GetCountryCode())}
		if p := md.GetInternationalPrefix(); p != "" {
			ri.idd = regexp.MustCompile("^(?:" + p + ")")
			ri.iddFull = regexp.MustCompile("^(?:" + p + ")$")
		}
		m[id] = ri
	}
	return m
})

// callingCodes is the set of country calling codes libphonenumber knows.
var callingCodes = sync.OnceValue(func() map[int]bool {
	src := phonenumbers.GetSupportedCallingCodes()
	m := make(map[int]bool, len(src))
	for c := range src {
		m[c] = true
	}
	return m
})
