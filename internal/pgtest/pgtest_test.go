package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// wait bounds every wait on PostgreSQL in these tests.
const wait = 30 * time.Second

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return c
}

// connect opens a connection to dsn, closed at the end of the test.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx(t), dsn)
	if err != nil {
		t.Fatalf("connecting to %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec1(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(ctx(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryString(t testing.TB, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(ctx(t), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// Two databases of one shared cluster are two databases: what one test
// makes, the other does not see.
func TestSharedDatabases(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	if again := Shared(t); again != c {
		t.Fatal("a second Shared returned another cluster")
	}
	a, b := c.NewDatabase(t), c.NewDatabase(t)
	if a == b {
		t.Fatalf("two NewDatabase returned the same %s", a)
	}
	ca, cb := connect(t, a), connect(t, b)
	na := queryString(t, ca, "SELECT current_database()")
	nb := queryString(t, cb, "SELECT current_database()")
	if na == nb {
		t.Fatalf("both connections are to %s", na)
	}
	exec1(t, ca, "CREATE TABLE taps (uid text PRIMARY KEY)")
	exec1(t, ca, "INSERT INTO taps VALUES ($1)", "04a1b2c3")
	if got := queryString(t, ca, "SELECT uid FROM taps"); got != "04a1b2c3" {
		t.Fatalf("read back %q", got)
	}
	if got := queryString(t, cb, "SELECT coalesce(to_regclass('taps')::text, 'none')"); got != "none" {
		t.Fatalf("database %s sees %s's table taps", nb, na)
	}
	if got := queryString(t, ca, "SHOW fsync"); got != "off" {
		t.Errorf("fsync = %s, want off", got)
	}
	if got := queryString(t, ca, "SHOW TimeZone"); got != "UTC" {
		t.Errorf("TimeZone = %s, want UTC", got)
	}
	if got := queryString(t, ca, "SHOW max_connections"); got != "200" {
		t.Errorf("max_connections = %s, want 200", got)
	}
}

// Tests create and drop databases at the same time, through pools as the
// portal will.
func TestParallelDatabases(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	for i := range 8 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			pool, err := pgxpool.New(ctx(t), c.NewDatabase(t))
			if err != nil {
				t.Fatalf("pgxpool.New: %v", err)
			}
			defer pool.Close()
			var n int
			if err := pool.QueryRow(ctx(t), "SELECT $1::int + 1", i).Scan(&n); err != nil || n != i+1 {
				t.Fatalf("SELECT %d + 1 = %d, %v", i, n, err)
			}
		})
	}
}

// A test's database goes at its end, even with a connection left open to
// it.
func TestDatabaseDropped(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	var name string
	var left *pgx.Conn
	ok := t.Run("uses", func(t *testing.T) {
		dsn := c.NewDatabase(t)
		var err error
		if left, err = pgx.Connect(ctx(t), dsn); err != nil {
			t.Fatal(err)
		}
		name = queryString(t, left, "SELECT current_database()")
	})
	if left != nil {
		defer left.Close(context.Background())
	}
	if !ok {
		t.FailNow()
	}
	admin := connect(t, c.URL())
	var n int
	if err := admin.QueryRow(ctx(t), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s is still there after its test", name)
	}
	if err := left.Ping(ctx(t)); err == nil {
		t.Fatal("the connection left open to a dropped database still works")
	}
}

// A restart keeps the data, the port and the log; connections from before
// it are closed, new ones work. Stopped, the cluster refuses connections.
func TestRestart(t *testing.T) {
	t.Parallel()
	c := Start(t)
	dsn, addr := c.NewDatabase(t), c.Addr()
	before := connect(t, dsn)
	exec1(t, before, "CREATE TABLE taps (uid text)")
	exec1(t, before, "INSERT INTO taps VALUES ('04a1b2c3')")

	c.Restart(t)
	if c.Addr() != addr {
		t.Fatalf("after Restart, Addr() = %s, want %s", c.Addr(), addr)
	}
	if err := before.Ping(ctx(t)); err == nil {
		t.Error("a connection from before the restart still works")
	}
	after := connect(t, dsn)
	if got := queryString(t, after, "SELECT uid FROM taps"); got != "04a1b2c3" {
		t.Fatalf("after the restart, taps holds %q", got)
	}
	if n := strings.Count(c.Log(), "ready to accept connections"); n != 2 {
		t.Errorf("Log() tells of %d starts, want 2 (it keeps the log across restarts)", n)
	}

	c.Stop(t)
	c.Stop(t) // a second Stop does nothing
	if conn, err := pgx.Connect(ctx(t), dsn); err == nil {
		conn.Close(context.Background())
		t.Fatal("connected to a stopped cluster")
	}
	c.Resume(t)
	c.Resume(t) // on a running cluster: nothing
	if got := queryString(t, connect(t, dsn), "SELECT count(*)::text FROM taps"); got != "1" {
		t.Fatalf("after Resume, taps holds %s rows", got)
	}
}

