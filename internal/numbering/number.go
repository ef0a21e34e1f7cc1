package numbering

import (
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Type is what kind of number an E.164 number is. The values are the
// lower-case libphonenumber type names, plus Satellite, InternationalNetwork
// and Invalid, which telguard adds.
type Type string

// Number types.
const (
	FixedLine            Type = "fixed_line"
	Mobile               Type = "mobile"
	FixedLineOrMobile    Type = "fixed_line_or_mobile" // e.g. all of the US
	TollFree             Type = "toll_free"
	PremiumRate          Type = "premium_rate"
	SharedCost           Type = "shared_cost"
	VoIP                 Type = "voip"
	PersonalNumber       Type = "personal_number"
	Pager                Type = "pager"
	UAN                  Type = "uan"
	Voicemail            Type = "voicemail"
	Unknown              Type = "unknown"               // never returned by Normalize; valid numbers always have a type
	Invalid              Type = "invalid"               // well-formed, but libphonenumber says no such number exists
	Satellite            Type = "satellite"             // +870 Inmarsat, +881 Iridium/Globalstar/Thuraya
	InternationalNetwork Type = "international_network" // +882, +883: carriers, IoT and IRSF favourites
)

var allTypes = []Type{
	FixedLine, Mobile, FixedLineOrMobile, TollFree, PremiumRate, SharedCost,
	VoIP, PersonalNumber, Pager, UAN, Voicemail, Unknown, Invalid, Satellite,
	InternationalNetwork,
}

// ParseType reads a Type name as written in a policy file. Case is ignored,
// so the upper-case libphonenumber spelling ("PREMIUM_RATE") works too.
func ParseType(s string) (Type, error) {
	ls := strings.ToLower(strings.TrimSpace(s))
	for _, t := range allTypes {
		if string(t) == ls {
			return t, nil
		}
	}
	return "", fmt.Errorf("parse number type %q: %w", s, ErrUnknownType)
}

// fromLib maps a libphonenumber type. UNKNOWN from a number that passed
// the length checks means no range of the country matched: Invalid.
func fromLib(t phonenumbers.PhoneNumberType) Type {
	switch t {
	case phonenumbers.FIXED_LINE:
		return FixedLine
	case phonenumbers.MOBILE:
		return Mobile
	case phonenumbers.FIXED_LINE_OR_MOBILE:
		return FixedLineOrMobile
	case phonenumbers.TOLL_FREE:
		return TollFree
	case phonenumbers.PREMIUM_RATE:
		return PremiumRate
	case phonenumbers.SHARED_COST:
		return SharedCost
	case phonenumbers.VOIP:
		return VoIP
	case phonenumbers.PERSONAL_NUMBER:
		return PersonalNumber
	case phonenumbers.PAGER:
		return Pager
	case phonenumbers.UAN:
		return UAN
	case phonenumbers.VOICEMAIL:
		return Voicemail
	}
	return Invalid
}

// Number is a normalised dialled number.
type Number struct {
	E164        string // "+447911123456"
	CountryCode int    // 44
	// Region is the ISO 3166 alpha-2 code libphonenumber assigns, e.g. "GB",
	// or "001" for non-geographic codes (+800, +870, +881, +882, +883,
	// +979…). Shared codes resolve per range: +1 876 is "JM", +44 7911 is
	// "GG". An invalid number on a shared code gets the code's main region
	// ("US" for +1, "GB" for +44).
	Region string
	// Type is Satellite for +870/+881, InternationalNetwork for
	// +882/+883, Invalid when libphonenumber says the number is not valid,
	// and otherwise the metadata type.
	Type Type
	// International is true when the number is abroad: its calling code
	// differs from the home country's, or it shares the code but belongs
	// to another country (US to Jamaica on +1, Russia to Kazakhstan on +7).
	// Regions dialled as domestic calls within a shared code (the US and
	// Canada, GB and the Channel Islands) are not International.
	International bool
}
