package unixhttp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hello answers every request "hello PATH".
var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, "hello "+r.URL.Path)
})

// get asks the server on socket for path and returns its answer.
func get(socket, path string) (string, error) {
	c := Client(socket)
	c.Timeout = 5 * time.Second
	resp, err := c.Get("http://test" + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return string(raw), err
}

// serve serves h on l until the test ends.
func serve(t *testing.T, l net.Listener, h http.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v, want context.Canceled", err)
		}
	})
}

// staleSocket leaves a socket file at path that nobody listens on, as a
// process that died does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("no stale socket: %v %v", fi, err)
	}
}

func TestListen(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup prepares dir before Listen makes dir/sub/s.sock; it
		// returns a check that what was there is still there.
		setup func(t *testing.T, sock string) (after func(t *testing.T))
		opts  Options
		// want: "" Listen succeeds; otherwise its error's Op and a
		// part of its message.
		wantOp, want  string
		mode, dirMode os.FileMode // of the socket and its directory when it succeeds
	}{
		{name: "nothing there: directory made", opts: Options{},
			mode: 0o600, dirMode: 0o700},
		{name: "the local API's modes", opts: Options{Mode: 0o660, DirMode: 0o750},
			mode: 0o660, dirMode: 0o750},
		{name: "a stale socket is replaced", setup: func(t *testing.T, sock string) func(*testing.T) {
			os.MkdirAll(filepath.Dir(sock), 0o700)
			staleSocket(t, sock)
			return nil
		}, mode: 0o600, dirMode: 0o700},
		{name: "a live socket is not stolen", setup: func(t *testing.T, sock string) func(*testing.T) {
			os.MkdirAll(filepath.Dir(sock), 0o700)
			l, err := Listen(sock, Options{})
			if err != nil {
				t.Fatal(err)
			}
			serve(t, l, hello)
			return func(t *testing.T) {
				if got, err := get(sock, "/still"); err != nil || got != "hello /still" {
					t.Errorf("the other server after Listen: %q, %v", got, err)
				}
			}
		}, wantOp: OpInUse, want: "s.sock is answered by another process"},
		{name: "a regular file is not removed", setup: func(t *testing.T, sock string) func(*testing.T) {
			os.MkdirAll(filepath.Dir(sock), 0o700)
			os.WriteFile(sock, []byte("the store"), 0o600)
			return func(t *testing.T) {
				if raw, err := os.ReadFile(sock); err != nil || string(raw) != "the store" {
					t.Errorf("the file after Listen: %q, %v", raw, err)
				}
			}
		}, wantOp: OpListen, want: "s.sock is a regular file, not a socket: it is not removed"},
		{name: "a directory is not removed", setup: func(t *testing.T, sock string) func(*testing.T) {
			os.MkdirAll(sock, 0o700)
			return func(t *testing.T) {
				if fi, err := os.Stat(sock); err != nil || !fi.IsDir() {
					t.Errorf("the directory after Listen: %v", err)
				}
			}
		}, wantOp: OpListen, want: "s.sock is a directory, not a socket: it is not removed"},
		{name: "the directory cannot be made", setup: func(t *testing.T, sock string) func(*testing.T) {
			os.WriteFile(filepath.Dir(sock), nil, 0o600) // a file where the directory goes
			return nil
		}, wantOp: OpMkdir, want: "making the socket's directory: mkdir "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "sub", "s.sock")
			var after func(*testing.T)
			if tc.setup != nil {
				after = tc.setup(t, sock)
			}
			l, err := Listen(sock, tc.opts)
			if after != nil {
				after(t)
			}
			if tc.wantOp != "" {
				var le *ListenError
				if l != nil {
					l.Close()
				}
				if !errors.As(err, &le) || le.Op != tc.wantOp || le.Path != sock || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Listen = %v, want a %s error with %q", err, tc.wantOp, tc.want)
				}
				if errors.Is(err, ErrInUse) != (tc.wantOp == OpInUse) {
					t.Errorf("errors.Is(%v, ErrInUse) = %v", err, !(tc.wantOp == OpInUse))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			serve(t, l, hello)
			if got, err := get(sock, "/x"); err != nil || got != "hello /x" {
				t.Errorf("asking: %q, %v", got, err)
			}
			if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != tc.mode {
				t.Errorf("the socket: %v, %v; want a socket of mode %v", fi.Mode(), err, tc.mode)
			}
			if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm() != tc.dirMode {
				t.Errorf("its directory: %v, %v; want mode %v", fi.Mode(), err, tc.dirMode)
			}
		})
	}
}

// Serve stops when its context ends: a request in flight sees its context
// end and is answered before Serve returns, a request that comes meanwhile
// is refused, and the socket file is gone.
func TestServeStops(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen(sock, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var answered atomic.Bool
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			return
		}
		close(started)
		<-r.Context().Done() // a request waiting on something, until the stop
		answered.Store(true)
		http.Error(w, "stopping", http.StatusServiceUnavailable)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, h) }()
	if _, err := get(sock, "/up"); err != nil {
		t.Fatal(err)
	}
	asked := make(chan error, 1)
	go func() {
		_, err := get(sock, "/slow")
		asked <- err
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if !answered.Load() {
		t.Error("Serve returned before its request was answered")
	}
	if err := <-asked; err != nil {
		t.Errorf("the request in flight: %v", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket file after Serve: %v", err)
	}
	if _, err := get(sock, "/after"); !errors.Is(err, ErrNoServer) {
		t.Errorf("asking after the stop: %v, want ErrNoServer", err)
	}
}

// A listener that fails stops Serve with its error.
func TestServeListenerFails(t *testing.T) {
	l, err := Listen(filepath.Join(t.TempDir(), "s.sock"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), l, hello) }()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Errorf("Serve on a closed listener = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve on a closed listener did not return")
	}
}

// A client's error says nobody answers (ErrNoServer) for no socket and
// for a stale one, keeping the dial's message; not for a server that
// answers an error.
func TestClientNoServer(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	staleSocket(t, stale)
	for _, tc := range []struct {
		name, sock, want string
	}{
		{"no file", filepath.Join(dir, "none.sock"), "connect: no such file or directory"},
		{"a stale socket", stale, "connect: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := get(tc.sock, "/")
			var op *net.OpError
			if !errors.Is(err, ErrNoServer) || !errors.As(err, &op) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("asking: %v; want ErrNoServer, a *net.OpError and %q", err, tc.want)
			}
		})
	}
	live := filepath.Join(dir, "live.sock")
	l, err := Listen(live, Options{})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, http.NotFoundHandler())
	c := Client(live)
	resp, err := c.Get("http://test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status %d", resp.StatusCode)
	}
}
