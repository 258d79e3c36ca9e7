package uplink

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/daemon/store"
	"kiumtap/firmware"
	"kiumtap/internal/chaosproxy"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/wait"
	"kiumtap/portal/devices"
	"kiumtap/portal/ingest"
	"kiumtap/protocol"
)

const (
	centre   = "mangwon1"
	device   = "T-1"
	termPass = "terminal-secret"
	portPass = "portal-secret"
)

var portalPriv = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

func portalPub() ed25519.PublicKey { return portalPriv.Public().(ed25519.PublicKey) }

// brokerACL is the broker ACL for this package's terminal, as `kiumbridge
// device acl` writes it (portal/devices): the tests run under it.
func brokerACL(t testing.TB) string {
	acl, err := devices.ACL("portal", []devices.Device{{Centre: centre, ID: device}})
	if err != nil {
		t.Fatal(err)
	}
	return acl
}

// brokerUsers: the terminal's password (with the shipped configuration a
// terminal is its certificate; tests on the plain listener use one
// password per device), and the portal's.
var brokerUsers = map[string]string{device: termPass, "portal": portPass}

func startBroker(t testing.TB, extra string) *mosqtest.Broker {
	return mosqtest.Start(t, mosqtest.Options{Users: brokerUsers, ACL: brokerACL(t), Extra: extra})
}

type clock struct {
	mu     sync.Mutex
	synced bool
	start  time.Time
}

func (c *clock) Stamp() store.Stamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if !c.synced {
		// A Pi without RTC: 1970 plus the time since boot.
		return store.Stamp{Time: time.Unix(0, 0).Add(now.Sub(c.start)), BootID: [16]byte{9}, Mono: now.Sub(c.start)}
	}
	return store.Stamp{Time: now, Synced: true, BootID: [16]byte{9}, Mono: now.Sub(c.start)}
}

func sampleRoster(rev uint64) *firmware.Roster {
	mk := func(s string) firmware.Date { d, _ := firmware.ParseDate(s); return d }
	return &firmware.Roster{
		Revision: rev,
		Centre: firmware.Centre{ID: centre, Name: "망원1동", Terms: []firmware.Term{
			{Name: "연중", From: mk("1970-01-01"), To: mk("2099-12-31"), Hours: firmware.Window{Start: 0, End: 24 * 60}, Weekdays: []time.Weekday{0, 1, 2, 3, 4, 5, 6}},
		}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}},
		Cards:    []firmware.Card{{Key: firmware.CardKey(key, []byte{1}), ChildID: "c1", State: firmware.CardActive}},
	}
}

var key = []byte("centre-key-0123456789")

// terminal is a store with a roster and an uplink on it.
type terminal struct {
	st   *store.Store
	up   *Uplink
	clk  *clock
	run  func() // starts the uplink; stopped at cleanup
	stop func() // stops it and closes the store; also at cleanup
}

