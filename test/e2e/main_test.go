// Package e2e holds black-box tests: they build the telguard binary, start
// it from flags and files the way a user would, and drive it over HTTP and
// the command line.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "telguard-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "telguard")
	build := exec.Command("go", "build", "-race", "-o", binary, "../../cmd/telguard")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build telguard:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const apiKey = "e2e-test-key-0123456789"

// daemon is a running telguard serve.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string
	dir    string
	stderr *lockedBuffer
	stdout *lockedBuffer
	done   chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs telguard serve in dir with the given extra args and env, and
// waits for /readyz.
func start(t *testing.T, dir string, env []string, args ...string) *daemon {
	t.Helper()
	addr := freePort(t)
	cmd := exec.Command(binary, append([]string{"serve", "--listen", addr}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	d := &daemon{t: t, cmd: cmd, base: "http://" + addr, dir: dir, stderr: &lockedBuffer{}, stdout: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr, cmd.Stdout = d.stderr, d.stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() { d.stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(d.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d
			}
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("telguard exited early: %v\nstderr:\n%s", err, d.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("telguard not ready after 30s\nstderr:\n%s", d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop shuts the daemon down the way an operator does (SIGTERM) and waits.
func (d *daemon) stop() {
	if d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			d.t.Errorf("telguard exited with %v\nstderr:\n%s", err, d.stderr)
		}
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		d.t.Errorf("telguard did not stop on SIGTERM\nstderr:\n%s", d.stderr)
	}
}

type reason struct {
	Rule, Reason, Mode, Verdict string
}

type decision struct {
	Verdict      string   `json:"verdict"`
	WouldVerdict string   `json:"would_verdict"`
	Reasons      []reason `json:"reasons"`
	Risk         int      `json:"risk"`
	SIPCode      int      `json:"sip_code"`
	BanSeconds   int      `json:"ban_seconds"`
	Destination  struct {
		E164 string  `json:"e164"`
		Rate float64 `json:"rate_per_minute"`
	} `json:"destination"`
}

func (d decision) rules() []string {
	var out []string
	for _, r := range d.Reasons {
		out = append(out, r.Rule)
	}
	return out
}

func (d decision) has(rule string) bool {
	for _, r := range d.Reasons {
		if r.Rule == rule {
			return true
		}
	}
	return false
}

func (d *daemon) do(method, path string, body any) (int, []byte) {
	d.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, d.base+path, r)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

type call struct {
	CallID   string `json:"call_id"`
	Account  string `json:"account"`
	To       string `json:"to"`
	SourceIP string `json:"source_ip,omitempty"`
	Time     string `json:"time,omitempty"` // RFC 3339; default: the daemon's clock
}

func (d *daemon) check(c call) decision {
	d.t.Helper()
	code, body := d.do("POST", "/v1/calls/check", c)
	if code != 200 {
		d.t.Fatalf("check %+v: %d %s", c, code, body)
	}
	var dec decision
	if err := json.Unmarshal(body, &dec); err != nil {
		d.t.Fatalf("decode decision %s: %v", body, err)
	}
	return dec
}

func (d *daemon) end(callID string, seconds float64) {
	d.t.Helper()
	if code, body := d.do("POST", "/v1/calls/"+callID+"/answered", nil); code != 204 {
		d.t.Fatalf("answered %s: %d %s", callID, code, body)
	}
	if code, body := d.do("POST", "/v1/calls/"+callID+"/ended", map[string]any{"duration_s": seconds}); code != 204 {
		d.t.Fatalf("ended %s: %d %s", callID, code, body)
	}
}

// workdir returns a directory with the example policy, as a fresh clone has.
func workdir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../examples/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "examples", "policy.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func withKey() []string { return []string{"TELGUARD_API_KEY=" + apiKey} }

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
