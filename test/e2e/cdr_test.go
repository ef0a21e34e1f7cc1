package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDocsCDRExamples runs docs/cdr.md: its example files are written to a
// fresh directory, its sh blocks are run there in order with the real
// binary first on PATH, and the output must hold every line of the text
// block that follows (see the comment at the top of the page).
func TestDocsCDRExamples(t *testing.T) {
	const doc = "../../docs/cdr.md"
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	blocks := readBlocks(t, doc)
	dir := workdir(t)
	path := filepath.Dir(binary) + string(os.PathListSeparator) + os.Getenv("PATH")
	files, ran := 0, 0
	for i, b := range blocks {
		where := fmt.Sprintf("%s:%d", doc, b.line)
		if name, ok := strings.CutPrefix(b.marker, "<!-- file:"); ok {
			name = strings.TrimSpace(strings.TrimSuffix(name, "-->"))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(b.body), 0o644); err != nil {
				t.Fatal(err)
			}
			files++
			continue
		}
		if b.lang != "sh" {
			continue
		}
		wantCode := 0
		if s, ok := strings.CutPrefix(b.marker, "<!-- exit:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(s, "-->")))
			if err != nil {
				t.Fatalf("%s: bad exit marker %q", where, b.marker)
			}
			wantCode = n
		}
		cmd := exec.Command("bash", "-c", b.body)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+path)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		ran++
		if code != wantCode {
			t.Errorf("%s: %s: exit %d, want %d:\n%s", where, strings.TrimSpace(b.body), code, wantCode, out)
			continue
		}
		if i+1 < len(blocks) && blocks[i+1].lang == "text" {
			got := squeeze(string(out))
			for _, line := range strings.Split(blocks[i+1].body, "\n") {
				if line = squeeze(line); line != "" && !strings.Contains(got, line) {
					t.Errorf("%s: %s: output lacks %q; it was:\n%s", where, strings.TrimSpace(b.body), line, out)
				}
			}
		}
	}
	if files < 4 || ran < 7 {
		t.Fatalf("%s: %d example files and %d commands found; the parser or the doc has lost them", doc, files, ran)
	}
}

