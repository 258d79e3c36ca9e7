// Package fleet simulates many kiumtap terminals on the wire, for load
// tests of the portal (BenchmarkFleet in portal/bridge).
//
// A Terminal is a light client: one small struct with its log's identity,
// its sequence counter and its outbox of unacknowledged events in memory,
// speaking docs/protocol.md over MQTT 3.1.1 (paho) as daemon/uplink does:
// username and client ID = its device ID, a clean session, the retained
// `offline` will stamped with the time its connection began; ack, cmd,
// roster/delta, the retained roster snapshot (verified, then unsubscribed)
// and the bridges' presence subscribed after every connect; its retained
// status on connect, every Heartbeat and after a refusal; events in
// batches of up to Batch consecutive ones with at most a window in flight,
// deleted only on a cumulative end-to-end ack and only as a prefix; sent
// again from the first unacknowledged after every (re)connect, when a
// bridge comes online, on an ack's `next`, and after ResendAfter without
// an ack (go-back-N, halving the window); a refusal holds sending (1 s,
// doubling to 5 min) and halves the batches; reconnects back off from
// BackoffMin to BackoffMax with ±25 % jitter, probing every broker's port
// each ProbeEvery while a dial is refused, and fail over along its list of
// brokers.
//
// What it does not do: no reader, no decisions (the caller says what each
// tap decided), no disk (a Terminal is one start of the software: its
// outbox dies with it), no clock correction (its clock is synced), and it
// keeps only the roster's revision, not the roster (a delta's content is
// not applied, so its digest is not checked; a gap still asks for the
// snapshot). Commands: ping and resync are answered, enrol is refused.
//
// It costs no goroutine of its own: paho's per connection (about ten),
// and one per Fleet that drives every terminal's timers (Fleet.Run).
// Reconnects run on time.AfterFunc.
package fleet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/firmware"
	"kiumtap/protocol"
)

// Settings are shared by every terminal of a fleet. Zero values take the
// terminal's defaults (daemon/uplink's).
type Settings struct {
	// PortalKey verifies rosters and commands (required).
	PortalKey ed25519.PublicKey
	// Window is the most events in flight (default 5000); Batch the most
	// in one message (default 64).
	Window, Batch int
	// ResendAfter: with events in flight and no ack for this long, send
	// again from the first unacknowledged (default 10 s).
	ResendAfter time.Duration
	// Heartbeat is how often the status is published (default 30 s).
	Heartbeat time.Duration
	// Reconnects back off from BackoffMin (default 500 ms) to BackoffMax
	// (default 60 s); while a dial is refused every broker's port is
	// probed each ProbeEvery (default 1 s), and a probe answered ends the
	// wait within ReconnectSpread (default 1 s).
	BackoffMin, BackoffMax      time.Duration
	ProbeEvery, ReconnectSpread time.Duration
	// KeepAlive is MQTT's (default 30 s); ConnectTimeout bounds a
	// connection's handshake (default 10 s).
	KeepAlive, ConnectTimeout time.Duration
	// Version is the software version in the status (default "fleet").
	Version string
}

func (s *Settings) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if s.Window <= 0 {
		s.Window = 5000
	}
	if s.Batch <= 0 {
		s.Batch = 64
	}
	def(&s.ResendAfter, 10*time.Second)
	def(&s.Heartbeat, 30*time.Second)
	def(&s.BackoffMin, 500*time.Millisecond)
	def(&s.BackoffMax, 60*time.Second)
	def(&s.ProbeEvery, time.Second)
	def(&s.ReconnectSpread, time.Second)
	def(&s.KeepAlive, 30*time.Second)
	def(&s.ConnectTimeout, 10*time.Second)
	if s.Version == "" {
		s.Version = "fleet"
	}
}

// Stats count what terminals did; Fleet.Stats sums them.
type Stats struct {
	Connects, ConnectFailures, Lost int
	Taps                            int // events made
	Published                       int // events handed to MQTT, resends included
	Acked                           int // events deleted on an ack
	Resends                         int // times sending went back to the first unacknowledged
	Refused                         int // refusals taken
	Rejected                        int // messages from the portal refused (bad signature, older roster…)
}

