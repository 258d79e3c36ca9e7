package packaging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The versions the tests build: the binaries' -version, and the packages'
// version before and after an upgrade.
const (
	testVersion       = "0.0.0-pkgtest"
	testDebVersion    = "0.0.0+pkgtest" // what scripts/package.sh makes of testVersion
	upgradeDebVersion = "0.0.0+pkgtest.2"
)

// targets are the packages every test may use: make package's four, and the
// terminal for amd64, which TestInstall installs.
var targets = []string{"kiumtap:armhf", "kiumtap:arm64", "kiumtap:amd64", "kiumbridge:amd64", "kiumbridge:arm64"}

// upgradeTargets are built again as upgradeDebVersion.
var upgradeTargets = []string{"kiumtap:amd64", "kiumbridge:amd64"}

var (
	work     string // the tests' directory: packages, binaries
	workOnce sync.Once
	workErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if work != "" {
		os.RemoveAll(work)
	}
	os.Exit(code)
}

// repoRoot is the module's root: the tests run in packaging/.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// dists returns the directories holding the built .deb files: testDebVersion's
// (every target) and upgradeDebVersion's (upgradeTargets). They are built
// once per test binary with scripts/package.sh, as make package builds them.
func dists(t testing.TB) (dist, upgrade string) {
	t.Helper()
	root := repoRoot(t)
	workOnce.Do(func() {
		// The packages are made of the whole tree: read it here so that go
		// test's cache sees a change anywhere in it (it tracks only the
		// files the test process opens, not package.sh's).
		if workErr = readInputs(root); workErr != nil {
			return
		}
		if work, workErr = os.MkdirTemp("", "kiumtap-packaging-"); workErr != nil {
			return
		}
		start := time.Now()
		if workErr = buildPackages(root, filepath.Join(work, "dist"), "", targets); workErr != nil {
			return
		}
		workErr = buildPackages(root, filepath.Join(work, "upgrade"), upgradeDebVersion, upgradeTargets)
		fmt.Fprintf(os.Stderr, "packaging: built %d packages in %v\n", len(targets)+len(upgradeTargets), time.Since(start).Round(time.Second))
	})
	if workErr != nil {
		t.Fatal(workErr)
	}
	return filepath.Join(work, "dist"), filepath.Join(work, "upgrade")
}

// buildPackages runs scripts/package.sh for targets into dist; debVersion ""
// lets it make the version from testVersion.
func buildPackages(root, dist, debVersion string, targets []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "package.sh"), targets...)
	cmd.Dir = root
	// The test's GOFLAGS (-race and the like) are not the packages'.
	cmd.Env = append(os.Environ(), "GOFLAGS=", "VERSION="+testVersion, "DEB_VERSION="+debVersion,
		"DIST="+dist, "BUILD_DIR="+filepath.Join(dist, "build"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scripts/package.sh %s: %v\n%s", strings.Join(targets, " "), err, out)
	}
	return nil
}

// readInputs looks at every file the packages can be built from: the
// repository's files that git does not ignore (or, outside a git checkout,
// every file but .git's, bin's and dist's), and their directories, so that
// go test's cache sees a file changed, added or removed.
func readInputs(root string) error {
	cmd := exec.Command("git", "ls-files", "--cached", "--others", "--exclude-standard", "-z")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		dirs := map[string]bool{root: true}
		for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
			p := filepath.Join(root, name)
			for d := filepath.Dir(p); !dirs[d]; d = filepath.Dir(d) {
				dirs[d] = true
			}
			// A file deleted but not yet staged is listed and missing.
			if _, err := os.Stat(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		for d := range dirs {
			if _, err := os.ReadDir(d); err != nil {
				return err
			}
		}
		return nil
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "dist":
				return filepath.SkipDir
			}
			return nil
		}
		_, err = os.Stat(path)
		return err
	})
}

// deb returns the path of package pkg for arch in dist.
func deb(t testing.TB, dist, pkg, arch string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dist, pkg+"_*_"+arch+".deb"))
	if err != nil || len(m) != 1 {
		t.Fatalf("want one %s package for %s in %s, found %v (%v)", pkg, arch, dist, m, err)
	}
	return m[0]
}

// run runs a command and returns its standard output; a failure fails t with
// both outputs.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// need returns the path of the first of the commands found, or skips t (fails
// it under CI, where make test has installed them) with how to install them.
func need(t testing.TB, install string, commands ...string) string {
	t.Helper()
	for _, c := range commands {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if p := filepath.Join(dir, c); isExecutable(p) {
				return p
			}
		}
	}
	skipOrFail(t, fmt.Sprintf("%s not found: %s (make test runs it when it runs as root)", strings.Join(commands, " or "), install))
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
