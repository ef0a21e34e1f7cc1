package numbering

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// classify must agree with libphonenumber on region and type for every
// region's example numbers and for many random numbers around them.
func TestClassifyMatchesLibrary(t *testing.T) {
	coll, _ := phonenumbers.MetadataCollection()
	rng := rand.New(rand.NewPCG(1, 2))
	checked := 0
	check := func(cc int, nsn string) {
		pn := libNumber(cc, nsn)
		nsn = phonenumbers.GetNationalSignificantNumber(pn)
		wantRegion := phonenumbers.GetRegionCodeForNumber(pn)
		wantType := phonenumbers.GetNumberType(pn)
		region, typ := classify(cc, nsn)
		if region != wantRegion || typ != wantType {
			t.Errorf("+%d %s: classify = %s %v, library = %s %v", cc, nsn, region, typ, wantRegion, wantType)
		}
		checked++
	}
	for _, md := range coll.Metadata {
		cc := int(md.GetCountryCode())
		for _, d := range []*phonenumbers.PhoneNumberDesc{md.GetFixedLine(), md.GetMobile(), md.GetTollFree(),
			md.GetPremiumRate(), md.GetSharedCost(), md.GetVoip(), md.GetPersonalNumber(), md.GetUan(), md.GetPager(), md.GetVoicemail()} {
			ex := d.GetExampleNumber()
			if ex == "" {
				continue
			}
			check(cc, ex)
			// Mutate the last digits and the length: valid, invalid and
			// other-region neighbours of a real number.
			for i := 0; i < 4; i++ {
				b := []byte(ex)
				b[len(b)-1-rng.IntN(min(3, len(b)))] = byte('0' + rng.IntN(10))
				check(cc, string(b))
			}
			check(cc, ex+"1")
			if len(ex) > 2 {
				check(cc, ex[:len(ex)-1])
			}
		}
	}
	for i := 0; i < 3000; i++ {
		cc := []int{1, 7, 44, 55, 61, 262, 590, 599, 882, 883, 870, 881, 800, 979}[i%14]
		check(cc, fmt.Sprint(rng.Uint64N(1e10)+1e9))
	}
	if checked < 5000 {
		t.Fatalf("only %d numbers checked", checked)
	}
}

func BenchmarkClassifyVsLibrary(b *testing.B) {
	nums := []struct {
		cc  int
		nsn string
	}{{1, "8765550123"}, {44, "2079460000"}, {55, "11987654321"}, {1, "2125550123"}}
	classify(1, "2125550123")
	b.Run("classify", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			n := nums[i%len(nums)]
			classify(n.cc, n.nsn)
		}
	})
	b.Run("library", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			n := nums[i%len(nums)]
			pn := libNumber(n.cc, n.nsn)
			phonenumbers.GetRegionCodeForNumber(pn)
			phonenumbers.GetNumberType(pn)
		}
	})
}
