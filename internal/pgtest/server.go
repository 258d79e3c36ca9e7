package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// settings are the server's, on postgres' command line (-c), so that the
// data directory stays initdb's own and a cached one fits every cluster.
var settings = []string{
	"listen_addresses=127.0.0.1",
	"max_connections=200",
	// Tests only: the cluster is thrown away after a crash of the machine.
	"fsync=off",
	"synchronous_commit=off",
	"full_page_writes=off",
	"wal_level=minimal",
	"max_wal_senders=0",
	"jit=off",
	"TimeZone=UTC",
	"log_timezone=UTC",
	// %q%d: the database a backend serves, which is the test's.
	"log_line_prefix=%m [%p] %q%d ",
}

// process is one run of the postgres binary (the postmaster).
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
	err    error         // from cmd.Wait; read after exited is closed
}

// readyTimeout bounds how long one start may take to accept connections.
const readyTimeout = 30 * time.Second

// stopTimeout is how long a stop waits for each signal: a fast shutdown
// (SIGINT), then an immediate one (SIGQUIT), then SIGKILL.
const stopTimeout = 10 * time.Second

// startAttempts is how many fresh ports the first start tries when another
// process took a port between picking it and postgres binding it.
const startAttempts = 5

// errPortTaken marks a start that failed because the port was in use.
var errPortTaken = errors.New("the port is already in use")

// errExited marks a stop that found postgres gone already.
var errExited = errors.New("postgres had exited by itself")

// firstStart picks a free port and starts postgres on it, with another port
// when one was taken meanwhile.
func (c *Cluster) firstStart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.port = port
		err = c.startLocked()
		if err == nil || !errors.Is(err, errPortTaken) || attempt == startAttempts {
			return err
		}
	}
}

// Stop shuts PostgreSQL down (a fast shutdown: open connections are closed,
// open transactions roll back) and waits until it has exited. Stop on a
// stopped cluster does nothing. It fails t if PostgreSQL had exited by
// itself before.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stopLocked(); err != nil {
		t.Errorf("pgtest: stopping: %v\nend of the PostgreSQL log (%s):\n%s", err, c.logPath(), tail(c.Log(), 20))
	}
}

// Resume starts a cluster that Stop stopped, with the same data on the same
// port, and waits until it accepts connections; it retries for a while
// when the port cannot be bound. On a running cluster it does nothing.
func (c *Cluster) Resume(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		c.startAgainLocked(t)
	}
}

// Restart stops the cluster as Stop does and starts it again as Resume
// does. Connections open before it are closed by the server; the data
// stays.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stopLocked(); err != nil {
		t.Errorf("pgtest: restarting: %v", err)
	}
	c.startAgainLocked(t)
}

// running reports whether postgres runs, as far as pgtest knows.
func (c *Cluster) running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc != nil
}

// close stops the cluster for good and removes its directory.
func (c *Cluster) close() error {
	c.mu.Lock()
	err := c.stopLocked()
	c.mu.Unlock()
	if errors.Is(err, errExited) {
		err = fmt.Errorf("%w; end of its log:\n%s", err, tail(c.Log(), 20))
	}
	if rmErr := os.RemoveAll(c.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("removing the cluster's directory: %w", rmErr))
	}
	if c.owner != nil {
		c.owner.Close() // releases the lock; the file is gone with the directory
	}
	return err
}

func (c *Cluster) startAgainLocked(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(100 * time.Millisecond) // between bind attempts
	defer tick.Stop()
	for {
		err := c.startLocked()
		if err == nil {
			return
		}
		if !errors.Is(err, errPortTaken) || time.Now().After(deadline) {
			t.Fatalf("pgtest: starting again on %s: %v\nend of the PostgreSQL log (%s):\n%s",
				c.Addr(), err, c.logPath(), tail(c.Log(), 30))
		}
		<-tick.C
	}
}

// stopLocked shuts postgres down and waits for it to exit; errExited if it
// had exited before.
func (c *Cluster) stopLocked() error {
	p := c.proc
	if p == nil {
		return nil
	}
	c.proc = nil
	select {
	case <-p.exited:
		return fmt.Errorf("%w (%v) on %s", errExited, p.err, c.Addr())
	default:
	}
	p.stop()
	return nil
}