func newTerminal(t testing.TB, path, broker string, mod func(*Options)) *terminal {
	st, err := store.Open(store.Options{Path: path, DeviceID: device})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Roster(); err != nil {
		if err := st.ApplyRoster(sampleRoster(1), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{synced: true, start: time.Now()}
	o := Options{Broker: broker, Centre: centre, Device: device, Password: termPass, PortalKey: portalPub(),
		Store: st, Clock: clk, ResendAfter: 2 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond, Heartbeat: time.Second}
	if mod != nil {
		mod(&o)
	}
	up, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	tm := &terminal{st: st, up: up, clk: clk}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tm.run = func() { wg.Add(1); go func() { defer wg.Done(); up.Run(ctx) }() }
	var once sync.Once
	tm.stop = func() { once.Do(func() { cancel(); wg.Wait(); st.Close() }) }
	t.Cleanup(tm.stop)
	return tm
}

func (tm *terminal) tap(t testing.TB, uid byte) store.Event {
	t.Helper()
	ev, _, err := tm.st.Tap(store.TapRequest{At: tm.clk.Stamp(), CardKey: firmware.CardKey(key, []byte{uid})})
	if err != nil {
		t.Fatal(err)
	}
	tm.up.Notify()
	return ev
}

func (tm *terminal) waiting(t testing.TB) (uint64, uint64) {
	f, l, err := tm.st.Waiting()
	if err != nil {
		t.Fatal(err)
	}
	return f, l
}

// portal is the portal's side for tests: it stores events through
// ingest, acknowledges them every 50 ms, and records what else terminals
// send. With several brokers it does what docs/protocol.md asks of a
// portal ("Several brokers"): it listens on every one, into one ingest,
// and publishes acks (and, by publish, rosters and commands) on every one.
type portal struct {
	t    testing.TB
	urls []string
	cs   []mqtt.Client // one per broker, in urls' order
	mem  *ingest.Memory
	in   *ingest.Ingest

	onEvent func(*protocol.Event) // set before events flow; optional
	stop    func()

	mu       sync.Mutex
	replies  []protocol.Reply
	statuses []protocol.Status
	received int // event messages, duplicates included
	// receivedOn counts event messages by broker; statusOn is the last
	// status each broker delivered.
	receivedOn map[string]int
	statusOn   map[string]protocol.Status
}

func newPortal(t testing.TB, brokers ...string) *portal {
	p := &portal{t: t, urls: brokers, mem: ingest.NewMemory(), receivedOn: map[string]int{}, statusOn: map[string]protocol.Status{}}
	p.in = ingest.New(p.mem, ingest.Options{})
	for _, broker := range brokers {
		o := mqtt.NewClientOptions().AddBroker(broker).SetClientID("portal-test").SetUsername("portal").SetPassword(portPass).
			SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).
			SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond).
			SetOnConnectHandler(func(c mqtt.Client) {
				c.Subscribe("kium/v1/c/+/d/+/events", 1, func(_ mqtt.Client, m mqtt.Message) {
					p.mu.Lock()
					p.received++
					p.receivedOn[broker]++
					f := p.onEvent
					p.mu.Unlock()
					if f != nil {
						if evs, err := protocol.DecodeBatch(m.Payload()); err == nil {
							for i := range evs {
								f(&evs[i])
							}
						}
					}
					if err := p.in.Handle(m.Topic(), m.Payload(), time.Now()); err != nil {
						t.Errorf("portal: %v", err)
					}
				})
				c.Subscribe("kium/v1/c/+/d/+/reply", 1, func(_ mqtt.Client, m mqtt.Message) {
					var r protocol.Reply
					json.Unmarshal(m.Payload(), &r)
					p.mu.Lock()
					p.replies = append(p.replies, r)
					p.mu.Unlock()
				})
				c.Subscribe("kium/v1/c/+/d/+/status", 1, func(_ mqtt.Client, m mqtt.Message) {
					var s protocol.Status
					json.Unmarshal(m.Payload(), &s)
					p.mu.Lock()
					p.statuses = append(p.statuses, s)
					p.statusOn[broker] = s
					p.mu.Unlock()
				})
			})
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("portal connect to %s: %v", broker, tok.Error())
		}
		p.cs = append(p.cs, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				for _, a := range p.in.Acks(now) {
					for _, c := range p.cs {
						c.Publish(a.Topic, 1, false, a.Payload)
					}
				}
			}
		}
	}()
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			for _, c := range p.cs {
				c.Disconnect(100)
			}
		})
	}
	t.Cleanup(p.stop)
	return p
}

// publish publishes on every broker.
func (p *portal) publish(topic string, retained bool, payload []byte) {
	p.t.Helper()
	for _, url := range p.urls {
		p.publishOn(url, topic, retained, payload)
	}
}

// publishOn publishes on one broker only.
func (p *portal) publishOn(broker, topic string, retained bool, payload []byte) {
	p.t.Helper()
	c := p.cs[slices.Index(p.urls, broker)]
	if tok := c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		p.t.Fatalf("portal publish %s on %s: %v", topic, broker, tok.Error())
	}
}

// waitQuiet waits until no event message has come for 300 ms: what a
// killed terminal had on the wire has arrived.
func (p *portal) waitQuiet(t testing.TB) {
	t.Helper()
	count := func() int { p.mu.Lock(); defer p.mu.Unlock(); return p.received }
	last, since := count(), time.Now()
	wait.For(t, 30*time.Second, "the wire to go quiet", func() bool {
		if c := count(); c != last {
			last, since = c, time.Now()
		}
		return time.Since(since) > 300*time.Millisecond
	})
}

func (p *portal) lastStatus() protocol.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.statuses) == 0 {
		return protocol.Status{}
	}
	return p.statuses[len(p.statuses)-1]
}

// checkStream checks the portal stored seq from..to of the terminal's
// log, each once, in order.
func checkStream(t testing.TB, p *portal, log string, from, to uint64) {
	t.Helper()
	next := from
	for _, e := range p.mem.Events() {
		if e.Log != log {
			continue
		}
		if e.Seq != next {
			t.Fatalf("the portal stored seq %d where %d was due", e.Seq, next)
		}
		next++
	}
	if next != to+1 {
		t.Fatalf("the portal stored up to %d, want %d", next-1, to)
	}
}

