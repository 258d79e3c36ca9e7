// Package metrics serves a daemon's Prometheus registry on /metrics. It
// owns where the endpoint listens (a host:port, a unix socket, or off) and
// how it stops; each daemon owns its own metrics (daemon/telemetry for
// kiumtapd, portal/bridge for kiumbridge).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Off is the address that turns the endpoint off.
const Off = "off"

// Listen opens the endpoint's listener: addr is a host:port, or
// "unix:PATH" (created mode 0660, an old socket replaced), or "off" (nil,
// nil). It is opened before the daemon starts its parts, so that a port in
// use stops the start with a clear error rather than later.
func Listen(addr string) (net.Listener, error) {
	switch {
	case addr == Off || addr == "":
		return nil, nil
	case strings.HasPrefix(addr, "unix:"):
		path := strings.TrimPrefix(addr, "unix:")
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path) // a socket left by a daemon that did not stop
		}
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("metrics: listening on %s: %w (set metrics to another path, or \"off\")", addr, err)
		}
		if err := os.Chmod(path, 0o660); err != nil {
			l.Close()
			return nil, fmt.Errorf("metrics: %w", err)
		}
		return l, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listening on %s: %w (another daemon on that port? set metrics to another host:port, or \"off\")", addr, err)
	}
	return l, nil
}

// Serve answers /metrics from reg on l until ctx ends; a nil l (metrics
// off) waits for ctx. Errors of collecting are logged, and the scrape
// still gets every metric that could be collected.
func Serve(ctx context.Context, l net.Listener, reg *prometheus.Registry, log *slog.Logger) error {
	if l == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slogAdapter{log},
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return ctx.Err()
}

type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Println(v ...any) { a.log.Warn("metrics: collecting", "err", fmt.Sprint(v...)) }
