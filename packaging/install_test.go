package packaging

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The throw-away Debian root: the release Raspberry Pi OS is built on, with
// only what every Debian has (minbase) and the packages' one dependency.
const (
	rootSuite   = "bookworm"
	rootInclude = "adduser"
	// defaultMirror is Debian's; KIUMTAP_DEBIAN_MIRROR names another.
	defaultMirror = "http://deb.debian.org/debian"
)

// The amd64 packages through a life on a host: installed on a Debian that
// has one of the device groups already, configured and enabled by an
// operator, upgraded, removed and reinstalled, purged. dpkg runs inside a
// minimal Debian root (chroot), as it does on a Pi: the maintainer scripts
// meet the root's own adduser, deb-systemd-helper and dpkg-statoverride,
// and user and group names resolve in the root (dpkg --root from outside
// would resolve the statoverrides' names on the host).
func TestInstall(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the install test installs the amd64 packages; this is %s", runtime.GOARCH)
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, "TestInstall runs dpkg in a chroot, which needs root: run the tests as root (CI does)")
	}
	need(t, "scripts/ensure-packaging-tools.sh installs debootstrap", "debootstrap")
	chroot := need(t, "chroot is in coreutils", "chroot")
	t.Parallel()
	dist, upgrade := dists(t)
	root := debianRoot(t)

	// inRoot runs a command in the root; it returns stdout and stderr
	// together, and fails t if the command does.
	inRoot := func(t *testing.T, args ...string) string {
		t.Helper()
		cmd := exec.Command(chroot, append([]string{root}, args...)...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("in the root: %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	debs := filepath.Join(root, "tmp", "debs")
	for _, d := range []string{"1", "2"} {
		if err := os.MkdirAll(filepath.Join(debs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []struct{ dist, dir, pkg string }{
		{dist, "1", "kiumtap"}, {dist, "1", "kiumbridge"}, {upgrade, "2", "kiumtap"}, {upgrade, "2", "kiumbridge"},
	} {
		copyFile(t, deb(t, p.dist, p.pkg, "amd64"), filepath.Join(debs, p.dir, p.pkg+".deb"))
	}

	// A Debian where the group spi exists already, with its own ID: kept.
	inRoot(t, "groupadd", "--system", "--gid", "990", "spi")

	out := inRoot(t, "dpkg", "--install", "/tmp/debs/1/kiumtap.deb", "/tmp/debs/1/kiumbridge.deb")
	for _, want := range []string{
		// What to do next, for each.
		"Edit /etc/kiumtap/kiumtapd.toml", "kiumctl reader probe -reader pi", "systemctl enable --now kiumtapd",
		"Edit /etc/kiumbridge/kiumbridge.toml", "kiumbridge config check", "systemctl enable --now kiumbridge",
		"/usr/share/doc/kiumbridge/examples/mosquitto",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the install does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "warning") {
		t.Errorf("the install warns:\n%s", out)
	}

	id := readIdentities(t, root)
	// Users: system accounts with no login and their state directory as home.
	for _, u := range []string{"kiumtap", "kiumbridge"} {
		pw, ok := id.users[u]
		if !ok {
			t.Fatalf("no user %s", u)
		}
		if pw.uid >= 1000 || pw.shell != "/usr/sbin/nologin" || pw.home != "/var/lib/"+u || id.groupName(pw.gid) != u {
			t.Errorf("user %s: uid %d, group %s, home %s, shell %s; want a system user of group %s, home /var/lib/%s, no login",
				u, pw.uid, id.groupName(pw.gid), pw.home, pw.shell, u, u)
		}
	}
	for _, g := range []string{"spi", "gpio", "i2c"} {
		gr, ok := id.groups[g]
		if !ok {
			t.Errorf("no group %s", g)
			continue
		}
		if !gr.members["kiumtap"] || gr.members["kiumbridge"] {
			t.Errorf("group %s has %v: want kiumtap and not kiumbridge", g, gr.members)
		}
		if gr.gid >= 1000 {
			t.Errorf("group %s has gid %d: want a system group", g, gr.gid)
		}
	}
	if gid := id.groups["spi"].gid; gid != 990 {
		t.Errorf("the group spi that existed has gid %d now, want 990 still", gid)
	}

	// Owners and modes: the configuration root's and the daemon's group's
	// to read; the state directories the daemon's own.
	checkMode := func(t *testing.T, path, owner, group string, mode fs.FileMode) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(root, path))
		if err != nil {
			t.Error(err)
			return
		}
		st := fi.Sys().(*syscall.Stat_t)
		o, g := id.userName(int(st.Uid)), id.groupName(int(st.Gid))
		if o != owner || g != group || fi.Mode() != mode {
			t.Errorf("%s is %s:%s %v, want %s:%s %v", path, o, g, fi.Mode(), owner, group, mode)
		}
	}
	installed := func(t *testing.T) {
		t.Helper()
		checkMode(t, "/etc/kiumtap", "root", "kiumtap", fs.ModeDir|0o750)
		checkMode(t, "/etc/kiumtap/kiumtapd.toml", "root", "kiumtap", 0o640)
		checkMode(t, "/var/lib/kiumtap", "kiumtap", "kiumtap", fs.ModeDir|0o750)
		checkMode(t, "/usr/bin/kiumtapd", "root", "root", 0o755)
		checkMode(t, "/usr/bin/kiumctl", "root", "root", 0o755)
		checkMode(t, "/usr/lib/systemd/system/kiumtapd.service", "root", "root", 0o644)
		checkMode(t, "/etc/kiumbridge", "root", "kiumbridge", fs.ModeDir|0o750)
		checkMode(t, "/etc/kiumbridge/kiumbridge.toml", "root", "kiumbridge", 0o640)
		checkMode(t, "/var/lib/kiumbridge/sources", "kiumbridge", "kiumbridge", fs.ModeDir|0o750)
		checkMode(t, "/var/lib/kiumbridge", "kiumbridge", "kiumbridge", fs.ModeDir|0o750)
		checkMode(t, "/usr/bin/kiumbridge", "root", "root", 0o755)
		checkMode(t, "/usr/lib/systemd/system/kiumbridge.service", "root", "root", 0o644)
		for pkg, conffile := range map[string]string{"kiumtap": "/etc/kiumtap/kiumtapd.toml", "kiumbridge": "/etc/kiumbridge/kiumbridge.toml"} {
			if c := inRoot(t, "dpkg-query", "--showformat=${Conffiles}", "--show", pkg); !strings.HasPrefix(strings.TrimSpace(c), conffile+" ") {
				t.Errorf("%s's conffiles: %q, want %s", pkg, c, conffile)
			}
		}
		overrides := inRoot(t, "dpkg-statoverride", "--list")
		for _, want := range []string{
			"root kiumtap 750 /etc/kiumtap\n", "root kiumtap 640 /etc/kiumtap/kiumtapd.toml\n",
			"root kiumbridge 750 /etc/kiumbridge\n", "root kiumbridge 640 /etc/kiumbridge/kiumbridge.toml\n",
		} {
			if !strings.Contains(overrides, want) {
				t.Errorf("dpkg-statoverride --list lacks %q:\n%s", want, overrides)
			}
		}
	}
	installed(t)
	// A new install is not enabled: its configuration is still the example.
	for _, u := range []string{"kiumtapd", "kiumbridge"} {
		if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants", u+".service")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s.service is enabled by the install (%v): it must wait for its configuration", u, err)
		}
	}
	// The installed binaries run and say which build they are.
	for _, c := range []string{"kiumtapd", "kiumctl", "kiumbridge"} {
		if v := inRoot(t, "/usr/bin/"+c, "-version"); !strings.HasPrefix(v, c+" "+testVersion+" (go") {
			t.Errorf("%s -version: %q, want %s %s (go…)", c, v, c, testVersion)
		}
	}

	// The operator configures and enables the terminal; both daemons have
	// data now.
	appendFile(t, filepath.Join(root, "etc/kiumtap/kiumtapd.toml"), "\n# configured on site\n")
	appendFile(t, filepath.Join(root, "etc/kiumbridge/kiumbridge.toml"), "\n# configured on site\n")
	if err := os.Symlink("/usr/lib/systemd/system/kiumtapd.service", filepath.Join(root, "etc/systemd/system/multi-user.target.wants/kiumtapd.service")); err != nil {
		t.Fatal(err) // what systemctl enable does
	}
	data := map[string]string{ // data files and their owners
		"/var/lib/kiumtap/kiumtap.db":               "kiumtap",
		"/var/lib/kiumbridge/bridge.db":             "kiumbridge",
		"/var/lib/kiumbridge/sources/mangwon1.json": "kiumbridge",
	}
	for p, owner := range data {
		inRoot(t, "install", "-o", owner, "-g", owner, "-m", "0600", "/dev/null", p)
	}

	t.Run("upgrade", func(t *testing.T) {
		out := inRoot(t, "dpkg", "--install", "/tmp/debs/2/kiumtap.deb", "/tmp/debs/2/kiumbridge.deb")
		if strings.Contains(out, "is installed;") || strings.Contains(out, "warning") {
			t.Errorf("the upgrade says more than it should:\n%s", out)
		}
		for _, pkg := range []string{"kiumtap", "kiumbridge"} {
			if v := inRoot(t, "dpkg-query", "--showformat=${Version}", "--show", pkg); v != upgradeDebVersion+"-1" {
				t.Errorf("%s is at %s after the upgrade, want %s-1", pkg, v, upgradeDebVersion)
			}
		}
		installed(t)
		for _, f := range []string{"etc/kiumtap/kiumtapd.toml", "etc/kiumbridge/kiumbridge.toml"} {
			if b, err := os.ReadFile(filepath.Join(root, f)); err != nil || !bytes.Contains(b, []byte("# configured on site")) {
				t.Errorf("the upgrade lost the operator's /%s (%v)", f, err)
			}
		}
		if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/kiumtapd.service")); err != nil {
			t.Errorf("the upgrade disabled kiumtapd: %v", err)
		}
		checkData(t, root, data)
	})

	t.Run("units", func(t *testing.T) {
		analyze := need(t, "systemd-analyze is in the Debian package systemd", "systemd-analyze")
		// Verify against the installed tree: the root has the units and
		// the binaries they start; systemd's own units (the targets they
		// are ordered against) come from this machine's systemd.
		run(t, "cp", "--archive", "--no-clobber", "/usr/lib/systemd/system/.", filepath.Join(root, "usr/lib/systemd/system"))
		for unit, exposure := range map[string]string{"kiumtapd.service": "2.0", "kiumbridge.service": "1.5"} {
			path := "/usr/lib/systemd/system/" + unit
			cmd := exec.Command(analyze, "verify", "--root="+root, "--man=no", path)
			if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
			}
			// The sandbox stays as tight as it is: systemd's exposure
			// score (0 best, 10 worst) at most exposure.
			threshold := strings.ReplaceAll(exposure, ".", "")
			cmd = exec.Command(analyze, "security", "--offline=yes", "--root="+root, "--threshold="+threshold, path)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("systemd-analyze security %s: exposure above %s (%v):\n%s", unit, exposure, err, out)
			}
		}
	})

	t.Run("remove", func(t *testing.T) {
		inRoot(t, "dpkg", "--remove", "kiumtap", "kiumbridge")
		for _, f := range []string{"usr/bin/kiumtapd", "usr/bin/kiumctl", "usr/bin/kiumbridge", "usr/lib/systemd/system/kiumtapd.service"} {
			if _, err := os.Stat(filepath.Join(root, f)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("/%s is still there after remove (%v)", f, err)
			}
		}
		// Nothing of the operator's or the daemons' is gone.
		checkData(t, root, data)
		for _, f := range []string{"etc/kiumtap/kiumtapd.toml", "etc/kiumbridge/kiumbridge.toml"} {
			if _, err := os.Stat(filepath.Join(root, f)); err != nil {
				t.Errorf("remove deleted the configuration: %v", err)
			}
		}
		id := readIdentities(t, root)
		for _, u := range []string{"kiumtap", "kiumbridge"} {
			if _, ok := id.users[u]; !ok {
				t.Errorf("remove deleted the user %s", u)
			}
		}

		// Installed again, the terminal is enabled again, as it was.
		inRoot(t, "dpkg", "--install", "/tmp/debs/2/kiumtap.deb", "/tmp/debs/2/kiumbridge.deb")
		if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/kiumtapd.service")); err != nil {
			t.Errorf("a reinstall did not enable kiumtapd again: %v", err)
		}
		installed(t)
	})

	t.Run("purge", func(t *testing.T) {
		out := inRoot(t, "dpkg", "--purge", "kiumtap", "kiumbridge")
		if !strings.Contains(out, "kept /var/lib/kiumtap, the terminal's store") {
			t.Errorf("purge does not say it kept the terminal's store:\n%s", out)
		}
		// The terminal's store is never deleted; the bridge's store is, its
		// roster sources are not.
		checkData(t, root, map[string]string{
			"/var/lib/kiumtap/kiumtap.db":               "kiumtap",
			"/var/lib/kiumbridge/sources/mangwon1.json": "kiumbridge",
		})
		for _, f := range []string{"var/lib/kiumbridge/bridge.db", "etc/kiumtap", "etc/kiumbridge/kiumbridge.toml", "etc/systemd/system/multi-user.target.wants/kiumtapd.service", "etc/systemd/system/kiumtapd.service"} {
			if _, err := os.Lstat(filepath.Join(root, f)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("/%s is still there after purge (%v)", f, err)
			}
		}
		// (dpkg-statoverride --list fails when it lists nothing.)
		if o := inRoot(t, "sh", "-c", "dpkg-statoverride --list || true"); strings.Contains(o, "kium") {
			t.Errorf("purge left statoverrides:\n%s", o)
		}
	})
}

