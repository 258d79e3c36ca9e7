// Package ingest is the portal's side of the events stream: it checks each
// terminal message, stores its events once and in order, and says what to
// acknowledge. It speaks no MQTT: the bridge feeds it messages (from one
// or several subscribers) and sends the acks it returns.
//
// Events of one device's log are stored strictly in sequence. An event
// beyond a gap is held a moment (bridge instances on a shared subscription
// may take a terminal's consecutive messages out of order) and stored once
// the gap fills; when the gap lasts, or too much is held, the ack names
// the sequence expected and the terminal sends again from there. An event
// already stored is a duplicate: counted, acknowledged again, not stored.
//
// What is stored of a log is therefore always a prefix of it, and acks say
// so: each is cumulative, "stored through N" (protocol.Cumulative), and is
// repeated whenever a duplicate comes. An ack lost with a bridge killed
// before sending it is made good by the next one, whichever instance sends
// it, so a terminal never waits on an ack that will not come.
//
// A message the ingest refuses whole (malformed, not consecutive, of
// another device, of an unknown centre) is not stored; the device is told,
// in an ack of its own that carries the reason (Refusals keeps the latest
// per device for operators), so it does not send it unchanged forever.
//
// A gap that never fills — the terminal keeps sending from beyond it, as
// after the portal's store was restored from an older backup: the
// terminal deleted those events when they were first acknowledged — is a
// stall (Stalled). Only an operator ends one (Skip), by recording the
// missing events as lost at the portal.
package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"kiumtap/protocol"
)

// Store keeps events. Put must be durable before it returns: an ack
// follows.
type Store interface {
	// Last is the highest sequence stored for the device's log, 0 if none.
	Last(device, log string) (uint64, error)
	// Put stores events that follow Last, consecutive, in one transaction.
	Put(evs []protocol.Event) error
}

// Stats count what Handle saw.
type Stats struct {
	Stored, Duplicates, OutOfOrder, Malformed, UnknownCentre int
}

// ErrUnknownCentre: an event of a centre the portal does not serve.
var ErrUnknownCentre = errors.New("unknown centre")

// Options configure an Ingest.
type Options struct {
	// Centre reports whether the portal serves a centre; nil: all.
	Centre func(id string) bool
	// HoldGap is how long events beyond a gap wait for it to fill before
	// the ack asks the terminal to send again; default 500 ms.
	HoldGap time.Duration
	// MaxHeld bounds the events held beyond gaps, per log; default 4096.
	MaxHeld int
	// StallAfter is how long a log may ask for the same missing event,
	// getting only later ones, before Stalled reports it; default 30 s
	// (three of the terminal's 10 s resend rounds).
	StallAfter time.Duration
}

// Stall is a log whose gap does not fill: the portal has events up to
// Last, and for Since the terminal has sent nothing below Lowest, the
// lowest sequence seen beyond the gap: its first unacknowledged event,
// for since asking a message of the terminal began there (it sends again
// from its first event when asked for one it no longer has).
type Stall struct {
	Centre, Device, Log string
	Last, Lowest        uint64
	Since               time.Time
}

type key struct{ centre, device, log string }

// state is one log's: what to acknowledge and what is held.
type state struct {
	due      bool // an event was stored, or a duplicate seen, since the last ack
	held     map[uint64]protocol.Event
	last     uint64    // last stored, as this Ingest knows it
	known    bool      // last was read from the store
	gapSince time.Time // first event held beyond the current gap
	overflow bool      // events were dropped: ask for them at once
	// asked is the sequence the last ack asked for (next), since asking;
	// lowest the lowest sequence seen beyond it since. A store or a Skip
	// ends the asking.
	asked, lowest uint64
	askedSince    time.Time
	// sentFrom: since asking, a message began at lowest. The terminal
	// begins a message below its newest events only when it sends again
	// from its first unacknowledged event, so lowest is that event, not
	// one sent before it was (an earlier message dropped, or refused,
	// on the way): only then may a stall be reported, and a gap be
	// accepted up to it, without losing events the terminal still has.
	sentFrom bool
}

