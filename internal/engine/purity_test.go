package engine_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The engine is pure (DESIGN.md): nothing under internal/engine may reach
// the network, a database, a subprocess, SIP or a message bus, not even
// through a dependency.

// forbidden lists import paths (and path prefixes ending in "/") the engine
// must not depend on.
var forbidden = []string{
	"net", "net/", // net/netip is allowed below: it is address arithmetic
	"database/sql", "database/",
	"os/exec", "os/signal",
	"plugin",
	"crypto/tls",
	"golang.org/x/net/",
	"github.com/emiago/sipgo", "github.com/emiago/sipgo/",
	"modernc.org/sqlite",
	"github.com/nats-io/",
	"github.com/redis/",
	"github.com/jackc/",
	"github.com/lib/pq",
}

var allowed = []string{"net/netip"}

func isForbidden(path string) bool {
	if slices.Contains(allowed, path) {
		return false
	}
	for _, f := range forbidden {
		if path == f || strings.HasSuffix(f, "/") && strings.HasPrefix(path, f) {
			return true
		}
	}
	return false
}

type goPackage struct {
	ImportPath string
	Doc        string
	Imports    []string
	Deps       []string
	Standard   bool
	DepOnly    bool
}

// goList runs go list -json with args and decodes its stream of packages.
func goList(t *testing.T, args ...string) []goPackage {
	t.Helper()
	if testing.Short() {
		t.Skip("runs go list")
	}
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			t.Skipf("no go command: %v", err)
		}
		t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestEngineImportsNoIO(t *testing.T) {
	pkgs := goList(t, "-deps", "./...")
	byPath := map[string]goPackage{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	// For each forbidden package, name who imports it directly, so the
	// failure says which dependency pulled it in.
	for _, p := range pkgs {
		for _, imp := range p.Imports {
			if isForbidden(imp) {
				t.Errorf("%s imports %s, which the engine must not depend on", p.ImportPath, imp)
			}
		}
	}
	// And the chain from the engine's own packages.
	for _, p := range pkgs {
		if p.DepOnly || !strings.HasPrefix(p.ImportPath, "github.com/telguard/telguard/internal/engine") {
			continue
		}
		for _, d := range p.Deps {
			if isForbidden(d) {
				t.Errorf("%s depends on %s (see the direct importer above)", p.ImportPath, d)
			}
		}
	}
	if _, ok := byPath["github.com/telguard/telguard/internal/engine"]; !ok {
		t.Fatal("go list did not list the engine; run the test from internal/engine")
	}
}

func TestForbiddenList(t *testing.T) {
	for path, want := range map[string]bool{
		"net": true, "net/http": true, "net/netip": false, "os/exec": true, "database/sql": true,
		"github.com/nats-io/nats.go": true, "github.com/jackc/pgx/v5": true, "modernc.org/sqlite": true,
		"github.com/emiago/sipgo": true, "github.com/emiago/sipgo/sip": true, "github.com/emiago/sipgox": false, "netx": false, "os": false,
	} {
		if got := isForbidden(path); got != want {
			t.Errorf("isForbidden(%q) = %v; want %v", path, got, want)
		}
	}
}

// Every package under internal/ says what it owns in a package doc comment.
// Packages of other teams that are still being written fail this test
// until they have one; the failure names them.
func TestPackagesHaveDocComments(t *testing.T) {
	pkgs := goList(t, "-e", "../...")
	var missing []string
	for _, p := range pkgs {
		if strings.TrimSpace(p.Doc) == "" {
			missing = append(missing, p.ImportPath)
		}
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list ../... found %d packages; run the test from internal/engine", len(pkgs))
	}
	if len(missing) > 0 {
		t.Errorf("packages under internal/ without a package doc comment (add a \"// Package x …\" comment saying what it owns):\n\t%s",
			strings.Join(missing, "\n\t"))
	}
}
