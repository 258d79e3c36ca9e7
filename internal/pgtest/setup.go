package pgtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// setup is where a new cluster finds what it needs; tests of pgtest change
// it, the rest use defaultSetup.
type setup struct {
	debianRoot string   // where Debian's packages put each major version's bin/
	path       string   // $PATH
	tempDir    string   // where the cluster's directory goes
	cacheDir   string   // where initdb'd data directories are kept; "": none
	accounts   []string // who PostgreSQL may run as when the tests run as root
	durable    bool     // commits synced (StartDurable)
}

func defaultSetup() setup {
	s := setup{
		debianRoot: "/usr/lib/postgresql",
		path:       os.Getenv("PATH"),
		tempDir:    os.TempDir(),
		accounts:   []string{"postgres", "nobody"},
	}
	if d, err := os.UserCacheDir(); err == nil {
		s.cacheDir = filepath.Join(d, "kiumtap", "pgtest")
	}
	return s
}

// newCluster makes a cluster's directory and data and starts postgres. On
// failure nothing is left behind.
func newCluster(s setup) (*Cluster, error) {
	bin, err := findBinaries(s.debianRoot, s.path)
	if err != nil {
		return nil, err
	}
	as, err := runAs(s.accounts)
	if err != nil {
		return nil, err
	}
	base, err := clusterBase(s.tempDir, as)
	if err != nil {
		return nil, err
	}
	reapStale(base)
	c := &Cluster{bin: bin, as: as, durable: s.durable}
	if err := c.makeDir(base); err != nil {
		return nil, err
	}
	from, err := c.initData(s.cacheDir)
	if err == nil {
		err = c.firstStart()
	}
	if err != nil && from != "" {
		// A cached data directory that cannot be copied or started was
		// damaged, as by a crash of the machine while it was saved (it is
		// not synced: that would cost seconds). It goes, and initdb makes
		// the cluster's.
		dropCache(from)
		if err = c.resetData(); err == nil {
			if _, err = c.initData(""); err == nil {
				err = c.firstStart()
			}
		}
	}
	if err != nil {
		if cerr := c.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	return c, nil
}

// binaries are the PostgreSQL programs a cluster runs, from one directory.
type binaries struct {
	dir      string
	initdb   string
	postgres string
}

// findBinaries looks for initdb and postgres in the highest major version's
// directory under debianRoot, then on path.
func findBinaries(debianRoot, path string) (binaries, error) {
	var dirs []string
	entries, _ := os.ReadDir(debianRoot) // missing: no Debian packages
	var majors []float64
	byMajor := map[float64]string{}
	for _, e := range entries {
		v, err := strconv.ParseFloat(e.Name(), 64) // 15, or 9.6 of old
		if err == nil && strings.Trim(e.Name(), "0123456789.") == "" {
			majors = append(majors, v)
			byMajor[v] = filepath.Join(debianRoot, e.Name(), "bin")
		}
	}
	slices.Sort(majors)
	for _, v := range slices.Backward(majors) {
		dirs = append(dirs, byMajor[v])
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" || !filepath.IsAbs(d) {
			continue // as exec.LookPath, no programs from the current directory
		}
		// A symlink on $PATH (/usr/local/bin/initdb -> .../15/bin/initdb)
		// stands for the directory it points into, where postgres is too.
		if real, err := filepath.EvalSymlinks(filepath.Join(d, "initdb")); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		b := binaries{dir: d, initdb: filepath.Join(d, "initdb"), postgres: filepath.Join(d, "postgres")}
		if executable(b.initdb) && executable(b.postgres) {
			return b, nil
		}
	}
	return binaries{}, errMissing
}

// errMissing says that there is no PostgreSQL and how to get it.
var errMissing = errors.New("PostgreSQL is not installed (no initdb and postgres in " +
	"/usr/lib/postgresql/MAJOR/bin or on $PATH): run `make test`, which installs Debian's " +
	"postgresql when it runs as root, or install it yourself: `apt-get install postgresql` as root")

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// account is an unprivileged user that initdb and postgres run as when the
// tests run as root.
type account struct {
	name     string
	uid, gid uint32
}

