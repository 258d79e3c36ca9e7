package fleet_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/firmware"
	"kiumtap/internal/fleet"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/wait"
	"kiumtap/portal/devices"
	"kiumtap/portal/ingest"
	"kiumtap/protocol"
)

var (
	portalKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	centreKey = []byte("fleet-centre-key")
)

const portalPass = "portal-secret"

// portal is a minimal portal on the real ingest: it takes the events of
// every terminal, stores them in memory in order and acks every 50 ms; it
// keeps its presence retained and publishes the centres' snapshots.
type portal struct {
	t    *testing.T
	in   *ingest.Ingest
	c    mqtt.Client
	drop atomic.Bool // drop every third events message, as a lossy broker
	n    atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func startPortal(t *testing.T, url string, in *ingest.Ingest, centres []string) *portal {
	p := &portal{t: t, in: in, stop: make(chan struct{}), done: make(chan struct{})}
	presence := protocol.PortalStatusTopic("portal-0")
	offline, _ := json.Marshal(protocol.PortalStatus{V: 1, State: "offline"})
	p.c = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("portal-0").SetUsername("portal").SetPassword(portalPass).
		SetCleanSession(true).SetBinaryWill(presence, offline, 1, true))
	if tok := p.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("portal: %v", tok.Error())
	}
	sub := p.c.Subscribe(protocol.Prefix+"/c/+/d/+/events", 1, func(_ mqtt.Client, m mqtt.Message) {
		if p.drop.Load() && p.n.Add(1)%3 == 0 {
			return
		}
		p.in.Take(m.Topic(), m.Payload(), time.Now())
	})
	if !sub.WaitTimeout(10*time.Second) || sub.Error() != nil {
		t.Fatalf("portal: subscribing: %v", sub.Error())
	}
	for _, c := range centres {
		r := fleet.Roster(c, 5, centreKey, firmware.DateOf(time.Now()))
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(protocol.Snapshot{V: 1, Kind: "snapshot", Centre: c, Digest: protocol.Digest(r), Roster: r})
		p.c.Publish(protocol.Topics{Centre: c}.Roster(), 1, true, protocol.Sign(portalKey, raw)).Wait()
	}
	online, _ := json.Marshal(protocol.PortalStatus{V: 1, State: "online", Time: time.Now().UTC()})
	p.c.Publish(presence, 1, true, online).Wait()
	go func() {
		defer close(p.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			p.in.Flush(time.Now())
			for _, a := range p.in.Acks(time.Now()) {
				p.c.Publish(a.Topic, 1, false, a.Payload)
			}
		}
	}()
	t.Cleanup(p.close)
	return p
}

// close stops the portal as a bridge does: offline, retained.
func (p *portal) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	<-p.done
	offline, _ := json.Marshal(protocol.PortalStatus{V: 1, State: "offline", Time: time.Now().UTC()})
	p.c.Publish(protocol.PortalStatusTopic("portal-0"), 1, true, offline).WaitTimeout(2 * time.Second)
	p.c.Disconnect(100)
}

// stored checks that every terminal's events are stored once, in order,
// and returns how many.
func stored(t *testing.T, mem *ingest.Memory) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, e := range mem.Events() {
		n[e.Device]++
		if e.Seq != uint64(n[e.Device]) {
			t.Fatalf("%s stored after %d events of %s", e.ID, n[e.Device]-1, e.Device)
		}
	}
	return n
}

