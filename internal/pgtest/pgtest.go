// Package pgtest runs a real PostgreSQL for tests: a private cluster that
// the test binary makes with initdb and runs itself, and a fresh database
// in it for each test.
//
// Shared starts one cluster per test binary on its first call and shares
// it among the package's tests; the package's TestMain stops it and removes
// its files with Cleanup. Start gives one test a cluster of its own, stopped
// in t.Cleanup: for tests that stop or restart PostgreSQL, which must never
// do that to the shared one. NewDatabase creates a database with a unique
// name and drops it at the end of the test, so tests that share a cluster
// are isolated from each other and may run in parallel.
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pgtest.Cleanup()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		dsn := pgtest.Shared(t).NewDatabase(t)
//		conn, err := pgx.Connect(ctx, dsn)
//		...
//	}
//
// # The server
//
// A cluster listens on 127.0.0.1 only, on a free port, and on a unix socket
// in its own directory. Authentication is trust: anyone on this machine may
// connect to it as the superuser "postgres" without a password. It is made
// for tests and holds nothing else, so it also runs with fsync,
// synchronous_commit and full_page_writes off (a crash of the machine may
// corrupt it; a crash of PostgreSQL does not), wal_level minimal, jit off,
// max_connections 200 and TimeZone UTC.
//
// # Binaries
//
// initdb and postgres come from the highest /usr/lib/postgresql/MAJOR/bin,
// where Debian's package puts them, or else from $PATH. When there are none,
// the test fails, under CI or not, as mosqtest does when mosquitto is
// missing: `make test` installs Debian's postgresql when it runs as root.
//
// # Root
//
// PostgreSQL refuses to run as root, and `make test` runs as root in CI.
// Then initdb and postgres run as the account "postgres" (Debian's package
// creates it), or as "nobody" where there is none: the data directory
// and the socket's directory are chowned to that account, and os/exec
// switches to its uid and gid (no sudo or su); what root writes (the log, a
// lock) stays in root's own directory above them, so that the account
// cannot point root's writes elsewhere. Otherwise they run as the current
// user.
//
// # Files
//
// A cluster lives in a directory that os.MkdirTemp("", "pgtest-") makes,
// in $TMPDIR (or /tmp when the account cannot enter $TMPDIR, or when it is
// too long for a unix socket's path of 107 bytes): data/, sock/ (the
// socket's) and postgres.log. The directory goes when the cluster is
// stopped for good. Should a test binary die before that (a panic, a
// -timeout), the kernel stops its postgres, and the next cluster to start
// removes the directory it left. TMPDIR=/dev/shm (a tmpfs) makes creating
// databases several times faster where disks are slow.
//
// The first initdb of a PostgreSQL version is kept under
// os.UserCacheDir()/kiumtap/pgtest/ (about 40 MB) and later clusters copy
// it, which takes a fraction of initdb's second or two.
//
// It never touches the system's own PostgreSQL clusters, services or files.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the role tests connect as; trust authentication, no
// password.
const Superuser = "postgres"

// Cluster is one running PostgreSQL cluster. Its methods may be called from
// any goroutine, but those that take a testing.TB fail that test, so they
// must be called from its own goroutine, as t.Fatal requires.
type Cluster struct {
	bin    binaries
	as     *account // nil: the current user
	dir    string   // the cluster's directory: data/, sock/, postgres.log
	port   int
	shared bool // Shared's cluster: NewDatabase shows the log on failure
	// durable: commits synced to disk, as a deployment's (StartDurable).
	durable bool
	owner   *os.File // locked while the directory is in use (see reapStale)

	dbs atomic.Int64 // databases made, for unique names

	mu   sync.Mutex // serialises starts and stops
	proc *process   // nil while stopped
}

// Start starts a cluster for t alone and registers t.Cleanup to stop it and
// remove its files. It fails t when PostgreSQL is missing or does not start,
// with PostgreSQL's own log.
func Start(t testing.TB) *Cluster {
	t.Helper()
	return startWith(t, defaultSetup())
}

// StartDurable is Start with a cluster that syncs every commit to disk
// (fsync, synchronous_commit and full_page_writes on, as PostgreSQL's
// defaults have them): for benchmarks that compare PostgreSQL with a
// store that syncs its commits. Start's clusters skip the syncs.
func StartDurable(t testing.TB) *Cluster {
	t.Helper()
	s := defaultSetup()
	s.durable = true
	return startWith(t, s)
}

func startWith(t testing.TB, s setup) *Cluster {
	t.Helper()
	c, err := newCluster(s)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgtest: end of the PostgreSQL log (%s):\n%s", c.logPath(), tail(c.Log(), 40))
		}
		if err := c.close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c
}