func (s *Stats) add(o Stats) {
	s.Connects += o.Connects
	s.ConnectFailures += o.ConnectFailures
	s.Lost += o.Lost
	s.Taps += o.Taps
	s.Published += o.Published
	s.Acked += o.Acked
	s.Resends += o.Resends
	s.Refused += o.Refused
	s.Rejected += o.Rejected
}

// Fleet is a set of terminals with the same settings.
type Fleet struct {
	s         Settings
	mu        sync.Mutex
	terminals []*Terminal
	connected atomic.Int64
}

// New makes an empty fleet.
func New(s Settings) (*Fleet, error) {
	if len(s.PortalKey) != ed25519.PublicKeySize {
		return nil, errors.New("fleet: the portal's public key is required")
	}
	s.defaults()
	return &Fleet{s: s}, nil
}

// Add makes a terminal of centre with its device ID and broker password,
// and the brokers it connects to, in order (mqtt.brokers). It does not
// connect: Connect, or Fleet.ConnectAll, does.
func (f *Fleet) Add(centre, device, password string, brokers []string) (*Terminal, error) {
	if !protocol.ValidID(centre) || !protocol.ValidID(device) {
		return nil, fmt.Errorf("fleet: centre %q or device %q is not a valid ID", centre, device)
	}
	if len(brokers) == 0 {
		return nil, errors.New("fleet: no broker")
	}
	t := &Terminal{f: f, centre: centre, device: device, password: password, brokers: brokers,
		topics: protocol.Topics{Centre: centre, Device: device}, log: randomHex(8), instance: randomHex(6), boot: randomHex(16),
		started: time.Now(), last: -1, wait: f.s.BackoffMin, cwnd: f.s.Window, size: f.s.Batch}
	f.mu.Lock()
	f.terminals = append(f.terminals, t)
	f.mu.Unlock()
	return t, nil
}

// Terminals returns the fleet's terminals, in the order added.
func (f *Fleet) Terminals() []*Terminal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*Terminal(nil), f.terminals...)
}

// Connected is how many terminals are connected now (subscribed, status
// published).
func (f *Fleet) Connected() int { return int(f.connected.Load()) }

// Stats sums every terminal's.
func (f *Fleet) Stats() Stats {
	var s Stats
	for _, t := range f.Terminals() {
		s.add(t.Stats())
	}
	return s
}

// Pending is how many events wait in outboxes, acknowledged by no portal.
func (f *Fleet) Pending() int {
	n := 0
	for _, t := range f.Terminals() {
		n += t.Pending()
	}
	return n
}

// ConnectAll makes every terminal's first connection attempt, at most
// rate a second and parallel at once, so that a broker is not stormed; a
// terminal whose attempt fails goes on by its own backoff. It returns
// once every terminal has tried, or ctx ended.
func (f *Fleet) ConnectAll(ctx context.Context, rate float64, parallel int) error {
	ts := f.Terminals()
	work := make(chan *Terminal)
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Go(func() {
			for t := range work {
				t.Connect()
			}
		})
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	var err error
feed:
	for _, t := range ts {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		case <-tick.C:
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		case work <- t:
		}
	}
	close(work)
	wg.Wait()
	return err
}

// Run drives every terminal's timers (resends, refusals' holds, the
// status heartbeat) once a second until ctx ends.
func (f *Fleet) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			for _, t := range f.Terminals() {
				t.tick(now)
			}
		}
	}
}

// Stop disconnects every terminal, parallel at once, and stops their
// reconnects.
func (f *Fleet) Stop(parallel int) {
	work := make(chan *Terminal)
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Go(func() {
			for t := range work {
				t.Stop()
			}
		})
	}
	for _, t := range f.Terminals() {
		work <- t
	}
	close(work)
	wg.Wait()
}

