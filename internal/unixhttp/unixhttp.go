// Package unixhttp serves and asks HTTP on a local unix socket: the one
// way kiumtap's daemons open a socket for their local clients (kiumtapd's
// local API for kiumctl, kiumbridge's control socket) and the one way
// those clients dial it.
//
// It owns the socket file: making its directory, replacing a stale one
// left by a process that died, its permissions, and removing it when the
// server stops. It never removes a socket another process answers on
// (Listen fails with ErrInUse), nor a file that is not a socket. It knows
// nothing of what is served: the handlers, their error bodies and what an
// error means to an operator are the callers'.
//
// # Stopping
//
// Serve stops when its context ends: the requests in flight see their
// context end too, requests that arrive meanwhile are answered 503, and
// Serve returns only once every handler has returned, so that the caller
// may close what the handlers read (a store) as soon as it returns.
//
// # Failures
//
// Listen's errors are *ListenError, naming the step that failed (Op):
// callers add the hint an operator needs for each. A client's requests to
// a socket nobody answers on (no file, or a stale one) fail with an error
// wrapping ErrNoServer.
package unixhttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ErrInUse is Listen's error when another process answers on the socket:
// its socket is left alone.
var ErrInUse = errors.New("is answered by another process")

// ErrNoServer is a Client's error when nobody answers on the socket: no
// file there, or a socket file nobody listens on (left by a process that
// died).
var ErrNoServer = errors.New("nobody answers on the socket")

// The steps of Listen, as ListenError's Op names them.
const (
	OpMkdir  = "mkdir"  // making the socket's directory
	OpInUse  = "in use" // another process answers on the socket; Err is ErrInUse
	OpListen = "listen" // making the socket: a file there that is not a socket, a directory not writable, …
	OpChmod  = "chmod"  // setting the socket's permissions
)

// ListenError is Listen's error.
type ListenError struct {
	Op   string // OpMkdir, OpInUse, OpListen or OpChmod
	Path string // the socket's
	Err  error
}

func (e *ListenError) Error() string {
	switch e.Op {
	case OpMkdir:
		return "making the socket's directory: " + e.Err.Error()
	case OpInUse:
		return e.Path + " " + e.Err.Error()
	case OpListen:
		return "listening on " + e.Path + ": " + e.Err.Error()
	}
	return e.Err.Error() // chmod: os.PathError names the path
}

func (e *ListenError) Unwrap() error { return e.Err }

// Options say how Listen makes the socket.
type Options struct {
	// Mode is the socket's permissions; 0: 0600, the owner only (0660
	// lets the socket's group ask too).
	Mode os.FileMode
	// DirMode is the permissions of the directories Listen makes for the
	// socket (the umask applies); 0: 0700. Existing ones are left as
	// they are.
	DirMode os.FileMode
}

func (o *Options) ensureDefaults() {
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	if o.DirMode == 0 {
		o.DirMode = 0o700
	}
}

// probeWait bounds Listen's dial of an existing socket.
const probeWait = time.Second

// Listen makes a unix socket at path and listens on it. It makes the
// socket's directory if need be. A socket file nobody answers on is
// replaced; a socket another process answers on is an error wrapping
// ErrInUse, and any other file there is an error: neither is touched. The
// socket gets o.Mode; the listener removes it when closed.
func Listen(path string, o Options) (net.Listener, error) {
	o.ensureDefaults()
	if err := os.MkdirAll(filepath.Dir(path), o.DirMode); err != nil {
		return nil, &ListenError{Op: OpMkdir, Path: path, Err: err}
	}
	c, err := net.DialTimeout("unix", path, probeWait)
	switch {
	case err == nil:
		c.Close()
		return nil, &ListenError{Op: OpInUse, Path: path, Err: ErrInUse}
	case errors.Is(err, syscall.ENOENT):
		// nothing there
	case errors.Is(err, syscall.ECONNREFUSED):
		// A file nobody listens on: a stale socket, or a file that is
		// no socket at all (connect refuses those too).
		fi, serr := os.Lstat(path)
		if serr != nil {
			return nil, &ListenError{Op: OpListen, Path: path, Err: serr}
		}
		if fi.Mode().Type() != os.ModeSocket {
			return nil, &ListenError{Op: OpListen, Path: path, Err: fmt.Errorf("%s is a %s, not a socket: it is not removed", path, kind(fi.Mode()))}
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, &ListenError{Op: OpListen, Path: path, Err: fmt.Errorf("removing a stale socket: %w", err)}
		}
	case errors.Is(err, syscall.EAGAIN), isTimeout(err):
		// Its backlog is full: someone listens, and is busy.
		return nil, &ListenError{Op: OpInUse, Path: path, Err: ErrInUse}
	default:
		// Permission denied, say: whether someone answers there cannot
		// be told, so nothing is removed.
		return nil, &ListenError{Op: OpListen, Path: path, Err: fmt.Errorf("cannot tell whether another process answers there: %w", err)}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, &ListenError{Op: OpListen, Path: path, Err: err}
	}
	if err := os.Chmod(path, o.Mode); err != nil {
		l.Close()
		return nil, &ListenError{Op: OpChmod, Path: path, Err: err}
	}
	return l, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// kind names a file's type for an error.
func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	}
	return "file of mode " + m.Type().String()
}

// stopWait is how long Serve waits for connections to go idle before it
// closes them; it then still waits for their handlers.
const stopWait = 5 * time.Second

// Serve answers h on l until ctx ends, then stops gracefully (see the
// package doc) and returns ctx's error. A listener that fails stops it
// with that error. Either way l is closed, and a unix socket's file
// removed, when it returns.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	// Handlers are counted so that Serve returns only after the last:
	// http.Server's Close does not wait for them.
	var (
		gate     sync.RWMutex
		stopped  bool
		inflight sync.WaitGroup
	)
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gate.RLock()
		if stopped {
			gate.RUnlock()
			http.Error(w, "the server is stopping", http.StatusServiceUnavailable)
			return
		}
		inflight.Add(1)
		gate.RUnlock()
		defer inflight.Done()
		h.ServeHTTP(w, r)
	})
	stop := func() {
		gate.Lock()
		stopped = true
		gate.Unlock()
	}
	srv := &http.Server{Handler: counted, ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err := <-served: // the listener failed
		srv.Close()
		stop()
		inflight.Wait()
		return err
	case <-ctx.Done():
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), stopWait)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-served
	inflight.Wait()
	return ctx.Err()
}

// Client is an HTTP client that dials the unix socket at path, whatever
// the URL's host (write http://NAME/PATH, NAME for the logs). It has no
// timeout (set one, or bound requests with their context), and no
// keep-alive: each request has a connection of its own, so a Client made
// for one request and dropped leaves no connection open. When nobody
// answers on the socket, the request's error wraps ErrNoServer (and the
// dial's *net.OpError, whose message it keeps).
func Client(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", path)
			if err != nil && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)) {
				return nil, noServer{err}
			}
			return c, err
		},
	}}
}

// noServer is a dial's error when nobody answers: its message is the
// dial's, and it is ErrNoServer too.
type noServer struct{ err error }

func (e noServer) Error() string   { return e.err.Error() }
func (e noServer) Unwrap() []error { return []error{e.err, ErrNoServer} }