func snapshotMsg(r *firmware.Roster) []byte {
	raw, _ := json.Marshal(protocol.Snapshot{V: protocol.Version, Kind: "snapshot", Centre: r.Centre.ID, Digest: protocol.Digest(r), Roster: r})
	return protocol.Sign(portalPriv, raw)
}

// Events flow to the portal and leave the outbox once acknowledged; the
// status is retained and the will says offline.
func TestEventsAcknowledged(t *testing.T) {
	b := startBroker(t, "")
	p := newPortal(t, b.URL())
	tm := newTerminal(t, filepath.Join(t.TempDir(), "k.db"), b.URL(), nil)
	for range 50 {
		tm.tap(t, 1)
	}
	tm.run()
	wait.For(t, 10*time.Second, "the outbox to empty", func() bool { f, _ := tm.waiting(t); return f == 0 })
	checkStream(t, p, tm.st.LogID(), 1, 50)
	wait.For(t, 5*time.Second, "an online status", func() bool { return p.lastStatus().State == "online" })
	// The count follows the outbox's deletes a moment later (the same
	// ack's handling): wait for it, then check it is exact.
	wait.For(t, 5*time.Second, "50 events counted as acknowledged", func() bool { return tm.up.Stats().Acked >= 50 })
	if s := tm.up.Stats(); s.Acked != 50 {
		t.Fatalf("stats %+v", s)
	}
}

// TestChaos: 10,000 events while a proxy cuts the link every 0.5–5 s and
// the broker restarts three times. Every event is acknowledged, the portal
// stores each once and in order; duplicates are counted.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	b := startBroker(t, "")
	px := chaos(t, b.Addr())
	p := newPortal(t, b.URL())
	tm := newTerminal(t, filepath.Join(t.TempDir(), "k.db"), px.URL(), nil)
	tm.run()
	// 10,000 taps over some 20 s, 5 every 10 ms; the broker restarts at
	// 5, 10 and 15 s.
	const n = 10_000
	restarts := make(chan struct{})
	go func() {
		defer close(restarts)
		for range 3 {
			time.Sleep(5 * time.Second) // a schedule, not a wait for state
			b.Restart()
		}
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	for i := 0; i < n; {
		<-tick.C
		for range 5 {
			tm.tap(t, byte(1+i%3))
			i++
		}
	}
	tick.Stop()
	<-restarts
	wait.For(t, 120*time.Second, "every event acknowledged", func() bool { f, _ := tm.waiting(t); return f == 0 })
	checkStream(t, p, tm.st.LogID(), 1, n)
	st, ps := tm.up.Stats(), p.in.Stats()
	t.Logf("%d cuts, %d connects, %d published (%d times sent again on loss), portal: %d stored, %d duplicates, %d beyond a gap",
		px.Cuts(), st.Connects, st.Published, st.Resends, ps.Stored, ps.Duplicates, ps.OutOfOrder)
	// Cuts and restarts may fall on one interruption (a cut while the
	// broker is down, a restart just after a cut): four reconnects at
	// least, not one per cut and restart.
	if px.Cuts() < 3 || st.Connects < 5 {
		t.Fatalf("the link was not cut enough to prove anything: %d cuts, %d connects", px.Cuts(), st.Connects)
	}
}