// Resume retries while its port is taken: another listener holds it until
// postgres has failed to bind once.
func TestResumeWaitsForPort(t *testing.T) {
	t.Parallel()
	c := Start(t)
	dsn := c.NewDatabase(t)
	c.Stop(t)
	l, err := net.Listen("tcp", c.Addr())
	if err != nil {
		t.Fatalf("taking the cluster's port: %v", err)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		defer l.Close()
		deadline := time.Now().Add(wait)
		tick := time.NewTicker(10 * time.Millisecond) // polling the log, bounded by deadline
		defer tick.Stop()
		for !strings.Contains(c.Log(), "Address already in use") && time.Now().Before(deadline) {
			<-tick.C
		}
	}()
	c.Resume(t)
	<-released
	if !strings.Contains(c.Log(), "Address already in use") {
		t.Fatal("postgres never found its port taken; the test proves nothing")
	}
	connect(t, dsn)
}

// As root, PostgreSQL runs as an unprivileged account that owns its
// files; otherwise as the test's user.
func TestRunsUnprivileged(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	want := os.Geteuid()
	if c.as != nil {
		want = int(c.as.uid)
	}
	checkRunsAs(t, c, want)
}

// Where there is no account postgres, root's tests run PostgreSQL as
// nobody; where there is none at all, they say what to do.
func TestRootFallback(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root's tests switch users")
	}
	s := defaultSetup()
	s.accounts = []string{"pgtest-no-such-user", "root", "nobody"}
	c := startWith(t, s)
	if c.as == nil || c.as.name != "nobody" {
		t.Fatalf("runs as %+v, want nobody", c.as)
	}
	checkRunsAs(t, c, int(c.as.uid))
	connect(t, c.NewDatabase(t))

	s.accounts = []string{"pgtest-no-such-user", "root"}
	f := &fatalTB{TB: t}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		startWith(f, s)
	}()
	<-finished
	if !strings.Contains(f.msg, "no unprivileged account") || !strings.Contains(f.msg, "postgresql") {
		t.Errorf("Start as root without an account to switch to failed with %q", f.msg)
	}
}

// checkRunsAs checks that uid owns the data directory and runs postgres,
// and that root owns the log.
func checkRunsAs(t *testing.T, c *Cluster, uid int) {
	t.Helper()
	if uid == 0 {
		t.Fatal("PostgreSQL would run as root")
	}
	for path, want := range map[string]int{c.dataDir(): uid, c.SocketDir(): uid, c.logPath(): os.Geteuid()} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Sys().(*syscall.Stat_t).Uid; int(got) != want {
			t.Errorf("%s belongs to uid %d, want %d", path, got, want)
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.proc.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "Uid:" && f[2] != strconv.Itoa(uid) {
			t.Errorf("postgres runs as uid %s, want %d", f[2], uid)
		}
	}
	if len(c.SocketDir())+len("/.s.PGSQL.65535.lock") > 107 {
		t.Errorf("the socket's path in %s is too long", c.SocketDir())
	}
	if _, err := os.Stat(filepath.Join(c.SocketDir(), ".s.PGSQL."+strconv.Itoa(c.port))); err != nil {
		t.Errorf("no unix socket: %v", err)
	}
}

func TestFindBinaries(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mk := func(dir string, names ...string) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	debian := filepath.Join(root, "usr-lib-postgresql")
	mk(filepath.Join(debian, "9.6", "bin"), "initdb", "postgres")
	v13 := mk(filepath.Join(debian, "13", "bin"), "initdb", "postgres")
	mk(filepath.Join(debian, "16", "bin"), "initdb") // half installed
	mk(filepath.Join(debian, "notaversion", "bin"), "initdb", "postgres")
	own := mk(filepath.Join(root, "opt-pg", "bin"), "initdb", "postgres")
	links := mk(filepath.Join(root, "links"))
	if err := os.Symlink(filepath.Join(own, "initdb"), filepath.Join(links, "initdb")); err != nil {
		t.Fatal(err)
	}
	empty := mk(filepath.Join(root, "empty"))

	tests := []struct {
		debianRoot, path string
		want             string // binaries' directory; "": none
	}{
		{debian, "", v13},
		{debian, own, v13},
		{empty, own, own},
		{empty, "relative" + string(filepath.ListSeparator) + links, own}, // a symlink stands for its target's directory
		{empty, empty, ""},
		{filepath.Join(root, "missing"), "", ""},
	}
	for i, tt := range tests {
		b, err := findBinaries(tt.debianRoot, tt.path)
		if tt.want == "" {
			if !errors.Is(err, errMissing) {
				t.Errorf("%d: findBinaries = %+v, %v; want errMissing", i, b, err)
			}
			continue
		}
		if err != nil || b.dir != tt.want || b.initdb != filepath.Join(tt.want, "initdb") || b.postgres != filepath.Join(tt.want, "postgres") {
			t.Errorf("%d: findBinaries = %+v, %v; want those in %s", i, b, err, tt.want)
		}
	}
}