// endAsking: what was asked for is stored, or recorded as lost; any
// stall of the log is over.
func (st *state) endAsking() {
	st.asked, st.lowest, st.askedSince, st.sentFrom = 0, 0, time.Time{}, false
}

// Ingest handles event messages. It is safe for concurrent use.
type Ingest struct {
	store Store
	o     Options

	flushMu sync.Mutex // one Flush at a time
	mu      sync.Mutex // guards logs, refusals and stats; not held while storing
	logs    map[key]*state
	// active are the logs with work to do: events held, or an ack due.
	// Flush and Acks look at these alone, not at every terminal's log (a
	// city's bridge knows thousands).
	active map[key]*state
	stats  Stats
	// refusals are the messages refused, by centre/device: the latest,
	// until the device's events are stored again.
	refusals map[string]*refusal
}

// refusal is a device's refused messages.
type refusal struct {
	Refusal
	log     string // of the message refused, "" when unreadable
	pending bool   // not yet told to the device
}

// Refusal is what an operator sees of a device's refused messages: the
// latest reason, the first sequence of that message (0: unreadable),
// since when and how many, until its events are stored again.
type Refusal struct {
	Centre, Device string
	Seq            uint64
	Reason         string
	Since, Last    time.Time
	Count          int
}

// New makes an Ingest over a store.
func New(s Store, o Options) *Ingest {
	if o.HoldGap <= 0 {
		o.HoldGap = 500 * time.Millisecond
	}
	if o.MaxHeld <= 0 {
		o.MaxHeld = 4096
	}
	if o.StallAfter <= 0 {
		o.StallAfter = 30 * time.Second
	}
	return &Ingest{store: s, o: o, logs: map[key]*state{}, active: map[key]*state{}, refusals: map[string]*refusal{}}
}

// Handle takes one message from a device's events topic and stores what
// it can at once (Take, then Flush).
func (g *Ingest) Handle(topic string, raw []byte, now time.Time) error {
	if err := g.Take(topic, raw, now); err != nil {
		return err
	}
	return g.Flush(now)
}

