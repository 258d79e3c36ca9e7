package service

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"kiumtap/internal/service/servicetest"
)

// The watchdog is fed while every check passes, not while one fails or
// hangs, and again once it passes.
func TestWatchdogFedOnlyWhileHealthy(t *testing.T) {
	m := servicetest.New(t)
	m.Setenv(t, 100*time.Millisecond)
	var state atomic.Int32 // 0 healthy, 1 failing, 2 hanging
	release := make(chan struct{})
	rounds := make(chan bool, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Watchdog(ctx, WatchdogOptions{
			Checks: []Check{
				{"always", func(context.Context) error { return nil }},
				{"loop", func(ctx context.Context) error {
					switch state.Load() {
					case 1:
						return errors.New("stuck")
					case 2:
						<-release // ignores ctx, as a deadlocked call does
					}
					return nil
				}},
			},
			Healthy: func(ok bool) {
				select {
				case rounds <- ok:
				default:
				}
			},
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	waitPings := func(what string, n int) {
		t.Helper()
		from := time.Now()
		for m.Count("WATCHDOG", "1", from) < n {
			if _, ok := m.Wait(from, deadline, servicetest.Has("WATCHDOG", "1")); !ok {
				t.Fatalf("%s: %d pings, want %d", what, m.Count("WATCHDOG", "1", from), n)
			}
		}
	}
	// waitRounds waits for n rounds with the given verdict.
	waitRounds := func(ok bool, n int) {
		t.Helper()
		for n > 0 {
			select {
			case v := <-rounds:
				if v == ok {
					n--
				}
			case <-time.After(time.Until(deadline)):
				t.Fatalf("no round judged %v", ok)
			}
		}
	}
	waitPings("healthy", 3)

	for _, bad := range []int32{1, 2} {
		state.Store(bad)
		waitRounds(false, 1)
		quiet := time.Now()
		waitRounds(false, 3)
		if n := m.Count("WATCHDOG", "1", quiet); n != 0 {
			t.Fatalf("state %d: %d pings in three unhealthy rounds", bad, n)
		}
		if msg, ok := m.Wait(time.Time{}, deadline, servicetest.Has("STATUS", map[int32]string{1: "unhealthy: loop: stuck", 2: "unhealthy: loop: no answer within 50ms"}[bad])); !ok {
			t.Fatalf("state %d: no status saying why: %+v", bad, msg)
		}
		if bad == 2 {
			close(release)
		}
		state.Store(0)
		waitPings("healthy again", 2)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// Outside systemd nothing is sent and nothing fails; without WatchdogSec
// the watchdog only waits.
func TestOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	if err := Ready("x"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Watchdog(ctx, WatchdogOptions{Checks: []Check{{"x", func(context.Context) error { t.Error("checked"); return nil }}}}); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func TestReadyAndStatus(t *testing.T) {
	m := servicetest.New(t)
	m.Setenv(t, 0)
	Status("starting:\nopening the store")
	Ready("running")
	Stopping()
	if _, ok := m.Wait(time.Time{}, time.Now().Add(5*time.Second), servicetest.Has("STOPPING", "1")); !ok {
		t.Fatalf("%+v", m.Messages())
	}
	msgs := m.Messages()
	if len(msgs) != 3 || msgs[0].State["STATUS"] != "starting: opening the store" || msgs[1].State["READY"] != "1" || msgs[1].State["STATUS"] != "running" {
		t.Fatalf("%+v", msgs)
	}
}
