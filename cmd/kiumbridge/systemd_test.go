package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/firmware"
	"kiumtap/internal/cli"
	"kiumtap/internal/logbuf"
	"kiumtap/internal/metrics/metricstest"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/service/servicetest"
	"kiumtap/internal/wait"
	"kiumtap/portal/api"
	"kiumtap/protocol"
)

// scrape reads the /metrics endpoint on a unix socket.
func scrape(t *testing.T, socket string) map[string]float64 {
	t.Helper()
	return metricstest.Scrape(t, "unix:"+socket)
}

func tryScrape(socket string) (map[string]float64, error) {
	return metricstest.TryScrape("unix:" + socket)
}

// startRun runs kiumbridge run -config cfg in this process until stop is
// called, or the test ends; stdout takes the console's texts. stop
// returns what run returned.
func startRun(t *testing.T, cfg string, stdout io.Writer) (stop func() error, log *logbuf.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log = &logbuf.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"run", "-config", cfg}, stdout, log) }()
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return errors.New("kiumbridge run did not stop within 20 s")
		}
	})
	t.Cleanup(func() {
		if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("kiumbridge run: %v", err)
		}
	})
	return stop, log
}

// kiumbridge under a fake systemd, its broker down at start: READY=1
// comes only once the control socket answers (not while the bridge is
// held back, though the store is open and the metrics answer), and does
// not wait for the broker: the status line says it is not connected, the
// watchdog is fed meanwhile, and once the broker is up the status line
// says so. STOPPING=1 comes on the way out.
func TestSystemdReady(t *testing.T) {
	mq := mosqtest.Start(t, mosqtest.Options{})
	mq.Stop()
	// Mosquitto says READY=1 itself to a NOTIFY_SOCKET it inherits: it
	// starts first, and comes back (Resume) only after kiumbridge's READY.
	m := servicetest.New(t)
	m.Setenv(t, 400*time.Millisecond) // a keep-alive every 200 ms
	cfg, dir := portal(t, mq.URL())
	control, metricsAt := filepath.Join(dir, "kiumbridge.sock"), filepath.Join(dir, "metrics.sock")

	gate := make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	testHookBeforeBridge = func() { <-gate }
	t.Cleanup(func() { testHookBeforeBridge = nil })
	stop, log := startRun(t, cfg, io.Discard)
	t.Cleanup(release) // before stop: a test that fails early lets the bridge go
	ctx := context.Background()

	wait.For(t, 20*time.Second, "the metrics endpoint", func() bool { _, err := tryScrape(metricsAt); return err == nil })
	if _, ok := m.Wait(time.Time{}, time.Now().Add(500*time.Millisecond), servicetest.Has("READY", "1")); ok {
		t.Fatalf("READY=1 before the control socket answers: %+v", m.Messages())
	}
	var st api.Status
	if err := api.Ask(ctx, control, http.MethodGet, "/status", nil, &st); !errors.Is(err, api.ErrNoBridge) {
		t.Fatalf("the control socket answers while the bridge is held back: %v", err)
	}
	if _, ok := m.Wait(time.Time{}, time.Now(), func(msg servicetest.Message) bool {
		return strings.HasPrefix(msg.State["STATUS"], "starting: opening the store")
	}); !ok {
		t.Errorf("no starting status: %+v", m.Messages())
	}

	release()
	deadline := time.Now().Add(20 * time.Second)
	ready, ok := m.Wait(time.Time{}, deadline, servicetest.Has("READY", "1"))
	if !ok {
		t.Fatalf("no READY=1 with the broker down: %+v\n%s", m.Messages(), log.String())
	}
	if err := api.Ask(ctx, control, http.MethodGet, "/status", nil, &st); err != nil || st.Connected {
		t.Fatalf("at READY=1 the control socket answers %+v, %v; want an answer, not connected", st, err)
	}
	want := fmt.Sprintf("running: centres 1, control socket %s; BROKER %s NOT CONNECTED: retrying", control, mq.URL())
	if s := ready.State["STATUS"]; !strings.HasPrefix(s, want) {
		t.Errorf("ready status %q, want %q…", s, want)
	}
	from := time.Now()
	for m.Count("WATCHDOG", "1", from) < 3 {
		if _, ok := m.Wait(from, deadline, servicetest.Has("WATCHDOG", "1")); !ok {
			t.Fatalf("the watchdog is not fed while the broker is down: %d keep-alives", m.Count("WATCHDOG", "1", from))
		}
	}
	if mt := scrape(t, metricsAt); mt["kiumbridge_broker_up"] != 0 || mt["kiumbridge_healthy"] != 1 {
		t.Errorf("broker down: kiumbridge_broker_up %v, kiumbridge_healthy %v", mt["kiumbridge_broker_up"], mt["kiumbridge_healthy"])
	}

	mq.Resume()
	connected := fmt.Sprintf("running: centres 1, control socket %s; broker %s connected", control, mq.URL())
	if _, ok := m.Wait(from, deadline, servicetest.Has("STATUS", connected)); !ok {
		t.Fatalf("no status %q once the broker is up: %+v\n%s", connected, m.Messages(), log.String())
	}
	if v := scrape(t, metricsAt)["kiumbridge_broker_up"]; v != 1 {
		t.Errorf("kiumbridge_broker_up %v once connected", v)
	}

	stopped := time.Now()
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("kiumbridge run: %v\n%s", err, log.String())
	}
	if _, ok := m.Wait(stopped, time.Now().Add(5*time.Second), servicetest.Has("STOPPING", "1")); !ok {
		t.Fatal("no STOPPING=1")
	}
}

