// Package servicetest is a fake systemd for tests: a NOTIFY_SOCKET that
// records what a daemon tells it (READY=1, STATUS=…, WATCHDOG=1,
// STOPPING=1), in order, with the time each came.
package servicetest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Message is one datagram, split into its assignments.
type Message struct {
	At    time.Time
	State map[string]string
}

// Manager is the fake service manager.
type Manager struct {
	// Path is the socket; give it to a daemon as NOTIFY_SOCKET.
	Path string

	conn *net.UnixConn
	mu   sync.Mutex
	msgs []Message
	more chan struct{} // closed and replaced on each message
}

// New listens on a fresh socket in a temporary directory until the test
// ends. It does not set NOTIFY_SOCKET: Setenv does, for a daemon in this
// process.
func New(t testing.TB) *Manager {
	t.Helper()
	dir, err := os.MkdirTemp("", "notify-") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	m := &Manager{Path: path, conn: conn, more: make(chan struct{})}
	go m.read()
	t.Cleanup(func() {
		conn.Close()
		os.RemoveAll(dir)
	})
	return m
}

// Setenv points this process's daemon at the manager, with systemd's
// watchdog set to every (0: none).
func (m *Manager) Setenv(t *testing.T, every time.Duration) {
	t.Setenv("NOTIFY_SOCKET", m.Path)
	if every > 0 {
		t.Setenv("WATCHDOG_USEC", itoa(int64(every/time.Microsecond)))
		t.Setenv("WATCHDOG_PID", "") // any process: this one
	}
}

// Env is the environment for a daemon in a child process.
func (m *Manager) Env(every time.Duration) []string {
	env := []string{"NOTIFY_SOCKET=" + m.Path}
	if every > 0 {
		env = append(env, "WATCHDOG_USEC="+itoa(int64(every/time.Microsecond)))
	}
	return env
}

func itoa(v int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

func (m *Manager) read() {
	buf := make([]byte, 4096)
	for {
		n, err := m.conn.Read(buf)
		if err != nil {
			return
		}
		msg := Message{At: time.Now(), State: map[string]string{}}
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				msg.State[k] = v
			}
		}
		m.mu.Lock()
		m.msgs = append(m.msgs, msg)
		close(m.more)
		m.more = make(chan struct{})
		m.mu.Unlock()
	}
}

// Messages returns what came so far.
func (m *Manager) Messages() []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Message(nil), m.msgs...)
}

// Wait waits until a message that came at or after from satisfies ok, or
// the deadline; it returns the message and whether one came. A zero from
// takes every message.
func (m *Manager) Wait(from, deadline time.Time, ok func(Message) bool) (Message, bool) {
	seen := 0
	for {
		m.mu.Lock()
		msgs, more := m.msgs[seen:], m.more
		seen = len(m.msgs)
		m.mu.Unlock()
		for _, msg := range msgs {
			if !msg.At.Before(from) && ok(msg) {
				return msg, true
			}
		}
		select {
		case <-more:
		case <-time.After(time.Until(deadline)):
			return Message{}, false
		}
	}
}

// Count is how many messages set key to value, after a time.
func (m *Manager) Count(key, value string, after time.Time) int {
	n := 0
	for _, msg := range m.Messages() {
		if msg.State[key] == value && !msg.At.Before(after) {
			n++
		}
	}
	return n
}

// Has reports whether the message sets key to value.
func Has(key, value string) func(Message) bool {
	return func(m Message) bool { return m.State[key] == value }
}
