package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The documentation's examples are tests. Conventions, documented at the top
// of docs/policy.md and docs/api.md:
//
//   - every ```yaml block of docs/policy.md holding "tenants:" is a complete
//     policy that `telguard policy validate` accepts, unless the line before
//     it is "<!-- invalid -->": then it must be refused (exit 1) with the
//     error shown in the ```text block right after it;
//   - a block whose previous line is "<!-- file: NAME -->" is written to NAME
//     next to the policies (a rate deck the examples refer to);
//   - every ```sh block of docs/api.md and README.md starting with "curl" is
//     run with bash, in document order, against one fresh daemon per document
//     (examples/policy.yaml, $TELGUARD_URL and $TELGUARD_API_KEY set), and
//     must exit 0. When the next block is ```json, the answer's verdict,
//     would_verdict, rule ids, status, error, field and codes must match it
//     (for a decisions page: each decision's); when it is ```text, every line
//     shown must appear in the output with the same first word. The
//     next_cursor of an answer is passed to later blocks as $NEXT_CURSOR.

type mdBlock struct {
	lang   string
	body   string
	marker string // the line right before the opening fence, trimmed
	line   int    // of the opening fence, 1-based
}

func readBlocks(t *testing.T, path string) []mdBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks []mdBlock
		cur    *mdBlock
		body   strings.Builder
		indent string // of the opening fence; blocks in list items are indented
		prev   string
		n      int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			indent = line[:len(line)-len(trimmed)]
			cur = &mdBlock{lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), marker: strings.TrimSpace(prev), line: n}
			body.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.body = body.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(strings.TrimPrefix(line, indent))
			body.WriteByte('\n')
		}
		prev = line
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: unclosed code block", path, cur.line)
	}
	return blocks
}