// failFirst is stdout for the console's texts: its first write fails, as a
// provider's first attempt can.
type failFirst struct {
	mu     sync.Mutex
	failed bool
	buf    bytes.Buffer
}

func (w *failFirst) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *failFirst) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.failed {
		w.failed = true
		return 0, errors.New("stdout is closed (test)")
	}
	return w.buf.Write(p)
}

// kiumbridge's /metrics after a terminal's events: two stored (three
// texts: c01's two guardians and c02's one; the first attempt fails and
// is sent again), a duplicate, a malformed message, events of a centre
// the portal does not serve and an event beyond a gap; the terminal
// online; one text from before still waiting.
func TestMetrics(t *testing.T) {
	mq := mosqtest.Start(t, mosqtest.Options{})
	cfg, dir := portal(t, mq.URL())
	control, metricsAt := filepath.Join(dir, "kiumbridge.sock"), filepath.Join(dir, "metrics.sock")
	texts := &failFirst{}
	_, log := startRun(t, cfg, texts)
	ctx := context.Background()
	wait.For(t, 20*time.Second, "kiumbridge run to connect", func() bool {
		var st api.Status
		return api.Ask(ctx, control, http.MethodGet, "/status", nil, &st) == nil && st.Connected
	})

	term := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL()).SetClientID("door").SetCleanSession(true))
	if tok := term.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("the terminal's connection: %v", tok.Error())
	}
	t.Cleanup(func() { term.Disconnect(100) })
	publish := func(topic string, retain bool, payload []byte) {
		t.Helper()
		if tok := term.Publish(topic, 1, retain, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publishing on %s: %v", topic, tok.Error())
		}
	}
	ev := func(centre string, seq uint64, child string) protocol.Event {
		return protocol.Event{V: 1, ID: fmt.Sprintf("door-%d", seq), Centre: centre, Device: "door", Log: "L", Seq: seq, Time: time.Now(),
			ClockSynced: true, BootID: "00", Child: child, Outcome: string(firmware.CheckIn), Reason: "test", RosterRev: 1}
	}
	batch := func(evs ...protocol.Event) []byte {
		raw, _ := json.Marshal(protocol.Batch{V: 1, Events: evs})
		return raw
	}
	door := protocol.Topics{Centre: "mangwon1", Device: "door"}
	status, _ := json.Marshal(protocol.Status{V: 1, State: "online", Instance: "i1", Time: time.Now().UTC()})
	publish(door.Status(), true, status)
	// The store holds door's log L through 2.
	publish(door.Events(), false, batch(ev("mangwon1", 3, "c01"), ev("mangwon1", 4, "c02")))
	wait.For(t, 20*time.Second, "the events stored", func() bool {
		return scrape(t, metricsAt)["kiumbridge_events_ingested_total"] == 2
	})
	publish(door.Events(), false, batch(ev("mangwon1", 2, "c01")))
	publish(door.Events(), false, []byte(`{"v":1,"events":"not a list"}`))
	publish(protocol.Topics{Centre: "nowhere", Device: "door"}.Events(), false, batch(ev("nowhere", 1, "c01")))
	publish(door.Events(), false, batch(ev("mangwon1", 10, "c01")))

	want := map[string]float64{
		`kiumbridge_events_ingested_total`:                                          2,
		`kiumbridge_events_refused_total{reason="duplicate"}`:                       1,
		`kiumbridge_events_refused_total{reason="beyond_gap"}`:                      1,
		`kiumbridge_messages_refused_total{reason="malformed"}`:                     1,
		`kiumbridge_messages_refused_total{reason="unknown_centre"}`:                1,
		`kiumbridge_terminals_refused`:                                              2, // mangwon1/door (malformed) and nowhere/door
		`kiumbridge_logs_stalled`:                                                   0,
		`kiumbridge_texts_sent_total{provider="console"}`:                           3,
		`kiumbridge_texts_failed_total{provider="console",reason="unreachable"}`:    1,
		`kiumbridge_texts_failed_total{provider="console",reason="refused"}`:        0,
		`kiumbridge_texts_failed_total{provider="console",reason="timeout"}`:        0,
		`kiumbridge_texts_failed_total{provider="console",reason="provider_error"}`: 0,
		// The fixture's pending text, due in an hour.
		`kiumbridge_text_queue{state="pending"}`:                             1,
		`kiumbridge_text_queue{state="sending"}`:                             0,
		`kiumbridge_terminals_known`:                                         1,
		`kiumbridge_terminals_online`:                                        1,
		`kiumbridge_broker_up`:                                               1,
		`kiumbridge_centres`:                                                 1,
		`kiumbridge_rosters_published_total`:                                 1,
		`kiumbridge_healthy`:                                                 1,
		fmt.Sprintf(`kiumbridge_build_info{version=%q}`, cli.BuildVersion()): 1,
	}
	var mt map[string]float64
	var differ []string
	defer func() {
		if t.Failed() {
			t.Logf("the metrics that differ:\n%s\nkiumbridge's log:\n%s", strings.Join(differ, "\n"), log.String())
		}
	}()
	wait.For(t, 20*time.Second, "the metrics to count it all", func() bool {
		mt, differ = scrape(t, metricsAt), nil
		for name, v := range want {
			if got, ok := mt[name]; !ok || got != v {
				differ = append(differ, fmt.Sprintf("%s = %v (present %v), want %v", name, got, ok, v))
			}
		}
		slices.Sort(differ)
		return len(differ) == 0
	})
	// The fixture's pending text says it was queued at its tap,
	// 2026-11-23 14:05.
	queued := time.Date(2026, 11, 23, 14, 5, 0, 0, kst)
	if age, want := mt["kiumbridge_text_queue_oldest_age_seconds"], max(time.Since(queued).Seconds(), 0); math.Abs(age-want) > 60 {
		t.Errorf("kiumbridge_text_queue_oldest_age_seconds %v, want about %v", age, want)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := mt[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	if n := strings.Count(texts.String(), "SMS → "); n != 3 {
		t.Errorf("%d texts printed, want 3:\n%s\n%s", n, texts.String(), log.String())
	}
}
