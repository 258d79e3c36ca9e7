package api

import (
	"bufio"
	"bytes"
	"iter"
	"maps"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// heavy are the packages a client of the control API must not link: the
// bridge itself, MQTT, bbolt and PostgreSQL.
var heavy = []string{
	"kiumtap/portal/bridge",
	"github.com/eclipse/paho.mqtt.golang",
	"go.etcd.io/bbolt",
	"github.com/jackc/pgx",
}

func isHeavy(pkg string) bool {
	return slices.ContainsFunc(heavy, func(h string) bool { return pkg == h || strings.HasPrefix(pkg, h+"/") })
}

// TestNoHeavyDeps fails if portal/api, or kiumctl's portal half, ever
// depends on the bridge, paho, bbolt or pgx. kiumctl's terminal half
// (kiumtap/daemon/...: the terminal's local API and its bbolt store,
// which kiumctl reads when kiumtapd is not running) may link bbolt and
// paho; nothing else of kiumctl may, and nothing of it may link the
// bridge or pgx.
func TestNoHeavyDeps(t *testing.T) {
	imports := importGraph(t, "kiumtap/portal/api", "kiumtap/cmd/kiumctl")

	for pkg, path := range sorted(reachable(imports, "kiumtap/portal/api", nil)) {
		if isHeavy(pkg) {
			t.Errorf("portal/api depends on %s: %s", pkg, strings.Join(path, " → "))
		}
	}

	for pkg, path := range sorted(reachable(imports, "kiumtap/cmd/kiumctl", nil)) {
		if pkg == "kiumtap/portal/bridge" || strings.HasPrefix(pkg, "kiumtap/portal/bridge/") || strings.HasPrefix(pkg, "github.com/jackc/pgx") {
			t.Errorf("kiumctl depends on %s: %s", pkg, strings.Join(path, " → "))
		}
	}
	terminalHalf := func(pkg string) bool { return strings.HasPrefix(pkg, "kiumtap/daemon/") }
	for pkg, path := range sorted(reachable(imports, "kiumtap/cmd/kiumctl", terminalHalf)) {
		if isHeavy(pkg) {
			t.Errorf("kiumctl depends on %s other than through the terminal's packages (kiumtap/daemon/...): %s", pkg, strings.Join(path, " → "))
		}
	}
}

// importGraph is each package's imports, for roots and all they depend
// on (no tests), as `go list -deps` reports them.
func importGraph(t *testing.T, roots ...string) map[string][]string {
	t.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(goTool); err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to list the dependencies with")
		}
	}
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}"}, roots...)
	cmd := exec.Command(goTool, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.Bytes())
	}
	g := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			g[f[0]] = f[1:]
		}
	}
	for _, r := range roots {
		if _, ok := g[r]; !ok {
			t.Fatalf("go list -deps did not list %s:\n%s", r, out)
		}
	}
	return g
}

// reachable is every package root depends on, with the import path that
// reaches it (breadth first: a shortest one), not looking into the
// packages skip reports (nil: none).
func reachable(g map[string][]string, root string, skip func(string) bool) map[string][]string {
	paths := map[string][]string{root: {root}}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != root && skip != nil && skip(p) {
			continue
		}
		for _, q := range g[p] {
			if _, seen := paths[q]; !seen {
				paths[q] = append(slices.Clone(paths[p]), q)
				queue = append(queue, q)
			}
		}
	}
	delete(paths, root)
	return paths
}

// sorted is m by its keys, in order.
func sorted(m map[string][]string) iter.Seq2[string, []string] {
	return func(yield func(string, []string) bool) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}