// A retained snapshot sets the roster; deltas move it on; a gap, a digest
// mismatch, a replay, a bad signature, malformed JSON and an oversized
// message are refused, reported in the status, and leave the roster.
func TestRosterMessages(t *testing.T) {
	b := startBroker(t, "")
	p := newPortal(t, b.URL())
	topics := protocol.Topics{Centre: centre, Device: device}
	p.publish(topics.Roster(), true, snapshotMsg(sampleRoster(5)))
	tm := newTerminal(t, filepath.Join(t.TempDir(), "k.db"), b.URL(), nil)
	tm.run()
	rev := func() uint64 { r, _, _ := tm.st.Roster(); return r.Revision }
	wait.For(t, 10*time.Second, "the snapshot", func() bool { return rev() == 5 })

	delta := func(base, next uint64, digestOf *firmware.Roster, mutate func(*protocol.Delta)) []byte {
		d := protocol.Delta{V: protocol.Version, Kind: "delta", Centre: centre, Base: base, Revision: next, Digest: protocol.Digest(digestOf),
			Children: protocol.Changes[firmware.Child]{Upsert: []firmware.Child{{ID: fmt.Sprintf("c%d", next), Name: "새아이"}}}}
		if mutate != nil {
			mutate(&d)
		}
		raw, _ := json.Marshal(d)
		return protocol.Sign(portalPriv, raw)
	}
	withChild := func(rev uint64, ids ...uint64) *firmware.Roster {
		r := sampleRoster(rev)
		for _, id := range ids {
			r.Children = append(r.Children, firmware.Child{ID: fmt.Sprintf("c%d", id), Name: "새아이"})
		}
		return r
	}
	r6 := withChild(6, 6)
	_, wrongKey, _ := ed25519.GenerateKey(nil)
	good6 := delta(5, 6, r6, nil)
	unsigned, _ := json.Marshal(protocol.Signed{V: 1, Payload: []byte(`{}`)})

	rejections := func() int { return tm.up.Stats().Rejected }
	for _, tc := range []struct {
		name    string
		topic   string
		msg     []byte
		wantRev uint64
		reject  string // in the reason; "" = accepted silently
	}{
		{"delta 5→6", topics.Delta(), good6, 6, ""},
		{"the same delta again", topics.Delta(), good6, 6, ""},
		{"replay of an older delta", topics.Delta(), delta(4, 5, sampleRoster(5), nil), 6, "older"},
		{"bad signature", topics.Delta(), protocol.Sign(wrongKey, []byte(`{}`)), 6, "signature"},
		{"unsigned", topics.Delta(), unsigned, 6, "unsigned"},
		{"malformed JSON", topics.Delta(), []byte(`{"v":1,"payload":`), 6, "signed message"},
		{"oversized", topics.Delta(), make([]byte, protocol.MaxRoster+10), 6, "more than"},
		{"digest mismatch", topics.Delta(), delta(6, 7, r6, nil), 6, "digest"},
		{"older snapshot (replay)", topics.Roster(), snapshotMsg(sampleRoster(3)), 6, "older"},
		// The retained snapshot is 5: a gap asks for it, and a newer one
		// published then is taken.
		{"gap 8→9", topics.Delta(), delta(8, 9, withChild(9, 9), nil), 6, "does not follow"},
	} {
		before := rejections()
		p.publish(tc.topic, false, tc.msg)
		if tc.reject != "" {
			// The refusal, and the status reporting one after it.
			var at time.Time
			wait.For(t, 10*time.Second, tc.name+": a rejection for "+tc.reject, func() bool {
				st := tm.up.Stats()
				for _, r := range st.Rejections[max(0, len(st.Rejections)-(st.Rejected-before)):] {
					if strings.Contains(r.Reason, tc.reject) {
						at = r.Time
						return true
					}
				}
				return false
			})
			wait.For(t, 5*time.Second, tc.name+": the rejection in the status", func() bool {
				s := p.lastStatus()
				return s.Rejected != nil && !s.Rejected.Time.Before(at)
			})
		} else {
			wait.For(t, 10*time.Second, tc.name, func() bool { return rev() == tc.wantRev })
		}
		if got := rev(); got != tc.wantRev {
			t.Fatalf("%s: revision %d, want %d", tc.name, got, tc.wantRev)
		}
	}
	// After the gap the terminal subscribed to the snapshot again: the
	// portal's next retained snapshot reaches it.
	p.publish(topics.Roster(), true, snapshotMsg(withChild(9, 6, 9)))
	wait.For(t, 10*time.Second, "the snapshot after the gap", func() bool { return rev() == 9 })
}

