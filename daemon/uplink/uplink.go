// Package uplink is the terminal's MQTT link to the portal: it sends the
// store's outbox as events and deletes them only when the portal
// acknowledges them end to end, takes signed rosters (snapshots and
// deltas) and commands, and keeps a retained status with a last will.
//
// The store's outbox is the only source of truth. The MQTT session is
// clean and paho's own store is not relied on: after every (re)connect the
// uplink sends again from the first unacknowledged event, and when acks
// stop coming while events are in flight it goes back to that event too
// (go-back-N); the portal drops duplicates by sequence. docs/protocol.md is
// the contract.
//
// # Several brokers
//
// A terminal may be given several brokers (Options.Brokers): independent
// ones that the portal's bridges all listen on, or the nodes of one
// cluster. It is connected to one at a time and publishes everything
// there: its events, its status and, through its will, its going offline.
// It fails over to another only when it loses the one it is on and that
// one does not take it back (Run says in which order); the outbox is sent
// again from the first unacknowledged event on the new one as after any
// reconnect, and the portal's in-order storing drops what reaches it
// twice through two brokers. A broker left behind keeps the terminal's
// last status retained: the will, or "online" if that broker crashed (it
// is the broker that publishes a will). Every status, the will included,
// carries a time (the will the time its connection began), and the portal
// believes a terminal's newest status, whichever broker holds it. Rosters and commands are taken where
// the terminal is connected; an older retained snapshot on a broker that
// missed later revisions is refused like any older revision.
package uplink

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/daemon/store"
	"kiumtap/firmware"
	"kiumtap/protocol"
)

// Stamper says what time it is (package clock).
//
// Times that mean a moment of the wall clock (a roster's arrival, a
// command's expiry, the times in the status, the link's state and
// rejections) come from Options.Clock, as the terminal's taps do. Real
// time (time.Now, timers) measures only intervals: resend and refusal
// holds, backoff, heartbeats, how long the broker was away.
type Stamper interface{ Stamp() store.Stamp }

// Options configure an Uplink. Zero values take the documented defaults.
type Options struct {
	// Broker URL: tcp://host:1883 or ssl://host:8883. Brokers lists
	// several instead, in the order they are tried (give one of the two):
	// the terminal is connected to one at a time and fails over between
	// them (see Run).
	Broker  string
	Brokers []string
	// Centre and Device: the topic levels. The device ID is also the MQTT
	// username and client ID: with the shipped broker configuration the
	// broker takes both from the terminal's certificate, whose common
	// name must be the device ID; Password is then unused. A broker that
	// checks passwords instead (one per device) gets Password.
	Centre, Device string
	Password       string
	TLS            *tls.Config // for ssl:// brokers
	// PortalKey verifies rosters and commands.
	PortalKey ed25519.PublicKey

	Store *store.Store
	Clock Stamper
	// Window bounds events sent and not yet acknowledged; default 5000,
	// at least 64.
	Window int
	// Batch is the most events in one message; default 64, at most
	// protocol.MaxBatch. A lone tap goes out at once, alone.
	Batch int
	// ResendAfter: with events in flight and no ack for this long, send
	// again from the first unacknowledged; default 10 s.
	ResendAfter time.Duration
	// Heartbeat refreshes the retained status; default 30 s.
	Heartbeat time.Duration
	// Reconnect backoff, doubled per failure with ±25 % jitter; defaults
	// 500 ms and 60 s.
	BackoffMin, BackoffMax time.Duration
	// ProbeEvery: while waiting to reconnect after the broker's address
	// refused the connection (the broker is down, not refusing this
	// terminal), dial its TCP port this often (±25 %); default 1 s. The
	// first dial that connects ends the wait after a random share of
	// ReconnectSpread (default 1 s), so a fleet comes back promptly once
	// the broker does, spread over that time rather than all at once.
	ProbeEvery, ReconnectSpread time.Duration
	// Version of the software, in the status.
	Version string
	// Reader reports the reader's health for the status; optional.
	Reader func() (healthy bool, recoveries int)
	// RosterApplied is told of each roster applied; optional.
	RosterApplied func(*firmware.Roster)
	// Enrol opens enrolment for a child at the portal's request (the
	// enrol command) and returns the screen shown; nil: the command is
	// refused.
	Enrol  func(child, by string) (screen []string, err error)
	Logger *slog.Logger
}

// Stats count what the uplink did.
type Stats struct {
	Connects, Published, Resends, Acked int
	Rejected                            int
	// Refused counts the portal's refusals of events messages taken.
	Refused int
	// Probed counts waits to reconnect that a probe cut short: a
	// broker's port answered again before the backoff ran out.
	Probed int
	// Failovers counts connections to another broker than the one this
	// terminal was last connected to.
	Failovers int
	// Rejections are the last (up to 32) refused messages, oldest first.
	Rejections []protocol.Rejection
}