// A terminal's connection state.
const (
	idle       = iota // not connected; a reconnect may be pending
	connecting        // an attempt is under way
	connected         // subscribed and publishing
	stopped           // Stop was called
)

// Terminal is one simulated terminal.
type Terminal struct {
	f                        *Fleet
	centre, device, password string
	brokers                  []string
	topics                   protocol.Topics
	log, instance, boot      string
	started                  time.Time

	mu     sync.Mutex
	state  int
	c      mqtt.Client // the connection, once its CONNACK came
	gen    int         // connection attempts; a handler of an older one is ignored
	broker int         // index of the broker of the next attempt
	last   int         // index of the broker last connected to, -1: none yet
	wait   time.Duration
	retry  time.Time   // when the backed-off attempt is due
	timer  *time.Timer // the pending reconnect or probe

	seq    uint64           // last sequence given out
	outbox []protocol.Event // unacknowledged, consecutive, oldest first
	// The sender, as daemon/uplink's: next to send, the window in use,
	// where the last going back started, the last progress; a refusal's
	// batch size, hold and what it said.
	next         uint64
	cwnd         int
	recover      uint64
	lastProgress time.Time
	size         int
	hold         time.Duration
	holdUntil    time.Time
	refused      *protocol.Refusal

	rosterRev    uint64
	rosterAt     time.Time
	wantSnapshot bool
	nextStatus   time.Time
	rejection    *protocol.Rejection
	commands     []string // IDs of the latest commands run
	stats        Stats
}

// Device is the terminal's device ID; Centre its centre's; Log its log's
// identity.
func (t *Terminal) Device() string { return t.device }
func (t *Terminal) Centre() string { return t.centre }
func (t *Terminal) Log() string    { return t.log }

// Connected reports whether the terminal is connected now.
func (t *Terminal) Connected() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state == connected
}

// RosterRevision is the revision of the last roster snapshot or delta
// taken, 0 before any.
func (t *Terminal) RosterRevision() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rosterRev
}

// Pending is how many events wait in the outbox.
func (t *Terminal) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.outbox)
}

// Stats are the terminal's counts.
func (t *Terminal) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// Tap records a tap the terminal decided (outcome and reason of child's
// card) as the next event of its log and, connected, sends it at once: a
// lone tap goes alone. It returns the event's sequence and time, the
// moment it was handed to MQTT when connected and the window had room.
func (t *Terminal) Tap(child, card string, outcome firmware.Outcome, reason firmware.Reason) (uint64, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.seq++
	if len(t.outbox) == 0 {
		t.lastProgress = now // idle until now: the resend timer starts here
	}
	t.outbox = append(t.outbox, protocol.Event{V: protocol.Version, ID: fmt.Sprintf("%s-%d", t.device, t.seq), Centre: t.centre, Device: t.device,
		Log: t.log, Seq: t.seq, Time: now.UTC(), ClockSynced: true, BootID: t.boot, MonoNS: int64(now.Sub(t.started)), Card: card,
		Child: child, Outcome: string(outcome), Reason: string(reason), RosterRev: t.rosterRev})
	t.stats.Taps++
	t.fill(now)
	return t.seq, now
}

// Connect makes one connection attempt, at once, and returns when it
// succeeded or failed; a failure schedules the next by the backoff. It
// does nothing while connected, connecting or stopped.
func (t *Terminal) Connect() {
	t.mu.Lock()
	if t.state != idle {
		t.mu.Unlock()
		return
	}
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	t.state = connecting
	t.gen++
	gen, url := t.gen, t.brokers[t.broker]
	t.mu.Unlock()

	c, err := t.dial(gen, url)

	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil && (t.state != connecting || t.gen != gen) { // stopped meanwhile
		err = errors.New("stopped")
	}
	if err != nil {
		if c != nil {
			go c.Disconnect(0)
		}
		if t.state == connecting && t.gen == gen {
			t.state, t.c = idle, nil
			t.stats.ConnectFailures++
			t.backoff(err)
		}
		return
	}
	t.state = connected
	t.last, t.wait = t.broker, t.f.s.BackoffMin
	t.stats.Connects++
	t.f.connected.Add(1)
	now := time.Now()
	// The sender goes back to the first unacknowledged; the refusal's
	// hold and batch size stay (the portal's mind does not change with
	// the connection).
	t.cwnd, t.recover, t.next, t.lastProgress = t.f.s.Window, 0, t.first(), now
	if t.next == 0 {
		t.next = t.seq + 1
	}
	t.publishStatus(now)
	t.fill(now)
}