// Without PostgreSQL, Start fails the test and says how to install it.
func TestMissingBinaries(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	s := defaultSetup()
	s.debianRoot, s.path = empty, empty
	f := &fatalTB{TB: t}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		startWith(f, s)
	}()
	<-finished
	for _, want := range []string{"PostgreSQL is not installed", "make test", "apt-get install postgresql"} {
		if !strings.Contains(f.msg, want) {
			t.Errorf("Start without PostgreSQL failed with %q; want it to say %q", f.msg, want)
		}
	}
}

// The first cluster caches initdb's data directory, the next copies it
// (the same system identifier); a damaged one is dropped, and initdb makes
// the cluster's.
func TestTemplateCache(t *testing.T) {
	t.Parallel()
	s := defaultSetup()
	s.cacheDir = filepath.Join(t.TempDir(), "cache")
	start := func(what string) (systemID string) {
		t.Helper()
		began := time.Now()
		c := startWith(t, s)
		elapsed := time.Since(began)
		began = time.Now()
		conn := connect(t, c.NewDatabase(t))
		t.Logf("%s: started in %v, a database and a connection in %v", what, elapsed.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
		return queryString(t, conn, "SELECT system_identifier::text FROM pg_control_system()")
	}
	first := start("initdb, then caching")
	entries, err := os.ReadDir(s.cacheDir)
	if err != nil || len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "pg-") {
		t.Fatalf("the cache holds %v (%v); want one pg-KEY", entries, err)
	}
	entry := filepath.Join(s.cacheDir, entries[0].Name())
	if second := start("copied from the cache"); second != first {
		t.Errorf("the second cluster is system %s, the first %s: not a copy", second, first)
	}

	// What a crash of the machine while the cache was saved may leave.
	if err := os.Truncate(filepath.Join(entry, "global", "pg_control"), 0); err != nil {
		t.Fatal(err)
	}
	if third := start("from a damaged cache"); third == first {
		t.Errorf("a cluster started from the damaged cache")
	}
	if _, err := os.Stat(entry); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the damaged cache is still there: %v", err)
	}
}

// A cluster's directory whose owner died goes; one in use stays, and so
// does what is not pgtest's.
func TestReapStale(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mkdir := func(name string) string {
		dir := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	orphan := mkdir("pgtest-orphan")
	if f, err := lockOwner(orphan, ownerLock); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	pid := fmt.Sprintf("%d\n/x\n", dead.Process.Pid)
	if err := os.WriteFile(filepath.Join(orphan, "data", "postmaster.pid"), []byte(pid), 0o600); err != nil {
		t.Fatal(err)
	}
	inUse := mkdir("pgtest-inuse")
	held, err := lockOwner(inUse, ownerLock)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	notOurs := mkdir("pgtest-notours")

	reapStale(base)
	for dir, want := range map[string]bool{orphan: false, inUse: true, notOurs: true} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("%s: there %v, want %v", filepath.Base(dir), err == nil, want)
		}
	}
}

func TestDBName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		test string
		n    int64
		want string
	}{
		{"TestIngest", 1, "t_testingest_1"},
		{"TestIngest/duplicate_tap#01", 12, "t_testingest_duplicate_tap_01_12"},
		{"Test/한글/", 3, "t_test_3"},
		{strings.Repeat("TestVeryLong", 10), 123, "t_" + strings.Repeat("testverylong", 10)[:maxIdent-6] + "_123"},
	}
	for _, tt := range tests {
		if got := dbName(tt.test, tt.n); got != tt.want || len(got) > maxIdent {
			t.Errorf("dbName(%q, %d) = %q, want %q", tt.test, tt.n, got, tt.want)
		}
	}
}

// fatalTB records the first fatal failure instead of failing the test.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Fatal(args ...any) { f.fail(fmt.Sprint(args...)) }
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.fail(fmt.Sprintf(format, args...))
}

func (f *fatalTB) fail(msg string) {
	f.mu.Lock()
	f.msg = msg
	f.mu.Unlock()
	runtime.Goexit()
}
