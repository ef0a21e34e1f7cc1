// Package audit owns what telguard records about itself: for now the one
// shared helper that masks personal data (phone numbers) before anything is
// logged. Every log line that names a number goes through MaskNumber.
package audit

import "strings"

// MaskNumber hides the middle of a phone number, keeping its leading country
// or area digits and its last two digits, so an operator can still tell
// numbers apart in a log without the log holding them:
//
//	+55 11 98765-4334 → +55 11 9****-**34
//
// Short strings are masked whole. Non-digit characters are kept in place.
func MaskNumber(s string) string {
	digits := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			digits++
		}
	}
	if digits == 0 {
		if s == "" {
			return ""
		}
		return "***"
	}
	keepHead, keepTail := 5, 2
	if digits < 10 {
		keepHead = digits / 3
	}
	if digits < 5 {
		keepHead, keepTail = 0, 0
	}
	var b strings.Builder
	b.Grow(len(s))
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			if c == '+' || c == ' ' || c == '-' || c == '(' || c == ')' {
				b.WriteByte(c)
			} else {
				b.WriteByte('*') // letters in a "number" are data too
			}
			continue
		}
		if n < keepHead || n >= digits-keepTail {
			b.WriteByte(c)
		} else {
			b.WriteByte('*')
		}
		n++
	}
	return b.String()
}