// stop asks for a fast shutdown, then for an immediate one, then kills.
func (p *process) stop() {
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGQUIT} {
		_ = p.cmd.Process.Signal(sig) // fails only if it exited already
		select {
		case <-p.exited:
			return
		case <-time.After(stopTimeout):
		}
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// startLocked starts postgres on c.port and waits until it accepts
// connections. On failure the process is gone, and the error holds the end
// of the log.
func (c *Cluster) startLocked() error {
	logStart := int64(0)
	if fi, err := os.Stat(c.logPath()); err == nil {
		logStart = fi.Size()
	}
	logf, err := os.OpenFile(c.logPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening the log for postgres' output: %w", err)
	}
	args := []string{"-D", c.dataDir(), "-p", strconv.Itoa(c.port), "-c", "unix_socket_directories=" + c.SocketDir()}
	for _, s := range settings {
		if c.durable && (strings.HasPrefix(s, "fsync=") || strings.HasPrefix(s, "synchronous_commit=") || strings.HasPrefix(s, "full_page_writes=")) {
			continue // PostgreSQL's defaults: on
		}
		args = append(args, "-c", s)
	}
	cmd := exec.Command(c.bin.postgres, args...)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	// The postmaster stops its backends and exits on SIGQUIT: when the test
	// binary dies without its cleanups, nothing is left holding the port.
	cmd.SysProcAttr = sysProcAttr(c.as, syscall.SIGQUIT)
	err = startCmd(cmd)
	logf.Close() // the child holds its own copy
	if err != nil {
		return fmt.Errorf("starting %s: %w", c.bin.postgres, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := c.waitReady(p, logStart); err != nil {
		p.stop()
		return fmt.Errorf("%w\nend of the PostgreSQL log (%s):\n%s", err, c.logPath(), tail(c.logSince(logStart), 30))
	}
	c.proc = p
	return nil
}

// waitReady polls until postgres says it accepts connections, as pg_ctl -w
// does (the status line of postmaster.pid), or has exited.
func (c *Cluster) waitReady(p *process, logStart int64) error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.exited:
			if strings.Contains(c.logSince(logStart), "Address already in use") {
				return fmt.Errorf("postgres exited (%v): %w", p.err, errPortTaken)
			}
			return fmt.Errorf("postgres exited before accepting connections: %w", p.err)
		case <-tick.C:
		}
		if c.ready(p.cmd.Process.Pid) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections on %s within %v", c.Addr(), readyTimeout)
		}
	}
}

// ready reports whether postmaster.pid is the one of process pid and says
// "ready". Its lines: pid, data directory, start time, port, socket
// directory, listen address, shared memory key, status.
func (c *Cluster) ready(pid int) bool {
	data, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(data), "\n")
	return len(lines) >= 8 &&
		strings.TrimSpace(lines[0]) == strconv.Itoa(pid) &&
		strings.TrimSpace(lines[7]) == "ready"
}

func (c *Cluster) logSince(off int64) string {
	data, err := os.ReadFile(c.logPath())
	if err != nil || off > int64(len(data)) {
		return ""
	}
	return string(data[off:])
}

// freePort chooses a free loopback port by listening on port 0 and closing.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("picking a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// childEnv is the environment of initdb and postgres: the test's, without
// what would point them elsewhere (PG*: PGDATA, PGPORT...; the test's
// systemd, to which postgres would send READY=1), and with the C locale so
// that their messages are the English that pgtest looks for.
func childEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		name, _, _ := strings.Cut(e, "=")
		switch {
		case strings.HasPrefix(name, "PG"), name == "NOTIFY_SOCKET", strings.HasPrefix(name, "WATCHDOG_"),
			strings.HasPrefix(name, "LC_"), name == "LANG", name == "LANGUAGE":
			continue
		}
		env = append(env, e)
	}
	return append(env, "LC_ALL=C")
}
