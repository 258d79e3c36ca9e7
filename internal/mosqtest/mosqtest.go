// Package mosqtest runs a real Mosquitto broker for tests: its own instance,
// config, port and files, in a test's temp dir.
//
// Start writes a mosquitto.conf into t.TempDir(), starts the broker on free
// loopback ports and stops it in t.Cleanup. The broker keeps a persistence
// database in the same directory, so Restart brings back retained messages
// and the sessions of clients that connected with a clean session of false.
//
// It never talks MQTT itself and never touches the system's own Mosquitto
// service or its files.
package mosqtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options configure one broker.
type Options struct {
	// TLS, when set, adds a TLS listener that requires client certificates
	// signed by the CA (require_certificate true); see Certs.
	TLS *Certs
	// Users maps username -> password; when non-empty, allow_anonymous is
	// false and the broker checks a password_file holding these users.
	Users map[string]string
	// ACL is the acl_file contents (verbatim); empty: no acl_file.
	ACL string
	// Extra is appended to the config verbatim (e.g.
	// "max_queued_messages 1000\n"). It comes after the listener sections,
	// so listener-specific options in it apply to the last listener.
	Extra string
	// Shipped, when set, is the path of a production mosquitto.conf (such
	// as deploy/mosquitto/mosquitto.conf) to run instead of mosqtest's
	// own, as it is but for what ties it to a host: its listeners move to
	// free loopback ports (Listener(i) is the i-th), its TLS files become
	// TLS's (required then), its password and ACL files Users' and ACL's,
	// its log and persistence the test's; pid_file and user go. Every
	// other line is kept, so a test runs the configuration operators run.
	Shipped string
}

// Broker is one running Mosquitto. Its methods may be called from any
// goroutine, but those that fail the test (Start, Restart) must be called
// from the test's own goroutine, as t.Fatal requires.
type Broker struct {
	t        testing.TB
	bin      string
	dir      string
	confPath string
	logPath  string
	opts     Options
	logShown bool // a failure already printed the whole log

	mu      sync.Mutex // serialises Stop and Restart
	port    int
	tlsPort int // 0 without TLS
	// listeners are the ports of a Shipped configuration's listeners, in
	// its order.
	listeners []int
	proc      *process
}

// process is one run of the mosquitto binary.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
	err    error         // from cmd.Wait; read after exited is closed
}

// readyTimeout bounds how long one start may take to accept connections.
const readyTimeout = 10 * time.Second

// stopTimeout is how long Stop waits after SIGTERM before it kills.
const stopTimeout = 5 * time.Second

// startAttempts is how many sets of fresh ports Start tries when another
// process took a port between picking it and mosquitto binding it.
const startAttempts = 5

// Start starts mosquitto on free loopback ports (a plain TCP listener always;
// a TLS listener too when o.TLS is set), waits until it accepts connections
// and registers t.Cleanup to stop it. It fails the test with mosquitto's own
// log output when the broker does not come up.
func Start(t testing.TB, o Options) *Broker {
	t.Helper()
	bin, err := findMosquitto()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := &Broker{
		t:        t,
		bin:      bin,
		dir:      dir,
		confPath: filepath.Join(dir, "mosquitto.conf"),
		logPath:  filepath.Join(dir, "mosquitto.log"),
		opts:     o,
	}
	if err := b.writeFiles(); err != nil {
		t.Fatalf("mosqtest: %v", err)
	}
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() && !b.logShown {
			t.Logf("mosqtest: end of the mosquitto log (%s):\n%s", b.logPath, tail(b.Log(), 40))
		}
	})
	for attempt := 1; ; attempt++ {
		if err := b.pickPorts(); err != nil {
			t.Fatalf("mosqtest: %v", err)
		}
		err := b.startOnce()
		if err == nil {
			return b
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			b.logShown = true
			t.Fatalf("mosqtest: %v\nmosquitto log:\n%s", err, b.Log())
		}
	}
}

// Addr returns "127.0.0.1:PORT" of the plain TCP listener (of a Shipped
// configuration: its first listener).
func (b *Broker) Addr() string { return hostPort(b.port) }

// Listener returns "127.0.0.1:PORT" of a Shipped configuration's i-th
// listener.
func (b *Broker) Listener(i int) string { return hostPort(b.listeners[i]) }

// URL returns "tcp://127.0.0.1:PORT" of the plain TCP listener.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// TLSAddr returns "127.0.0.1:PORT" of the TLS listener, or "" without TLS.
func (b *Broker) TLSAddr() string {
	if b.tlsPort == 0 {
		return ""
	}
	return hostPort(b.tlsPort)
}

// TLSURL returns "ssl://127.0.0.1:PORT" of the TLS listener, or "" without
// TLS.
func (b *Broker) TLSURL() string {
	if b.tlsPort == 0 {
		return ""
	}
	return "ssl://" + b.TLSAddr()
}

// Dir returns the broker's directory: config, log, password and ACL files
// and the persistence database.
func (b *Broker) Dir() string { return b.dir }

