package numbering

import "errors"

// Errors from Normalize. Each is wrapped with a reason naming what was wrong;
// test for them with errors.Is. The reason never holds the dialled number.
var (
	// ErrEmpty means the dialled string held no digits at all.
	ErrEmpty = errors.New("empty number")
	// ErrBadCharacter means the dialled string held something a number
	// cannot: a letter (other than a URI scheme or a 'p' pause), '*', '#',
	// a misplaced '+' or pause, or a non-ASCII character.
	ErrBadCharacter = errors.New("bad character in number")
	// ErrTooShort means there were too few digits for an E.164 number of
	// that country: an internal extension, a short code such as 112, or a
	// local number that needs an area code.
	ErrTooShort = errors.New("number too short")
	// ErrTooLong means the result would exceed the 15 digits E.164 allows,
	// or the input was too long to look at (MaxInputLen bytes for the
	// number part, 512 for a whole URI).
	ErrTooLong = errors.New("number too long")
	// ErrUnknownCountryCode means the digits after an international prefix
	// do not start with a country calling code that libphonenumber knows.
	ErrUnknownCountryCode = errors.New("unknown country calling code")
)

// ErrInvalidRules means DialRules failed validation.
var ErrInvalidRules = errors.New("invalid dial rules")

// ErrUnknownType means ParseType was given a name that is not a Type.
var ErrUnknownType = errors.New("unknown number type")

// ErrBadPrefix means a prefix was empty, too long or held a non-digit.
var ErrBadPrefix = errors.New("bad prefix")

// ErrBadRateDeck means a rate deck could not be parsed; the error text
// names the deck and line.
var ErrBadRateDeck = errors.New("bad rate deck")

// ErrBadHighRisk means a high-risk list held an unknown country or a bad
// prefix, or an override removed an entry that was not on the list.
var ErrBadHighRisk = errors.New("bad high-risk list")
