package numbering

import "fmt"

// PrefixTable maps digit prefixes to values and finds the longest prefix
// of a number in O(len(number)). The zero value is an empty table. Insert
// must not run concurrently with anything else; lookups may run
// concurrently with each other.
type PrefixTable[V any] struct {
	// nodes[0] is the root. A child index of 0 means "no child", which
	// works because the root is never anyone's child. Indexes instead of
	// pointers keep a million-row rate deck compact and cheap to GC.
	nodes  []prefixNode
	values []V
	keys   []string // the prefix of each value, for Longest's answer
}

type prefixNode struct {
	child [10]uint32
	value int32 // index into values, or -1
}

// maxPrefixLen is the longest prefix accepted: a whole E.164 number.
const maxPrefixLen = maxE164Digits

// Insert sets the value for prefix, replacing any value already there.
// prefix is 1-15 digits with an optional leading '+'.
func (t *PrefixTable[V]) Insert(prefix string, v V) error {
	digits, err := prefixDigits(prefix)
	if err != nil {
		return err
	}
	if len(t.nodes) == 0 {
		t.nodes = append(t.nodes, prefixNode{value: -1})
	}
	at := uint32(0)
	for i := 0; i < len(digits); i++ {
		d := digits[i] - '0'
		next := t.nodes[at].child[d]
		if next == 0 {
			next = uint32(len(t.nodes))
			t.nodes = append(t.nodes, prefixNode{value: -1})
			t.nodes[at].child[d] = next
		}
		at = next
	}
	if vi := t.nodes[at].value; vi >= 0 {
		t.values[vi] = v
		return nil
	}
	t.nodes[at].value = int32(len(t.values))
	t.values = append(t.values, v)
	t.keys = append(t.keys, digits)
	return nil
}

// prefixDigits checks a prefix and returns it without its '+'.
func prefixDigits(prefix string) (string, error) {
	digits, problem := checkPrefix(prefix)
	if problem != "" {
		return "", fmt.Errorf("check prefix: %s: %w", problem, ErrBadPrefix)
	}
	return digits, nil
}

// checkPrefix returns prefix without its '+', or what is wrong with it.
func checkPrefix(prefix string) (digits, problem string) {
	if len(prefix) > 0 && prefix[0] == '+' {
		prefix = prefix[1:]
	}
	if prefix == "" {
		return "", "no digits"
	}
	if len(prefix) > maxPrefixLen {
		return "", fmt.Sprintf("%d digits, over %d", len(prefix), maxPrefixLen)
	}
	for i := 0; i < len(prefix); i++ {
		if prefix[i] < '0' || prefix[i] > '9' {
			return "", fmt.Sprintf("%q is not a digit", prefix[i])
		}
	}
	return prefix, ""
}

// Longest returns the value of the longest prefix of e164 in the table,
// and that prefix (digits, no '+'). A leading '+' is skipped, and the walk
// stops at the first non-digit.
func (t *PrefixTable[V]) Longest(e164 string) (v V, prefix string, ok bool) {
	if len(t.nodes) == 0 {
		return v, "", false
	}
	if len(e164) > 0 && e164[0] == '+' {
		e164 = e164[1:]
	}
	best := int32(-1)
	at := uint32(0)
	for i := 0; i < len(e164); i++ {
		c := e164[i]
		if c < '0' || c > '9' {
			break
		}
		at = t.nodes[at].child[c-'0']
		if at == 0 {
			break
		}
		if vi := t.nodes[at].value; vi >= 0 {
			best = vi
		}
	}
	if best < 0 {
		return v, "", false
	}
	return t.values[best], t.keys[best], true
}

// Len returns the number of prefixes in the table.
func (t *PrefixTable[V]) Len() int { return len(t.values) }