// Take checks one message from a device's events topic and holds its
// events for the next Flush. A malformed message, or one of an unknown
// centre, is an error and is dropped unacknowledged: the caller logs it,
// and the device is told with the next acks.
func (g *Ingest) Take(topic string, raw []byte, now time.Time) error {
	centre, device, leaf, ok := protocol.ParseDeviceTopic(topic)
	if !ok || leaf != "events" || !protocol.ValidID(centre) || !protocol.ValidID(device) {
		g.count(func(s *Stats) { s.Malformed++ })
		return fmt.Errorf("ingest: %q is not an events topic", topic)
	}
	evs, err := protocol.DecodeBatch(raw)
	if err == nil && (evs[0].Centre != centre || evs[0].Device != device) {
		err = fmt.Errorf("events of %s/%s on the topic of %s/%s", evs[0].Centre, evs[0].Device, centre, device)
	}
	if err != nil {
		g.refuse(centre, device, raw, err, now, func(s *Stats) { s.Malformed++ })
		return fmt.Errorf("ingest: %s: %w", topic, err)
	}
	if g.o.Centre != nil && !g.o.Centre(centre) {
		err := fmt.Errorf("%w %q: add its roster source, or check the terminal's centre_id", ErrUnknownCentre, centre)
		g.refuse(centre, device, raw, err, now, func(s *Stats) { s.UnknownCentre++ })
		return fmt.Errorf("ingest: %s: %w", topic, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	k := key{centre, device, evs[0].Log}
	st := g.logs[k]
	if st == nil {
		st = &state{held: map[uint64]protocol.Event{}}
		g.logs[k] = st
	}
	if !st.known {
		last, err := g.store.Last(device, evs[0].Log)
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		st.last, st.known = last, true
	}
	last := st.last // may lag another instance's stores: Flush looks again
	for _, e := range evs {
		switch {
		case e.Seq <= last:
			g.stats.Duplicates++
			st.due = true
		case len(st.held) >= g.o.MaxHeld:
			st.overflow = true
			g.stats.OutOfOrder++
		default:
			if _, dup := st.held[e.Seq]; dup {
				g.stats.Duplicates++
			}
			st.held[e.Seq] = e
		}
		if st.asked != 0 && e.Seq > last && (st.lowest == 0 || e.Seq < st.lowest) {
			st.lowest, st.sentFrom = e.Seq, false
		}
	}
	if st.asked != 0 && evs[0].Seq == st.lowest {
		st.sentFrom = true
	}
	if len(st.held) > 0 && st.gapSince.IsZero() {
		st.gapSince = now
	}
	if len(st.held) > 0 || st.due || st.overflow {
		g.active[k] = st
	}
	return nil
}

// Flush stores, in one transaction, every held event that follows its
// log's last stored one: events of many messages and terminals share one
// commit (and one fsync).
func (g *Ingest) Flush(now time.Time) error {
	g.flushMu.Lock()
	defer g.flushMu.Unlock()
	type runOf struct {
		k   key
		st  *state
		evs []protocol.Event
	}
	var runs []runOf
	var all []protocol.Event
	g.mu.Lock()
	for k, st := range g.active {
		if len(st.held) == 0 {
			st.gapSince, st.overflow = time.Time{}, false
			continue
		}
		last := st.last
		if _, next := st.held[last+1]; !next || !st.known {
			// A gap, as far as this Ingest knows: another instance sharing
			// the store may have filled it.
			l, err := g.store.Last(k.device, k.log)
			if err != nil {
				g.mu.Unlock()
				return fmt.Errorf("ingest: %w", err)
			}
			last, st.last, st.known = l, l, true
			if st.asked != 0 && last >= st.asked {
				// What this Ingest asked for is stored meanwhile (by
				// another instance, or a gap recorded there): the
				// asking, and any stall, is over.
				st.endAsking()
			}
		}
		for seq := range st.held {
			if seq <= last { // stored meanwhile by another instance
				delete(st.held, seq)
				g.stats.Duplicates++
			}
		}
		var run []protocol.Event
		for next := last + 1; ; next++ {
			e, ok := st.held[next]
			if !ok {
				break
			}
			run = append(run, e)
			delete(st.held, next)
		}
		if len(run) == 0 {
			if len(st.held) == 0 {
				st.gapSince, st.overflow = time.Time{}, false
			}
			continue
		}
		runs = append(runs, runOf{k, st, run})
		all = append(all, run...)
	}
	g.mu.Unlock()
	if len(all) == 0 {
		return nil
	}
	// Subscribers go on taking messages meanwhile: the next commit carries
	// all of them.
	err := g.store.Put(all)
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range runs {
		g.active[r.k] = r.st // an Acks meanwhile may have let it go
		if err != nil {
			for _, e := range r.evs { // held again, for the next Flush
				r.st.held[e.Seq] = e
			}
			continue
		}
		g.stats.Stored += len(r.evs)
		r.st.last = max(r.st.last, r.evs[len(r.evs)-1].Seq)
		r.st.endAsking()
		r.st.due = true
		delete(g.refusals, r.evs[0].Centre+"/"+r.evs[0].Device)
		if len(r.st.held) == 0 {
			r.st.gapSince, r.st.overflow = time.Time{}, false
		} else {
			r.st.gapSince = now // progress: the remaining gap's age starts now
		}
	}
	if err != nil {
		return fmt.Errorf("ingest: storing %d events: %w", len(all), err)
	}
	return nil
}

// refuse records a message refused whole, for the device's next acks
// and for operators.
func (g *Ingest) refuse(centre, device string, raw []byte, err error, now time.Time, count func(*Stats)) {
	// What the message says of itself, if it says anything readable: which
	// log and sequence the device should hear about.
	var peek struct {
		Events []struct {
			Log string `json:"log"`
			Seq uint64 `json:"seq"`
		} `json:"events"`
	}
	if len(raw) <= protocol.MaxEvents {
		_ = json.Unmarshal(raw, &peek)
	}
	reason := err.Error()
	if len(reason) > protocol.MaxReason {
		reason = reason[:protocol.MaxReason]
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	count(&g.stats)
	r := g.refusals[centre+"/"+device]
	if r == nil {
		r = &refusal{Refusal: Refusal{Centre: centre, Device: device, Since: now}}
		g.refusals[centre+"/"+device] = r
	}
	r.Reason, r.Last, r.Count, r.pending = reason, now, r.Count+1, true
	r.log, r.Seq = "", 0
	if len(peek.Events) == 0 || peek.Events[0].Log == "" || len(peek.Events[0].Log) > 64 {
		return
	}
	r.log, r.Seq = peek.Events[0].Log, peek.Events[0].Seq
	if g.o.Centre != nil && !g.o.Centre(centre) {
		return
	}
	// Say again what is stored: a terminal of an older version cannot
	// read the refusal, but deletes what the plain ack beside it covers
	// (an old terminal with a hole in its outbox heals so).
	k := key{centre, device, r.log}
	st := g.logs[k]
	if st == nil {
		if last, err := g.store.Last(device, r.log); err != nil || last == 0 {
			return
		}
		st = &state{held: map[uint64]protocol.Event{}}
		g.logs[k] = st
	}
	if !st.known {
		last, err := g.store.Last(device, r.log)
		if err != nil {
			return
		}
		st.last, st.known = last, true
	}
	st.due = st.last > 0
	if st.due {
		g.active[k] = st
	}
}

// Refusals returns the devices whose messages the ingest refused and
// whose events it has not stored since, by centre and device.
func (g *Ingest) Refusals() []Refusal {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Refusal, 0, len(g.refusals))
	for _, r := range g.refusals {
		out = append(out, r.Refusal)
	}
	slices.SortFunc(out, func(a, b Refusal) int {
		if a.Centre != b.Centre {
			return cmp(a.Centre, b.Centre)
		}
		return cmp(a.Device, b.Device)
	})
	return out
}

func (g *Ingest) count(f func(*Stats)) {
	g.mu.Lock()
	f(&g.stats)
	g.mu.Unlock()
}

// Stats returns the counts so far.
func (g *Ingest) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

// Ack is one ack to send.
type Ack struct {
	Topic   string
	Payload []byte
}

// Acks returns the acks due at now (the portal's clock), one per device
// log (Flush first) that stored events or saw duplicates since the last:
// cumulative, through the last stored, and, when a gap has lasted
// HoldGap or events beyond it were dropped, the sequence expected next
// (held events are then dropped too: they come again in order). Each
// device whose message was refused since gets one ack naming the latest
// refusal.
func (g *Ingest) Acks(now time.Time) []Ack {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Ack
	keys := make([]key, 0, len(g.active))
	for k := range g.active {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.device != b.device {
			return cmp(a.device, b.device)
		}
		return cmp(a.log, b.log)
	})
	for _, k := range keys {
		st := g.active[k]
		a := protocol.Ack{V: protocol.Version, Device: k.device, Log: k.log, Ranges: []protocol.Range{}, Time: now.UTC()}
		if st.due && st.last > 0 {
			a = protocol.Cumulative(k.device, k.log, st.last, now)
		}
		if len(st.held) > 0 && (st.overflow || now.Sub(st.gapSince) >= g.o.HoldGap) {
			last, err := g.store.Last(k.device, k.log)
			if err == nil {
				a.Next = last + 1
				if st.asked != a.Next {
					st.asked, st.askedSince = a.Next, now
					st.lowest, st.sentFrom = 0, false
					for seq := range st.held {
						if st.lowest == 0 || seq < st.lowest {
							st.lowest = seq
						}
					}
				}
				g.stats.OutOfOrder += len(st.held)
				clear(st.held)
				st.gapSince, st.overflow = time.Time{}, false
			}
		}
		if len(a.Ranges) == 0 && a.Next == 0 {
			if !st.due && len(st.held) == 0 {
				delete(g.active, k) // nothing to do until its next message
			}
			continue
		}
		raw, _ := json.Marshal(a)
		out = append(out, Ack{Topic: protocol.Topics{Centre: k.centre, Device: k.device}.Ack(), Payload: raw})
		st.due = false
		if len(st.held) == 0 {
			delete(g.active, k)
		}
	}
	// Refusals go in acks of their own, so that terminals too old to read
	// them still read the plain acks above.
	for _, r := range g.refusals {
		if !r.pending {
			continue
		}
		r.pending = false
		a := protocol.Ack{V: protocol.Version, Device: r.Device, Log: r.log, Ranges: []protocol.Range{}, Refused: &protocol.Refusal{Seq: r.Seq, Reason: r.Reason}, Time: now.UTC()}
		raw, _ := json.Marshal(a)
		out = append(out, Ack{Topic: protocol.Topics{Centre: r.Centre, Device: r.Device}.Ack(), Payload: raw})
	}
	return out
}

// Stalled returns the logs whose gap has not filled for StallAfter: the
// same event asked for all along, and only later ones coming. Sorted by
// device and log.
//
// A log whose gap another instance sharing the store filled (the
// terminal's resend went there) is no longer stalled: each is checked
// against the store, and its asking ends.
func (g *Ingest) Stalled(now time.Time) []Stall {
	g.mu.Lock()
	var maybe []Stall
	for k, st := range g.logs {
		if st.asked != 0 && st.lowest > st.asked && st.sentFrom && now.Sub(st.askedSince) >= g.o.StallAfter {
			maybe = append(maybe, Stall{Centre: k.centre, Device: k.device, Log: k.log, Last: st.asked - 1, Lowest: st.lowest, Since: st.askedSince})
		}
	}
	g.mu.Unlock()
	var out []Stall
	for _, s := range maybe {
		last, err := g.store.Last(s.Device, s.Log)
		if err != nil || last <= s.Last {
			out = append(out, s) // still waiting (or the store cannot tell)
			continue
		}
		g.mu.Lock()
		if st := g.logs[key{s.Centre, s.Device, s.Log}]; st != nil && st.asked == s.Last+1 {
			st.endAsking()
			st.last = max(st.last, last)
		}
		g.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Stall) int {
		if a.Device != b.Device {
			return cmp(a.Device, b.Device)
		}
		return cmp(a.Log, b.Log)
	})
	return out
}

