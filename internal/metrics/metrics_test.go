package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"kiumtap/internal/metrics/metricstest"
)

func TestListenAndServe(t *testing.T) {
	for _, off := range []string{"off", ""} {
		if l, err := Listen(off); l != nil || err != nil {
			t.Fatalf("Listen(%q) = %v, %v", off, l, err)
		}
	}
	dir, err := os.MkdirTemp("", "metrics-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "m.sock")
	// A socket left by a daemon that did not stop is replaced.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	l, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, %v", fi.Mode(), err)
	}
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})
	c.Add(3)
	reg.MustRegister(c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, reg, slog.New(slog.DiscardHandler)) }()
	if v := metricstest.Scrape(t, "unix:"+sock)["x_total"]; v != 3 {
		t.Errorf("x_total = %v", v)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}

	// A port in use says which key to change.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, err := Listen(busy.Addr().String()); err == nil || !strings.Contains(err.Error(), `set metrics to another host:port, or "off"`) {
		t.Errorf("a port in use: %v", err)
	}
}