// Uplink links a terminal to the portal.
type Uplink struct {
	o      Options
	topics protocol.Topics
	log    *slog.Logger
	notify chan struct{}

	// snd is the sending half of the ack protocol; only Run's goroutine
	// uses it. Its refusal state outlives connections.
	snd *sender
	// brokers are the brokers in the order configured; brokerKey is the
	// configuration key that names them, for hints.
	brokers   []broker
	brokerKey string
	// instance names this start of the software in the status: random.
	instance string

	mu    sync.Mutex
	stats Stats
	link  Link
	// base is the wall time at this boot's monotonic zero, learnt from the
	// portal's acks while the terminal's clock is not set.
	base time.Time
}

// broker is one of the brokers a terminal may be connected to.
type broker struct {
	url string
	// probe is its host:port for probes; "" for none.
	probe string
}

// New checks the options.
func New(o Options) (*Uplink, error) {
	urls, key := o.Brokers, "mqtt.brokers"
	if len(urls) == 0 {
		urls, key = []string{o.Broker}, "mqtt.broker"
	}
	switch {
	case o.Broker != "" && len(o.Brokers) > 0:
		return nil, errors.New("uplink: both Broker and Brokers are set: give one broker URL, or the list")
	case slices.Contains(urls, ""):
		return nil, errors.New("uplink: no broker URL")
	case !protocol.ValidID(o.Centre) || !protocol.ValidID(o.Device):
		return nil, fmt.Errorf("uplink: centre %q and device %q must be 1-64 of A-Z a-z 0-9 _ . -", o.Centre, o.Device)
	case len(o.PortalKey) != ed25519.PublicKeySize:
		return nil, errors.New("uplink: the portal's public key is required to check rosters and commands")
	case o.Store == nil || o.Clock == nil:
		return nil, errors.New("uplink: Store and Clock are required")
	}
	if err := certIsFor(o.TLS, o.Device); err != nil {
		return nil, err
	}
	if o.Window <= 0 {
		o.Window = 5000
	}
	o.Window = max(o.Window, minWindow)
	if o.Batch <= 0 || o.Batch > protocol.MaxBatch {
		o.Batch = 64
	}
	if o.ResendAfter <= 0 {
		o.ResendAfter = 10 * time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 30 * time.Second
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 500 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = time.Minute
	}
	if o.ProbeEvery <= 0 {
		o.ProbeEvery = time.Second
	}
	if o.ReconnectSpread <= 0 {
		o.ReconnectSpread = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	u := &Uplink{o: o, topics: protocol.Topics{Centre: o.Centre, Device: o.Device}, log: o.Logger, notify: make(chan struct{}, 1),
		snd: newSender(o.Store, o.Window, o.Batch, o.ResendAfter), brokerKey: key}
	for _, url := range urls {
		u.brokers = append(u.brokers, broker{url: url, probe: probeAddr(url)})
	}
	u.link.Broker = urls[0]
	var inst [6]byte
	if _, err := crand.Read(inst[:]); err != nil {
		return nil, err
	}
	u.instance = hex.EncodeToString(inst[:])
	return u, nil
}

// certIsFor checks that a client certificate, if any, is the device's: the
// broker takes the terminal's identity from it, so one issued to another
// device would have it speak (and be refused) as that device.
func certIsFor(cfg *tls.Config, device string) error {
	if cfg == nil || len(cfg.Certificates) == 0 || len(cfg.Certificates[0].Certificate) == 0 {
		return nil
	}
	leaf := cfg.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cfg.Certificates[0].Certificate[0]); err != nil {
			return fmt.Errorf("uplink: the client certificate (mqtt.cert): %w", err)
		}
	}
	if cn := leaf.Subject.CommonName; cn != device {
		return fmt.Errorf("uplink: the client certificate (mqtt.cert) is issued to %q, but this terminal is %q (device_id): the broker knows a terminal by its certificate; issue one for %q (kiumbridge device issue)", cn, device, device)
	}
	return nil
}

