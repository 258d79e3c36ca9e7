package bridge_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/daemon/clock/clocktest"
	"kiumtap/daemon/store"
	"kiumtap/daemon/uplink"
	"kiumtap/firmware"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/wait"
	"kiumtap/portal/bridge"
	"kiumtap/portal/devices"
	"kiumtap/portal/sms"
	portalstore "kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/protocol"
)

// countTexts is a provider that counts what it is asked to send.
type countTexts struct {
	mu   sync.Mutex
	keys map[string]int
}

func (*countTexts) Name() string { return "count" }

func (c *countTexts) Send(_ context.Context, m sms.Message) (sms.Receipt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys = map[string]int{}
	}
	c.keys[m.Key]++
	return sms.Receipt{ID: m.Key}, nil
}

// once waits until want texts reached the provider, then fails t unless
// each went exactly once and no other did.
func (c *countTexts) once(t testing.TB, want int) {
	t.Helper()
	wait.For(t, 60*time.Second, fmt.Sprintf("%d texts", want), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.keys) >= want
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, n := range c.keys {
		if n != 1 {
			t.Fatalf("text %s sent %d times", k, n)
		}
	}
	if len(c.keys) != want {
		t.Fatalf("%d texts, want %d", len(c.keys), want)
	}
}

// startTestBroker runs Mosquitto with the broker ACL for this package's
// terminal, mangwon1's "door", as kiumbridge device acl writes it, and one
// password per device (the shipped configuration takes a terminal's
// identity from its certificate: portal/devices tests that one).
func startTestBroker(t testing.TB) *mosqtest.Broker {
	return mosqtest.Start(t, testBrokerOptions(t, "max_queued_messages 100000\n"))
}

func testBrokerOptions(t testing.TB, extra string) mosqtest.Options {
	acl, err := devices.ACL("portal", []devices.Device{{Centre: "mangwon1", ID: "door"}})
	if err != nil {
		t.Fatal(err)
	}
	return mosqtest.Options{Users: map[string]string{"door": termPass, "portal": portalPass}, ACL: acl, Extra: extra}
}

