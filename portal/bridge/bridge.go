// Package bridge is the portal's peer of the terminals (kiumbridge): it
// holds the MQTT links (every broker of Options.Brokers), takes the
// terminals' events through a shared subscription into package ingest,
// acknowledges what is stored, and runs the jobs on the store (package
// store, bbolt or PostgreSQL): the texter (package texter), roster
// publishing (package publish) and the binder.
//
// The binder (package binder) takes each card_bound event into its
// centre's roster source, resolving conflicts between centres by package
// registry's rule; it keeps the sources as last read, which the bridge
// reads names, phone numbers and rosters from. The bridge answers kiumctl
// on a local control socket: cards, their history, enrol and revoke
// (control.go; the API's types and client are package api, which kiumctl
// links instead of this).
package bridge

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/firmware"
	"kiumtap/portal/absence"
	"kiumtap/portal/api"
	"kiumtap/portal/binder"
	"kiumtap/portal/ingest"
	"kiumtap/portal/publish"
	"kiumtap/portal/sms"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/portal/texter"
	"kiumtap/protocol"
)

// Options configure a Bridge. Zero values take the documented defaults.
type Options struct {
	Broker string // tcp://host:1883 or ssl://host:8883
	// Brokers lists several brokers instead of Broker: the bridge
	// connects to each (Instances connections per broker), takes events
	// from all, and publishes rosters, acks and commands on every one, so
	// a terminal finds them on whichever broker it is connected to
	// (docs/protocol.md, "Several brokers").
	Brokers  []string
	Username string // default "portal"
	Password string
	TLS      *tls.Config
	// ClientID prefix; instance i connects as ClientID-i. Default
	// "kiumbridge" plus the host name.
	ClientID string
	// Group of the shared subscription ($share/Group/...); default
	// "kiumbridge". Bridges in one group split the terminals' messages.
	Group string
	// Instances is how many MQTT connections share the subscription in
	// this process; default 1.
	Instances int
	// Key signs rosters and commands.
	Key ed25519.PrivateKey
	// DB keeps events, texts, published rosters and the card registry:
	// the storage contract (package store), on PostgreSQL
	// (portal/store/pgstore) for instances on several hosts. Nil: Store.
	DB store.Store
	// Store is the embedded bbolt store, used when DB is nil (one of the
	// two is required).
	Store *boltstore.Store
	// Sources are the centres' roster sources (package source): a
	// directory for one host, or source.Stored on the store for several.
	// Nil: the directory SourceDir.
	Sources source.Sources
	// SourceDir holds one roster source per centre, CENTRE.json, when
	// Sources is nil; it is read at start and watched for changes.
	SourceDir string
	// Provider sends texts from the sender number From.
	Provider sms.Provider
	From     string
	// AutoCheckOut: "text" (default) tells guardians of an automatic
	// check-out; "hold" stores the text without sending it.
	AutoCheckOut string
	// AckEvery is how often acks go out, one per terminal naming what was
	// stored since the last; default 50 ms.
	AckEvery time.Duration
	// Workers send texts in parallel; default 4.
	Workers int
	// Retry backoff of texts: doubled per attempt from RetryMin (default 1 s)
	// up to RetryMax (default 5 min).
	RetryMin, RetryMax time.Duration
	Now                func() time.Time
	Logger             *slog.Logger
	// Sent, if set, is told of every text the provider accepted.
	Sent func(store.Job, sms.Text)
	// Attempted, if set, is told of every attempt to hand a text to the
	// provider, as its answer comes, with the provider's name and its
	// error (nil: the provider took the text). It must not block: texts
	// wait for it (the metrics count with it).
	Attempted func(provider string, err error)
	// StallAfter is how long a terminal's gap lasts before it is reported
	// as stalled (kiumctl gaps); default 30 s.
	StallAfter time.Duration
	// Control is the unix socket where kiumctl asks about cards and
	// enrols or revokes them (mode 0600); empty: none.
	Control string
	// CommandWait is how long an enrol waits for the terminal's reply;
	// default 10 s.
	CommandWait time.Duration
	// Stored, if set, is told each time events were stored or a
	// not-arrived alert raised or ended (the staff page's live boards
	// look then). It must not block.
	Stored func()
	// ReportEvery is how often a text taken by AlimTalk is looked up at
	// its provider (delivered, or fallen back to SMS/LMS); default 15 s.
	ReportEvery time.Duration
	// NotArrivedEvery is how often the not-arrived alerts are checked
	// (package absence); default 30 s.
	NotArrivedEvery time.Duration
	// StopTimeout bounds a graceful stop (Run's ctx ended, as on
	// SIGTERM): the bridge takes no more events, stores and acknowledges
	// what it took, and lets the texts already handed to providers
	// finish and be recorded; default 10 s. A text still unanswered then
	// is left as a crash leaves it: sent again, with the same key.
	StopTimeout time.Duration
}

