package uplink

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/daemon/store"
	"kiumtap/firmware"
	"kiumtap/internal/wait"
	"kiumtap/protocol"
)

// BenchmarkOutboxDrain drains 100,000 queued events to Mosquitto with
// end-to-end acks (events/s: until the outbox is empty), and as a baseline
// has paho publish as many payloads of the same size at QoS 1 to the same
// broker as fast as it can, all published then all tokens awaited
// (baseline-events/s). ratio is the first over the second.
func BenchmarkOutboxDrain(b *testing.B) {
	const n = 100_000
	br := startBroker(b, "max_queued_messages 0\n")
	var drained, baseline time.Duration
	var size int
	for range b.N {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "k.db")
		fillOutbox(b, path, n)
		ev := firstEvent(b, path)
		size = len(ev)
		// The baseline first, with nobody subscribed: the broker's bare cost.
		baseline += publishBaseline(b, br.URL(), ev, n)
		p := newPortal(b, br.URL())
		tm := newTerminal(b, path, br.URL(), func(o *Options) {
			if w := os.Getenv("KIUMTAP_WINDOW"); w != "" {
				o.Window, _ = strconv.Atoi(w)
			}
		})
		b.StartTimer()
		start := time.Now()
		tm.run()
		wait.For(b, 10*time.Minute, "the outbox drained", func() bool { f, _ := tm.waiting(b); return f == 0 })
		drained += time.Since(start)
		b.StopTimer()
		if got := p.in.Stats().Stored; got != n {
			b.Fatalf("the portal stored %d of %d", got, n)
		}
		tm.stop()
		p.stop()
		b.StartTimer()
	}
	eps := float64(n*b.N) / drained.Seconds()
	base := float64(n*b.N) / baseline.Seconds()
	b.ReportMetric(eps, "events/s")
	b.ReportMetric(base, "baseline-events/s")
	b.ReportMetric(eps/base, "ratio")
	b.ReportMetric(float64(size), "bytes/event")
}

// fillOutbox taps n events into a new store quickly (no fsync: this is
// the setup, not the measure).
func fillOutbox(b *testing.B, path string, n int) {
	st, err := store.Open(store.Options{Path: path, DeviceID: device, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.ApplyRoster(sampleRoster(1), time.Now()); err != nil {
		b.Fatal(err)
	}
	clk := &clock{synced: true, start: time.Now()}
	for i := range n {
		if _, _, err := st.Tap(store.TapRequest{At: clk.Stamp(), CardKey: firmware.CardKey(key, []byte{byte(i % 3)})}); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Sync(); err != nil {
		b.Fatal(err)
	}
}

// firstEvent is the wire form of the first queued event: the baseline's
// payload.
func firstEvent(b *testing.B, path string) []byte {
	st, err := store.Open(store.Options{Path: path, DeviceID: device})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	up, err := New(Options{Broker: "tcp://unused:1", Centre: centre, Device: device, PortalKey: portalPub(), Store: st, Clock: &clock{synced: true, start: time.Now()}})
	if err != nil {
		b.Fatal(err)
	}
	var first store.Event
	st.Events(0, func(ev store.Event) bool { first = ev; return false })
	raw, err := json.Marshal(protocol.Batch{V: protocol.Version, Events: []protocol.Event{up.wire(first)}})
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func publishBaseline(b *testing.B, broker string, payload []byte, n int) time.Duration {
	// Another device of the centre, so as not to take over the terminal's
	// session; the ACL lets it publish its own events.
	const baseDevice = "T-baseline"
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(baseDevice).SetUsername(centre).SetPassword(termPass).SetCleanSession(true)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("baseline connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	topic := protocol.Topics{Centre: centre, Device: baseDevice}.Events()
	toks := make([]mqtt.Token, n)
	start := time.Now()
	for i := range n {
		toks[i] = c.Publish(topic, 1, false, payload)
	}
	for _, t := range toks {
		if !t.WaitTimeout(time.Minute) || t.Error() != nil {
			b.Fatalf("baseline publish: %v", t.Error())
		}
	}
	return time.Since(start)
}

// BenchmarkRosterApply takes a signed snapshot of a centre of 500
// children: signature, decoding, validation, digest and the store's
// atomic commit.
func BenchmarkRosterApply(b *testing.B) {
	b.Run("children=500", func(b *testing.B) {
		st, err := store.Open(store.Options{Path: filepath.Join(b.TempDir(), "k.db"), DeviceID: device})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		up, err := New(Options{Broker: "tcp://unused:1", Centre: centre, Device: device, PortalKey: portalPub(), Store: st, Clock: &clock{synced: true}})
		if err != nil {
			b.Fatal(err)
		}
		msgs := make([][]byte, b.N)
		for i := range b.N {
			msgs[i] = snapshotMsg(bigRoster(uint64(i+1), 500))
		}
		b.SetBytes(int64(len(msgs[0])))
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			if applied, err := up.takeSnapshot(msgs[i]); err != nil || !applied {
				b.Fatalf("snapshot %d: %v", i, err)
			}
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/op")
	})
}

// bigRoster is a centre of n children, each with a card and a regular
// booking, and a temporary booking for every tenth.
func bigRoster(rev uint64, n int) *firmware.Roster {
	r := sampleRoster(rev)
	mk := func(s string) firmware.Date { d, _ := firmware.ParseDate(s); return d }
	r.Children, r.Cards = nil, nil
	for i := range n {
		id := fmt.Sprintf("c%04d", i)
		r.Children = append(r.Children, firmware.Child{ID: id, Name: "김민준"})
		r.Cards = append(r.Cards, firmware.Card{Key: firmware.CardKey(key, []byte{byte(i), byte(i >> 8), 7, 7}), ChildID: id, State: firmware.CardActive})
		r.Bookings = append(r.Bookings, firmware.Booking{ID: "b" + id, ChildID: id, Type: firmware.Regular, Status: firmware.InUse,
			From: mk("2026-09-01"), To: mk("2026-12-31"), Weekdays: []time.Weekday{1, 2, 3, 4, 5}, Window: firmware.Window{Start: 14 * 60, End: 18 * 60}})
		if i%10 == 0 {
			r.Bookings = append(r.Bookings, firmware.Booking{ID: "t" + id, ChildID: id, Type: firmware.Temporary, Status: firmware.InUse,
				From: mk("2026-11-01"), To: mk("2026-11-30"), Dates: []firmware.Date{mk("2026-11-07"), mk("2026-11-14")}, Window: firmware.Window{Start: 9 * 60, End: 13 * 60}})
		}
	}
	return r
}