// shared is the test binary's cluster, made by the first call to Shared.
var shared struct {
	mu  sync.Mutex
	c   *Cluster
	err error // why it did not start; later calls fail with it too
}

// Shared returns the test binary's cluster, starting it on the first call.
// Its tests use databases of their own (NewDatabase) and must not stop or
// restart it: other tests run on it in parallel. TestMain stops it with
// Cleanup (without, the kernel stops it as the test binary exits, and the
// next cluster to start removes its files). It fails t when the cluster
// did not start.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c == nil && shared.err == nil {
		shared.c, shared.err = newCluster(defaultSetup())
		if shared.c != nil {
			shared.c.shared = true
		}
	}
	if shared.err != nil {
		t.Fatalf("pgtest: %v", shared.err)
	}
	return shared.c
}

// Cleanup stops the shared cluster, if Shared started one, and removes its
// files. Call it from TestMain after m.Run.
func Cleanup() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c != nil {
		if err := shared.c.close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	shared.c, shared.err = nil, nil
}

// Addr returns "127.0.0.1:PORT". The port stays the same across restarts.
func (c *Cluster) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// URL returns a connection string for pgx of the database "postgres", as
// the superuser: for what a test does to the cluster as a whole. Tests keep
// their data in a database of their own (NewDatabase).
func (c *Cluster) URL() string { return c.dsn("postgres") }

// Dir returns the cluster's directory: data/ (the data directory), sock/
// (the unix socket's) and postgres.log.
func (c *Cluster) Dir() string { return c.dir }

// SocketDir returns the directory of the cluster's unix socket
// (.s.PGSQL.PORT), for host= in a key/value connection string.
func (c *Cluster) SocketDir() string { return filepath.Join(c.dir, "sock") }

// Log returns what PostgreSQL logged so far, across restarts.
func (c *Cluster) Log() string {
	data, err := os.ReadFile(c.logPath())
	if err != nil {
		return fmt.Sprintf("(pgtest: reading the log: %v)", err)
	}
	return string(data)
}

// adminTimeout bounds one CREATE or DROP DATABASE with its connection.
const adminTimeout = 30 * time.Second

// NewDatabase creates an empty database with a name of its own (from
// template1, owned by the superuser) and returns its connection string for
// pgx (pgx.Connect, pgxpool.New). In t.Cleanup it drops the database,
// closing the connections left to it, and on a shared cluster it shows the
// end of PostgreSQL's log if t failed.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := dbName(t.Name(), c.dbs.Add(1))
	ident := pgx.Identifier{name}.Sanitize()
	if err := c.admin("CREATE DATABASE " + ident); err != nil {
		t.Fatalf("pgtest: creating the database %s: %v\nend of the PostgreSQL log (%s):\n%s",
			name, err, c.logPath(), tail(c.Log(), 20))
	}
	t.Cleanup(func() {
		if c.shared && t.Failed() {
			t.Logf("pgtest: end of the PostgreSQL log (%s):\n%s", c.logPath(), tail(c.Log(), 40))
		}
		if !c.running() {
			return // a test stopped its own cluster; it goes with its files
		}
		if err := c.admin("DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: dropping the database %s: %v", name, err)
		}
	})
	return c.dsn(name)
}

// admin runs one statement in the database "postgres" on a connection of
// its own, so that it works across restarts.
func (c *Cluster) admin(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		return fmt.Errorf("connecting to %s: %w (is the cluster running?)", c.Addr(), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return err
	}
	return nil
}

// dsn is the URL of database db on this cluster. sslmode=disable: the
// server has no TLS, and pgx's default (prefer) would ask first each time.
func (c *Cluster) dsn(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     c.Addr(),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// maxIdent is PostgreSQL's limit on a name, in bytes (NAMEDATALEN - 1).
const maxIdent = 63

// dbName makes the n-th database's name from a test's name: lower case
// letters, digits and underscores, as a person would type it in psql,
// unique by n.
func dbName(test string, n int64) string {
	suffix := "_" + strconv.FormatInt(n, 10)
	var b strings.Builder
	b.WriteString("t_")
	under := false
	for _, r := range strings.ToLower(test) {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if !ok {
			if !under {
				b.WriteByte('_')
			}
			under = true
			continue
		}
		b.WriteRune(r)
		under = false
	}
	name := strings.TrimRight(b.String(), "_")
	if len(name)+len(suffix) > maxIdent {
		name = strings.TrimRight(name[:maxIdent-len(suffix)], "_")
	}
	return name + suffix
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) logPath() string { return filepath.Join(c.dir, "postgres.log") }

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}
