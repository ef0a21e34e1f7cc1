package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// maxPointerDepth bounds a configured JSON pointer.
const maxPointerDepth = 16

// parsePointer splits an RFC 6901 JSON pointer into unescaped tokens.
func parsePointer(p string) ([]string, error) {
	if p == "" || p[0] != '/' {
		return nil, errors.New("json pointer must start with /")
	}
	toks := strings.Split(p[1:], "/")
	if len(toks) > maxPointerDepth {
		return nil, errors.New("json pointer too deep")
	}
	for i, t := range toks {
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return toks, nil
}

// lookup resolves tokens in a decoded JSON document.
func lookup(doc any, toks []string) (any, bool) {
	for _, t := range toks {
		switch n := doc.(type) {
		case map[string]any:
			v, ok := n[t]
			if !ok {
				return nil, false
			}
			doc = v
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(n) || (len(t) > 1 && t[0] == '0') {
				return nil, false
			}
			doc = n[i]
		default:
			return nil, false
		}
	}
	return doc, true
}

// pointerID reads an event id from body: a string, or an integer number.
func pointerID(body []byte, toks []string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return "", errBadEventID
	}
	v, ok := lookup(doc, toks)
	if !ok {
		return "", errBadEventID
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	}
	return "", errBadEventID
}
