package numbering

import (
	"regexp"
	"slices"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// classify finds the region and type of a national significant number
// under calling code cc in one pass, as phonenumbers.GetRegionCodeForNumber
// and GetNumberType do between them. Those two each rebuild every pattern
// string ("^(?:" + pattern + ")$") and look it up in a regexp cache keyed by
// that string, on every call and twice over for shared codes; here each
// pattern is compiled once per region, on first use. TestClassifyMatchesLibrary
// holds the two to the same answers.
func classify(cc int, nsn string) (region string, t phonenumbers.PhoneNumberType) {
	regions := phonenumbers.GetRegionCodesForCountryCode(cc)
	switch len(regions) {
	case 0:
		return "", phonenumbers.UNKNOWN
	case 1:
		tp := typerFor(cc, regions[0])
		if tp == nil {
			return regions[0], phonenumbers.UNKNOWN
		}
		return regions[0], tp.numberType(nsn)
	}
	for _, r := range regions {
		tp := typerFor(cc, r)
		if tp == nil {
			continue
		}
		if tp.leading != nil {
			if tp.leading.MatchString(nsn) {
				return r, tp.numberType(nsn)
			}
		} else if t := tp.numberType(nsn); t != phonenumbers.UNKNOWN {
			return r, t
		}
	}
	// No region claims it: the library reports no region and so no type.
	return "", phonenumbers.UNKNOWN
}

// desc is one compiled number description: its possible lengths and its
// national number pattern, anchored at both ends.
type desc struct {
	lengths []int32
	re      *regexp.Regexp
}

func compileDesc(d *phonenumbers.PhoneNumberDesc) desc {
	if d == nil {
		return desc{lengths: []int32{-1}}
	}
	return desc{lengths: d.PossibleLength, re: regexp.MustCompile("^(?:" + d.GetNationalNumberPattern() + ")$")}
}

// matches is libphonenumber's isNumberMatchingDesc.
func (d desc) matches(nsn string) bool {
	if len(d.lengths) > 0 && !slices.Contains(d.lengths, int32(len(nsn))) {
		return false
	}
	return d.re != nil && d.re.MatchString(nsn)
}

type typer struct {
	leading                                                   *regexp.Regexp
	general, premium, tollFree, shared, voip, personal, pager desc
	uan, voicemail, fixed, mobile                             desc
	sameMobileAndFixed                                        bool
}

// numberType is libphonenumber's getNumberTypeHelper.
func (tp *typer) numberType(nsn string) phonenumbers.PhoneNumberType {
	switch {
	case !tp.general.matches(nsn):
		return phonenumbers.UNKNOWN
	case tp.premium.matches(nsn):
		return phonenumbers.PREMIUM_RATE
	case tp.tollFree.matches(nsn):
		return phonenumbers.TOLL_FREE
	case tp.shared.matches(nsn):
		return phonenumbers.SHARED_COST
	case tp.voip.matches(nsn):
		return phonenumbers.VOIP
	case tp.personal.matches(nsn):
		return phonenumbers.PERSONAL_NUMBER
	case tp.pager.matches(nsn):
		return phonenumbers.PAGER
	case tp.uan.matches(nsn):
		return phonenumbers.UAN
	case tp.voicemail.matches(nsn):
		return phonenumbers.VOICEMAIL
	}
	if tp.fixed.matches(nsn) {
		if tp.sameMobileAndFixed || tp.mobile.matches(nsn) {
			return phonenumbers.FIXED_LINE_OR_MOBILE
		}
		return phonenumbers.FIXED_LINE
	}
	if !tp.sameMobileAndFixed && tp.mobile.matches(nsn) {
		return phonenumbers.MOBILE
	}
	return phonenumbers.UNKNOWN
}

type typerKey struct {
	cc     int
	region string
}

var (
	typersMu sync.RWMutex
	typers   = map[typerKey]*typer{}
	// metadataByKey indexes the library's metadata once; the collection
	// itself is read through regionMeta's Once (it is not safe for
	// concurrent first use).
	metadataByKey = sync.OnceValue(func() map[typerKey]*phonenumbers.PhoneMetadata {
		regionMeta() // make sure the collection is loaded under its Once
		coll, _ := phonenumbers.MetadataCollection()
		m := make(map[typerKey]*phonenumbers.PhoneMetadata, len(coll.Metadata))
		for _, md := range coll.Metadata {
			m[typerKey{int(md.GetCountryCode()), md.GetId()}] = md
		}
		return m
	})
)

// typerFor returns the compiled descriptions of a region (or of the
// non-geographic entity "001" of cc), compiling them on first use.
func typerFor(cc int, region string) *typer {
	k := typerKey{cc, region}
	typersMu.RLock()
	tp, ok := typers[k]
	typersMu.RUnlock()
	if ok {
		return tp
	}
	md := metadataByKey()[k]
	if md != nil {
		tp = &typer{
			general: compileDesc(md.GetGeneralDesc()), premium: compileDesc(md.GetPremiumRate()),
			tollFree: compileDesc(md.GetTollFree()), shared: compileDesc(md.GetSharedCost()),
			voip: compileDesc(md.GetVoip()), personal: compileDesc(md.GetPersonalNumber()),
			pager: compileDesc(md.GetPager()), uan: compileDesc(md.GetUan()),
			voicemail: compileDesc(md.GetVoicemail()), fixed: compileDesc(md.GetFixedLine()),
			mobile: compileDesc(md.GetMobile()), sameMobileAndFixed: md.GetSameMobileAndFixedLinePattern(),
		}
		if ld := md.GetLeadingDigits(); ld != "" {
			tp.leading = regexp.MustCompile("^(?:" + ld + ")")
		}
	}
	typersMu.Lock()
	typers[k] = tp
	typersMu.Unlock()
	return tp
}