// dial connects to url and subscribes. A broker whose ACL refuses the
// bridges' presence is taken: that costs prompt resends only.
func (t *Terminal) dial(gen int, url string) (mqtt.Client, error) {
	s := &t.f.s
	offline, _ := json.Marshal(protocol.Status{V: protocol.Version, State: "offline", Instance: t.instance, Time: time.Now().UTC()})
	o := mqtt.NewClientOptions().AddBroker(url).
		SetClientID(t.device).SetUsername(t.device).SetPassword(t.password).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(s.ConnectTimeout).SetKeepAlive(s.KeepAlive).
		SetPingTimeout(10*time.Second).SetWriteTimeout(10*time.Second).
		SetOrderMatters(false).
		SetBinaryWill(t.topics.Status(), offline, 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { t.lost(gen, err) }).
		SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) {})
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(s.ConnectTimeout + 5*time.Second) {
		return c, errors.New("connecting: no answer")
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	t.mu.Lock()
	if t.gen != gen || t.state != connecting {
		t.mu.Unlock()
		return c, errors.New("stopped")
	}
	t.c, t.wantSnapshot = c, true // the retained snapshot may come before Connect is done
	t.mu.Unlock()
	// One SUBSCRIBE for all: one round trip.
	subs := map[string]byte{t.topics.Ack(): 1, t.topics.Cmd(): 1, t.topics.Delta(): 1, t.topics.Roster(): 1, protocol.PortalStatusFilter: 1}
	st := c.SubscribeMultiple(subs, func(_ mqtt.Client, m mqtt.Message) { t.handle(gen, m) })
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		return c, fmt.Errorf("subscribing: %v", st.Error())
	}
	for topic, code := range st.(*mqtt.SubscribeToken).Result() {
		if code == 0x80 && topic != protocol.PortalStatusFilter {
			return c, fmt.Errorf("the broker refused the subscription to %s: check its ACL", topic)
		}
	}
	return c, nil
}

// backoff schedules the next attempt after a failed one (locked): the
// next broker listed after the backoff, or sooner one whose port answers
// a probe, while dials are refused.
func (t *Terminal) backoff(err error) {
	s := &t.f.s
	d := jitter(t.wait)
	t.wait = min(2*t.wait, s.BackoffMax)
	t.broker = (t.broker + 1) % len(t.brokers)
	t.retry = time.Now().Add(d)
	if refusedByNetwork(err) {
		t.timer = time.AfterFunc(min(d, jitter(s.ProbeEvery)), t.probe)
		return
	}
	t.timer = time.AfterFunc(d, t.Connect)
}

