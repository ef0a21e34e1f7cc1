package sim

import (
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// numberKind is the kind of line a simulated call dials.
type numberKind int

const (
	mobile numberKind = iota
	fixed
	premium
	personal // UK 070 "personal numbers", a classic IRSF range inside an ordinary country
)

var libTypes = map[numberKind]phonenumbers.PhoneNumberType{
	mobile:   phonenumbers.MOBILE,
	fixed:    phonenumbers.FIXED_LINE,
	premium:  phonenumbers.PREMIUM_RATE,
	personal: phonenumbers.PERSONAL_NUMBER,
}

// poolSize is how many distinct numbers a (region, kind) pool holds: enough
// that nobody dials the same stranger twice by accident, few enough that
// building a pool (libphonenumber validation) stays cheap.
const poolSize = 128

// numbers hands out valid E.164 numbers per region and kind. The pools
// are built from libphonenumber's example numbers with their last digits
// varied, by a generator seeded from the pool's key alone, so a pool is the
// same in every run and is built once per process; which numbers a run
// dials is up to the run's own seeded generator.
type numbers struct{}

var pools = struct {
	sync.Mutex
	m map[string][]string
}{m: map[string][]string{}}

// pick returns one number of the pool for region and kind.
func (n *numbers) pick(r *rand.Rand, region string, k numberKind) string {
	p := n.pool(region, k)
	return p[r.IntN(len(p))]
}

func (n *numbers) pool(region string, k numberKind) []string {
	key := region + "/" + strconv.Itoa(int(k))
	pools.Lock()
	defer pools.Unlock()
	if p, ok := pools.m[key]; ok {
		return p
	}
	p := buildPool(rand.New(rand.NewPCG(0, hashString(key))), region, k)
	pools.m[key] = p
	return p
}

// example returns libphonenumber's example number for region and kind;
// region "881" or "870" names a satellite (non-geographic) code. Kinds a
// region lacks fall back to mobile, then fixed.
func example(region string, k numberKind) *phonenumbers.PhoneNumber {
	if cc, err := strconv.Atoi(region); err == nil {
		return phonenumbers.GetExampleNumberForNonGeoEntity(cc)
	}
	for _, t := range []phonenumbers.PhoneNumberType{libTypes[k], phonenumbers.MOBILE, phonenumbers.FIXED_LINE} {
		// The NANP's premium example is the US +1 900 range, whatever the
		// island: not a number "in" that region.
		if t == phonenumbers.PREMIUM_RATE && phonenumbers.GetCountryCodeForRegion(region) == 1 {
			continue
		}
		if ex := phonenumbers.GetExampleNumberForType(region, t); ex != nil {
			return ex
		}
	}
	return nil
}

func buildPool(r *rand.Rand, region string, k numberKind) []string {
	ex := example(region, k)
	if ex == nil {
		panic("sim: no example number for " + region) // the regions are built in
	}
	want := phonenumbers.GetNumberType(ex)
	nsn := phonenumbers.GetNationalSignificantNumber(ex)
	vary := min(4, len(nsn)-3)
	seen := map[string]bool{}
	out := make([]string, 0, poolSize)
	for try := 0; try < 20*poolSize && len(out) < poolSize; try++ {
		digits := []byte(nsn)
		for i := len(digits) - vary; i < len(digits); i++ {
			digits[i] = byte('0' + r.IntN(10))
		}
		v, _ := strconv.ParseUint(string(digits), 10, 64)
		num := &phonenumbers.PhoneNumber{}
		num.CountryCode = ex.CountryCode
		num.NationalNumber = &v
		if ex.ItalianLeadingZero != nil {
			num.ItalianLeadingZero = ex.ItalianLeadingZero
		}
		if !phonenumbers.IsValidNumber(num) || phonenumbers.GetNumberType(num) != want {
			continue
		}
		if region != "" && phonenumbers.GetRegionCodeForNumber(num) != phonenumbers.GetRegionCodeForNumber(ex) {
			continue
		}
		e := phonenumbers.Format(num, phonenumbers.E164)
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		out = append(out, phonenumbers.Format(ex, phonenumbers.E164))
	}
	return out
}

// sequential returns count numbers counting up from a valid number of the
// region and kind, skipping any libphonenumber calls invalid: what a range
// prober dials.
func (n *numbers) sequential(r *rand.Rand, region string, k numberKind, count int) []string {
	base := n.pick(r, region, k)
	num, err := phonenumbers.Parse(base, "")
	if err != nil {
		panic("sim: " + err.Error())
	}
	v := num.GetNationalNumber() / 1000 * 1000
	out := make([]string, 0, count)
	for i := uint64(0); len(out) < count && i < uint64(100*count); i++ {
		x := v + i
		num.NationalNumber = &x
		if phonenumbers.IsValidNumber(num) {
			out = append(out, phonenumbers.Format(num, phonenumbers.E164))
		}
	}
	return out
}

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