// Bridge is the portal side of the terminals.
type Bridge struct {
	o   Options
	in  *ingest.Ingest
	log *slog.Logger

	mu      sync.Mutex
	stats   api.Stats
	clients []link
	taken   chan struct{}
	burstAt atomic.Int64 // unix ns of the last commit of a burst

	// bind applies card bindings and revokes to the roster sources, and
	// keeps them as last read.
	bind    *binder.Binder
	absence *absence.Watch
	dirty   map[string]bool // centres to publish
	pubKick chan struct{}   // centres were marked to publish
	// waiters are the enrol commands waiting for their reply, by ID.
	waiters map[string]waiter
	// terminals are the terminals' last statuses, by centre/device; ids
	// watch each device's instances for a clash (terminals.go).
	terminals map[string]api.TerminalView
	// said is each broker's last status of each terminal (by centre/device,
	// then broker URL): the newest is the terminal's.
	said map[string]map[string]*protocol.Status
	ids  map[string]*idWatch
	// listening is closed once Run answers on the control socket.
	listening     chan struct{}
	listeningOnce sync.Once
	// pinging: a Ping waits for the locks (one at a time).
	pinging atomic.Bool
	// tx sends the texts; pub publishes the rosters.
	tx  *texter.Texter
	pub *publish.Publisher
	// db is the store, as the storage contract has it; owner names this
	// bridge's claims on its text queue (random per start: a restarted
	// process is another owner, whose predecessor's claims lapse).
	db    store.Store
	owner string
	// stallSig and stallAt are the stalls last shared (gap.go) and when;
	// stallKeys their keys.
	stallSig  string
	stallAt   time.Time
	stallKeys map[string]bool
}

