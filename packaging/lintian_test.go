package packaging

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// lintianTag matches lintian's tag lines: error, warning, info, pedantic,
// experimental, and the overrides it could not match (mismatched-override).
var lintianTag = regexp.MustCompile(`(?m)^[EWIPX]: .*$`)

// lintian, at its strictest, has nothing to say of any package but what its
// overrides waive (each with its reason, in packaging/*/lintian-overrides).
func TestLintian(t *testing.T) {
	lintian := need(t, "scripts/ensure-packaging-tools.sh installs lintian", "lintian")
	t.Parallel()
	dist, _ := dists(t)
	debs, err := filepath.Glob(filepath.Join(dist, "*.deb"))
	if err != nil || len(debs) != len(targets) {
		t.Fatalf("want %d packages in %s, found %v (%v)", len(targets), dist, debs, err)
	}
	args := append([]string{"--display-info", "--pedantic", "--display-experimental", "--fail-on", "error,warning,info,pedantic,experimental"}, debs...)
	var out bytes.Buffer
	cmd := exec.Command(lintian, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if tags := lintianTag.FindAllString(out.String(), -1); len(tags) > 0 {
		t.Errorf("lintian has %d complaints; fix them, or waive one in packaging/PACKAGE/lintian-overrides with the reason:", len(tags))
		for _, tag := range tags {
			t.Error(tag)
		}
	}
	if err != nil {
		t.Errorf("lintian: %v\n%s", err, out.String())
	}
}