// Stop sends SIGTERM and waits for mosquitto to exit, killing it after 5 s.
// Mosquitto saves its persistence database when it exits on SIGTERM. Stop on
// a stopped broker does nothing.
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopLocked()
}

func (b *Broker) stopLocked() {
	p := b.proc
	if p == nil {
		return
	}
	b.proc = nil
	select {
	case <-p.exited:
		b.t.Logf("mosqtest: mosquitto on %s had exited by itself: %v", b.Addr(), p.err)
	default:
		p.terminate()
	}
}

// terminate sends SIGTERM and waits for the exit, killing after stopTimeout.
func (p *process) terminate() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // fails only if it already exited
	select {
	case <-p.exited:
		return
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Restart stops the broker, then starts it again on the same ports with the
// same config and the same persistence directory, and waits until it accepts
// connections. It retries for a few seconds while a port cannot be bound.
func (b *Broker) Restart() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopLocked()
	b.startAgainLocked()
}

// Resume starts a broker that Stop stopped, as Restart does: for outages
// of a chosen length. On a running broker it does nothing.
func (b *Broker) Resume() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil {
		b.startAgainLocked()
	}
}

func (b *Broker) startAgainLocked() {
	b.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		err := b.startLocked()
		if err == nil {
			return
		}
		if !errors.Is(err, errPortTaken) || time.Now().After(deadline) {
			b.logShown = true
			b.t.Fatalf("mosqtest: starting again: %v\nmosquitto log:\n%s", err, b.Log())
		}
		time.Sleep(100 * time.Millisecond) // backoff between bind attempts; bounded by deadline
	}
}

// Log returns what mosquitto logged so far, across restarts: its log file
// (log_type all) with its stdout and stderr interleaved.
func (b *Broker) Log() string {
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		return fmt.Sprintf("(mosqtest: reading the log: %v)", err)
	}
	return string(data)
}

// errPortTaken marks a start that failed because a port was in use.
var errPortTaken = errors.New("a listener port is already in use")

func (b *Broker) startOnce() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.startLocked()
}

// startLocked writes the config for the current ports, starts mosquitto and
// waits until it accepts connections. On failure the process is gone.
func (b *Broker) startLocked() error {
	conf := b.config()
	if b.opts.Shipped != "" {
		var err error
		if conf, err = b.shippedConfig(); err != nil {
			return err
		}
	}
	if err := os.WriteFile(b.confPath, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("writing mosquitto.conf: %w", err)
	}
	logStart := int64(0)
	if fi, err := os.Stat(b.logPath); err == nil {
		logStart = fi.Size()
	}
	logf, err := os.OpenFile(b.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening the log for mosquitto's output: %w", err)
	}
	cmd := exec.Command(b.bin, "-c", b.confPath)
	cmd.Dir = b.dir
	// Not the test's systemd: Mosquitto would send READY=1 to a fake
	// NOTIFY_SOCKET a test set for its daemon.
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "NOTIFY_SOCKET=") && !strings.HasPrefix(e, "WATCHDOG_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	logf.Close() // the child holds its own copy
	if err != nil {
		return fmt.Errorf("starting %s: %w", b.bin, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := b.waitReady(p, logStart); err != nil {
		p.terminate()
		return err
	}
	b.proc = p
	return nil
}

// waitReady polls until the broker is ready or has exited.
func (b *Broker) waitReady(p *process, logStart int64) error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.exited:
			if strings.Contains(b.logSince(logStart), "Address already in use") {
				return fmt.Errorf("mosquitto exited (%w): %w", p.err, errPortTaken)
			}
			return fmt.Errorf("mosquitto exited before accepting connections: %w", p.err)
		case <-tick.C:
		}
		if b.ready(logStart) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mosquitto did not accept connections on %s within %v", b.Addr(), readyTimeout)
		}
	}
}

