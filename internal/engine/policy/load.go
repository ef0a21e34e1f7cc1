package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds a policy file; a policy is configuration, not data.
const MaxFileSize = 4 << 20

// ErrInvalid is wrapped by every error about the content of a policy.
var ErrInvalid = errors.New("invalid policy")

// Error is one problem in a policy file, located by file and line.
type Error struct {
	File string
	Line int    // 0 when the problem has no single line
	Path string // the field, e.g. tenants.demo.limits[0].window
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *Error) Unwrap() error { return ErrInvalid }

// ReadFileFunc reads a file named by the policy (a rate deck), relative to
// the policy file's directory.
type ReadFileFunc func(name string) ([]byte, error)

// Load reads, parses and compiles the policy file at path.
func Load(path string) (*Policy, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	dir := filepath.Dir(path)
	return Parse(path, data, func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return readLimited(name)
	})
}

// maxReadSize bounds any file a policy reads (a rate deck may be large).
const maxReadSize = 64 << 20

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxReadSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxReadSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxReadSize)
	}
	return b, nil
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)
var yamlField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// Parse parses and compiles a policy. name is used in error messages;
// readFile reads files the policy refers to (nil refuses them).
func Parse(name string, data []byte, readFile ReadFileFunc) (*Policy, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("file is %d bytes; the limit is %d", len(data), MaxFileSize)}
	}
	var f fileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, yamlError(name, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	lines := map[string]int{}
	mapLines(&root, "", lines)
	c := &compiler{file: name, lines: lines, readFile: readFile}
	return c.compile(&f)
}

// yamlError turns the YAML library's error into file:line form, one error
// (the first) so the message stays readable.
func yamlError(file string, err error) error {
	msg := err.Error()
	if errors.Is(err, io.EOF) {
		return &Error{File: file, Msg: "empty policy: want a tenants: mapping"}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		text := m[2]
		if fm := yamlField.FindStringSubmatch(text); fm != nil {
			text = fmt.Sprintf("unknown field %q", fm[1])
		}
		text = strings.ReplaceAll(text, "policy.Duration", "duration")
		return &Error{File: file, Line: line, Msg: text}
	}
	return &Error{File: file, Msg: msg}
}

// mapLines records the line of every mapping value and sequence item under
// its dotted path, so semantic errors can name a line.
func mapLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			mapLines(c, path, lines)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			mapLines(v, p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = c.Line
			mapLines(c, p, lines)
		}
	}
}
