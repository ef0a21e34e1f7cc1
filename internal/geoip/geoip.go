// Package geoip owns the mapping from an IP address to the country it is
// in, read from a MaxMind DB (mmdb) file: GeoIP2/GeoLite2 Country or City,
// DB-IP's country databases, or any mmdb whose records carry
// country.iso_code. The SIP edge's packet filter uses it to drop denied
// countries before parsing; other sensors may use it the same way.
//
// A lookup is a walk down the database's binary search tree (at most 32
// steps for IPv4, 128 for IPv6) and one lock-free read of a small cache
// keyed by the record the walk ends at, so it costs about the same for
// every address and allocates nothing once the record has been seen. The cache holds at most
// MaxCachedRecords records (a country database has a few hundred); beyond
// that, records are decoded on each lookup.
package geoip

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/oschwald/maxminddb-golang/v2"
)

// ErrNoCountry is wrapped by Open's error when the file is a MaxMind DB
// without country records (an ASN or ISP database, say).
var ErrNoCountry = errors.New("database has no country records")

// MaxCachedRecords bounds the records whose country Reader keeps decoded.
const MaxCachedRecords = 4096

// Reader answers country lookups from one mmdb file. It is safe for
// concurrent use; Close it only once nothing looks up any more.
type Reader struct {
	db *maxminddb.Reader
	v4 bool // an IPv4-only database: IPv6 addresses are not in it

	// cache maps a record's offset to its ISO code ("" when none). It is
	// replaced, never changed, so lookups read it without a lock; it
	// changes only the first time a record is seen.
	cache   atomic.Pointer[map[uintptr]string]
	cacheMu sync.Mutex // serialises writers
}

// Open opens and maps the mmdb file at path and checks that it carries
// countries.
func Open(path string) (*Reader, error) {
	db, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open geoip database: %w", err)
	}
	r := &Reader{db: db, v4: db.Metadata.IPVersion == 4}
	r.cache.Store(&map[uintptr]string{})
	if err := r.checkCountries(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open geoip database %s: %w", path, err)
	}
	return r, nil
}

// checkCountries looks for a country in the database's first records, so
// a wrong file fails at start, not silently on every lookup.
func (r *Reader) checkCountries() error {
	found, seen := false, 0
	for res := range r.db.Networks() {
		if err := res.Err(); err != nil {
			return err
		}
		var rec countryRecord
		if err := res.Decode(&rec); err != nil {
			return err
		}
		if rec.code() != "" {
			found = true
			break
		}
		if seen++; seen >= 1000 {
			break
		}
	}
	if !found && seen > 0 {
		return ErrNoCountry
	}
	return nil
}

// countryRecord is the part of a GeoIP2 Country/City record the Reader
// reads. registered_country stands in where country is missing (anycast
// and satellite networks).
type countryRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Registered struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

func (c *countryRecord) code() string {
	if c.Country.ISOCode != "" {
		return c.Country.ISOCode
	}
	return c.Registered.ISOCode
}

// Country returns the ISO 3166-1 alpha-2 code (upper case) of the country
// a is in, or "" when the database does not place it (private and
// loopback addresses, unassigned space, an IPv6 address in an IPv4-only
// database).
func (r *Reader) Country(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	a = a.Unmap().WithZone("")
	if r.v4 && !a.Is4() {
		return ""
	}
	res := r.db.Lookup(a)
	if !res.Found() {
		return ""
	}
	off := res.Offset()
	if c, ok := (*r.cache.Load())[off]; ok {
		return c
	}
	var rec countryRecord
	if err := res.Decode(&rec); err != nil {
		return ""
	}
	c := upper(rec.code())
	if len(*r.cache.Load()) >= MaxCachedRecords {
		return c // full: no lock, no copy (a flood of rare records must not serialise readers)
	}
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	old := *r.cache.Load()
	if len(old) < MaxCachedRecords {
		next := make(map[uintptr]string, len(old)+1)
		maps.Copy(next, old)
		next[off] = c
		r.cache.Store(&next)
	}
	return c
}

// IPv4Only reports a database without IPv6 networks: it places no IPv6
// address.
func (r *Reader) IPv4Only() bool { return r.v4 }

// Lookup is Country in the form the SIP packet filter takes: ok is false
// when the country is unknown.
func (r *Reader) Lookup(a netip.Addr) (country string, ok bool) {
	c := r.Country(a)
	return c, c != ""
}

// Close unmaps the file.
func (r *Reader) Close() error {
	if err := r.db.Close(); err != nil {
		return fmt.Errorf("close geoip database: %w", err)
	}
	return nil
}

// upper returns s in upper case when it is a two-letter code, else "":
// anything else is not a country the filter could name.
func upper(s string) string {
	if len(s) != 2 {
		return ""
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - ('a' - 'A')
		case 'A' <= c && c <= 'Z':
		default:
			return ""
		}
	}
	return string(b)
}
