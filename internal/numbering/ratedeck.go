package numbering

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Rate is the price of calls to one prefix.
type Rate struct {
	Prefix    string  // digits, no '+'
	PerMinute float64 // ≥ 0
	Currency  string  // ISO 4217, e.g. "USD"
}

// RateDeck prices numbers by longest prefix. It is read-only once built
// and safe for concurrent use.
type RateDeck struct {
	name  string
	table PrefixTable[Rate]
}

// Limits on a rate deck, to bound the memory a bad file can take.
const (
	MaxRateRows    = 1_000_000
	maxRateLineLen = 256
)

// DefaultCurrency is the currency of rows that name none.
const DefaultCurrency = "USD"

// ParseRateDeck reads CSV lines "prefix,rate_per_minute[,currency]".
// Blank lines and lines starting with '#' are skipped, as is a first line
// "prefix,rate_per_minute[,currency]". Errors read "name:LINE: what is
// wrong" and wrap ErrBadRateDeck.
func ParseRateDeck(r io.Reader, name string) (*RateDeck, error) {
	d := &RateDeck{name: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, maxRateLineLen+2), maxRateLineLen+2) // +2 for "\r\n"
	line, seenRow := 0, false
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s: %w", name, line, fmt.Sprintf(format, args...), ErrBadRateDeck)
	}
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		if !seenRow {
			seenRow = true
			if isRateHeader(text) {
				continue
			}
		}
		if d.table.Len() >= MaxRateRows {
			return nil, fail("too many rows (max %d)", MaxRateRows)
		}
		rate, err := parseRateRow(text)
		if err != nil {
			return nil, fail("%v", err)
		}
		if _, p, ok := d.table.Longest(rate.Prefix); ok && p == rate.Prefix {
			return nil, fail("duplicate prefix %s", rate.Prefix)
		}
		if err := d.table.Insert(rate.Prefix, rate); err != nil {
			return nil, fail("%v", err) // parseRateRow checked; kept for safety
		}
	}
	if err := sc.Err(); err != nil {
		line++ // the line that failed is the one after the last read
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fail("line too long (max %d bytes)", maxRateLineLen)
		}
		return nil, fmt.Errorf("read rate deck %s: %w", name, err)
	}
	if d.table.Len() == 0 {
		return nil, fmt.Errorf("%s: no rates: %w", name, ErrBadRateDeck)
	}
	return d, nil
}

func isRateHeader(text string) bool {
	h := strings.ToLower(strings.ReplaceAll(text, " ", ""))
	return h == "prefix,rate_per_minute,currency" || h == "prefix,rate_per_minute"
}

// parseRateRow reads one data row; errors name the field.
func parseRateRow(text string) (Rate, error) {
	f := strings.Split(text, ",")
	if len(f) < 2 || len(f) > 3 {
		return Rate{}, fmt.Errorf("want prefix,rate_per_minute[,currency], got %d fields", len(f))
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	prefix, problem := checkPrefix(f[0])
	if problem != "" {
		return Rate{}, fmt.Errorf("bad prefix %q: %s", f[0], problem)
	}
	per, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		return Rate{}, fmt.Errorf("bad rate %q: not a number", f[1])
	}
	if math.IsNaN(per) || math.IsInf(per, 0) || per < 0 {
		return Rate{}, fmt.Errorf("bad rate %q: want a finite number ≥ 0", f[1])
	}
	cur := DefaultCurrency
	if len(f) == 3 {
		cur = f[2]
		if !isCurrency(cur) {
			return Rate{}, fmt.Errorf("bad currency %q: want 3 upper-case letters", cur)
		}
	}
	return Rate{Prefix: prefix, PerMinute: per, Currency: cur}, nil
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

//go:embed default_rates.csv
var defaultRatesCSV []byte

var defaultRateDeck = sync.OnceValue(func() *RateDeck {
	d, err := ParseRateDeck(bytes.NewReader(defaultRatesCSV), "default_rates.csv")
	if err != nil {
		panic(err) // embedded and covered by tests
	}
	return d
})

// DefaultRateDeck returns the built-in coarse deck: one row per country
// calling code, in USD. It is a placeholder for a carrier's real deck;
// see the header of default_rates.csv.
func DefaultRateDeck() *RateDeck { return defaultRateDeck() }

// Lookup returns the rate for the longest prefix of e164 in the deck.
func (d *RateDeck) Lookup(e164 string) (Rate, bool) {
	r, _, ok := d.table.Longest(e164)
	return r, ok
}

// Len returns the number of prefixes in the deck.
func (d *RateDeck) Len() int { return d.table.Len() }

// Name returns the name the deck was parsed under, for messages.
func (d *RateDeck) Name() string { return d.name }

// Currencies returns the distinct currencies of the deck's rows, sorted.
func (d *RateDeck) Currencies() []string {
	seen := map[string]bool{}
	for _, r := range d.table.values {
		seen[r.Currency] = true
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}
