// Package killtest kills a test's child process with SIGKILL at a random
// moment, for crash tests: the test binary runs itself in a child mode
// (chosen by an environment variable its TestMain reads), the child says
// what it has made durable one line at a time, and the parent then checks
// that a reopened store still holds all of it.
package killtest

import (
	"bufio"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Options configure Run.
type Options struct {
	// Env is added to the child's environment: the switch to child mode.
	Env []string
	// Rand picks when to kill: uniformly in [0, MaxDelay) after the
	// child's first line.
	Rand     *rand.Rand
	MaxDelay time.Duration
	// FirstLine is how long the child may take to say anything; default
	// 10 s.
	FirstLine time.Duration
}

// Run starts the test binary in child mode, hands each line the child
// prints to line, kills the child once the delay after its first line has
// passed and waits for it. It fails t if the child said nothing in time,
// or wrote "child:" (its way to report a failure) on standard error.
func Run(t testing.TB, o Options, line func(string)) {
	t.Helper()
	if o.FirstLine == 0 {
		o.FirstLine = 10 * time.Second
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), o.Env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var deadline <-chan time.Time
	first := time.After(o.FirstLine)
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				done = true
				break
			}
			line(l)
			if deadline == nil && first != nil {
				deadline = time.After(time.Duration(o.Rand.Int64N(int64(o.MaxDelay))))
				first = nil
			}
		case <-deadline:
			cmd.Process.Signal(syscall.SIGKILL)
			deadline = nil
		case <-first:
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			t.Fatalf("the child said nothing in %v: %s", o.FirstLine, stderr.String())
		}
	}
	cmd.Wait()
	if strings.Contains(stderr.String(), "child:") {
		t.Fatalf("the child failed: %s", stderr.String())
	}
}