// probe dials every broker's port, in the order of preference (the one
// last used, then those after it); the first that answers is connected
// to within ReconnectSpread. None: probe again, or try when the backoff
// is over.
func (t *Terminal) probe() {
	t.mu.Lock()
	if t.state != idle {
		t.mu.Unlock()
		return
	}
	prefer := max(t.last, 0)
	t.mu.Unlock()
	found := -1
	for k := range t.brokers {
		i := (prefer + k) % len(t.brokers)
		if c, err := net.DialTimeout("tcp", hostOf(t.brokers[i]), 2*time.Second); err == nil {
			c.Close()
			found = i
			break
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != idle {
		return
	}
	s := &t.f.s
	switch now := time.Now(); {
	case found >= 0:
		t.broker = found
		t.timer = time.AfterFunc(mrand.N(s.ReconnectSpread), t.Connect)
	case !now.Before(t.retry):
		t.timer = time.AfterFunc(0, t.Connect)
	default:
		t.timer = time.AfterFunc(min(t.retry.Sub(now), jitter(s.ProbeEvery)), t.probe)
	}
}

// lost is paho's word that connection gen is gone: try the same broker
// again at once.
func (t *Terminal) lost(gen int, _ error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen != gen || t.state != connected {
		return
	}
	t.state, t.c = idle, nil
	t.stats.Lost++
	t.f.connected.Add(-1)
	t.timer = time.AfterFunc(0, t.Connect)
}

// Stop disconnects (no will: a clean stop) and ends reconnects.
func (t *Terminal) Stop() {
	t.mu.Lock()
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	c := t.c
	if t.state == connected {
		t.f.connected.Add(-1)
	}
	t.state, t.c = stopped, nil
	t.mu.Unlock()
	if c != nil {
		c.Disconnect(0)
	}
}

// first is the first unacknowledged sequence, 0 when the outbox is empty
// (locked).
func (t *Terminal) first() uint64 {
	if len(t.outbox) == 0 {
		return 0
	}
	return t.outbox[0].Seq
}

func (t *Terminal) inFlight() bool { f := t.first(); return f != 0 && t.next > f }

// fill sends batches of consecutive events while connected and the window
// has room (locked).
func (t *Terminal) fill(now time.Time) {
	for t.state == connected && !now.Before(t.holdUntil) && len(t.outbox) > 0 {
		first := t.first()
		t.next = max(t.next, first)
		room := t.cwnd - int(t.next-first)
		i := int(t.next - first)
		if room <= 0 || i >= len(t.outbox) {
			return
		}
		batch := t.outbox[i:min(i+min(room, t.size), len(t.outbox))]
		raw, _ := json.Marshal(protocol.Batch{V: protocol.Version, Events: batch})
		if len(raw) > protocol.MaxEvents && len(batch) > 1 {
			t.size = max(1, len(batch)/2)
			continue
		}
		if tok := t.c.Publish(t.topics.Events(), 1, false, raw); tok.Error() != nil {
			return // the connection is going: the next one sends again
		}
		t.next = batch[len(batch)-1].Seq + 1
		t.stats.Published += len(batch)
	}
}

// goBack sends again from the first unacknowledged (locked); lost, when
// events were lost on the way, halves the window.
func (t *Terminal) goBack(now time.Time, lost bool) {
	t.recover, t.next = t.next, t.first()
	if lost {
		t.cwnd = max(t.cwnd/2, 64)
	}
	t.lastProgress = now
	t.stats.Resends++
}

// tick runs the terminal's timers.
func (t *Terminal) tick(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != connected {
		return
	}
	if t.inFlight() && now.Sub(t.lastProgress) > t.f.s.ResendAfter {
		t.goBack(now, true)
	}
	if !now.Before(t.nextStatus) {
		t.publishStatus(now)
	}
	t.fill(now)
}

// handle takes a message of connection gen.
func (t *Terminal) handle(gen int, m mqtt.Message) {
	switch topic := m.Topic(); topic {
	case t.topics.Ack():
		t.ack(gen, m.Payload())
	case t.topics.Roster():
		t.snapshot(gen, m.Payload())
	case t.topics.Delta():
		t.delta(gen, m.Payload())
	case t.topics.Cmd():
		t.command(gen, m.Payload())
	default:
		if !m.Retained() { // a retained presence is old news: connecting sent again anyway
			t.presence(gen, m.Payload())
		}
	}
}

// current reports whether connection gen is the one in use (locked).
func (t *Terminal) current(gen int) bool { return t.gen == gen && t.state == connected }

func (t *Terminal) ack(gen int, raw []byte) {
	a, err := protocol.DecodeAck(raw)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.current(gen) {
		return
	}
	now := time.Now()
	if err != nil {
		t.reject(t.topics.Ack(), err, now)
		return
	}
	if a.Device != t.device || (a.Log != t.log && !(a.Refused != nil && a.Log == "")) {
		return // another log's
	}
	if a.Refused != nil {
		t.refusal(a.Refused, now)
	}
	if len(a.Ranges) == 0 && a.Next == 0 {
		return
	}
	first := t.first()
	if through := a.Through(first); through > 0 {
		k := 0
		for k < len(t.outbox) && t.outbox[k].Seq <= through {
			k++
		}
		t.outbox = t.outbox[k:]
		if len(t.outbox) == 0 {
			t.outbox = nil // let the backing array go
		}
		t.stats.Acked += k
		t.lastProgress = now
		t.cwnd = min(t.cwnd+max(t.f.s.Batch, 32), t.f.s.Window)
		t.size = min(2*t.size, t.f.s.Batch)
		cleared := t.refused != nil
		t.refused, t.hold, t.holdUntil = nil, 0, time.Time{}
		if cleared {
			t.publishStatus(now)
		}
	}
	first = t.first()
	if first == 0 {
		t.next = t.seq + 1
	} else if t.next < first {
		t.next = first
	}
	if a.Next != 0 && first != 0 && a.Next < first {
		t.reject(t.topics.Ack(), fmt.Errorf("the portal expects event %d, but this terminal holds events from %d on", a.Next, first), now)
	}
	inRecovery := t.recover != 0 && first != 0 && first <= t.recover
	if a.Next != 0 && a.Next == first && t.inFlight() && !inRecovery {
		t.goBack(now, true)
	}
	t.fill(now)
}

// refusal takes the portal's refusal of a message (locked): hold, then
// send again from the first in batches half the size.
func (t *Terminal) refusal(ref *protocol.Refusal, now time.Time) {
	first := t.first()
	if first == 0 || (ref.Seq != 0 && ref.Seq < first) || now.Before(t.holdUntil) {
		return
	}
	cur := protocol.Refusal{Seq: ref.Seq, Reason: ref.Reason, Since: now.UTC(), Count: 1}
	if cur.Seq == 0 {
		cur.Seq = first
	}
	if t.refused != nil && t.refused.Seq == cur.Seq {
		cur.Since, cur.Count = t.refused.Since, t.refused.Count+1
	}
	t.refused = &cur
	t.size = max(1, t.size/2)
	t.hold = min(max(2*t.hold, time.Second), 5*time.Minute)
	t.holdUntil = now.Add(t.hold)
	t.stats.Refused++
	t.goBack(now, false)
	t.publishStatus(now)
}

// presence is a bridge instance's live presence: one come online sends
// again at once and ends a refusal's hold.
func (t *Terminal) presence(gen int, raw []byte) {
	st, err := protocol.DecodePortalStatus(raw)
	if err != nil || st.State != "online" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.current(gen) {
		return
	}
	now := time.Now()
	t.holdUntil = time.Time{}
	if t.inFlight() {
		t.goBack(now, false)
	}
	t.fill(now)
}

func (t *Terminal) snapshot(gen int, raw []byte) {
	payload, err := protocol.Open(t.f.s.PortalKey, raw, protocol.MaxRoster)
	var r *firmware.Roster
	if err == nil {
		r, err = protocol.DecodeSnapshot(payload, t.centre)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen != gen || t.state == stopped {
		return
	}
	now := time.Now()
	switch {
	case err != nil:
		t.reject(t.topics.Roster(), err, now)
		return
	case r.Revision < t.rosterRev:
		t.reject(t.topics.Roster(), fmt.Errorf("roster snapshot revision %d is older than the current %d", r.Revision, t.rosterRev), now)
		return
	case r.Revision > t.rosterRev:
		t.rosterRev, t.rosterAt = r.Revision, now
		if t.state == connected {
			t.publishStatus(now)
		}
	}
	if t.wantSnapshot && t.c != nil {
		t.wantSnapshot = false
		t.c.Unsubscribe(t.topics.Roster())
	}
}

func (t *Terminal) delta(gen int, raw []byte) {
	payload, err := protocol.Open(t.f.s.PortalKey, raw, protocol.MaxRoster)
	var d *protocol.Delta
	if err == nil {
		d, err = protocol.DecodeDelta(payload, t.centre)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.current(gen) {
		return
	}
	now := time.Now()
	switch {
	case err != nil:
		t.reject(t.topics.Delta(), err, now)
	case d.Revision <= t.rosterRev:
		// already there, or a replay
	case d.Base == t.rosterRev:
		t.rosterRev, t.rosterAt = d.Revision, now
		t.publishStatus(now)
	case !t.wantSnapshot: // a gap: the retained snapshot sets it right
		t.wantSnapshot = true
		t.c.Subscribe(t.topics.Roster(), 1, func(_ mqtt.Client, m mqtt.Message) { t.handle(gen, m) })
	}
}

func (t *Terminal) command(gen int, raw []byte) {
	payload, err := protocol.Open(t.f.s.PortalKey, raw, protocol.MaxMessage)
	var c *protocol.Command
	if err == nil {
		c, err = protocol.DecodeCommand(payload, t.centre, t.device, time.Now())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.current(gen) {
		return
	}
	now := time.Now()
	if err != nil {
		t.reject(t.topics.Cmd(), err, now)
		if c != nil && c.ID != "" {
			t.reply(protocol.Reply{ID: c.ID, Error: err.Error()})
		}
		return
	}
	for _, id := range t.commands {
		if id == c.ID {
			return // delivered again: answered already
		}
	}
	t.commands = append(t.commands, c.ID)
	if len(t.commands) > 8 {
		t.commands = t.commands[1:]
	}
	switch c.Name {
	case protocol.CmdPing:
		res, _ := json.Marshal(map[string]any{"time": now.UTC()})
		t.reply(protocol.Reply{ID: c.ID, OK: true, Result: res})
	case protocol.CmdResync:
		t.wantSnapshot = true
		t.c.Subscribe(t.topics.Roster(), 1, func(_ mqtt.Client, m mqtt.Message) { t.handle(gen, m) })
		t.reply(protocol.Reply{ID: c.ID, OK: true})
	default:
		t.reply(protocol.Reply{ID: c.ID, Error: fmt.Sprintf("command %q: not on a simulated terminal", c.Name)})
	}
}

func (t *Terminal) reply(r protocol.Reply) {
	r.V = protocol.Version
	raw, _ := json.Marshal(r)
	t.c.Publish(t.topics.Reply(), 1, false, raw)
}

// reject records a message from the portal refused, and says so in the
// status (locked).
func (t *Terminal) reject(topic string, err error, now time.Time) {
	t.rejection = &protocol.Rejection{Topic: topic, Reason: err.Error(), Time: now.UTC()}
	t.stats.Rejected++
	if t.state == connected {
		t.publishStatus(now)
	}
}

// publishStatus publishes the retained status (locked, connected).
func (t *Terminal) publishStatus(now time.Time) {
	st := protocol.Status{V: protocol.Version, State: "online", Instance: t.instance, Time: now.UTC(), Version: t.f.s.Version,
		OutboxDepth: len(t.outbox), RosterRev: t.rosterRev, ClockSynced: true, ReaderHealthy: true, Rejected: t.rejection}
	if len(t.outbox) > 0 {
		st.OldestAgeS = now.Sub(t.outbox[0].Time).Seconds()
	}
	if !t.rosterAt.IsZero() {
		st.RosterAgeS = now.Sub(t.rosterAt).Seconds()
	}
	if t.refused != nil {
		r := *t.refused
		st.Refused = &r
	}
	raw, _ := json.Marshal(st)
	t.c.Publish(t.topics.Status(), 1, true, raw)
	t.nextStatus = now.Add(t.f.s.Heartbeat)
}

// refusedByNetwork reports whether an attempt failed before any broker
// answered: the TCP dial itself failed.
func refusedByNetwork(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func hostOf(broker string) string {
	u, err := url.Parse(broker)
	if err != nil {
		return broker
	}
	return u.Host
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + 0.5*mrand.Float64()))
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