// StallAfter is how long a gap lasts before Stalled reports it.
func (g *Ingest) StallAfter() time.Duration { return g.o.StallAfter }

// Skip tells the Ingest that the store now ends the log at through (the
// caller recorded the missing events as lost, durably, first): events
// after it are taken again, and the stall is over.
func (g *Ingest) Skip(centre, device, log string, through uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.logs[key{centre, device, log}]
	if st == nil {
		return
	}
	st.last, st.known = max(st.last, through), true
	for seq := range st.held {
		if seq <= through {
			delete(st.held, seq)
		}
	}
	st.endAsking()
	st.gapSince, st.overflow = time.Time{}, false
}

func cmp(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Memory is a Store in memory, for tests.
type Memory struct {
	mu     sync.Mutex
	last   map[[2]string]uint64
	events []protocol.Event
}

// NewMemory makes an empty Memory.
func NewMemory() *Memory { return &Memory{last: map[[2]string]uint64{}} }

// Last implements Store.
func (m *Memory) Last(device, log string) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[[2]string{device, log}], nil
}

// Put implements Store.
func (m *Memory) Put(evs []protocol.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range evs {
		k := [2]string{e.Device, e.Log}
		if e.Seq != m.last[k]+1 {
			return fmt.Errorf("memory: %s does not follow %d", e.ID, m.last[k])
		}
		m.last[k] = e.Seq
		m.events = append(m.events, e)
	}
	return nil
}

// Skip ends a log at through, as a store does when an operator records
// the events before it as lost.
func (m *Memory) Skip(device, log string, through uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{device, log}
	m.last[k] = max(m.last[k], through)
}

// Events returns the stored events in the order stored.
func (m *Memory) Events() []protocol.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]protocol.Event(nil), m.events...)
}
