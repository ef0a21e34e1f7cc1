// Package numbering turns dialled strings into E.164 numbers and tells what
// they are: country, number type (libphonenumber metadata), high-risk (IRSF)
// ranges and the rate per minute from a rate deck.
//
// The metadata comes from github.com/nyaruka/phonenumbers, a port of
// Google's libphonenumber. Parsing there is regular-expression heavy, so
// Normalizer keeps a bounded cache of recent results.
//
// The pieces:
//
//   - Normalizer turns what a PBX sends (national digits, IDD forms,
//     outside-line codes, SIP and tel URIs) into a Number: E.164, region,
//     type, and whether it is international for the tenant.
//   - HighRisk says whether a Number is in a high-risk (IRSF) country or
//     range; DefaultHighRisk is a documented starting list (HIGHRISK.md).
//   - RateDeck prices a number by longest prefix; DefaultRateDeck is a
//     coarse built-in deck meant to be replaced.
//   - PrefixTable is the longest-prefix map under both, also used for
//     denied prefixes.
package numbering
