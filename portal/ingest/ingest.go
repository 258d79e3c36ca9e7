// Package ingest is the portal's side of the events stream: it checks each
// terminal event, stores it once and in order, and says what to
// acknowledge. It speaks no MQTT: the bridge feeds it messages and sends
// the acks it returns.
//
// Events of one device's log are stored strictly in sequence: an event
// beyond a gap is dropped unacknowledged, so the terminal sends it again
// after the missing ones (go-back-N, see docs/protocol.md). An event
// already stored is a duplicate: counted, acknowledged again, not stored.
package ingest

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"kiumtap/protocol"
)

// Store keeps events. Implementations must make Put durable before it
// returns: an ack follows.
type Store interface {
	// Last is the highest sequence stored for the device's log, 0 if none.
	Last(device, log string) (uint64, error)
	// Put stores the event that follows Last.
	Put(e *protocol.Event) error
}

// Stats count what Handle saw.
type Stats struct {
	Stored, Duplicates, OutOfOrder, Malformed int
}

type key struct{ centre, device, log string }

// due is what to acknowledge to one log: the stored range seen since the
// last ack, and whether an event beyond a gap was dropped.
type due struct {
	r    protocol.Range // r[0] == 0: nothing stored seen
	next uint64         // set on a gap: the sequence expected
}

// Ingest handles event messages.
type Ingest struct {
	store Store

	mu    sync.Mutex
	due   map[key]*due
	stats Stats
}

// New makes an Ingest over a store.
func New(s Store) *Ingest { return &Ingest{store: s, due: map[key]*due{}} }

// Handle takes one message from a device's events topic. A malformed
// message is an error and is dropped: the terminal cannot fix it by
// sending it again, so it is counted and logged by the caller.
func (g *Ingest) Handle(topic string, raw []byte) error {
	centre, device, leaf, ok := protocol.ParseDeviceTopic(topic)
	if !ok || leaf != "events" {
		g.count(func(s *Stats) { s.Malformed++ })
		return fmt.Errorf("ingest: %q is not an events topic", topic)
	}
	evs, err := protocol.DecodeBatch(raw)
	if err != nil {
		g.count(func(s *Stats) { s.Malformed++ })
		return fmt.Errorf("ingest: %s: %w", topic, err)
	}
	if evs[0].Centre != centre || evs[0].Device != device {
		g.count(func(s *Stats) { s.Malformed++ })
		return fmt.Errorf("ingest: events of %s/%s on %s", evs[0].Centre, evs[0].Device, topic)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range evs {
		if err := g.put(&evs[i]); err != nil {
			return err
		}
	}
	return nil
}

// put stores one event if it is the next of its log. The caller holds mu.
func (g *Ingest) put(e *protocol.Event) error {
	last, err := g.store.Last(e.Device, e.Log)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	k := key{e.Centre, e.Device, e.Log}
	d := g.due[k]
	if d == nil {
		d = &due{}
		g.due[k] = d
	}
	switch {
	case e.Seq <= last:
		g.stats.Duplicates++
	case e.Seq == last+1:
		if err := g.store.Put(e); err != nil {
			return fmt.Errorf("ingest: storing %s: %w", e.ID, err)
		}
		g.stats.Stored++
		last = e.Seq
		d.next = 0
	default:
		g.stats.OutOfOrder++
		d.next = last + 1
		return nil
	}
	if d.r[0] == 0 || e.Seq < d.r[0] {
		d.r[0] = e.Seq
	}
	d.r[1] = last
	return nil
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

// Acks returns the acks due since the last call, one per device log,
// stamped with now (the portal's clock). An ack names the stored range
// seen since the last one and, after a gap, the sequence expected next.
func (g *Ingest) Acks(now time.Time) []Ack {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Ack
	for k, d := range g.due {
		a := protocol.Ack{V: protocol.Version, Device: k.device, Log: k.log, Ranges: []protocol.Range{}, Next: d.next, Time: now.UTC()}
		if d.r[0] != 0 {
			a.Ranges = append(a.Ranges, d.r)
		}
		raw, _ := json.Marshal(a)
		out = append(out, Ack{Topic: protocol.Topics{Centre: k.centre, Device: k.device}.Ack(), Payload: raw})
		delete(g.due, k)
	}
	return out
}

// Memory is a Store in memory, for tests and the demo.
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
func (m *Memory) Put(e *protocol.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last[[2]string{e.Device, e.Log}] = e.Seq
	m.events = append(m.events, *e)
	return nil
}

// Events returns the stored events in the order stored.
func (m *Memory) Events() []protocol.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]protocol.Event(nil), m.events...)
}