// runAs returns the account to run PostgreSQL as: nil (the current user)
// unless the tests run as root, which PostgreSQL refuses to run as; then
// the first of names that exists and is not root's (defaultSetup's:
// "postgres", which Debian's package creates, or else "nobody").
func runAs(names []string) (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range names {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &account{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("the tests run as root, which PostgreSQL refuses to run as, and there is no "+
		"unprivileged account to run it as (%s): install Debian's postgresql, which "+
		"creates postgres, or run the tests as another user", strings.Join(names, ", "))
}

// maxSocketDir is the longest directory a unix socket of PostgreSQL may
// be in: sun_path holds 107 bytes, and the socket's lock file is named
// "/.s.PGSQL.65535.lock".
const maxSocketDir = 107 - len("/.s.PGSQL.65535.lock")

// subdirs are the cluster's directories that PostgreSQL writes in; the
// account owns them.
var subdirs = []string{"data", "sock"}

// clusterBase is the directory to make the cluster's in: tempDir, or /tmp
// when the account cannot reach tempDir (a TMPDIR under /root) or a socket
// in it would have too long a path.
func clusterBase(tempDir string, as *account) (string, error) {
	const room = len("/pgtest-4294967295/sock") // what the socket's directory adds
	var why error
	for _, base := range []string{tempDir, "/tmp"} {
		if len(base)+room > maxSocketDir {
			why = fmt.Errorf("the unix socket's path in %s would be longer than 107 bytes", base)
			continue
		}
		if err := reachable(base, as); err != nil {
			why = err
			continue
		}
		return base, nil
	}
	return "", fmt.Errorf("no directory for the cluster: %w; set TMPDIR to a short directory that everyone can enter", why)
}

// reachable checks that as may enter dir and every directory above it.
func reachable(dir string, as *account) error {
	if as == nil {
		return nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm()
		st, ok := fi.Sys().(*syscall.Stat_t)
		switch {
		case mode&0o001 != 0:
		case ok && st.Uid == as.uid && mode&0o100 != 0:
		case ok && st.Gid == as.gid && mode&0o010 != 0:
		default:
			return fmt.Errorf("user %s cannot enter %s (mode %v)", as.name, d, mode)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// ownerLock is the file a cluster's owner keeps locked (flock) in the
// cluster's directory while it uses it.
const ownerLock = "pgtest.lock"

// makeDir makes the cluster's directory and locks it. The directory is the
// test's user's; as root, its data and socket directories are the
// account's, and the directory may only be entered by others.
func (c *Cluster) makeDir(base string) error {
	dir, err := os.MkdirTemp(base, "pgtest-")
	if err != nil {
		return fmt.Errorf("making the cluster's directory: %w", err)
	}
	c.dir = dir
	if c.owner, err = lockOwner(dir, ownerLock); err != nil {
		os.RemoveAll(dir)
		return err
	}
	if err := c.makeSubdirs(); err != nil {
		c.owner.Close()
		os.RemoveAll(dir)
		return err
	}
	return nil
}

func (c *Cluster) makeSubdirs() error {
	if c.as != nil {
		if err := os.Chmod(c.dir, 0o711); err != nil {
			return fmt.Errorf("letting user %s into the cluster's directory: %w", c.as.name, err)
		}
	}
	for _, sub := range subdirs {
		if err := c.makeSubdir(sub); err != nil {
			return err
		}
	}
	return nil
}

// makeSubdir makes the directory sub of the cluster's, the account's.
func (c *Cluster) makeSubdir(sub string) error {
	p := filepath.Join(c.dir, sub)
	if err := os.Mkdir(p, 0o700); err != nil {
		return fmt.Errorf("making the cluster's directory %s: %w", sub, err)
	}
	if c.as != nil {
		if err := os.Lchown(p, int(c.as.uid), int(c.as.gid)); err != nil {
			return fmt.Errorf("giving %s to user %s: %w", p, c.as.name, err)
		}
	}
	return nil
}

// resetData empties the data directory.
func (c *Cluster) resetData() error {
	if err := os.RemoveAll(c.dataDir()); err != nil {
		return fmt.Errorf("emptying the data directory: %w", err)
	}
	return c.makeSubdir("data")
}

// initdbArgs make the cluster's data directory; they and the version are
// the key of a cached one.
var initdbArgs = []string{
	"--username=" + Superuser,
	"--auth=trust",
	"--encoding=UTF8",
	"--locale=C",
	"--no-sync", // tests only, as fsync=off
}

// cacheFormat changes when what pgtest caches changes.
const cacheFormat = "1"

// initData makes the data directory: a copy of the one cached for this
// PostgreSQL in cacheDir, if there is one, or else initdb's, which it then
// caches. It returns the cached directory it copied.
func (c *Cluster) initData(cacheDir string) (from string, err error) {
	var cached string
	if cacheDir != "" {
		key, err := c.cacheKey()
		if err != nil {
			return "", err
		}
		cached = filepath.Join(cacheDir, key)
		if _, err := os.Stat(filepath.Join(cached, "PG_VERSION")); err == nil {
			if err := copyInto(cached, c.dataDir(), c.as); err != nil {
				return cached, fmt.Errorf("copying the cached data directory %s: %w", cached, err)
			}
			return cached, nil
		}
	}
	args := append([]string{"--pgdata=" + c.dataDir()}, initdbArgs...)
	cmd := exec.Command(c.bin.initdb, args...)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = sysProcAttr(c.as, syscall.SIGKILL)
	err = startCmd(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w\n%s", c.bin.initdb, err, out.Bytes())
	}
	if cached != "" {
		// The cache only saves time: a cluster starts without it.
		_ = saveCache(c.dataDir(), cached)
	}
	return "", nil
}

// cacheKey names a cached data directory by what made it: the binaries'
// directory and version, initdb's arguments.
func (c *Cluster) cacheKey() (string, error) {
	out, err := exec.Command(c.bin.postgres, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", c.bin.postgres, err)
	}
	h := sha256.New()
	for _, s := range append([]string{cacheFormat, c.bin.dir, string(out)}, initdbArgs...) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "pg-" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// saveCache copies a fresh data directory into the cache: into a
// temporary directory first, then renamed into place, so that test
// binaries running at the same time never see half a copy. It removes what
// a save that died midway left.
func saveCache(data, cached string) error {
	parent := filepath.Dir(cached)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	stale, _ := filepath.Glob(filepath.Join(parent, ".tmp-*"))
	for _, dir := range stale {
		if fi, err := os.Stat(dir); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(dir)
		}
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // after a successful rename: nothing to remove
	if err := os.Mkdir(filepath.Join(tmp, "data"), 0o700); err != nil {
		return err
	}
	if err := copyInto(data, filepath.Join(tmp, "data"), nil); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(tmp, "data"), cached); err != nil {
		if _, serr := os.Stat(filepath.Join(cached, "PG_VERSION")); serr == nil {
			return nil // another test binary was first
		}
		return err
	}
	return nil
}

// dropCache removes a cached data directory: renamed away first, so that
// no test binary starts copying what is being removed.
func dropCache(cached string) {
	tmp := filepath.Join(filepath.Dir(cached), fmt.Sprintf(".tmp-drop-%d", os.Getpid()))
	if os.Rename(cached, tmp) == nil {
		os.RemoveAll(tmp)
	}
}

// copyInto copies what the directory src holds into the empty directory
// dst, with the files' modes, owned by as (nil: the current user).
func copyInto(src, dst string, as *account) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == src {
			return nil
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(to, info.Mode().Perm()); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyFile(path, to, info.Mode().Perm()); err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: neither a file, a directory nor a symlink", path)
		}
		if as != nil {
			return os.Lchown(to, int(as.uid), int(as.gid))
		}
		return nil
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// reapStale removes the directories of clusters whose test binary died
// without removing them: those in base whose owner lock nobody holds. The
// kernel stopped their postgres when the binary died (sysProcAttr). Best
// effort: what cannot be removed stays.
func reapStale(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "pgtest-*"))
	for _, dir := range dirs {
		f, err := tryLock(filepath.Join(dir, ownerLock))
		if err != nil || f == nil {
			continue // in use, being made, or not pgtest's
		}
		if !postmasterGone(filepath.Join(dir, "data")) {
			f.Close()
			continue
		}
		os.RemoveAll(dir)
		f.Close()
	}
}

// postmasterGone reports whether the postgres of a data directory is no
// longer running.
func postmasterGone(data string) bool {
	raw, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	return err == nil && !alive(pid)
}