// checkData fails t unless each file is there and its owner's.
func checkData(t *testing.T, root string, files map[string]string) {
	t.Helper()
	id := readIdentities(t, root)
	for p, owner := range files {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("data lost: %v", err)
			continue
		}
		if u := id.userName(int(fi.Sys().(*syscall.Stat_t).Uid)); u != owner {
			t.Errorf("%s is %s's now, want %s's", p, u, owner)
		}
	}
}

// debianRoot returns a fresh minimal Debian root in a temporary directory:
// a copy of one debootstrap made once and kept in the user cache directory
// (a minute's work and 40 MB from the mirror; a copy takes seconds). Delete
// $XDG_CACHE_HOME/kiumtap (~/.cache/kiumtap) to make it again.
func debianRoot(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("no user cache directory for the Debian root: %v", err)
	}
	dir := filepath.Join(cache, "kiumtap")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// One test process at a time makes or copies it.
	lock, err := os.OpenFile(filepath.Join(dir, "debian-root.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	cached := filepath.Join(dir, fmt.Sprintf("debian-%s-minbase-%s-%s", rootSuite, rootInclude, runtime.GOARCH))
	if _, err := os.Stat(cached); errors.Is(err, fs.ErrNotExist) {
		mirror := os.Getenv("KIUMTAP_DEBIAN_MIRROR")
		if mirror == "" {
			mirror = defaultMirror
		}
		tmp := cached + ".new"
		os.RemoveAll(tmp)
		start := time.Now()
		cmd := exec.Command(need(t, "scripts/ensure-packaging-tools.sh installs debootstrap", "debootstrap"),
			"--variant=minbase", "--include="+rootInclude, rootSuite, tmp, mirror)
		out, err := cmd.CombinedOutput()
		if err != nil {
			os.RemoveAll(tmp)
			t.Fatalf("debootstrap of Debian %s from %s failed: %v (no way to the mirror? KIUMTAP_DEBIAN_MIRROR names another)\n%s",
				rootSuite, mirror, err, tail(out, 30))
		}
		// The downloaded packages are not needed to install ours.
		archives, _ := filepath.Glob(filepath.Join(tmp, "var/cache/apt/archives/*.deb"))
		for _, a := range archives {
			os.Remove(a)
		}
		if err := os.Rename(tmp, cached); err != nil {
			t.Fatal(err)
		}
		t.Logf("made the Debian %s root in %v (kept in %s)", rootSuite, time.Since(start).Round(time.Second), cached)
	} else if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "root")
	run(t, "cp", "--archive", cached, root)
	return root
}