// probeAddr is the host:port a broker URL connects to, "" when it is not
// a TCP one.
func probeAddr(broker string) string {
	u, err := url.Parse(broker)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := map[string]string{"tcp": "1883", "mqtt": "1883", "ssl": "8883", "tls": "8883", "mqtts": "8883", "tcps": "8883", "ws": "80", "wss": "443"}[u.Scheme]
	if p := u.Port(); p != "" {
		port = p
	}
	if port == "" {
		return ""
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// Notify says the outbox has new events. It never blocks.
func (u *Uplink) Notify() {
	select {
	case u.notify <- struct{}{}:
	default:
	}
}

// Stats returns the counts so far.
func (u *Uplink) Stats() Stats {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.stats
	s.Rejections = slices.Clone(s.Rejections)
	return s
}

// Link is the state of the terminal's link to the portal, for staff
// (kiumctl status).
type Link struct {
	// Broker is the broker in use; while down, the one last tried (whose
	// failure LastError tells).
	Broker    string `json:"broker"`
	Connected bool   `json:"connected"`
	// Since: connected since, or down since (zero: never connected).
	Since time.Time `json:"since,omitzero"`
	// LastAck is when an ack last deleted events.
	LastAck time.Time `json:"last_ack,omitzero"`
	// LastError is why the last connection attempt failed, with what to
	// check; cleared once connected.
	LastError string `json:"last_error,omitempty"`
	// Refused: the portal refuses this terminal's events (why, since
	// when, how often); nil when it does not.
	Refused *protocol.Refusal `json:"events_refused,omitempty"`
	// Rejected: the last message from the portal this terminal refused.
	Rejected *protocol.Rejection `json:"last_rejection,omitempty"`
}

// Link returns the link's state now.
func (u *Uplink) Link() Link {
	u.mu.Lock()
	defer u.mu.Unlock()
	l := u.link
	if l.Refused != nil {
		r := *l.Refused
		l.Refused = &r
	}
	if n := len(u.stats.Rejections); n > 0 {
		r := u.stats.Rejections[n-1]
		l.Rejected = &r
	}
	return l
}

// connectHint says what to check for a failed connection, naming the
// configuration keys.
func (u *Uplink) connectHint(err error) string {
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "not authori") || strings.Contains(msg, "bad user name or password"):
		return "the broker refused this terminal: its identity is its certificate (mqtt.cert and mqtt.key, issued to this device_id by kiumbridge device issue) or, on a broker that checks passwords, device_id and mqtt.password; and the broker's ACL must list it"
	case strings.Contains(msg, "x509") || strings.Contains(msg, "certificate") || strings.Contains(msg, "tls"):
		return "the TLS handshake failed: check mqtt.ca (the broker's CA), mqtt.cert and mqtt.key, and that " + u.brokerKey + " names a host the broker's certificate covers"
	case refusedByNetwork(err):
		return "no broker answers at " + u.brokerKey + ": check the address and the network; taps are kept and sent when it is back"
	}
	return "check " + u.brokerKey + " and the network; taps are kept and sent when it is back"
}

func (u *Uplink) setConnected(up bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if up {
		u.link.LastError = ""
	}
	if up != u.link.Connected || u.link.Since.IsZero() {
		u.link.Connected, u.link.Since = up, u.o.Clock.Stamp().Time.UTC()
	}
}

// Run keeps the link up until ctx ends, reconnecting with backoff; a
// broker that comes back after an outage is found by probing its port
// (Options.ProbeEvery) rather than at the end of a long backoff.
//
// With several brokers it is connected to one at a time. It starts with
// the first listed; after losing a broker it tries that one again first
// (a cut connection, a restarted broker) and, when it does not take the
// connection, the next listed after the backoff, or whichever a probe
// finds answering first (preferring the one last used) if that comes
// sooner. It stays on the broker it failed over to until it loses that
// one too.
//
// The order is the configuration's and the start fixed, not random:
// with independent brokers each must carry the whole fleet when the other
// is down, so spreading terminals over them in good times saves no
// capacity, while a fixed order keeps a centre's terminals on the broker
// where operators look for them (an operator who wants a fleet spread
// lists the brokers in another order on some terminals). And it does not
// go back to the first once that returns: a move costs a reconnect and a
// resend for nothing, and a broker that flaps would drag the fleet along.
func (u *Uplink) Run(ctx context.Context) error {
	wait := u.o.BackoffMin
	attempts := 0
	var downSince time.Time
	// next is the broker of the next attempt; last the one last connected
	// to (-1: none yet), which probes prefer.
	next, last := 0, -1
	for ctx.Err() == nil {
		b := u.brokers[next]
		u.mu.Lock()
		u.link.Broker = b.url
		u.mu.Unlock()
		s, err := u.connect(ctx, b.url)
		if err != nil {
			attempts++
			if downSince.IsZero() {
				downSince = time.Now() // an interval's start: real time
			}
			d := jitter(wait)
			hint := u.connectHint(err)
			u.mu.Lock()
			u.link.LastError = err.Error() + ": " + hint
			u.mu.Unlock()
			// Unless a probe finds one answering sooner, the next attempt
			// goes to the next broker listed.
			next = (next + 1) % len(u.brokers)
			if len(u.brokers) > 1 {
				u.log.Warn("uplink: cannot reach the broker; events stay in the outbox", "broker", b.url, "err", err, "check", hint, "retry_in", d.Round(time.Millisecond), "next", u.brokers[next].url)
			} else {
				u.log.Warn("uplink: cannot reach the broker; events stay in the outbox", "broker", b.url, "err", err, "check", hint, "retry_in", d.Round(time.Millisecond))
			}
			if i, ok := u.waitRetry(ctx, d, refusedByNetwork(err), max(last, 0)); ok {
				next = i
				u.count(func(st *Stats) { st.Probed++ })
			}
			wait = min(2*wait, u.o.BackoffMax)
			continue
		}
		switch {
		case last >= 0 && next != last:
			u.count(func(st *Stats) { st.Failovers++ })
			u.log.Warn("uplink: failed over to another broker", "broker", b.url, "from", u.brokers[last].url, "down_for", time.Since(downSince).Round(time.Millisecond), "attempts", attempts)
		case attempts > 0:
			u.log.Info("uplink: connected to the broker again", "broker", b.url, "down_for", time.Since(downSince).Round(time.Millisecond), "attempts", attempts)
		default:
			u.log.Info("uplink: connected to the broker", "broker", b.url)
		}
		last = next
		attempts, downSince, wait = 0, time.Time{}, u.o.BackoffMin
		u.setConnected(true)
		err = s.run(ctx)
		s.close(ctx.Err() != nil)
		u.setConnected(false)
		if ctx.Err() == nil {
			downSince = time.Now()
			u.log.Warn("uplink: connection lost", "broker", b.url, "err", err)
		}
	}
	return ctx.Err()
}