// Six light terminals of two centres against a real Mosquitto and the
// portal's ingest: they take their rosters and store every tap once and
// in order through a lossy portal (go back on the ack's next), a portal
// away (sent again when it comes online, not after the resend timeout), a
// broker restart (reconnect, sent again) and refusals (held, then sent).
func TestFleet(t *testing.T) {
	centres := []string{"cA", "cB"}
	var devs []devices.Device
	users := map[string]string{"portal": portalPass}
	for _, c := range centres {
		for d := range 3 {
			id := fmt.Sprintf("%s-t%d", c, d)
			devs = append(devs, devices.Device{Centre: c, ID: id})
			users[id] = "pw-" + id
		}
	}
	acl, err := devices.ACL("portal", devs)
	if err != nil {
		t.Fatal(err)
	}
	mq := mosqtest.Start(t, mosqtest.Options{ACL: acl, Extra: mosqtest.BulkUsers(t, users)})

	// The broker checks passwords.
	bad := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL()).SetClientID(devs[0].ID).SetUsername(devs[0].ID).SetPassword("wrong"))
	if tok := bad.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		t.Fatal("a wrong password was taken")
	}

	var refuseB atomic.Bool
	mem := ingest.NewMemory()
	in := ingest.New(mem, ingest.Options{Centre: func(c string) bool { return c != "cB" || !refuseB.Load() }})
	p := startPortal(t, mq.URL(), in, centres)

	f, err := fleet.New(fleet.Settings{PortalKey: portalKey.Public().(ed25519.PublicKey), ResendAfter: 30 * time.Second,
		Heartbeat: time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond, ProbeEvery: 100 * time.Millisecond,
		ReconnectSpread: 100 * time.Millisecond, Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if _, err := f.Add(d.Centre, d.ID, users[d.ID], []string{mq.URL()}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	wg.Go(func() { f.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); f.Stop(4) })
	if err := f.ConnectAll(t.Context(), 100, 3); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "every terminal connected with its roster", func() bool {
		for _, tm := range f.Terminals() {
			if !tm.Connected() || tm.RosterRevision() != 1 {
				return false
			}
		}
		return true
	})

	tapAll := func(n int) {
		for range n {
			for _, tm := range f.Terminals() {
				r := fleet.Roster(tm.Centre(), 5, centreKey, firmware.DateOf(time.Now()))
				tm.Tap(r.Children[0].ID, r.Cards[0].Key, firmware.CheckIn, firmware.ReasonArrival)
			}
		}
	}
	want := 0
	drained := func(what string, within time.Duration) {
		t.Helper()
		wait.For(t, within, what, func() bool {
			if f.Pending() != 0 {
				return false
			}
			for _, n := range stored(t, mem) {
				if n != want {
					return false
				}
			}
			return len(stored(t, mem)) == len(devs)
		})
	}

	// Taps, a third of their messages lost on the way: the ack's next
	// sends them again (the resend timeout is 30 s: it plays no part;
	// what goes again is not lost, or the terminals, in recovery, would
	// wait for the timeout as the protocol says).
	p.drop.Store(true)
	tapAll(30)
	p.drop.Store(false)
	want += 30
	drained("the taps through a lossy portal", 10*time.Second)
	if s := f.Stats(); s.Resends == 0 {
		t.Fatalf("nothing sent again through the losses: %+v", s)
	}

	// The portal away: taps go nowhere (clean sessions); its presence
	// online sends them again at once.
	p.close()
	tapAll(5)
	want += 5
	time.Sleep(300 * time.Millisecond)
	p = startPortal(t, mq.URL(), in, centres)
	drained("the taps made while the portal was away", 5*time.Second)

	// A broker restart, taps while it is down.
	connects := f.Stats().Connects
	mq.Stop()
	wait.For(t, 5*time.Second, "the terminals to see the broker gone", func() bool { return f.Connected() == 0 })
	p.close()
	tapAll(5)
	want += 5
	mq.Resume()
	p = startPortal(t, mq.URL(), in, centres)
	drained("the taps made while the broker was down", 15*time.Second)
	if s := f.Stats(); s.Connects < connects+len(devs) {
		t.Fatalf("%d connects after the restart, want %d more than %d", s.Connects, len(devs), connects)
	}

	// Centre cB refused for a while: its terminals hold, then send.
	refuseB.Store(true)
	tapAll(3)
	want += 3
	wait.For(t, 5*time.Second, "refusals taken", func() bool { return f.Stats().Refused >= 3 })
	refuseB.Store(false)
	drained("the taps refused for a while", 15*time.Second)
	t.Logf("stats: %+v", f.Stats())
}
