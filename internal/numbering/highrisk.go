package numbering

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// HighRisk is a set of countries (ISO 3166 alpha-2) and prefixes (E.164
// digits without '+') where calls are treated as high risk for
// International Revenue Share Fraud. It is read-only once built and safe
// for concurrent use; With returns a changed copy.
type HighRisk struct {
	countries map[string]bool
	prefixes  map[string]bool
	table     PrefixTable[string] // value: the rule, "+prefix"
}

// highRiskEntry is one row of the built-in list. HIGHRISK.md carries the
// same rows for people; a test keeps the two in step.
type highRiskEntry struct {
	key  string // "CU" for a country, "+1876" for a prefix
	name string
	why  string
}

// defaultHighRisk is the built-in IRSF list.
//
// It is a STARTING POINT, not a verdict. It gathers destinations that
// appear again and again in published IRSF and Wangiri warnings and in
// carriers' fraud-block lists: places with high termination rates, small
// or remote networks whose ranges are resold to "international premium
// rate number" providers, and the shared international networks where
// anyone can get a range. Many legitimate calls go to every one of them.
// Tune it per tenant with HighRisk.With (add what your carrier flags,
// remove where you do business).
var defaultHighRisk = []highRiskEntry{
	// Shared international codes: ranges are easy to obtain, rates are high.
	{"+870", "Inmarsat (satellite)", "satellite termination at several USD/min; classic IRSF sink"},
	{"+881", "Global Mobile Satellite System (Iridium, Globalstar, Thuraya)", "satellite termination at several USD/min"},
	{"+882", "International Networks", "shared code for carriers and IoT; ranges resold for revenue share"},
	{"+883", "International Networks", "as +882"},
	{"+979", "International Premium Rate Service", "premium rate by definition"},

	// NANP: dialled like a domestic call from the US and Canada, billed as
	// international. The "one ring" / "809" Wangiri scams use them.
	{"+1876", "Jamaica", "NANP pay-per-call and Wangiri callbacks"},
	{"+1658", "Jamaica (overlay)", "same country as +1876; listed so the overlay is not a way round"},
	{"+1809", "Dominican Republic", "NANP pay-per-call and Wangiri callbacks"},
	{"+1829", "Dominican Republic", "as +1809"},
	{"+1849", "Dominican Republic", "as +1809"},
	{"+1268", "Antigua and Barbuda", "NANP pay-per-call and Wangiri callbacks"},
	{"+1473", "Grenada", "NANP pay-per-call and Wangiri callbacks"},
	{"+1869", "Saint Kitts and Nevis", "NANP pay-per-call and Wangiri callbacks"},
	{"+1649", "Turks and Caicos Islands", "NANP pay-per-call and Wangiri callbacks"},
	{"+1664", "Montserrat", "NANP pay-per-call and Wangiri callbacks"},
	{"+1264", "Anguilla", "NANP pay-per-call and Wangiri callbacks"},
	{"+1284", "British Virgin Islands", "NANP pay-per-call and Wangiri callbacks"},

	// Latvia: only the non-geographic ranges (80 free phone, 81 shared
	// cost, 90 premium); ordinary Latvian numbers are not listed.
	{"+3718", "Latvia 8x ranges", "ranges reported in IRSF test-number lists"},
	{"+3719", "Latvia 9x (premium) ranges", "premium rate; reported in IRSF test-number lists"},

	// Europe.
	{"LT", "Lithuania", "mobile ranges widely resold as IRSF numbers"},
	{"BA", "Bosnia and Herzegovina", "high termination rates; frequent IRSF destination"},
	{"RS", "Serbia", "frequent IRSF destination"},
	{"ME", "Montenegro", "frequent IRSF destination"},
	{"AL", "Albania", "high mobile termination; frequent IRSF destination"},
	{"BY", "Belarus", "high termination rates; frequent IRSF destination"},
	{"MD", "Moldova", "frequent IRSF destination"},

	// Americas and the Atlantic.
	{"CU", "Cuba", "very high termination rates; long IRSF history"},
	{"FK", "Falkland Islands", "small remote network, high rates"},
	{"SH", "Saint Helena", "small remote network, high rates"},
	{"TA", "Tristan da Cunha", "shares +290 with Saint Helena; satellite-backed"},
	{"AC", "Ascension Island", "small remote network, high rates"},
	{"PM", "Saint Pierre and Miquelon", "small network, high rates; cited in IRSF lists"},
	{"CV", "Cape Verde", "cited in IRSF lists"},

	// Africa.
	{"SO", "Somalia", "very high termination rates; frequent IRSF destination"},
	{"GN", "Guinea", "high termination rates; frequent IRSF destination"},
	{"SL", "Sierra Leone", "high termination rates; frequent IRSF destination"},
	{"LR", "Liberia", "high termination rates; frequent IRSF destination"},
	{"GM", "Gambia", "high termination rates; frequent IRSF destination"},
	{"GW", "Guinea-Bissau", "high termination rates; frequent IRSF destination"},
	{"TN", "Tunisia", "frequent IRSF destination"},
	{"ST", "Sao Tome and Principe", "small network, high rates"},
	{"TD", "Chad", "high termination rates"},
	{"CG", "Congo", "high termination rates"},
	{"CD", "DR Congo", "high termination rates"},
	{"MG", "Madagascar", "high termination rates"},
	{"KM", "Comoros", "small network, high rates"},
	{"ZW", "Zimbabwe", "high termination rates; frequent IRSF destination"},

	// Indian Ocean and Pacific.
	{"IO", "Diego Garcia (British Indian Ocean Territory)", "satellite-backed, very high rates"},
	{"MV", "Maldives", "high termination rates"},
	{"PG", "Papua New Guinea", "high termination rates; frequent IRSF destination"},
	{"SB", "Solomon Islands", "small network, high rates"},
	{"NR", "Nauru", "small network, very high rates"},
	{"TV", "Tuvalu", "small network, very high rates"},
	{"CK", "Cook Islands", "small network, high rates"},
	{"NU", "Niue", "small network, very high rates"},
	{"TK", "Tokelau", "satellite-backed, very high rates"},
	{"KI", "Kiribati", "small network, high rates"},
	{"VU", "Vanuatu", "small network, high rates"},
}

