// Package testbin builds the project's binaries for tests that run them as
// processes, as an operator does: each once per test binary, into one
// temporary directory that Cleanup (from TestMain) removes, with the race
// detector when the tests have it. The test's own GOFLAGS are not the
// binaries'.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// raceEnabled is set when the tests are built with -race (race.go).
var raceEnabled bool

var (
	mu    sync.Mutex
	dir   string
	built = map[string]error{}
)

// Path builds the command package pkg ("kiumtap/cmd/kiumbridge") once and
// returns the binary's path; a failed build fails t with go's output.
func Path(t testing.TB, pkg string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if dir == "" {
		d, err := os.MkdirTemp("", "kiumtap-testbin-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
	}
	bin := filepath.Join(dir, path.Base(pkg))
	err, ok := built[pkg]
	if !ok {
		args := []string{"build", "-o", bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Env = append(os.Environ(), "GOFLAGS=")
		if out, e := cmd.CombinedOutput(); e != nil {
			err = fmt.Errorf("testbin: go build %s: %v\n%s", pkg, e, out)
		}
		built[pkg] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Cleanup removes the binaries; call it from TestMain after m.Run.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
		dir, built = "", map[string]error{}
	}
}

// Release builds pkg as the packages ship it: static (CGO_ENABLED=0),
// -trimpath, stripped (-ldflags "-s -w"), never with the race detector,
// for the platform env names (e.g. "GOARCH=arm", "GOARM=6"; none: this
// machine's). Each pkg and env is built once per test binary.
func Release(t testing.TB, pkg string, env ...string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if dir == "" {
		d, err := os.MkdirTemp("", "kiumtap-testbin-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
	}
	name := path.Base(pkg) + "-release"
	for _, e := range env {
		name += "-" + strings.NewReplacer("=", "", "/", "").Replace(strings.ToLower(e))
	}
	bin := filepath.Join(dir, name)
	key := "release " + pkg + " " + strings.Join(env, " ")
	err, ok := built[key]
	if !ok {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, pkg)
		cmd.Env = append(append(os.Environ(), "GOFLAGS=", "CGO_ENABLED=0", "GOOS=linux"), env...)
		if out, e := cmd.CombinedOutput(); e != nil {
			err = fmt.Errorf("testbin: go build %s (%s): %v\n%s", pkg, strings.Join(env, " "), e, out)
		}
		built[key] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