// squeeze collapses runs of spaces and trims, so that column alignment does
// not matter.
func squeeze(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// TestCDRImportAndReplay imports the night-pumping sample twice and replays
// it, with the real binary: the second import stores nothing, and the
// report stops the pumping extension at its first fraudulent call.
func TestCDRImportAndReplay(t *testing.T) {
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	dir := workdir(t)
	sample, err := filepath.Abs("testdata/cdr-night-pumping")
	if err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(sample, "Master.csv")
	var first, second struct {
		Calls   int `json:"calls"`
		New     int `json:"new"`
		Stored  int `json:"already_stored"`
		Skipped int `json:"skipped_lines"`
	}
	for _, s := range []any{&first, &second} {
		out, stderr, code := run(t, dir, "cdr", "import", "--tenant", "demo", "--policy", filepath.Join(sample, "policy.yaml"), "--json", csv)
		if code != 0 {
			t.Fatalf("cdr import: exit %d: %s", code, stderr)
		}
		if err := json.Unmarshal([]byte(out), s); err != nil {
			t.Fatalf("cdr import --json: %v: %q", err, out)
		}
	}
	if first.Calls != 233 || first.New != 233 || first.Skipped != 0 || second.New != 0 || second.Stored != 233 {
		t.Fatalf("imports: first %+v, second %+v; want 233 new, then 233 already stored", first, second)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "telguard.db")); err != nil {
		t.Fatalf("no database where serve looks for it: %v", err)
	}

	out, stderr, code := run(t, dir, "replay", "--policy", filepath.Join(sample, "policy.yaml"), "--json", csv)
	if code != 0 {
		t.Fatalf("replay: exit %d: %s", code, stderr)
	}
	var rep struct {
		Blocked, Allowed struct {
			Calls int     `json:"calls"`
			Money float64 `json:"money"`
		}
		FirstBlocks []struct {
			Account string `json:"account"`
			Rule    string `json:"rule"`
			Before  struct {
				Calls int `json:"calls"`
			} `json:"before"`
		} `json:"first_blocks"`
		Listed []struct {
			To string `json:"to"`
		} `json:"listed"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("replay --json: %v", err)
	}
	found := false
	for _, f := range rep.FirstBlocks {
		if f.Account == "1001" {
			found = true
			if f.Before.Calls != 0 {
				t.Errorf("1001: %d calls got through before its first block", f.Before.Calls)
			}
		}
	}
	if !found || rep.Blocked.Calls < 40 || rep.Blocked.Money <= rep.Allowed.Money {
		t.Fatalf("replay report: %s", out)
	}
	for _, l := range rep.Listed {
		if !strings.Contains(l.To, "*") {
			t.Fatalf("listed number %q is not masked", l.To)
		}
	}

	// The stored history, replayed from the database, gives the same
	// report as the file it was imported from.
	stored, stderr, code := run(t, dir, "replay", "--policy", filepath.Join(sample, "policy.yaml"), "--stored", "--json")
	if code != 0 {
		t.Fatalf("replay --stored: exit %d: %s", code, stderr)
	}
	var fromDB struct {
		Calls  int `json:"stored_calls"`
		Report json.RawMessage
	}
	if err := json.Unmarshal([]byte(stored), &fromDB); err != nil {
		t.Fatalf("replay --stored --json: %v", err)
	}
	var a, b map[string]any
	json.Unmarshal([]byte(out), &a)
	json.Unmarshal([]byte(stored), &b)
	for _, k := range []string{"calls", "blocked", "would", "allowed", "blocked_by_rule", "first_blocks", "listed"} {
		ja, _ := json.Marshal(a[k])
		jb, _ := json.Marshal(b[k])
		if string(ja) != string(jb) {
			t.Errorf("replay of the stored history differs from the file's in %s:\n file   %.400s\n stored %.400s", k, ja, jb)
		}
	}
	if fromDB.Calls != 233 {
		t.Errorf("replay --stored read %d calls, want 233", fromDB.Calls)
	}

	// cdr delete wants --before or --all, never a guess.
	for _, args := range [][]string{
		{"cdr", "delete", "--tenant", "demo"},
		{"cdr", "delete", "--tenant", "demo", "--all", "--before", "30d"},
		{"cdr", "delete", "--all"},
	} {
		if _, stderr, code := run(t, dir, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
		}
	}
	out, stderr, code = run(t, dir, "cdr", "delete", "--tenant", "demo", "--all")
	if code != 0 || !strings.Contains(out, "deleted 233 stored calls") {
		t.Fatalf("cdr delete --all: exit %d: %s %s", code, out, stderr)
	}

	// Flags that would be ignored are refused (exit 2) with the reason.
	if err := os.WriteFile(filepath.Join(dir, "fs.csv"), []byte(`"Alice","1001","0044163296012","default","2026-03-02 09:15:02","","2026-03-02 09:15:09","7","0","NO_ANSWER","uuid-1","","1001","PCMA","PCMA"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "--policy", filepath.Join(sample, "policy.yaml"), "--stored", "--format", "asterisk", "--timezone", "UTC"}, "--format, --timezone"},
		{[]string{"replay", "--policy", filepath.Join(sample, "policy.yaml"), "--stored", "--strict"}, "--strict"},
		{[]string{"cdr", "import", "--tenant", "demo", "--max-bad-lines", "0", csv}, "--strict"},
		{[]string{"cdr", "import", "--tenant", "demo", "--account-from", "channel", "fs.csv"}, "account source"},
		{[]string{"cdr", "import", "--tenant", "demo", "--account-from", "caller_id_number", csv}, "account source"},
	} {
		_, stderr, code := run(t, dir, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %s", tt.args, code, stderr, tt.want)
		}
	}

	// A file of no known format is refused with exit 2 and a reason.
	if err := os.WriteFile(filepath.Join(dir, "junk.csv"), []byte("hello,world\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = run(t, dir, "replay", "junk.csv")
	if code != 2 || !strings.Contains(stderr, "pass --format") {
		t.Fatalf("junk file: exit %d, stderr %q", code, stderr)
	}
}