// refusedByNetwork reports whether a connection attempt failed before
// any broker answered: the TCP dial itself failed.
func refusedByNetwork(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// waitRetry waits d before the next connection attempt. When probe is
// set (the last attempt's dial failed: that broker is down or out of
// reach, not refusing this terminal), it dials every broker's port
// meanwhile; once one answers (the one at prefer if it does, see probe)
// it ends the wait after a random share of ReconnectSpread and reports
// which one. A broker that answers but refuses (a password, a
// certificate) is waited for the whole backoff: probes would only hammer
// it.
func (u *Uplink) waitRetry(ctx context.Context, d time.Duration, probe bool, prefer int) (int, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	var probes <-chan time.Time
	pt := time.NewTimer(jitter(u.o.ProbeEvery))
	defer pt.Stop()
	if probe && slices.ContainsFunc(u.brokers, func(b broker) bool { return b.probe != "" }) {
		probes = pt.C
	}
	for {
		select {
		case <-ctx.Done():
			return 0, false
		case <-timer.C:
			return 0, false
		case <-probes:
		}
		i := u.probe(ctx, prefer)
		if i < 0 {
			pt.Reset(jitter(u.o.ProbeEvery))
			continue
		}
		if i == prefer {
			u.log.Info("uplink: the broker answers again; connecting", "broker", u.brokers[i].url)
		} else {
			u.log.Info("uplink: another broker answers; connecting to it", "broker", u.brokers[i].url, "instead_of", u.brokers[prefer].url)
		}
		select {
		case <-ctx.Done():
		case <-time.After(rand.N(u.o.ReconnectSpread)):
		}
		return i, true
	}
}

// probeTimeout bounds one probe's dial.
const probeTimeout = 2 * time.Second

// probe dials every broker's port at once and returns the index of the
// one to connect to, -1 when none answers: of those that answer, the first
// in the order of preference, which is the one at prefer (the one last
// used), then those listed after it, wrapping round. It does not wait on
// a less preferred broker's dial once a more preferred one answered, and
// waits on a more preferred one's at most probeTimeout.
func (u *Uplink) probe(ctx context.Context, prefer int) int {
	n := len(u.brokers)
	const pending, answered, silent = 0, 1, 2
	state := make([]int, n)
	type result struct {
		i  int
		ok bool
	}
	results := make(chan result, n)
	dctx, cancel := context.WithTimeout(ctx, probeTimeout)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: every dial returns at once
	defer cancel()
	dials := 0
	for i, b := range u.brokers {
		if b.probe == "" {
			state[i] = silent
			continue
		}
		dials++
		wg.Go(func() {
			c, err := (&net.Dialer{}).DialContext(dctx, "tcp", b.probe)
			if err == nil {
				c.Close()
			}
			results <- result{i, err == nil}
		})
	}
	// pick is the broker decided on so far: -1 while none answered, or
	// while a more preferred one's dial is not done.
	pick := func() int {
		for k := range n {
			switch j := (prefer + k) % n; state[j] {
			case answered:
				return j
			case pending:
				return -1
			}
		}
		return -1
	}
	for range dials {
		r := <-results
		state[r.i] = silent
		if r.ok {
			state[r.i] = answered
		}
		if j := pick(); j >= 0 {
			return j
		}
	}
	return -1
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + 0.5*rand.Float64()))
}

type message struct {
	topic    string
	raw      []byte
	retained bool
}

// session is one MQTT connection.
type session struct {
	u            *Uplink
	c            mqtt.Client
	msgs         chan message
	lost         chan error
	wantSnapshot bool
}

