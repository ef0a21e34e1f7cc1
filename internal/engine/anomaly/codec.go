package anomaly

import (
	"encoding/binary"
	"math"
)

// The persisted forms are small hand-written binary encodings: a four-byte
// magic, a version byte, then varints and little-endian float64s. They are
// compact (a baseline is a few kilobytes) and decoding checks every length,
// so a damaged file is an error, never a panic or a huge allocation.

func appendF64(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

func appendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

func appendString(b []byte, s string) []byte {
	b = binary.AppendVarint(b, int64(len(s)))
	return append(b, s...)
}

// reader decodes what the append functions wrote. The first failure sticks;
// later reads return zero values, and err is checked once at the end.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) f64() float64 {
	if r.err || len(r.b) < 8 {
		r.err = true
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *reader) varint() int64 {
	if r.err {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a non-negative length no larger than limit.
func (r *reader) count(limit int) int {
	v := r.varint()
	if v < 0 || v > int64(limit) {
		r.err = true
		return 0
	}
	return int(v)
}

func (r *reader) string(limit int) string {
	n := r.count(limit)
	if r.err || len(r.b) < n {
		r.err = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// header checks the magic and version.
func (r *reader) header(magic string, version byte) {
	if len(r.b) < len(magic)+1 || string(r.b[:len(magic)]) != magic || r.b[len(magic)] != version {
		r.err = true
		return
	}
	r.b = r.b[len(magic)+1:]
}
