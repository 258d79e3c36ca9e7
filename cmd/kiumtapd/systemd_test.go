package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"kiumtap/daemon/localapi"
	"kiumtap/hal/rc522/rc522emu"
	"kiumtap/internal/logbuf"
	"kiumtap/internal/metrics/metricstest"
	"kiumtap/internal/service/servicetest"
	"kiumtap/internal/wait"
)

// scrape reads the /metrics endpoint on a unix socket.
func scrape(t testing.TB, socket string) map[string]float64 {
	t.Helper()
	return metricstest.Scrape(t, "unix:"+socket)
}

// emuTap taps a virtual card through kiumtapd's local API.
func emuTap(ctx context.Context, socket, card string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://kiumtapd/emu/tap", strings.NewReader(fmt.Sprintf(`{"card": %q}`, card)))
	resp, err := localapi.Client(socket).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return nil
}

// kiumtapd under a fake systemd: READY=1 comes only once the tap loop
// takes events (not while it is held back, though the store, the local API
// and the metrics already answer); the watchdog is fed while it is
// healthy, not while the tap loop is blocked, and again once it is not;
// STOPPING=1 comes on the way out. The metrics count the taps.
func TestSystemdReadyAndWatchdog(t *testing.T) {
	m := servicetest.New(t)
	m.Setenv(t, 400*time.Millisecond) // a keep-alive every 200 ms
	in := newInstall(t, t.TempDir(), "1ms")

	gate := make(chan struct{})
	var block sync.Mutex // held: a tap blocks the loop until released
	testHookBeforeTapLoop = func() { <-gate }
	testHookTapped = func() { block.Lock(); block.Unlock() }
	t.Cleanup(func() { testHookBeforeTapLoop, testHookTapped = nil, nil })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut logbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-config", in.config}, &out, &errOut) }()

	// Everything but the tap loop runs: the metrics answer, the store is
	// open. No READY yet.
	wait.For(t, 20*time.Second, "the metrics endpoint", func() bool { _, err := metricstest.TryScrape("unix:" + in.metrics); return err == nil })
	if _, ok := m.Wait(time.Time{}, time.Now().Add(500*time.Millisecond), servicetest.Has("READY", "1")); ok {
		t.Fatal("READY=1 before the tap loop runs")
	}
	if n := m.Count("WATCHDOG", "1", time.Time{}); n != 0 {
		t.Fatalf("%d keep-alives before the tap loop runs", n)
	}
	close(gate)
	deadline := time.Now().Add(20 * time.Second)
	ready, ok := m.Wait(time.Time{}, deadline, servicetest.Has("READY", "1"))
	if !ok {
		t.Fatalf("no READY=1: %+v\n%s", m.Messages(), errOut.String())
	}
	if st := ready.State["STATUS"]; !strings.Contains(st, "running: mangwon1-door, roster revision 1, card reader answering") {
		t.Errorf("ready status %q", st)
	}
	// At once, the loop takes a tap.
	if err := emuTap(ctx, in.socket, "minjun"); err != nil {
		t.Fatal(err)
	}
	waitPings := func(what string, n int) {
		t.Helper()
		from := time.Now()
		for m.Count("WATCHDOG", "1", from) < n {
			if _, ok := m.Wait(from, deadline, servicetest.Has("WATCHDOG", "1")); !ok {
				t.Fatalf("%s: %d keep-alives, want %d", what, m.Count("WATCHDOG", "1", from), n)
			}
		}
	}
	waitPings("healthy", 3)

	// A tap blocks the loop, as a deadlock would.
	block.Lock()
	tapped := make(chan error, 1)
	go func() { tapped <- emuTap(ctx, in.socket, "jiho") }()
	unhealthy, ok := m.Wait(time.Now(), deadline, func(msg servicetest.Message) bool { return strings.HasPrefix(msg.State["STATUS"], "unhealthy: ") })
	if !ok {
		t.Fatal("no unhealthy status while the tap loop is blocked")
	}
	if !strings.Contains(unhealthy.State["STATUS"], "the tap loop") {
		t.Errorf("unhealthy status %q does not name the tap loop", unhealthy.State["STATUS"])
	}
	quiet := time.Now()
	// Three keep-alive periods with none: systemd would kill the daemon.
	if msg, ok := m.Wait(quiet, quiet.Add(600*time.Millisecond), servicetest.Has("WATCHDOG", "1")); ok {
		t.Fatalf("a keep-alive at %v while the tap loop is blocked", msg.At.Sub(quiet))
	}
	if v := scrape(t, in.metrics)["kiumtap_healthy"]; v != 0 {
		t.Errorf("kiumtap_healthy %v while the tap loop is blocked", v)
	}
	block.Unlock()
	if err := <-tapped; err != nil {
		t.Fatal(err)
	}
	waitPings("healthy again", 2)

	mt := scrape(t, in.metrics)
	for name, want := range map[string]float64{
		`kiumtap_taps_total{outcome="check_in"}`:  2,
		`kiumtap_taps_total{outcome="check_out"}`: 0,
		`kiumtap_outbox_events`:                   2,
		`kiumtap_events_last_seq`:                 2,
		`kiumtap_roster_revision`:                 1,
		`kiumtap_reader_up`:                       1,
		`kiumtap_healthy`:                         1,
		`kiumtap_journal_pending_batches`:         0,
	} {
		if got, ok := mt[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"kiumtap_outbox_oldest_age_seconds", "kiumtap_roster_age_seconds", "kiumtap_disk_free_bytes", "kiumtap_store_bytes",
		"kiumtap_clock_synced", "kiumtap_journal_lag_seconds", "kiumtap_reader_recoveries_total", `kiumtap_reader_errors_total{kind="spi"}`,
		"process_resident_memory_bytes", "go_goroutines"} {
		if _, ok := mt[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	if mt["kiumtap_disk_free_bytes"] <= 0 || mt["kiumtap_store_bytes"] <= 0 {
		t.Errorf("disk free %v, store %v", mt["kiumtap_disk_free_bytes"], mt["kiumtap_store_bytes"])
	}

	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	if _, ok := m.Wait(time.Time{}, time.Now().Add(5*time.Second), servicetest.Has("STOPPING", "1")); !ok {
		t.Error("no STOPPING=1")
	}
}

// A reader that does not answer at start does not stop kiumtapd nor get it
// restarted: it is ready, feeds the watchdog, shows the fault on the
// screen, reports it (kiumctl status, the metrics, systemd's status line),
// and reads cards once the reader is plugged in.
func TestMissingReader(t *testing.T) {
	m := servicetest.New(t)
	m.Setenv(t, 400*time.Millisecond)
	in := newInstall(t, t.TempDir(), "1ms")
	chips := make(chan *rc522emu.Chip, 1)
	testHookEmu = func(c *rc522emu.Chip) {
		c.Unplug()
		chips <- c
	}
	t.Cleanup(func() { testHookEmu = nil })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut logbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-config", in.config}, &out, &errOut) }()
	deadline := time.Now().Add(20 * time.Second)
	ready, ok := m.Wait(time.Time{}, deadline, servicetest.Has("READY", "1"))
	if !ok {
		t.Fatalf("no READY=1 with the reader unplugged: %+v\n%s", m.Messages(), errOut.String())
	}
	if st := ready.State["STATUS"]; !strings.Contains(st, "CARD READER NOT ANSWERING: rc522: VersionReg") {
		t.Errorf("ready status %q", st)
	}
	chip := <-chips
	wait.For(t, 10*time.Second, "the fault on the screen", func() bool {
		return strings.Contains(out.String(), "screen: 카드 리더 고장 / 선생님께 알려주세요")
	})
	if !strings.Contains(errOut.String(), "THE CARD READER DOES NOT ANSWER") {
		t.Errorf("the log does not say the reader does not answer:\n%s", errOut.String())
	}
	var st localapi.Status
	if err := getJSON(in.socket, "/status", &st); err != nil || st.Reader == nil || st.Reader.Up || !strings.Contains(st.Reader.Error, "VersionReg") {
		t.Fatalf("status %+v %v", st.Reader, err)
	}
	if v := scrape(t, in.metrics)["kiumtap_reader_up"]; v != 0 {
		t.Errorf("kiumtap_reader_up %v while unplugged", v)
	}
	from := time.Now()
	for m.Count("WATCHDOG", "1", from) < 2 {
		if _, ok := m.Wait(from, deadline, servicetest.Has("WATCHDOG", "1")); !ok {
			t.Fatal("the watchdog is not fed while the reader is missing")
		}
	}

	chip.Plug()
	wait.For(t, 20*time.Second, "the reader back on the screen", func() bool {
		return strings.Contains(out.String(), "screen: 카드 리더 정상 / 카드를 대주세요")
	})
	if err := getJSON(in.socket, "/status", &st); err != nil || st.Reader == nil || !st.Reader.Up {
		t.Fatalf("status after plugging in %+v %v", st.Reader, err)
	}
	if err := emuTap(ctx, in.socket, "minjun"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "check_in") {
		t.Errorf("no check-in after the reader came back:\n%s", out.String())
	}
	if scrape(t, in.metrics)["kiumtap_reader_up"] != 1 {
		t.Error("kiumtap_reader_up not 1 once plugged in")
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v", err)
	}
}

func getJSON(socket, path string, into any) error {
	resp, err := localapi.Client(socket).Get("http://kiumtapd" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(into)
}
