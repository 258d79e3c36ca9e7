package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/firmware"
	"kiumtap/internal/wait"
	"kiumtap/portal/bridge"
	"kiumtap/portal/sms"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/protocol"
)

// gate is a provider whose sends wait until the test opens the gate (or
// their context ends), and which says when each send began.
type gate struct {
	open    chan struct{}
	started chan string
	mu      sync.Mutex
	done    map[string]bool
}

func newGate() *gate {
	return &gate{open: make(chan struct{}), started: make(chan string, 64), done: map[string]bool{}}
}

func (*gate) Name() string { return "gate" }

func (g *gate) Send(ctx context.Context, m sms.Message) (sms.Receipt, error) {
	g.started <- m.Key
	select {
	case <-g.open:
	case <-ctx.Done():
		return sms.Receipt{}, &sms.Error{Provider: "gate", Reason: "cut short", Err: ctx.Err()}
	}
	g.mu.Lock()
	g.done[m.Key] = true
	g.mu.Unlock()
	return sms.Receipt{ID: m.Key}, nil
}

// watcher records, as the portal user, the acks and the bridges' presence.
type watcher struct {
	mu       sync.Mutex
	through  map[string]uint64 // ack topic -> highest sequence acked
	presence map[string]string // topic -> last state
}

func watch(t *testing.T, broker string) *watcher {
	w := &watcher{through: map[string]uint64{}, presence: map[string]string{}}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("watcher").SetUsername("portal").SetPassword(portalPass))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.SubscribeMultiple(map[string]byte{"kium/v1/c/+/d/+/ack": 1, protocol.PortalStatusFilter: 1}, func(_ mqtt.Client, m mqtt.Message) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if a, err := protocol.DecodeAck(m.Payload()); err == nil {
			w.through[m.Topic()] = max(w.through[m.Topic()], a.Through(1))
		} else if p, err := protocol.DecodePortalStatus(m.Payload()); err == nil {
			w.presence[m.Topic()] = p.State
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	return w
}

func (w *watcher) acked(topic string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.through[topic]
}

func (w *watcher) state(topic string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.presence[topic]
}

func arrival(seq uint64) []byte {
	raw, _ := json.Marshal(protocol.Batch{V: 1, Events: []protocol.Event{{V: 1, ID: fmt.Sprintf("door-%d", seq), Centre: "mangwon1", Device: "door", Log: "L",
		Seq: seq, Time: time.Now(), ClockSynced: true, BootID: "00", Child: "c2", Outcome: string(firmware.CheckIn), Reason: "test", RosterRev: 1}}})
	return raw
}

// A bridge told to stop (SIGTERM) says it is online once subscribed, then,
// stopping: stores and acknowledges the events it took, lets the text in
// flight finish and records it as sent (no second text after a restart),
// and says it is offline. A text that does not finish within StopTimeout
// is cut short and left pending, to go again with the same key.
func TestGracefulStop(t *testing.T) {
	for _, finishes := range []bool{true, false} {
		t.Run(map[bool]string{true: "the text in flight finishes", false: "the provider hangs past the stop timeout"}[finishes], func(t *testing.T) {
			mq := startTestBroker(t)
			w := watch(t, mq.URL())
			dir := t.TempDir()
			writeTestSource(t, dir)
			st, err := boltstore.Open(filepath.Join(dir, "bridge.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			g := newGate()
			b, err := bridge.New(bridge.Options{Broker: mq.URL(), Password: portalPass, ClientID: "kb", Key: portalKey, Store: st, SourceDir: dir,
				Provider: g, From: "0212345678", StopTimeout: 2 * time.Second, AckEvery: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() { ran <- b.Run(ctx) }()
			presence := protocol.PortalStatusTopic("kb-0")
			wait.For(t, 10*time.Second, "the bridge online", func() bool { return w.state(presence) == "online" })

			pub := publisher(t, mq.URL())
			events := protocol.Topics{Centre: "mangwon1", Device: "door"}.Events()
			publishAll(t, pub, []string{events}, [][]byte{arrival(1)})
			var key string
			select {
			case key = <-g.started:
			case <-time.After(10 * time.Second):
				t.Fatal("no text began")
			}
			// Acks go once an hour here: the events taken are acknowledged
			// only by the stop.
			publishAll(t, pub, []string{events, events}, [][]byte{arrival(2), arrival(3)})
			wait.For(t, 10*time.Second, "events taken", func() bool { return b.Stats().Ingest.Stored >= 3 })
			cancel()
			if finishes {
				close(g.open)
			}
			select {
			case <-ran:
			case <-time.After(15 * time.Second):
				t.Fatal("the stop did not end")
			}
			ack := protocol.Topics{Centre: "mangwon1", Device: "door"}.Ack()
			wait.For(t, 5*time.Second, "the last ack, through 3", func() bool { return w.acked(ack) == 3 })
			wait.For(t, 5*time.Second, "the bridge offline", func() bool { return w.state(presence) == "offline" })
			var state string
			st.Jobs(func(j store.Job) bool {
				if j.ID == key {
					state = j.State
				}
				return true
			})
			want := store.JobSent
			if !finishes {
				want = store.JobPending
			}
			if state != want {
				t.Fatalf("the text in flight at the stop is %q, want %q", state, want)
			}
		})
	}
}