// identities are a root's users and groups, from its /etc/passwd and
// /etc/group.
type identities struct {
	users  map[string]passwd
	groups map[string]group
}

type passwd struct {
	uid, gid    int
	home, shell string
}

type group struct {
	gid     int
	members map[string]bool
}

func readIdentities(t testing.TB, root string) identities {
	t.Helper()
	id := identities{users: map[string]passwd{}, groups: map[string]group{}}
	each := func(file string, fields int, f func([]string) error) {
		b, err := os.ReadFile(filepath.Join(root, "etc", file))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			p := strings.Split(sc.Text(), ":")
			if len(p) != fields {
				continue
			}
			if err := f(p); err != nil {
				t.Fatalf("/etc/%s: %q: %v", file, sc.Text(), err)
			}
		}
	}
	each("passwd", 7, func(p []string) error {
		uid, err1 := strconv.Atoi(p[2])
		gid, err2 := strconv.Atoi(p[3])
		id.users[p[0]] = passwd{uid: uid, gid: gid, home: p[5], shell: p[6]}
		return errors.Join(err1, err2)
	})
	each("group", 4, func(p []string) error {
		gid, err := strconv.Atoi(p[2])
		m := map[string]bool{}
		for _, u := range strings.Split(p[3], ",") {
			if u != "" {
				m[u] = true
			}
		}
		id.groups[p[0]] = group{gid: gid, members: m}
		return err
	})
	return id
}

func (id identities) userName(uid int) string {
	for n, u := range id.users {
		if u.uid == uid {
			return n
		}
	}
	return strconv.Itoa(uid)
}

func (id identities) groupName(gid int) string {
	for n, g := range id.groups {
		if g.gid == gid {
			return n
		}
	}
	return strconv.Itoa(gid)
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// tail is the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// skipOrFail skips t, or fails it under CI, where everything the tests need
// is there.
func skipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
