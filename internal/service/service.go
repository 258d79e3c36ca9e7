// Package service speaks for a daemon to systemd when it runs as a
// Type=notify unit (github.com/coreos/go-systemd/v22/daemon does the
// protocol): it says when the daemon is ready, what it is doing (STATUS),
// when it stops, and feeds the watchdog only while the daemon's health
// checks pass, so that a deadlocked loop or a hung store gets the daemon
// restarted and nothing else does. Outside systemd (no NOTIFY_SOCKET)
// every call does nothing.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notify sends one state to the service manager; a daemon outside systemd
// has nowhere to send it and that is not an error.
func notify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

// Ready tells systemd the daemon is ready, with a status line.
func Ready(status string) error {
	return notify(daemon.SdNotifyReady + "\nSTATUS=" + oneLine(status))
}

// Status tells systemd what the daemon is doing (systemctl status shows
// it).
func Status(status string) error { return notify("STATUS=" + oneLine(status)) }

// Stopping tells systemd the daemon is stopping.
func Stopping() error { return notify(daemon.SdNotifyStopping) }

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// Check is one health check: it returns nil when its part responds, an
// error saying what is wrong otherwise, and must return once ctx ends.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// WatchdogOptions configure Watchdog.
type WatchdogOptions struct {
	// Checks must all pass for a keep-alive to be sent.
	Checks []Check
	// Every is how often the checks run and, when they pass, a keep-alive
	// goes; default half of systemd's WatchdogSec (WATCHDOG_USEC). Zero
	// with no WatchdogSec: Watchdog only waits for ctx.
	Every time.Duration
	// Timeout bounds a round of checks; default Every. A check still
	// running after it fails, and is not started again until it returns.
	Timeout time.Duration
	// Logger; default discards.
	Logger *slog.Logger
	// Healthy, if set, is told each round's outcome (for metrics).
	Healthy func(ok bool)
}

// Watchdog runs the checks every Every and sends WATCHDOG=1 after each
// round they all pass; a failing round sends none, logs which check failed
// (once, until it passes again) and sets the STATUS line. It returns when
// ctx ends.
func Watchdog(ctx context.Context, o WatchdogOptions) error {
	if o.Every == 0 {
		d, err := daemon.SdWatchdogEnabled(false)
		if err != nil {
			return fmt.Errorf("service: systemd's watchdog settings: %w", err)
		}
		o.Every = d / 2
	}
	if o.Every <= 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	if o.Timeout <= 0 {
		o.Timeout = o.Every
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &watchdog{o: o, busy: map[string]bool{}}
	tick := time.NewTicker(o.Every)
	defer tick.Stop()
	for {
		w.round(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

type watchdog struct {
	o      WatchdogOptions
	mu     sync.Mutex
	busy   map[string]bool // checks started and not yet returned
	failed string          // the failure last logged
}

// round runs every check at once and feeds the watchdog when all pass.
func (w *watchdog) round(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	errs := make([]error, len(w.o.Checks))
	var wg sync.WaitGroup
	for i, c := range w.o.Checks {
		w.mu.Lock()
		busy := w.busy[c.Name]
		w.busy[c.Name] = true
		w.mu.Unlock()
		if busy {
			errs[i] = fmt.Errorf("%s: its last check has not returned", c.Name)
			continue
		}
		wg.Add(1)
		done := make(chan error, 1)
		go func() {
			err := c.Fn(cctx)
			w.mu.Lock()
			w.busy[c.Name] = false
			w.mu.Unlock()
			done <- err
		}()
		go func() {
			defer wg.Done()
			select {
			case err := <-done:
				if err != nil {
					errs[i] = fmt.Errorf("%s: %w", c.Name, err)
				}
			case <-cctx.Done():
				errs[i] = fmt.Errorf("%s: no answer within %v", c.Name, w.o.Timeout)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // stopping: no verdict
	}
	err := errors.Join(errs...)
	if w.o.Healthy != nil {
		w.o.Healthy(err == nil)
	}
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), "\n", "; ")
		if msg != w.failed {
			w.o.Logger.Error("unhealthy: the watchdog is not fed, systemd restarts the daemon if this lasts", "err", msg)
			Status("unhealthy: " + msg)
			w.failed = msg
		}
		return
	}
	if w.failed != "" {
		w.o.Logger.Info("healthy again: the watchdog is fed")
		Status("running")
		w.failed = ""
	}
	if err := notify(daemon.SdNotifyWatchdog); err != nil {
		w.o.Logger.Warn("service: feeding systemd's watchdog", "err", err)
	}
}
