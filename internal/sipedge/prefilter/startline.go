package prefilter

import (
	"bytes"
	"strings"
)

// MaxStartLine bounds the bytes the start-line check reads: leading CRLFs
// and the first line, its CRLF included, must fit in it. RFC 3261 sets no
// limit; real request lines stay far below it (RFC 4475's contrived
// "intmeth" line is 159 bytes), and the bound keeps the check's cost fixed
// whatever the packet.
const MaxStartLine = 1024

// classify applies the packet checks: size, then the start-line shape
// described in the package comment.
func classify(pkt []byte, maxPacket int) Verdict {
	if len(pkt) > maxPacket {
		return DropOversized
	}
	if len(pkt) == 0 {
		return DropMalformed
	}
	head := pkt[:min(len(pkt), MaxStartLine)]
	i := 0
	for i < len(head) && (head[i] == '\r' || head[i] == '\n') {
		i++
	}
	if i == len(pkt) {
		return PassKeepAlive
	}
	head = head[i:]
	end := bytes.IndexByte(head, '\n')
	if end < 1 || head[end-1] != '\r' {
		return DropMalformed // no CRLF in reach, or a bare LF
	}
	if startLineOK(head[:end-1]) {
		return Pass
	}
	return DropMalformed
}

const sipVersion = "SIP/2.0"

// startLineOK reports whether line (without its CRLF) is shaped like a
// request line or a status line.
func startLineOK(line []byte) bool {
	if isVersion(line) && len(line) > len(sipVersion) && line[len(sipVersion)] == ' ' {
		// SIP-Version SP 3DIGIT SP Reason-Phrase
		rest := line[len(sipVersion)+1:]
		if len(rest) < 4 || !isDigit(rest[0]) || !isDigit(rest[1]) || !isDigit(rest[2]) || rest[3] != ' ' {
			return false
		}
		for _, b := range rest[4:] {
			if class[b]&reasonByte == 0 {
				return false
			}
		}
		return true
	}
	// Method SP Request-URI SP SIP-Version
	i := 0
	for i < len(line) && class[line[i]]&tokenByte != 0 {
		i++
	}
	if i == 0 || i == len(line) || line[i] != ' ' {
		return false
	}
	i++
	u := i
	for i < len(line) && class[line[i]]&uriByte != 0 {
		i++
	}
	if i == u || i == len(line) || line[i] != ' ' || bytes.IndexByte(line[u:i], ':') < 0 {
		return false
	}
	v := line[i+1:]
	return len(v) == len(sipVersion) && isVersion(v)
}

// isVersion reports whether b starts with "SIP/2.0", in any case (ABNF
// literals are case-insensitive).
func isVersion(b []byte) bool {
	return len(b) >= 7 && b[0]|0x20 == 's' && b[1]|0x20 == 'i' && b[2]|0x20 == 'p' &&
		b[3] == '/' && b[4] == '2' && b[5] == '.' && b[6] == '0'
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// Byte classes for the start line.
const (
	tokenByte  = 1 << iota // RFC 3261 token: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"
	uriByte                // in the Request-URI: anything but SP, control characters and DEL
	reasonByte             // in the Reason-Phrase: anything but control characters other than HTAB, and DEL
)

var class = func() (t [256]uint8) {
	for c := range 256 {
		if c > ' ' && c != 0x7f {
			t[c] |= uriByte
		}
		if (c >= ' ' || c == '\t') && c != 0x7f {
			t[c] |= reasonByte
		}
		if '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte("-.!%*_+`'~", byte(c)) >= 0 {
			t[c] |= tokenByte
		}
	}
	return t
}()