var defaultHighRiskList = sync.OnceValue(func() *HighRisk {
	var countries, prefixes []string
	for _, e := range defaultHighRisk {
		if strings.HasPrefix(e.key, "+") {
			prefixes = append(prefixes, e.key)
		} else {
			countries = append(countries, e.key)
		}
	}
	h, err := NewHighRisk(countries, prefixes)
	if err != nil {
		panic(err) // built in and covered by tests
	}
	return h
})

// DefaultHighRisk returns the built-in IRSF list documented in
// HIGHRISK.md and above defaultHighRisk. It is a starting point to
// override with With, not an authority.
func DefaultHighRisk() *HighRisk { return defaultHighRiskList() }

// NewHighRisk builds a list from countries (ISO 3166 alpha-2, upper case)
// and prefixes (digits, optional '+').
func NewHighRisk(countries, prefixes []string) (*HighRisk, error) {
	return (&HighRisk{}).With(countries, prefixes, nil, nil)
}

// With returns a copy of h with entries added and removed; h is not
// changed. Removing an entry that is not on the list is an error, so that
// a typo, or removing "+53" when Cuba is listed as "CU", does not pass
// silently.
func (h *HighRisk) With(addCountries, addPrefixes, removeCountries, removePrefixes []string) (*HighRisk, error) {
	if h == nil {
		h = &HighRisk{}
	}
	out := &HighRisk{countries: make(map[string]bool), prefixes: make(map[string]bool)}
	for c := range h.countries {
		out.countries[c] = true
	}
	for p := range h.prefixes {
		out.prefixes[p] = true
	}
	for _, c := range addCountries {
		if _, ok := regionMeta()[c]; !ok {
			return nil, fmt.Errorf("add high-risk country %q: not an upper-case ISO 3166 code libphonenumber knows: %w", c, ErrBadHighRisk)
		}
		out.countries[c] = true
	}
	for _, p := range addPrefixes {
		d, problem := checkPrefix(p)
		if problem != "" {
			return nil, fmt.Errorf("add high-risk prefix %q: %s: %w", p, problem, ErrBadHighRisk)
		}
		out.prefixes[d] = true
	}
	for _, c := range removeCountries {
		if !out.countries[c] {
			return nil, fmt.Errorf("remove high-risk country %q: not on the list: %w", c, ErrBadHighRisk)
		}
		delete(out.countries, c)
	}
	for _, p := range removePrefixes {
		d, problem := checkPrefix(p)
		if problem != "" {
			return nil, fmt.Errorf("remove high-risk prefix %q: %s: %w", p, problem, ErrBadHighRisk)
		}
		if !out.prefixes[d] {
			return nil, fmt.Errorf("remove high-risk prefix %q: not on the list: %w", p, ErrBadHighRisk)
		}
		delete(out.prefixes, d)
	}
	for p := range out.prefixes {
		_ = out.table.Insert(p, "+"+p) // checked above
	}
	return out, nil
}

// Match reports whether n is high risk, and by which rule: "+prefix" for
// a prefix (the longest that matched), or the country code. Prefixes win
// because they are the more specific rule, and they match even numbers
// libphonenumber calls invalid. A nil list matches nothing.
func (h *HighRisk) Match(n Number) (rule string, ok bool) {
	if h == nil {
		return "", false
	}
	if rule, _, ok := h.table.Longest(n.E164); ok {
		return rule, true
	}
	if h.countries[n.Region] {
		return n.Region, true
	}
	return "", false
}

// Countries returns the listed countries, sorted.
func (h *HighRisk) Countries() []string { return sortedKeys(h.countries) }

// Prefixes returns the listed prefixes (digits, no '+'), sorted.
func (h *HighRisk) Prefixes() []string { return sortedKeys(h.prefixes) }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