// connect makes one connection to the broker at url.
func (u *Uplink) connect(ctx context.Context, url string) (*session, error) {
	s := &session{u: u, msgs: make(chan message, 4096), lost: make(chan error, 1)}
	// The will carries the time its connection began: it cannot know when
	// the broker will send it, and with several brokers the portal orders
	// a terminal's statuses on them by time (docs/protocol.md, "Several
	// brokers"), so it must rank before everything this terminal
	// publishes on a broker it connects to later.
	offline, _ := json.Marshal(protocol.Status{V: protocol.Version, State: "offline", Instance: u.instance, Time: u.o.Clock.Stamp().Time.UTC()})
	o := mqtt.NewClientOptions().
		AddBroker(url).
		SetClientID(u.o.Device).
		SetUsername(u.o.Device).
		SetPassword(u.o.Password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(10*time.Second).
		SetKeepAlive(30*time.Second).
		SetPingTimeout(10*time.Second).
		SetWriteTimeout(10*time.Second).
		SetOrderMatters(false).
		SetBinaryWill(u.topics.Status(), offline, 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case s.lost <- err:
			default:
			}
		}).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {})
	if u.o.TLS != nil {
		o.SetTLSConfig(u.o.TLS)
	}
	s.c = mqtt.NewClient(o)
	tok := s.c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		s.c.Disconnect(0)
		return nil, errors.New("connecting: no answer in 15 s")
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	u.mu.Lock()
	u.stats.Connects++
	u.mu.Unlock()
	handler := func(_ mqtt.Client, m mqtt.Message) {
		select {
		case s.msgs <- message{m.Topic(), m.Payload(), m.Retained()}:
		case <-ctx.Done():
		}
	}
	subs := map[string]byte{u.topics.Ack(): 1, u.topics.Cmd(): 1, u.topics.Delta(): 1}
	st := s.c.SubscribeMultiple(subs, handler)
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		s.c.Disconnect(0)
		return nil, fmt.Errorf("subscribing: %v", st.Error())
	}
	for topic, code := range st.(*mqtt.SubscribeToken).Result() {
		if code == 0x80 {
			s.c.Disconnect(0)
			return nil, fmt.Errorf("the broker refused the subscription to %s: check its ACL (username and client ID = the device ID)", topic)
		}
	}
	// Bridges' presence: optional, so that a broker whose ACL predates it
	// (no read of kium/v1/portal/+/status) only costs prompt resends.
	pt := s.c.Subscribe(protocol.PortalStatusFilter, 1, handler)
	if !pt.WaitTimeout(10*time.Second) || pt.Error() != nil {
		s.c.Disconnect(0)
		return nil, fmt.Errorf("subscribing to the portal's presence: %v", pt.Error())
	}
	for _, code := range pt.(*mqtt.SubscribeToken).Result() {
		if code == 0x80 {
			u.log.Warn("uplink: the broker refused the subscription to the portal's presence; add `pattern read kium/v1/portal/+/status` to its ACL (deploy/mosquitto/acl). Until then, events sent while no bridge listened wait for the resend timer", "topic", protocol.PortalStatusFilter)
		}
	}
	if err := s.subscribeSnapshot(ctx); err != nil {
		s.c.Disconnect(0)
		return nil, err
	}
	return s, nil
}

// subscribeSnapshot asks for the retained roster snapshot: subscribing
// delivers it. The subscription ends once a snapshot is taken.
func (s *session) subscribeSnapshot(ctx context.Context) error {
	s.wantSnapshot = true
	st := s.c.Subscribe(s.u.topics.Roster(), 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case s.msgs <- message{m.Topic(), m.Payload(), m.Retained()}:
		case <-ctx.Done():
		}
	})
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		return fmt.Errorf("subscribing to the roster: %v", st.Error())
	}
	return nil
}

func (s *session) close(stopping bool) {
	if stopping && s.c.IsConnected() {
		// A clean stop: say so, since the will is sent only on a lost link.
		raw, _ := json.Marshal(protocol.Status{V: protocol.Version, State: "offline", Instance: s.u.instance, Time: s.u.o.Clock.Stamp().Time.UTC()})
		s.c.Publish(s.u.topics.Status(), 1, true, raw).WaitTimeout(2 * time.Second)
	}
	s.c.Disconnect(250)
}

func (s *session) run(ctx context.Context) error {
	u := s.u
	// The sender measures intervals (resends, holds): real time.
	if err := u.snd.restart(time.Now()); err != nil {
		return err
	}
	s.publishStatus()
	heartbeat := time.NewTicker(u.o.Heartbeat)
	defer heartbeat.Stop()
	check := time.NewTicker(min(u.o.ResendAfter/4, time.Second))
	defer check.Stop()
	for {
		if err := u.snd.fill(time.Now(), s.publish); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.lost:
			return err
		case m := <-s.msgs:
			s.handle(ctx, m)
		case <-u.notify:
		case <-heartbeat.C:
			s.publishStatus()
		case <-check.C:
			if u.snd.timedOut(time.Now()) {
				u.log.Info("uplink: no ack in time; sending again from the first unacknowledged", "seq", u.snd.first, "in_flight", u.snd.next-u.snd.first)
				u.count(func(st *Stats) { st.Resends++ })
			}
		}
	}
}