// Signed commands get replies; expired, foreign and unsigned ones are
// refused.
func TestCommands(t *testing.T) {
	b := startBroker(t, "")
	p := newPortal(t, b.URL())
	tm := newTerminal(t, filepath.Join(t.TempDir(), "k.db"), b.URL(), nil)
	tm.run()
	wait.For(t, 10*time.Second, "online", func() bool { return p.lastStatus().State == "online" })
	topics := protocol.Topics{Centre: centre, Device: device}
	cmd := func(id, name string, exp time.Time) []byte {
		raw, _ := json.Marshal(protocol.Command{V: 1, ID: id, Centre: centre, Device: device, Name: name, Expires: exp})
		return protocol.Sign(portalPriv, raw)
	}
	reply := func(id string) *protocol.Reply {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, r := range p.replies {
			if r.ID == id {
				return &r
			}
		}
		return nil
	}
	soon := time.Now().Add(time.Minute)
	p.publish(topics.Cmd(), false, cmd("1", protocol.CmdPing, soon))
	wait.For(t, 10*time.Second, "the ping's reply", func() bool { return reply("1") != nil })
	if r := reply("1"); !r.OK {
		t.Fatalf("ping: %+v", r)
	}
	p.publish(topics.Cmd(), false, cmd("2", protocol.CmdPing, time.Now().Add(-time.Minute)))
	wait.For(t, 10*time.Second, "the expired command's reply", func() bool { return reply("2") != nil })
	if r := reply("2"); r.OK || !strings.Contains(r.Error, "expired") {
		t.Fatalf("expired: %+v", r)
	}
	p.publish(topics.Cmd(), false, cmd("3", "format-disk", soon))
	wait.For(t, 10*time.Second, "the unknown command's reply", func() bool { return reply("3") != nil })
	if r := reply("3"); r.OK {
		t.Fatalf("unknown: %+v", r)
	}
	before := tm.up.Stats().Rejected
	_, wrongKey, _ := ed25519.GenerateKey(nil)
	raw, _ := json.Marshal(protocol.Command{V: 1, ID: "4", Centre: centre, Device: device, Name: protocol.CmdResync, Expires: soon})
	p.publish(topics.Cmd(), false, protocol.Sign(wrongKey, raw))
	wait.For(t, 10*time.Second, "the forged command refused", func() bool { return tm.up.Stats().Rejected > before })
	if reply("4") != nil {
		t.Fatal("a forged command was answered")
	}
	// The same signed command published again after the terminal
	// restarted: not run again. Commands are taken in order, so once a
	// later one is answered, the repeat would have been.
	path := tm.st.Path()
	tm.stop()
	wait.For(t, 10*time.Second, "offline", func() bool { return p.lastStatus().State == "offline" })
	tm = newTerminal(t, path, b.URL(), nil)
	tm.run()
	wait.For(t, 10*time.Second, "online again", func() bool { return p.lastStatus().State == "online" })
	p.publish(topics.Cmd(), false, cmd("1", protocol.CmdPing, soon))
	p.publish(topics.Cmd(), false, cmd("5", protocol.CmdPing, soon))
	wait.For(t, 10*time.Second, "the reply to the command after the repeat", func() bool { return reply("5") != nil })
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.replies {
		if r.ID == "1" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("command 1 answered %d times: it ran again after a restart", n)
	}
}

func chaos(t testing.TB, target string) *chaosproxy.Proxy {
	return chaosproxy.Start(t, chaosproxy.Options{Target: target, MinCut: 500 * time.Millisecond, MaxCut: 5 * time.Second, Seed: 1})
}

// Mosquitto drops QoS 1 messages queued for a slow subscriber beyond
// max_queued_messages, silently. End-to-end acks make that harmless: the
// terminal sends again what the portal never stored.
func TestBrokerDropsQueued(t *testing.T) {
	b := startBroker(t, "max_queued_messages 100\nmax_inflight_messages 1\n")
	p := newPortal(t, b.URL())
	p.mu.Lock()
	p.onEvent = func(*protocol.Event) { time.Sleep(50 * time.Microsecond) } // a slow portal
	p.mu.Unlock()
	tm := newTerminal(t, filepath.Join(t.TempDir(), "k.db"), b.URL(), func(o *Options) { o.Batch, o.ResendAfter = 1, 500*time.Millisecond })
	const n = 1500
	for i := range n {
		tm.tap(t, byte(i%3))
	}
	tm.run()
	wait.For(t, 60*time.Second, "every event acknowledged", func() bool { f, _ := tm.waiting(t); return f == 0 })
	checkStream(t, p, tm.st.LogID(), 1, n)
	ps, st := p.in.Stats(), tm.up.Stats()
	t.Logf("published %d for %d events, %d times sent again; the portal saw %d beyond a gap", st.Published, n, st.Resends, ps.OutOfOrder)
	if st.Resends == 0 || st.Published <= n {
		t.Fatal("the broker dropped nothing: the test proves nothing")
	}
}

// A terminal the broker refuses says why in its link's state, naming what
// to check (kiumctl status shows it); a broker not there says so too.
func TestLinkSaysWhy(t *testing.T) {
	b := startBroker(t, "")
	for _, tc := range []struct {
		name, broker, password, want string
	}{
		{"wrong password", b.URL(), "wrong", "mqtt.password"},
		{"no broker", "tcp://127.0.0.1:1", termPass, "no broker answers at mqtt.broker"},
	} {
		tm := newTerminal(t, filepath.Join(t.TempDir(), "k.db"), tc.broker, func(o *Options) { o.Password = tc.password })
		tm.run()
		wait.For(t, 10*time.Second, tc.name+": the reason in the link", func() bool {
			l := tm.up.Link()
			return !l.Connected && strings.Contains(l.LastError, tc.want)
		})
		t.Logf("%s: %s", tc.name, tm.up.Link().LastError)
		tm.stop()
	}
}