func TestDocsPolicyExamples(t *testing.T) {
	const doc = "../../docs/policy.md"
	// The race-enabled binary sleeps a second on exit by default; there are
	// a score of examples to validate.
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	blocks := readBlocks(t, doc)
	dir := t.TempDir()
	for _, b := range blocks {
		if name, ok := strings.CutPrefix(b.marker, "<!-- file:"); ok {
			name = strings.TrimSpace(strings.TrimSuffix(name, "-->"))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(b.body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	valid, invalid := 0, 0
	for i, b := range blocks {
		if b.lang != "yaml" || !strings.Contains(b.body, "tenants:") {
			continue
		}
		where := fmt.Sprintf("%s:%d", doc, b.line)
		if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(b.body), 0o644); err != nil {
			t.Fatal(err)
		}
		out, stderr, code := run(t, dir, "policy", "validate", "policy.yaml")
		if b.marker != "<!-- invalid -->" {
			valid++
			if code != 0 {
				t.Errorf("%s: example policy refused (exit %d): %s", where, code, stderr)
			}
			continue
		}
		invalid++
		if i+1 >= len(blocks) || blocks[i+1].lang != "text" {
			t.Errorf("%s: an invalid example must be followed by a text block with its error", where)
			continue
		}
		want := strings.TrimSpace(blocks[i+1].body)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s: invalid example: exit %d, stdout %q, stderr %q; want exit 1 and %q", where, code, out, stderr, want)
		}
	}
	if valid < 10 || invalid < 1 {
		t.Fatalf("%s: %d valid and %d invalid policy examples found; the parser or the doc has lost them", doc, valid, invalid)
	}
}

func TestDocsCurlExamples(t *testing.T) {
	for _, doc := range []struct {
		path string
		min  int // curl blocks expected at least
	}{
		{"../../README.md", 1},
		{"../../docs/api.md", 15},
	} {
		t.Run(filepath.Base(doc.path), func(t *testing.T) {
			t.Parallel()
			blocks := readBlocks(t, doc.path)
			dir := workdir(t)
			d := start(t, dir, withKey())
			env := append(os.Environ(), "TELGUARD_URL="+d.base, "TELGUARD_API_KEY="+apiKey)
			ran := 0
			for i, b := range blocks {
				if b.lang != "sh" || !strings.HasPrefix(b.body, "curl") {
					continue
				}
				ran++
				where := fmt.Sprintf("%s:%d", doc.path, b.line)
				var next *mdBlock
				if i+1 < len(blocks) {
					next = &blocks[i+1]
				}
				// The decisions log is written in the background: a read
				// may have to wait a moment for the checks before it.
				retry := !strings.Contains(b.body, "-X POST") && strings.Contains(b.body, "/v1/decisions")
				var out string
				var problems []string
				for attempt := 0; ; attempt++ {
					var err error
					out, err = runShell(dir, env, b.body)
					if err != nil {
						t.Fatalf("%s: %v\n%s\n%s", where, err, b.body, out)
					}
					problems = checkAnswer(next, out)
					if len(problems) == 0 || !retry || attempt == 20 {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				for _, p := range problems {
					t.Errorf("%s: %s\ncommand:\n%s\noutput:\n%s", where, p, b.body, out)
				}
				var page struct {
					NextCursor *string `json:"next_cursor"`
				}
				if json.Unmarshal([]byte(out), &page) == nil && page.NextCursor != nil {
					env = append(env, "NEXT_CURSOR="+*page.NextCursor)
				}
			}
			if ran < doc.min {
				t.Fatalf("%s: ran %d curl examples, want at least %d", doc.path, ran, doc.min)
			}
		})
	}
}

func runShell(dir string, env []string, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = env
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String() + errb.String(), fmt.Errorf("exit: %v", err)
	}
	return out.String(), nil
}

// checkAnswer compares a command's output with the answer the doc shows in
// the block after it, if any, and returns what differs.
func checkAnswer(next *mdBlock, out string) []string {
	if next == nil {
		return nil
	}
	switch next.lang {
	case "json":
		var want, got any
		if err := json.Unmarshal([]byte(next.body), &want); err != nil {
			return []string{fmt.Sprintf("the documented answer at line %d is not JSON: %v", next.line, err)}
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &got); err != nil {
			return []string{fmt.Sprintf("the output is not JSON: %v", err)}
		}
		return compareJSON("", want, got)
	case "text":
		var problems []string
		for _, w := range strings.Split(strings.TrimSpace(next.body), "\n") {
			key := strings.Fields(w)
			if len(key) == 0 {
				continue
			}
			found := false
			for _, g := range strings.Split(out, "\n") {
				if f := strings.Fields(g); len(f) > 0 && f[0] == key[0] {
					found = true
					break
				}
			}
			if !found {
				problems = append(problems, fmt.Sprintf("no output line starts with %q", key[0]))
			}
		}
		return problems
	}
	return nil
}

// keyFields are the fields of an answer that must match the doc exactly.
var keyFields = []string{"verdict", "would_verdict", "status", "error", "field", "sip_code", "http_code", "escalation"}

func compareJSON(path string, want, got any) []string {
	w, ok := want.(map[string]any)
	if !ok {
		return nil
	}
	g, ok := got.(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("%s: want an object, got %v", path, got)}
	}
	var problems []string
	for _, k := range keyFields {
		if !reflect.DeepEqual(w[k], g[k]) {
			problems = append(problems, fmt.Sprintf("%s%s: documented %v, got %v", path, k, w[k], g[k]))
		}
	}
	if _, ok := w["reasons"]; ok {
		if wr, gr := ruleIDs(w["reasons"]), ruleIDs(g["reasons"]); !reflect.DeepEqual(wr, gr) {
			problems = append(problems, fmt.Sprintf("%srules: documented %v, got %v", path, wr, gr))
		}
	}
	if wd, ok := w["decisions"].([]any); ok {
		gd, _ := g["decisions"].([]any)
		if len(wd) != len(gd) {
			problems = append(problems, fmt.Sprintf("%sdecisions: documented %d, got %d", path, len(wd), len(gd)))
		} else {
			for i := range wd {
				problems = append(problems, compareJSON(fmt.Sprintf("%sdecisions[%d].", path, i), wd[i], gd[i])...)
			}
		}
	}
	return problems
}

func ruleIDs(v any) []string {
	list, _ := v.([]any)
	ids := []string{}
	for _, r := range list {
		if m, ok := r.(map[string]any); ok {
			ids = append(ids, fmt.Sprint(m["rule"]))
		}
	}
	return ids
}