func (u *Uplink) count(f func(*Stats)) {
	u.mu.Lock()
	f(&u.stats)
	u.mu.Unlock()
}

// publish sends one batch of consecutive events.
func (s *session) publish(batch []store.Event) error {
	u := s.u
	msg := protocol.Batch{V: protocol.Version, Events: make([]protocol.Event, len(batch))}
	for i, ev := range batch {
		msg.Events[i] = u.wire(ev)
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if len(raw) > protocol.MaxEvents {
		return fmt.Errorf("events %d..%d make a message of %d bytes: %w", batch[0].Seq, batch[len(batch)-1].Seq, len(raw), errTooBig)
	}
	if t := s.c.Publish(u.topics.Events(), 1, false, raw); t.Error() != nil {
		return fmt.Errorf("publishing events %d..: %w", batch[0].Seq, t.Error())
	}
	u.count(func(st *Stats) { st.Published += len(batch) })
	return nil
}

// wire is an event as the protocol sends it.
func (u *Uplink) wire(ev store.Event) protocol.Event {
	w := protocol.Event{
		V: protocol.Version, ID: ev.ID(u.o.Device), Centre: u.o.Centre, Device: u.o.Device, Log: u.o.Store.LogID(),
		Seq: ev.Seq, Time: ev.Time.UTC(), ClockSynced: ev.ClockSynced, Corrected: ev.ClockCorrected,
		BootID: ev.BootIDString(), MonoNS: int64(ev.Mono), Card: ev.CardKey, Child: ev.ChildID,
		Outcome: string(ev.Outcome), Reason: string(ev.Reason), RosterRev: ev.RosterRev,
		OldCard: ev.OldCard, By: ev.By,
	}
	if len(ev.UID) > 0 {
		w.UID = hex.EncodeToString(ev.UID)
	}
	for _, f := range ev.Flags {
		w.Flags = append(w.Flags, string(f))
	}
	u.mu.Lock()
	base := u.base
	u.mu.Unlock()
	if !ev.ClockSynced && !ev.ClockCorrected && !base.IsZero() && ev.BootID == u.o.Clock.Stamp().BootID {
		w.Time, w.Corrected = base.Add(ev.Mono).UTC(), true
	}
	return w
}

func (s *session) handle(ctx context.Context, m message) {
	t := s.u.topics
	switch m.topic {
	case t.Ack():
		s.ack(m.raw)
	case t.Roster():
		s.snapshot(m)
	case t.Delta():
		s.delta(ctx, m)
	case t.Cmd():
		s.command(ctx, m)
	default:
		if strings.HasPrefix(m.topic, protocol.Prefix+"/portal/") {
			s.portalStatus(m)
		}
	}
}

// portalStatus hears a bridge instance come online: what this terminal
// sent while none listened was dropped, so it sends again at once rather
// than after ResendAfter. A retained copy (delivered on subscribing) is
// old news: connecting sends again from the first anyway.
func (s *session) portalStatus(m message) {
	if m.retained {
		return
	}
	st, err := protocol.DecodePortalStatus(m.raw)
	if err != nil {
		s.u.log.Debug("uplink: a malformed portal status ignored", "topic", m.topic, "err", err)
		return
	}
	if st.State == "online" && s.u.snd.portalBack(time.Now()) {
		s.u.log.Info("uplink: a bridge came online; sending again from the first unacknowledged", "topic", m.topic, "seq", s.u.snd.first)
		s.u.count(func(st *Stats) { st.Resends++ })
	}
}

func (s *session) ack(raw []byte) {
	u := s.u
	a, err := protocol.DecodeAck(raw)
	if err != nil {
		u.reject(u.topics.Ack(), err)
		s.publishStatus()
		return
	}
	if a.Device != u.o.Device || (a.Log != u.o.Store.LogID() && !(a.Refused != nil && a.Log == "")) {
		u.log.Info("uplink: ack for another log ignored", "device", a.Device, "log", a.Log)
		return
	}
	now := time.Now() // the sender's intervals
	r, err := u.snd.take(a, now)
	if err != nil {
		u.log.Error("uplink: taking an ack", "err", err)
		return
	}
	if r.refused {
		if u.snd.refused.Count == 1 {
			// A refusal's start is a wall time for staff: the clock's.
			u.snd.refused.Since = u.o.Clock.Stamp().Time.UTC()
		}
		cur := *u.snd.refused
		u.mu.Lock()
		u.stats.Refused++
		u.link.Refused = &cur
		u.mu.Unlock()
		u.log.Warn("uplink: the portal refused this terminal's events; nothing is lost: sending again later, in smaller batches", "seq", cur.Seq, "reason", cur.Reason, "times", cur.Count, "since", cur.Since, "retry_in", u.snd.hold)
		s.publishStatus()
	}
	if r.deleted > 0 {
		u.mu.Lock()
		u.stats.Acked += r.deleted
		u.link.LastAck = u.o.Clock.Stamp().Time.UTC()
		u.link.Refused = nil
		u.mu.Unlock()
	}
	if r.cleared {
		u.log.Info("uplink: the portal takes this terminal's events again")
		s.publishStatus()
	}
	if r.lost != nil {
		u.reject(u.topics.Ack(), r.lost)
		s.publishStatus()
	}
	if r.resend {
		u.log.Debug("uplink: the portal missed events; sending again", "from", u.snd.first)
		u.count(func(st *Stats) { st.Resends++ })
	}
	if st := u.o.Clock.Stamp(); !st.Synced && !a.Time.IsZero() {
		u.correctClock(st, a.Time)
	}
}

// correctClock learns the wall time from the portal and fixes the stored
// events of this boot, once per boot.
func (u *Uplink) correctClock(now store.Stamp, portal time.Time) {
	u.mu.Lock()
	known := !u.base.IsZero()
	if !known {
		u.base = portal.Add(-now.Mono)
	}
	base := u.base
	u.mu.Unlock()
	if known {
		return
	}
	n, err := u.o.Store.CorrectClock(now.BootID, base)
	if err != nil {
		u.log.Error("uplink: correcting event times", "err", err)
		return
	}
	u.log.Info("uplink: the clock is not set; event times corrected from the portal's clock", "events", n, "portal_time", portal)
}

// reject reports a refused message from the portal: logged, counted and
// put in the status.
func (u *Uplink) reject(topic string, err error) {
	r := &protocol.Rejection{Topic: topic, Reason: err.Error(), Time: u.o.Clock.Stamp().Time.UTC()}
	u.log.Warn("uplink: message from the portal refused; nothing changed", "topic", topic, "err", err)
	u.mu.Lock()
	u.stats.Rejected++
	u.stats.Rejections = append(u.stats.Rejections, *r)
	if len(u.stats.Rejections) > 32 {
		u.stats.Rejections = u.stats.Rejections[1:]
	}
	u.mu.Unlock()
}

func (s *session) snapshot(m message) {
	applied, err := s.u.takeSnapshot(m.raw)
	if err != nil {
		s.u.reject(m.topic, err)
		s.publishStatus()
		return
	}
	if applied {
		s.publishStatus()
	}
	if s.wantSnapshot {
		s.wantSnapshot = false
		s.c.Unsubscribe(s.u.topics.Roster())
	}
}

// takeSnapshot checks a snapshot message and applies it when it is newer
// than the current roster; the same revision is ignored.
func (u *Uplink) takeSnapshot(raw []byte) (applied bool, err error) {
	payload, err := protocol.Open(u.o.PortalKey, raw, protocol.MaxRoster)
	if err != nil {
		return false, err
	}
	r, err := protocol.DecodeSnapshot(payload, u.o.Centre)
	if err != nil {
		return false, err
	}
	cur, _, _ := u.o.Store.PortalRoster()
	switch {
	case cur != nil && r.Revision < cur.Revision:
		return false, fmt.Errorf("roster snapshot revision %d is older than the current %d: kept the current (a broker that missed the portal's later revisions, or a replay)", r.Revision, cur.Revision)
	case cur != nil && r.Revision == cur.Revision:
		return false, nil
	}
	return true, u.apply(r)
}

func (u *Uplink) apply(r *firmware.Roster) error {
	if err := u.o.Store.ApplyRoster(r, u.o.Clock.Stamp().Time); err != nil {
		return err
	}
	u.log.Info("uplink: roster applied", "revision", r.Revision, "children", len(r.Children))
	if u.o.RosterApplied != nil {
		u.o.RosterApplied(r)
	}
	return nil
}

func (s *session) delta(ctx context.Context, m message) {
	applied, err := s.u.takeDelta(m.raw)
	if errors.Is(err, errNeedSnapshot) && !s.wantSnapshot {
		if err := s.subscribeSnapshot(ctx); err != nil {
			s.u.log.Warn("uplink: asking for a snapshot", "err", err)
		}
	}
	if err != nil {
		s.u.reject(m.topic, err)
	}
	if err != nil || applied {
		s.publishStatus()
	}
}

// errNeedSnapshot marks a delta that does not apply: a gap or a digest
// mismatch, which the retained snapshot sets right.
var errNeedSnapshot = errors.New("asking for a snapshot")

// takeDelta checks a delta message and applies it on the current roster.
func (u *Uplink) takeDelta(raw []byte) (applied bool, err error) {
	payload, err := protocol.Open(u.o.PortalKey, raw, protocol.MaxRoster)
	if err != nil {
		return false, err
	}
	d, err := protocol.DecodeDelta(payload, u.o.Centre)
	if err != nil {
		return false, err
	}
	// The delta applies to the portal's roster, not to the one with this
	// terminal's binding changes on top.
	cur, _, _ := u.o.Store.PortalRoster()
	if cur != nil && d.Revision <= cur.Revision {
		if d.Revision < cur.Revision {
			return false, fmt.Errorf("roster delta to revision %d, older than the current %d (a replay?)", d.Revision, cur.Revision)
		}
		return false, nil
	}
	next, err := d.Apply(cur)
	if err != nil {
		return false, fmt.Errorf("%w; %w", err, errNeedSnapshot)
	}
	return true, u.apply(next)
}

func (s *session) command(ctx context.Context, m message) {
	u := s.u
	payload, err := protocol.Open(u.o.PortalKey, m.raw, protocol.MaxMessage)
	var c *protocol.Command
	if err == nil {
		c, err = protocol.DecodeCommand(payload, u.o.Centre, u.o.Device, u.o.Clock.Stamp().Time)
	}
	if err != nil {
		u.reject(m.topic, err)
		s.publishStatus()
		if c != nil && c.ID != "" {
			s.reply(protocol.Reply{ID: c.ID, Error: err.Error()})
		}
		return
	}
	now := u.o.Clock.Stamp().Time
	// Kept in the store until the command expires: a delivery again, or a
	// command published again after this terminal restarted, runs once.
	first, err := u.o.Store.CommandOnce(c.ID, c.Expires, now)
	if err != nil {
		u.log.Error("uplink: recording a command; not run", "id", c.ID, "err", err)
		s.reply(protocol.Reply{ID: c.ID, Error: "the terminal could not record the command (" + err.Error() + "); send it again"})
		return
	}
	if !first {
		return // a duplicate delivery, on this connection or an earlier one: answered already
	}
	switch c.Name {
	case protocol.CmdPing:
		res, _ := json.Marshal(map[string]any{"time": u.o.Clock.Stamp().Time.UTC()})
		s.reply(protocol.Reply{ID: c.ID, OK: true, Result: res})
	case protocol.CmdResync:
		if err := s.subscribeSnapshot(ctx); err != nil {
			s.reply(protocol.Reply{ID: c.ID, Error: err.Error()})
			return
		}
		s.reply(protocol.Reply{ID: c.ID, OK: true})
	case protocol.CmdEnrol:
		a, err := protocol.DecodeEnrolArgs(c.Args)
		if err == nil && u.o.Enrol == nil {
			err = errors.New("this terminal has no enrolment")
		}
		var screen []string
		if err == nil {
			screen, err = u.o.Enrol(a.Child, a.By)
		}
		if err != nil {
			s.reply(protocol.Reply{ID: c.ID, Error: err.Error()})
			return
		}
		res, _ := json.Marshal(map[string]any{"child": a.Child, "screen": screen})
		s.reply(protocol.Reply{ID: c.ID, OK: true, Result: res})
	default:
		s.reply(protocol.Reply{ID: c.ID, Error: fmt.Sprintf("unknown command %q", c.Name)})
	}
}

func (s *session) reply(r protocol.Reply) {
	r.V = protocol.Version
	raw, _ := json.Marshal(r)
	s.c.Publish(s.u.topics.Reply(), 1, false, raw)
}

// Status is the terminal's status as it would publish it now.
func (u *Uplink) Status() protocol.Status {
	now := u.o.Clock.Stamp()
	st := protocol.Status{V: protocol.Version, State: "online", Instance: u.instance, Time: now.Time.UTC(), Version: u.o.Version, ClockSynced: now.Synced}
	if o, err := u.o.Store.Outbox(); err == nil {
		st.OutboxDepth = o.Depth
		if o.Depth > 0 {
			st.OldestAgeS = now.Time.Sub(o.Oldest).Seconds()
		}
	}
	if r, at, err := u.o.Store.Roster(); err == nil {
		st.RosterRev, st.RosterAgeS = r.Revision, now.Time.Sub(at).Seconds()
	}
	if u.o.Reader != nil {
		st.ReaderHealthy, st.ReaderResets = u.o.Reader()
	}
	u.mu.Lock()
	if n := len(u.stats.Rejections); n > 0 {
		st.Rejected = &u.stats.Rejections[n-1]
	}
	if r := u.link.Refused; r != nil {
		c := *r
		st.Refused = &c
	}
	u.mu.Unlock()
	return st
}

func (s *session) publishStatus() {
	raw, _ := json.Marshal(s.u.Status())
	s.c.Publish(s.u.topics.Status(), 1, true, raw)
}
