package bridge_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/daemon/clock/clocktest"
	"kiumtap/daemon/store"
	"kiumtap/daemon/terminal"
	"kiumtap/daemon/uplink"
	"kiumtap/firmware"
	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
	"kiumtap/internal/pgtest"
	"kiumtap/internal/wait"
	"kiumtap/portal/sms"
	portalstore "kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/portal/store/pgstore"
	"kiumtap/protocol"
)

// BenchmarkBridgeIngest: 100 terminals' live taps, 200 each, every tap
// its own message (as a terminal sends a tap the moment it happens),
// published at QoS 1 through Mosquitto: events/s until the bridge has
// stored every event with its texts queued, and acknowledged it. The
// baseline, in the same run, is a bare paho subscriber receiving the same
// stream at QoS 1 through the same broker (baseline-events/s).
//
// store=bbolt runs the bridge on its embedded store; store=postgres on a
// private PostgreSQL (internal/pgtest) that syncs its commits as bbolt
// does, a fresh database per iteration, as several hosts' bridges would
// share it.
func BenchmarkBridgeIngest(b *testing.B) {
	for _, kind := range []string{"bbolt", "postgres"} {
		b.Run("store="+kind, func(b *testing.B) { benchIngest(b, kind) })
	}
}

func benchIngest(b *testing.B, kind string) {
	const devices, per = 100, 200
	// PostgreSQL syncing every commit to disk, as a deployment's does
	// (pgtest's other clusters skip the syncs): measured as bbolt is,
	// every commit on disk before the events are acknowledged.
	var pg *pgtest.Cluster
	if kind == "postgres" {
		pg = pgtest.StartDurable(b)
	}
	const n = devices * per
	mq := startTestBroker(b)
	pub := publisher(b, mq.URL())
	var ingest, baseline time.Duration
	for i := range b.N {
		b.StopTimer()
		// Baseline: a bare subscriber.
		var got atomic.Int64
		done := make(chan struct{})
		topics, msgs := streamMessages(devices, per, 1, "base")
		sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL()).SetClientID("bare").SetUsername("portal").SetPassword(portalPass))
		if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		want := int64(totalBytes(msgs))
		var once sync.Once
		sub.Subscribe(protocol.Prefix+"/c/+/d/+/events", 1, func(_ mqtt.Client, m mqtt.Message) {
			if got.Add(int64(len(m.Payload()))) >= want {
				once.Do(func() { close(done) })
			}
		}).Wait()
		start := time.Now()
		publishAll(b, pub, topics, msgs)
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Fatal("the bare subscriber did not get the stream")
		}
		baseline += time.Since(start)
		sub.Disconnect(100)

		// The bridge.
		dir := b.TempDir()
		writeTestSource(b, dir)
		db, closeDB := benchStore(b, kind, dir, pg)
		bs, stop := runBridgesOn(b, mq.URL(), db, dir, 1, &countTexts{})
		waitOnline(b, mq.URL(), 1)
		topics, msgs = streamMessages(devices, per, 1, fmt.Sprintf("L%d", i))
		b.StartTimer()
		start = time.Now()
		publishAll(b, pub, topics, msgs)
		for deadline := time.Now().Add(5 * time.Minute); bs[0].Stats().Ingest.Stored < n; {
			if st := bs[0].Status(); time.Now().After(deadline) || st.Stats.Ingest.OutOfOrder > 0 {
				// Beyond a gap: a message lost on the way, which no
				// terminal is here to send again.
				b.Fatalf("the bridge stored %d of %d events: %+v", st.Stats.Ingest.Stored, n, st)
			}
			time.Sleep(time.Millisecond)
		}
		ingest += time.Since(start)
		b.StopTimer()
		stop()
		closeDB()
	}
	eps := float64(n*b.N) / ingest.Seconds()
	base := float64(n*b.N) / baseline.Seconds()
	b.ReportMetric(eps, "events/s")
	b.ReportMetric(base, "baseline-events/s")
	b.ReportMetric(eps/base, "ratio")
}

// timedDoor is a terminal on the timed emulator, its uplink on the
// broker: door of mangwon1, its roster received.
type timedDoor struct {
	probe *rc522emu.REQAProbe
	chip  *rc522emu.Chip
	clk   *clocktest.Clock
}