func writeTestSource(t testing.TB, dir string) {
	raw, _ := json.Marshal(testSource(firmware.DateOf(time.Now())))
	if err := os.WriteFile(filepath.Join(dir, "mangwon1.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// streamMessages is the stream of devices terminals with perDevice taps
// each (check-ins and check-outs of c1, c2 and c5), batch events to a
// message, the terminals' messages interleaved. Topics go with them.
func streamMessages(devices, perDevice, batch int, log string) (topics []string, msgs [][]byte) {
	start := time.Now()
	kids := []string{"c1", "c2", "c5"}
	for first := 1; first <= perDevice; first += batch {
		for d := range devices {
			dev := fmt.Sprintf("door%d", d)
			b := protocol.Batch{V: 1}
			for seq := first; seq < first+batch && seq <= perDevice; seq++ {
				o := firmware.CheckIn
				if (seq/3)%2 == 1 {
					o = firmware.CheckOut
				}
				b.Events = append(b.Events, protocol.Event{V: 1, ID: fmt.Sprintf("%s-%d", dev, seq), Centre: "mangwon1", Device: dev, Log: log,
					Seq: uint64(seq), Time: start.Add(time.Duration(seq) * time.Second), ClockSynced: true, BootID: "00", Child: kids[seq%3],
					Outcome: string(o), Reason: "test", RosterRev: 1})
			}
			raw, _ := json.Marshal(b)
			msgs = append(msgs, raw)
			topics = append(topics, protocol.Topics{Centre: "mangwon1", Device: dev}.Events())
		}
	}
	return topics, msgs
}

// publisher publishes as the portal user: it may write every terminal's
// topics, so one connection can play many terminals.
func publisher(t testing.TB, broker string) mqtt.Client {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("terminals").SetUsername("portal").SetPassword(portalPass).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// publishAll sends the messages at QoS 1, all at once, then awaits them.
func publishAll(t testing.TB, c mqtt.Client, topics []string, msgs [][]byte) {
	toks := make([]mqtt.Token, len(msgs))
	for i, m := range msgs {
		toks[i] = c.Publish(topics[i], 1, false, m)
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

// runBridges starts n bridges on one shared subscription, sharing one
// store.
func runBridges(t testing.TB, broker string, st *boltstore.Store, srcDir string, n int, texts sms.Provider) ([]*bridge.Bridge, func()) {
	return runBridgesOn(t, broker, st.Contract(), srcDir, n, texts)
}

// runBridgesOn is runBridges on any store.
func runBridgesOn(t testing.TB, broker string, db portalstore.Store, srcDir string, n int, texts sms.Provider) ([]*bridge.Bridge, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var out []*bridge.Bridge
	for i := range n {
		b, err := bridge.New(bridge.Options{Broker: broker, Password: portalPass, ClientID: fmt.Sprintf("bridge%d", i), Key: portalKey,
			DB: db, SourceDir: srcDir, Provider: texts, From: "0212345678"})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
		wg.Add(1)
		go func() { defer wg.Done(); b.Run(ctx) }()
	}
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return out, stop
}

func stored(t testing.TB, st *boltstore.Store) (n int, inOrder bool) {
	inOrder = true
	var last uint64
	st.Events("mangwon1", func(e protocol.Event) bool {
		n++
		if e.Seq != last+1 {
			inOrder = false
		}
		last = e.Seq
		return true
	})
	return n, inOrder
}

// Two bridge instances on one shared subscription take a terminal's
// 10,000-event stream: every event stored once, in order, with its texts
// queued and sent once, and the terminal's outbox empty. They share the
// store (one process); across hosts a shared database is needed (README).
func TestTwoBridges(t *testing.T) {
	mq := startTestBroker(t)
	dir := t.TempDir()
	writeTestSource(t, dir)
	st, err := boltstore.Open(filepath.Join(dir, "bridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	texts := &countTexts{}
	bs, _ := runBridges(t, mq.URL(), st, dir, 2, texts)
	const n = 10_000
	tm := fillTerminal(t, filepath.Join(dir, "kiumtap.db"), mq.URL(), n)
	wait.For(t, 120*time.Second, "the terminal's outbox to empty", func() bool { f, _, _ := tm.Waiting(); return f == 0 })
	// The taps span days: each midnight adds the automatic check-outs
	// that close the day before.
	o, _ := tm.Outbox()
	got, inOrder := stored(t, st)
	if uint64(got) != o.LastSeq || got < n || !inOrder {
		t.Fatalf("%d of %d events stored (in order: %v)", got, o.LastSeq, inOrder)
	}
	var dup, byInstance []int
	for _, b := range bs {
		s := b.Stats()
		dup = append(dup, s.Ingest.Duplicates)
		byInstance = append(byInstance, s.Ingest.Stored)
	}
	if byInstance[0] == 0 || byInstance[1] == 0 {
		t.Fatalf("one instance did all the work: %v", byInstance)
	}
	want := 0
	st.Events("mangwon1", func(e protocol.Event) bool {
		if firmware.Outcome(e.Outcome).Accepted() { // automatic check-outs are texted too
			want += guardiansTexted[e.Child]
		}
		return true
	})
	texts.once(t, want)
	t.Logf("stored by instance %v, duplicates seen %v, %d texts", byInstance, dup, want)
}

// fillTerminal makes a terminal with n taps of c1, c2 and c5 in its outbox
// and starts its uplink.
func fillTerminal(t testing.TB, path, broker string, n int) *store.Store {
	return fillTerminalOn(t, path, []string{broker}, n)
}

// fillTerminalOn is fillTerminal with a list of brokers to fail over along.
func fillTerminalOn(t testing.TB, path string, brokers []string, n int) *store.Store {
	st, err := store.Open(store.Options{Path: path, DeviceID: "door", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	src := testSource(firmware.DateOf(time.Now()))
	if err := st.ApplyRoster(src.Roster, time.Now()); err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(time.Now())
	kids := []string{"c1", "c2", "c5"}
	for i := range n {
		clk.Add(70 * time.Second)
		if _, _, err := st.Tap(store.TapRequest{At: clk.Stamp(), CardKey: firmware.CardKey(centreKey, uids[kids[i%3]])}); err != nil {
			t.Fatal(err)
		}
	}
	o := uplink.Options{Brokers: brokers}
	if len(brokers) == 1 {
		o = uplink.Options{Broker: brokers[0]}
	}
	o.Centre, o.Device, o.Password, o.PortalKey, o.Store, o.Clock, o.ResendAfter = "mangwon1", "door", termPass, portalKey.Public().(ed25519.PublicKey), st, clk, 2*time.Second
	up, err := uplink.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); up.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return st
}