// ready reports whether mosquitto logged that it runs, which it does once
// every listener is bound, and the plain listener accepts a TCP connection.
// The TLS listener is not dialled: a probe that does not finish a handshake
// only leaves an OpenSSL complaint in the log.
func (b *Broker) ready(logStart int64) bool {
	if !strings.Contains(b.logSince(logStart), " running") {
		return false
	}
	c, err := net.DialTimeout("tcp", b.Addr(), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (b *Broker) logSince(off int64) string {
	f, err := os.Open(b.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return ""
	}
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

// pickPorts chooses free loopback ports for the listeners by listening on
// port 0 and closing. Both listeners are held open together so that the two
// ports differ.
func (b *Broker) pickPorts() error {
	n := 1
	if b.opts.TLS != nil {
		n = 2
	}
	if b.opts.Shipped != "" {
		lines, err := shippedLines(b.opts.Shipped)
		if err != nil {
			return err
		}
		n = 0
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "listener" {
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("%s has no listener", b.opts.Shipped)
		}
	}
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("picking a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	b.port = ports[0]
	if b.opts.Shipped != "" {
		b.listeners = ports
	} else if n == 2 {
		b.tlsPort = ports[1]
	}
	return nil
}

func shippedLines(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("the shipped configuration: %w", err)
	}
	return strings.Split(string(raw), "\n"), nil
}

// shippedConfig is the Shipped configuration moved to this test's ports
// and files.
func (b *Broker) shippedConfig() (string, error) {
	lines, err := shippedLines(b.opts.Shipped)
	if err != nil {
		return "", err
	}
	var c strings.Builder
	fmt.Fprintf(&c, "# %s, moved to a test's ports and files by kiumtap/internal/mosqtest.\n", b.opts.Shipped)
	if os.Geteuid() == 0 {
		c.WriteString("user root\n")
	}
	listener, logged := 0, false
	tlsFile := func(key string) (string, error) {
		if b.opts.TLS == nil {
			return "", fmt.Errorf("%s needs TLS files (%s): set Options.TLS", b.opts.Shipped, key)
		}
		return map[string]string{"cafile": b.opts.TLS.CAFile, "certfile": b.opts.TLS.ServerCert, "keyfile": b.opts.TLS.ServerKey}[key], nil
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			c.WriteString(l + "\n")
			continue
		}
		switch f[0] {
		case "listener":
			fmt.Fprintf(&c, "listener %d 127.0.0.1\n", b.listeners[listener])
			listener++
		case "pid_file", "user":
		case "log_dest":
			if !logged {
				fmt.Fprintf(&c, "log_dest file %s\nlog_type all\n", b.logPath)
				logged = true
			}
		case "persistence_location":
			fmt.Fprintf(&c, "persistence_location %s\n", b.dataDir()+string(filepath.Separator))
		case "password_file":
			fmt.Fprintf(&c, "password_file %s\n", b.passwdPath())
		case "acl_file":
			fmt.Fprintf(&c, "acl_file %s\n", b.aclPath())
		case "cafile", "certfile", "keyfile":
			p, err := tlsFile(f[0])
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&c, "%s %s\n", f[0], p)
		default:
			c.WriteString(l + "\n")
		}
	}
	if !logged {
		fmt.Fprintf(&c, "log_dest file %s\nlog_type all\n", b.logPath)
	}
	return c.String(), nil
}

// writeFiles makes the persistence dir and writes the password and ACL
// files the config refers to.
func (b *Broker) writeFiles() error {
	if err := os.Mkdir(b.dataDir(), 0o700); err != nil {
		return fmt.Errorf("making the persistence dir: %w", err)
	}
	if len(b.opts.Users) > 0 {
		if err := writePasswordFile(b.passwdPath(), b.opts.Users); err != nil {
			return err
		}
	}
	if b.opts.ACL != "" {
		if err := os.WriteFile(b.aclPath(), []byte(b.opts.ACL), 0o600); err != nil {
			return fmt.Errorf("writing the acl_file: %w", err)
		}
	}
	return nil
}

func (b *Broker) dataDir() string    { return filepath.Join(b.dir, "data") }
func (b *Broker) passwdPath() string { return filepath.Join(b.dir, "passwd") }
func (b *Broker) aclPath() string    { return filepath.Join(b.dir, "acl") }

// config returns mosquitto.conf for the current ports.
func (b *Broker) config() string {
	var c strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&c, format+"\n", args...) }
	line("# Written by kiumtap/internal/mosqtest for one test.")
	line("per_listener_settings false")
	if os.Geteuid() == 0 {
		// As root, mosquitto would switch to the user "mosquitto", who cannot
		// read the test's temp dir.
		line("user root")
	}
	line("persistence true")
	line("persistence_location %s", b.dataDir()+string(filepath.Separator))
	line("log_dest file %s", b.logPath)
	line("log_type all")
	line("connection_messages true")
	line("set_tcp_nodelay true")
	if len(b.opts.Users) > 0 {
		line("allow_anonymous false")
		line("password_file %s", b.passwdPath())
	} else {
		line("allow_anonymous true")
	}
	if b.opts.ACL != "" {
		line("acl_file %s", b.aclPath())
	}
	line("")
	line("listener %d 127.0.0.1", b.port)
	if certs := b.opts.TLS; certs != nil {
		line("")
		line("listener %d 127.0.0.1", b.tlsPort)
		line("cafile %s", certs.CAFile)
		line("certfile %s", certs.ServerCert)
		line("keyfile %s", certs.ServerKey)
		line("require_certificate true")
		line("use_identity_as_username false")
	}
	if b.opts.Extra != "" {
		line("")
		c.WriteString(b.opts.Extra)
		if !strings.HasSuffix(b.opts.Extra, "\n") {
			c.WriteString("\n")
		}
	}
	return c.String()
}

// findMosquitto returns the path of the mosquitto binary: on $PATH, or where
// the Debian package puts it (/usr/sbin is not on every user's $PATH).
func findMosquitto() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("mosqtest: the mosquitto broker is not installed: run `make test` " +
		"(which installs the Debian package mosquitto) or `apt-get install mosquitto`")
}

func hostPort(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// sortedUsers returns the usernames in order, so files are reproducible.
func sortedUsers(users map[string]string) []string {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	return names
}