func startTimedDoor(b testing.TB, broker, dir string) *timedDoor {
	b.Helper()
	d := &timedDoor{probe: &rc522emu.REQAProbe{}}
	d.chip = rc522emu.New(rc522emu.Options{Timed: true, OnFrame: d.probe.OnFrame})
	b.Cleanup(func() { d.chip.Close() })
	dev, err := rc522.New(d.chip, d.chip.RST(), d.chip.IRQ(), rc522.Options{})
	if err != nil {
		b.Fatal(err)
	}
	tst, err := store.Open(store.Options{Path: filepath.Join(dir, "kiumtap.db"), DeviceID: "door"})
	if err != nil {
		b.Fatal(err)
	}
	// Today at 06:00 KST, whatever the hour: the taps' minutes added up
	// stay within the day (crossing midnight would roll the child out).
	now := time.Now().In(firmware.KST)
	d.clk = clocktest.New(time.Date(now.Year(), now.Month(), now.Day(), 6, 0, 0, 0, firmware.KST))
	var term *terminal.Terminal
	up, err := uplink.New(uplink.Options{Broker: broker, Centre: "mangwon1", Device: "door", Password: termPass,
		PortalKey: portalKey.Public().(ed25519.PublicKey), Store: tst, Clock: d.clk,
		Enrol: func(child, by string) ([]string, error) { return term.EnrolFor(child, by) }})
	if err != nil {
		b.Fatal(err)
	}
	term, err = terminal.New(terminal.Options{Store: tst, Clock: d.clk, Key: centreKey, Show: func(firmware.Feedback) {},
		Tapped: func(store.Event, firmware.Decision) { up.Notify() },
		Bound:  func(store.Event, firmware.BindingChange) { up.Notify() }})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	events := make(chan rc522.Event, 16)
	wg.Add(3)
	go func() { defer wg.Done(); dev.Run(ctx, events) }()
	go func() { defer wg.Done(); term.Run(ctx, events) }()
	go func() { defer wg.Done(); up.Run(ctx) }()
	b.Cleanup(func() { cancel(); wg.Wait(); tst.Close() })
	deadline := time.Now().Add(5 * time.Minute)
	for _, _, err := tst.Roster(); err != nil; _, _, err = tst.Roster() {
		if time.Now().After(deadline) {
			b.Fatal("no roster at the terminal")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d
}

func totalBytes(msgs [][]byte) int {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	return n
}

// BenchmarkTapToText: from the REQA that finds a card on the timed
// emulator to the fake provider receiving the text request, through the
// terminal (decision, journal), its uplink, Mosquitto and the bridge
// (ingest, store, text queue). Each op is one check-in or check-out.
func BenchmarkTapToText(b *testing.B) {
	mq := startTestBroker(b)
	dir := b.TempDir()
	writeTestSource(b, dir)
	st, err := boltstore.Open(filepath.Join(dir, "bridge.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	received := make(chan time.Time, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"id":"x"}`))
		select {
		case received <- at:
		default:
		}
	}))
	defer hook.Close()
	_, stopBridge := runBridges(b, mq.URL(), st, dir, 1, sms.NewWebhook(sms.WebhookOptions{URL: hook.URL, Secret: hookSecret}))
	defer stopBridge()

	door := startTimedDoor(b, mq.URL(), dir)
	probe, chip, clk := door.probe, door.chip, door.clk
	card := rc522emu.NewCard(uids["c2"], rc522emu.CardOptions{}) // one guardian: one text per tap
	var lat []float64
	b.ResetTimer()
	for i := range b.N {
		clk.Add(3 * time.Minute) // beyond the duplicate window: in, out, in…
		time.Sleep(time.Duration(i*7919%45) * time.Millisecond)
		select {
		case <-received:
			b.Fatal("a text came with no tap")
		default:
		}
		probe.Placed()
		chip.Place(card)
		var at time.Time
		select {
		case at = <-received:
		case <-time.After(10 * time.Second):
			b.Fatal("no text request within 10 s")
		}
		first := probe.First()
		if first.IsZero() {
			b.Fatal("a text before the card's first REQA")
		}
		lat = append(lat, float64(at.Sub(first))/float64(time.Millisecond))
		chip.Remove(card)
		time.Sleep(300 * time.Millisecond) // until it is seen leaving
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[min(len(lat)-1, len(lat)*99/100)], "p99-ms")
}

// benchStore opens a bridge store of kind bbolt (in dir) or postgres (a
// fresh database on the test binary's cluster).
func benchStore(b *testing.B, kind, dir string, pg *pgtest.Cluster) (portalstore.Store, func()) {
	if kind == "bbolt" {
		st, err := boltstore.Open(filepath.Join(dir, "bridge.db"))
		if err != nil {
			b.Fatal(err)
		}
		return st.Contract(), func() { st.Close() }
	}
	db, err := pgstore.Open(context.Background(), pg.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	return db, func() { db.Close() }
}

// waitOnline waits until n bridge connections say they listen (their
// retained presence online: published once subscribed).
func waitOnline(t testing.TB, broker string, n int) {
	t.Helper()
	var mu sync.Mutex
	online := map[string]bool{}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("online-watch").SetUsername("portal").SetPassword(portalPass))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(50)
	c.Subscribe(protocol.PortalStatusTopic("+"), 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		online[m.Topic()] = strings.Contains(string(m.Payload()), `"online"`)
	}).Wait()
	wait.For(t, 30*time.Second, "the bridges online", func() bool {
		mu.Lock()
		defer mu.Unlock()
		k := 0
		for _, on := range online {
			if on {
				k++
			}
		}
		return k >= n
	})
}