// New checks the options and loads the roster sources.
func New(o Options) (*Bridge, error) {
	switch {
	case o.Broker == "" && len(o.Brokers) == 0:
		return nil, errors.New("bridge: no broker URL")
	case o.Broker != "" && len(o.Brokers) > 0:
		return nil, errors.New("bridge: Broker and Brokers both set: keep one")
	case len(o.Key) != ed25519.PrivateKeySize:
		return nil, errors.New("bridge: the signing key (Ed25519) is required: rosters and commands are signed")
	case (o.Store == nil && o.DB == nil) || o.Provider == nil:
		return nil, errors.New("bridge: a store (DB or Store) and Provider are required")
	case o.SourceDir == "" && o.Sources == nil:
		return nil, errors.New("bridge: no roster sources (SourceDir or Sources)")
	}
	if o.Username == "" {
		o.Username = "portal"
	}
	if o.ClientID == "" {
		h, _ := os.Hostname()
		o.ClientID = "kiumbridge-" + h
	}
	if o.Group == "" {
		o.Group = "kiumbridge"
	}
	if o.Instances <= 0 {
		o.Instances = 1
	}
	if o.AutoCheckOut == "" {
		o.AutoCheckOut = "text"
	}
	if o.AutoCheckOut != "text" && o.AutoCheckOut != "hold" {
		return nil, fmt.Errorf("bridge: auto_check_out %q is not text or hold", o.AutoCheckOut)
	}
	if o.AckEvery <= 0 {
		o.AckEvery = 50 * time.Millisecond
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CommandWait <= 0 {
		o.CommandWait = 10 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Sources == nil {
		o.Sources = source.Dir(o.SourceDir)
	}
	b := &Bridge{o: o, log: o.Logger, taken: make(chan struct{}, 1),
		pubKick: make(chan struct{}, 1), dirty: map[string]bool{}, waiters: map[string]waiter{}, terminals: map[string]api.TerminalView{}, said: map[string]map[string]*protocol.Status{}, ids: map[string]*idWatch{},
		listening: make(chan struct{})}
	b.db = o.DB
	if b.db == nil {
		b.db = o.Store.Contract()
	}
	b.owner = fmt.Sprintf("%s-%x", o.ClientID, rand.Uint64())
	var err error
	b.pub, err = publish.New(publish.Options{Revisions: b.db, Key: o.Key, Now: o.Now, Logger: o.Logger, Connected: func() bool { return b.client() != nil },
		Send: func(topic string, retained bool, payload []byte) error {
			return b.publishAll(topic, 1, retained, payload)
		}})
	if err != nil {
		return nil, err
	}
	b.tx, err = texter.New(texter.Options{Queue: b.db, Owner: b.owner, Provider: o.Provider, From: o.From, Workers: o.Workers,
		RetryMin: o.RetryMin, RetryMax: o.RetryMax, Now: o.Now, Logger: o.Logger, Names: b.names,
		Burst: func() time.Time { return time.Unix(0, b.burstAt.Load()) }, Attempted: o.Attempted, Sent: o.Sent, ReportEvery: o.ReportEvery})
	if err != nil {
		return nil, err
	}
	b.bind, err = binder.New(binder.Options{Store: b.db, Sources: o.Sources, Key: o.Key.Seed(), Now: o.Now, Logger: o.Logger,
		Changed: func(centres ...string) {
			if len(centres) > 0 {
				b.markDirty(centres...)
				select { // Run publishes them now, not at its next tick
				case b.pubKick <- struct{}{}:
				default:
				}
			}
		}})
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	b.in = ingest.New(ingestStore{b}, ingest.Options{Centre: b.serves, StallAfter: o.StallAfter})
	b.absence, err = absence.New(absence.Options{Reg: b.db, Events: b.db, Texts: b.db, Centres: b.centres, Source: b.source,
		Every: o.NotArrivedEvery, Now: o.Now, Logger: o.Logger,
		Raised: func(absence.Alert) {
			if o.Stored != nil {
				o.Stored()
			}
		}})
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	return b, nil
}

// names are a centre's and a child's names, from the centre's source.
func (b *Bridge) names(centre, child string) (string, string) {
	src := b.source(centre)
	if src == nil {
		return "", ""
	}
	name := ""
	if c := src.Roster.ChildByID(child); c != nil {
		name = c.Name
	}
	return src.Roster.Centre.Name, name
}

func (b *Bridge) serves(centre string) bool { return b.bind.Source(centre) != nil }

func (b *Bridge) source(centre string) *source.Source { return b.bind.Source(centre) }

// Source is a centre's roster source as the bridge has it now, nil for a
// centre it does not serve. It must not be changed.
func (b *Bridge) Source(centre string) *source.Source { return b.bind.Source(centre) }

// rosterOf is a centre's roster as its source has it now, nil if none.
func (b *Bridge) rosterOf(centre string) *firmware.Roster {
	if src := b.bind.Source(centre); src != nil {
		return src.Roster
	}
	return nil
}

// Listening is closed once Run answers on the control socket (at once
// when there is none): kiumctl and kiumbridge status, texts and export
// can ask from then on. It does not wait for the broker: Run keeps
// trying to reach it meanwhile (Connected says when it has).
func (b *Bridge) Listening() <-chan struct{} { return b.listening }

// Connected reports whether a connection to the broker is open now.
func (b *Bridge) Connected() bool { return b.client() != nil }

// Ping returns once the bridge's state answers: its lock and the
// ingest's are free (a deadlock holds them). It is the watchdog's check
// of the bridge; it returns ctx's error if they stay held.
func (b *Bridge) Ping(ctx context.Context) error {
	if !b.pinging.CompareAndSwap(false, true) {
		return errors.New("the bridge's state is locked: the last check is still waiting for it")
	}
	done := make(chan struct{})
	go func() {
		defer b.pinging.Store(false)
		defer close(done)
		b.Stats()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the bridge's state is locked: %w", ctx.Err())
	}
}

// Stats returns the counts so far.
func (b *Bridge) Stats() api.Stats {
	b.mu.Lock()
	s := b.stats
	b.mu.Unlock()
	s.Ingest = b.in.Stats()
	t := b.tx.Stats()
	s.TextsSent, s.TextsFailed, s.TextRetries = t.Sent, t.Failed, t.Retries
	s.TextsBy, s.TextsFellBack = t.By, t.FellBack
	s.Published = b.pub.Published()
	return s
}

// textKind is the text an outcome calls for; "" for none.
func textKind(outcome string) sms.Kind {
	switch firmware.Outcome(outcome) {
	case firmware.CheckIn:
		return sms.Arrival
	case firmware.CheckOut:
		return sms.Departure
	case firmware.AutoCheckOut:
		return sms.AutoCheckOut
	}
	return "" // refused taps are for staff, not parents
}

// jobsFor makes the texts of an event: one per guardian who wants them.
func (b *Bridge) jobsFor(e *protocol.Event) []store.Job {
	kind := textKind(e.Outcome)
	src := b.source(e.Centre)
	if kind == "" || src == nil || e.Child == "" {
		return nil
	}
	now := b.o.Now()
	var out []store.Job
	for i, to := range src.Phones(e.Child) {
		// Unique across logs: a terminal whose store was replaced starts
		// its sequences again.
		j := store.Job{ID: fmt.Sprintf("%s/%s/%d/%d", e.Device, e.Log, e.Seq, i), EventID: e.ID, Centre: e.Centre, Child: e.Child, Kind: string(kind),
			At: e.Time, To: to, Created: now, State: store.JobPending, NextAt: now}
		if kind == sms.AutoCheckOut && b.o.AutoCheckOut == "hold" {
			j.State, j.Reason = store.JobHeld, "automatic check-outs are held (auto_check_out: hold)"
		}
		out = append(out, j)
	}
	return out
}

// Run connects, ingests, acknowledges, texts, applies bindings, publishes
// rosters and answers on the control socket until ctx ends. Then it stops
// gracefully, within StopTimeout: it leaves the shared subscription (other
// instances take the terminals' messages), stores and acknowledges what it
// took, lets texts in flight finish and records them, finishes the binding
// job at hand, says it is offline and disconnects.
func (b *Bridge) Run(ctx context.Context) error {
	// hard ends StopTimeout after ctx: what a graceful stop has not
	// finished by then is cut short.
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(b.o.StopTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			b.log.Warn("bridge: stopping took longer than stop_timeout; cutting short what is left", "stop_timeout", b.o.StopTimeout)
			cancelHard()
		case <-hard.Done():
		}
	})
	defer stop()
	if b.o.Control != "" {
		ctl, err := listenControl(b.o.Control)
		if err != nil {
			return err
		}
		defer ctl.Close()
		// The control socket answers from the start: while the broker is
		// away, kiumbridge status says so, and texts and export answer.
		serve, stopServe := context.WithCancel(ctx)
		served := make(chan struct{})
		go func() { defer close(served); b.serveControl(serve, ctl) }()
		defer func() { stopServe(); <-served }()
	}
	b.listeningOnce.Do(func() { close(b.listening) })
	// Every connection is tried at once. The bridge starts its work once
	// one is up; the others join as their broker answers. A broker that
	// refuses stops the bridge, with its answer.
	refused := make(chan error, 1)
	up := make(chan struct{}, 1)
	var dialing sync.WaitGroup
	defer func() {
		dialing.Wait()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, l := range b.clients {
			l.c.Disconnect(250)
		}
	}()
	for k, url := range b.brokers() {
		for i := range b.o.Instances {
			dialing.Add(1)
			go func() {
				defer dialing.Done()
				c, err := b.connect(ctx, url, i)
				if err != nil {
					if ctx.Err() == nil {
						select {
						case refused <- err:
						default:
						}
					}
					return
				}
				b.mu.Lock()
				b.clients = append(b.clients, link{c: c, broker: k, instance: i})
				b.mu.Unlock()
				select {
				case up <- struct{}{}:
				default:
				}
			}()
		}
	}
	select {
	case <-up:
	case err := <-refused:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
	// Every centre's roster goes out at start (again: the broker may have
	// lost its retained copy), and any that fails is tried each second.
	b.markDirty(b.centres()...)
	intake, stopIntake := context.WithCancel(context.Background())
	defer stopIntake()
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); b.ingester(intake, hard) }()
	go func() { defer wg.Done(); b.tx.Run(ctx, hard) }()
	go func() { defer wg.Done(); b.bind.Run(ctx) }()
	go func() { defer wg.Done(); b.absence.Run(ctx) }()
	watch := time.NewTicker(time.Second)
	defer watch.Stop()
	for {
		select {
		case <-ctx.Done():
			began := time.Now()
			b.leave(hard)
			stopIntake() // the ingester stores and acknowledges what it took, then returns
			wg.Wait()
			b.goOffline(hard)
			b.log.Info("bridge: stopped", "took", time.Since(began).Round(time.Millisecond))
			return ctx.Err()
		case err := <-refused:
			// A broker joining late refused this bridge: as at start, it
			// stops, with the broker's answer.
			b.leave(hard)
			stopIntake()
			wg.Wait()
			b.goOffline(hard)
			return err
		case <-watch.C:
			b.shareStalls()
		case <-b.pubKick:
		}
		b.publishDirty()
	}
}

