package chaosproxy

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("dialling the proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echo checks one round trip through c.
func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("writing through the proxy: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading the echo through the proxy: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
}

// waitClosed fails unless the proxy closes c within d.
func waitClosed(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(make([]byte, 1))
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("the connection was still open after %v", d)
	case err == nil:
		t.Fatalf("read %d bytes, want the connection closed", n)
	case !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset"):
		t.Fatalf("read: %v, want EOF or a reset", err)
	}
}

func TestCutsAtRandom(t *testing.T) {
	t.Parallel()
	const minCut, maxCut = 20 * time.Millisecond, 100 * time.Millisecond
	p := Start(t, Options{Target: echoServer(t), MinCut: minCut, MaxCut: maxCut, Seed: 7})
	if p.URL() != "tcp://"+p.Addr() {
		t.Fatalf("URL() = %q, Addr() = %q", p.URL(), p.Addr())
	}
	// Each connection is cut within MaxCut of its start (plus a margin for
	// a busy machine), and a new one works again.
	for i := range 3 {
		c := dial(t, p.Addr())
		echo(t, c, "hello")
		start := time.Now()
		waitClosed(t, c, maxCut+2*time.Second)
		t.Logf("connection %d cut after %v", i, time.Since(start))
		if got := p.Cuts(); got < i+1 {
			t.Fatalf("Cuts() = %d after %d cut connections", got, i+1)
		}
	}
}

func TestCutNow(t *testing.T) {
	t.Parallel()
	p := Start(t, Options{Target: echoServer(t)})
	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	echo(t, a, "a")
	echo(t, b, "b")
	p.CutNow()
	waitClosed(t, a, 2*time.Second)
	waitClosed(t, b, 2*time.Second)
	if got := p.Cuts(); got != 1 {
		t.Fatalf("Cuts() = %d after one CutNow of two connections, want 1", got)
	}
	p.CutNow() // nothing open: not a cut
	if got := p.Cuts(); got != 1 {
		t.Fatalf("Cuts() = %d after a CutNow with nothing open, want 1", got)
	}
	echo(t, dial(t, p.Addr()), "again")
}

func TestSetDown(t *testing.T) {
	t.Parallel()
	p := Start(t, Options{Target: echoServer(t)})
	open := dial(t, p.Addr())
	echo(t, open, "before")

	p.SetDown(true)
	c := dial(t, p.Addr()) // accepted by the kernel, then closed by the proxy
	waitClosed(t, c, 2*time.Second)
	echo(t, open, "still open") // an outage leaves open connections alone

	p.SetDown(false)
	echo(t, dial(t, p.Addr()), "after")
	if got := p.Cuts(); got != 0 {
		t.Fatalf("Cuts() = %d, want 0: refusing is not cutting", got)
	}
}

func TestTargetDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := Start(t, Options{Target: target})
	waitClosed(t, dial(t, p.Addr()), 2*time.Second)
}

func TestClose(t *testing.T) {
	t.Parallel()
	p := Start(t, Options{Target: echoServer(t), MinCut: time.Hour})
	c := dial(t, p.Addr())
	echo(t, c, "x")
	p.Close()
	waitClosed(t, c, 2*time.Second)
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("the proxy accepted a connection after Close")
	}
	p.Close() // again: nothing happens; t.Cleanup calls it once more
}