// leave unsubscribes every connection from the terminals' events, so the
// broker hands them to other instances (or, with none, drops them: the
// terminals send them again when an instance comes online).
func (b *Bridge) leave(hard context.Context) {
	b.mu.Lock()
	clients := slices.Clone(b.clients)
	b.mu.Unlock()
	for _, l := range clients {
		if l.c.IsConnectionOpen() {
			waitToken(hard, l.c.Unsubscribe(b.eventsTopic()), 2*time.Second)
		}
	}
}

// goOffline publishes each instance's presence as offline, retained: a
// clean stop sends no will.
func (b *Bridge) goOffline(hard context.Context) {
	b.mu.Lock()
	clients := slices.Clone(b.clients)
	b.mu.Unlock()
	raw, _ := json.Marshal(protocol.PortalStatus{V: protocol.Version, State: "offline", Time: b.o.Now().UTC()})
	for _, l := range clients {
		if l.c.IsConnectionOpen() {
			waitToken(hard, l.c.Publish(protocol.PortalStatusTopic(b.instanceID(l.instance)), 1, true, raw), 2*time.Second)
		}
	}
}

// waitToken waits for an MQTT token for at most d, or until ctx ends.
func waitToken(ctx context.Context, t mqtt.Token, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-timer.C:
		return fmt.Errorf("no answer from the broker in %v", d)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// markDirty marks centres to publish.
func (b *Bridge) markDirty(centres ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range centres {
		b.dirty[c] = true
	}
}

// publishDirty publishes the centres marked; any that fails stays marked
// and is tried again a second later.
func (b *Bridge) publishDirty() {
	b.mu.Lock()
	centres := slices.Sorted(maps.Keys(b.dirty))
	clear(b.dirty)
	b.mu.Unlock()
	for _, centre := range centres {
		if err := b.Publish(centre); err != nil {
			b.log.Error("bridge: publishing a roster; trying again in a second", "centre", centre, "err", err)
			b.markDirty(centre)
		}
	}
}

// Status is the bridge's status now.
func (b *Bridge) Status() api.Status {
	st := api.Status{Time: b.o.Now().UTC(), Connected: b.client() != nil, Brokers: b.links(), Centres: b.centres(), Stats: b.Stats(), Stalled: b.in.Stalled(b.o.Now()), Refused: b.in.Refusals(), NotArrived: b.notArrived()}
	st.Failed = b.tx.Failed()
	slices.Sort(st.Centres)
	return st
}

func (b *Bridge) centres() []string { return b.bind.Centres() }

// Publish publishes a centre's roster as its source has it now (package
// publish): the next revision if it changed, recorded first, then the
// latest out on every broker.
func (b *Bridge) Publish(centre string) error {
	src := b.source(centre)
	if src == nil {
		return fmt.Errorf("no roster source for centre %q", centre)
	}
	return b.pub.Publish(context.Background(), src.Roster)
}
