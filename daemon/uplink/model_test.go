package uplink

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kiumtap/daemon/store"
	"kiumtap/firmware"
	"kiumtap/portal/ingest"
	"kiumtap/protocol"
)

// model is one terminal (the real store and sender) and the portal's real
// ingest, joined by a network the test controls: it delivers, drops,
// duplicates and reorders messages both ways, and restarts either side,
// in whatever order a seeded random source picks.
type model struct {
	t     testing.TB
	seed  uint64
	rng   *rand.Rand
	st    *store.Store
	up    *Uplink // for wire: events as the terminal encodes them
	snd   *sender
	mem   *ingest.Memory
	in    *ingest.Ingest
	now   time.Time
	taps  uint64 // events recorded at the terminal
	trace []string

	served   bool     // the portal serves the centre: off, it refuses everything
	upward   [][]byte // events messages on their way to the portal
	downward [][]byte // acks on their way to the terminal
}

func newModel(t testing.TB, seed uint64) *model {
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "model.db"), DeviceID: device, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.ApplyRoster(sampleRoster(1), time.Now()); err != nil {
		t.Fatal(err)
	}
	m := &model{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 7)), st: st, mem: ingest.NewMemory(), served: true,
		now: time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)}
	m.up, err = New(Options{Broker: "tcp://127.0.0.1:1", Centre: centre, Device: device, PortalKey: portalPub(), Store: st,
		Clock: &clock{synced: true, start: time.Now()}, Window: 64 + m.rng.IntN(64), Batch: 1 + m.rng.IntN(8), ResendAfter: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m.snd = m.up.snd
	m.newIngest()
	if err := m.snd.restart(m.now); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *model) newIngest() {
	m.in = ingest.New(m.mem, ingest.Options{Centre: func(string) bool { return m.served }, HoldGap: 500 * time.Millisecond})
}

func (m *model) fail(format string, a ...any) {
	m.t.Helper()
	tr := m.trace
	if len(tr) > 40 {
		tr = tr[len(tr)-40:]
	}
	m.t.Fatalf("seed %d: %s\nlast steps:\n  %s", m.seed, fmt.Sprintf(format, a...), strings.Join(tr, "\n  "))
}

func (m *model) note(format string, a ...any) { m.trace = append(m.trace, fmt.Sprintf(format, a...)) }

func (m *model) tap() {
	at := store.Stamp{Time: m.now, Synced: true, BootID: [16]byte{9}}
	if _, _, err := m.st.Tap(store.TapRequest{At: at, CardKey: firmware.CardKey(key, []byte{byte(m.taps % 7)})}); err != nil {
		m.fail("tap: %v", err)
	}
	m.taps++
	m.note("tap %d", m.taps)
}

// send is the terminal publishing: every message it builds must be one
// the portal's decoder takes.
func (m *model) send(batch []store.Event) error {
	msg := protocol.Batch{V: protocol.Version}
	for _, ev := range batch {
		msg.Events = append(msg.Events, m.up.wire(ev))
	}
	raw, _ := json.Marshal(msg)
	if _, err := protocol.DecodeBatch(raw); err != nil {
		m.fail("the terminal built a batch the portal refuses: %v", err)
	}
	m.upward = append(m.upward, raw)
	m.note("send %d..%d", batch[0].Seq, batch[len(batch)-1].Seq)
	return nil
}

func (m *model) pick(n int) int { return m.rng.IntN(n) }

// deliverUp hands the portal one message: in order, or (bridges sharing a
// subscription) out of order.
func (m *model) deliverUp(i int) {
	raw := m.upward[i]
	m.upward = slices.Delete(m.upward, i, i+1)
	err := m.in.Take(protocol.Topics{Centre: centre, Device: device}.Events(), raw, m.now)
	if err != nil && (m.served || !strings.Contains(err.Error(), "unknown centre")) {
		m.fail("the portal refused a message: %v", err)
	}
	m.note("portal takes message %d (err %v)", i, err)
}

func (m *model) flushAndAck() {
	if err := m.in.Flush(m.now); err != nil {
		m.fail("flush: %v", err)
	}
	for _, a := range m.in.Acks(m.now) {
		m.downward = append(m.downward, a.Payload)
	}
}

func (m *model) deliverDown(i int) {
	raw := m.downward[i]
	m.downward = slices.Delete(m.downward, i, i+1)
	a, err := protocol.DecodeAck(raw)
	if err != nil {
		m.fail("an ack the terminal cannot read: %v", err)
	}
	r, err := m.snd.take(a, m.now)
	if err != nil {
		m.fail("taking an ack: %v", err)
	}
	m.note("terminal takes ack %s: %+v", raw, r)
}

// oldAck is an ack as a bridge of the previous version sent it for a run
// of duplicates: a range of stored events that need not reach the
// terminal's first.
func (m *model) oldAck() {
	last, _ := m.mem.Last(device, m.st.LogID())
	if last == 0 {
		return
	}
	lo := 1 + m.rng.Uint64N(last)
	hi := lo + m.rng.Uint64N(last-lo+1)
	raw, _ := json.Marshal(protocol.Ack{V: 1, Device: device, Log: m.st.LogID(), Ranges: []protocol.Range{{lo, hi}}, Time: m.now})
	m.downward = append(m.downward, raw)
	m.note("an old bridge acks [%d,%d]", lo, hi)
}

// check holds after every step: the outbox is one run of consecutive
// events, and every event that left it is stored at the portal.
func (m *model) check() {
	first, last, err := m.st.Waiting()
	if err != nil {
		m.fail("%v", err)
	}
	o, _ := m.st.Outbox()
	stored, _ := m.mem.Last(device, m.st.LogID())
	switch {
	case first == 0 && o.Depth != 0, first != 0 && uint64(o.Depth) != last-first+1:
		m.fail("a hole in the outbox: %d events from %d to %d", o.Depth, first, last)
	case first == 0 && stored < last, first != 0 && stored < first-1:
		m.fail("events deleted at the terminal that the portal does not have: outbox from %d (last %d), portal through %d", first, last, stored)
	}
}

func (m *model) step() {
	switch k := m.pick(100); {
	case k < 12:
		m.tap()
	case k < 27:
		if err := m.snd.fill(m.now, m.send); err != nil {
			m.fail("fill: %v", err)
		}
	case k < 42 && len(m.upward) > 0:
		i := 0
		if m.pick(4) == 0 {
			i = m.pick(len(m.upward))
		}
		m.deliverUp(i)
	case k < 45 && len(m.upward) > 0:
		i := m.pick(len(m.upward))
		m.note("message %d lost", i)
		m.upward = slices.Delete(m.upward, i, i+1)
	case k < 48 && len(m.upward) > 0:
		i := m.pick(len(m.upward))
		m.note("message %d duplicated", i)
		m.upward = append(m.upward, m.upward[i])
	case k < 58:
		m.flushAndAck()
	case k < 70 && len(m.downward) > 0:
		i := 0
		if m.pick(4) == 0 {
			i = m.pick(len(m.downward))
		}
		m.deliverDown(i)
	case k < 74 && len(m.downward) > 0:
		i := m.pick(len(m.downward))
		m.note("ack %d lost", i)
		m.downward = slices.Delete(m.downward, i, i+1)
	case k < 76:
		m.oldAck()
	case k < 79:
		// The bridge killed, between storing and acknowledging, or
		// restarted: what it held in memory is gone, acks not yet sent
		// too; a new one comes online.
		m.note("portal restarts")
		m.newIngest()
		if m.pick(2) == 0 {
			m.downward = nil
		}
		m.snd.portalBack(m.now)
	case k < 82:
		// The terminal reconnects: messages it published may or may not
		// have reached the broker.
		m.note("terminal reconnects")
		m.upward = slices.DeleteFunc(m.upward, func([]byte) bool { return m.pick(2) == 0 })
		m.downward = nil
		if err := m.snd.restart(m.now); err != nil {
			m.fail("%v", err)
		}
	case k < 84:
		// kiumtapd restarts: a new sender on the same store.
		m.note("terminal restarts")
		m.snd = newSender(m.st, m.snd.window, m.snd.batch, m.snd.resendAfter)
		m.downward = nil
		if err := m.snd.restart(m.now); err != nil {
			m.fail("%v", err)
		}
	case k < 86:
		m.served = !m.served
		m.note("portal serves the centre: %v", m.served)
	default:
		m.now = m.now.Add(time.Duration(m.rng.Int64N(int64(12 * time.Second))))
		if m.snd.timedOut(m.now) {
			m.note("terminal times out; sends again from %d", m.snd.first)
		}
	}
	m.check()
}

// settle runs the network fairly (in order, no losses, the centre served)
// until the outbox is empty, and checks the portal holds every event once,
// in order.
func (m *model) settle() {
	m.served = true
	m.note("settling")
	for round := 0; ; round++ {
		if round > 2000 {
			first, last, _ := m.st.Waiting()
			m.fail("no progress: outbox %d..%d after 2000 fair rounds", first, last)
		}
		if first, _, _ := m.st.Waiting(); first == 0 && len(m.upward) == 0 {
			break
		}
		if err := m.snd.fill(m.now, m.send); err != nil {
			m.fail("fill: %v", err)
		}
		for len(m.upward) > 0 {
			m.deliverUp(0)
		}
		m.now = m.now.Add(time.Second)
		m.flushAndAck()
		for len(m.downward) > 0 {
			m.deliverDown(0)
		}
		m.check()
		m.snd.timedOut(m.now)
	}
	evs := m.mem.Events()
	if uint64(len(evs)) != m.taps {
		m.fail("the portal stored %d events of %d", len(evs), m.taps)
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			m.fail("stored event %d has seq %d", i+1, e.Seq)
		}
	}
}

// The acknowledgement protocol under random interleavings of taps,
// sending, delivery out of order, loss and duplicates of events and acks,
// acks as older bridges sent them, refusals (a centre not served for a
// while), timeouts, and restarts of the bridge (between storing and
// acknowledging) and of the terminal: the outbox never has a hole, the
// terminal never builds a batch the portal refuses, never deletes what
// the portal lacks, and once the network is fair it drains with every
// event stored exactly once, in order.
func TestAckProtocolModel(t *testing.T) {
	runs, steps := 300, 400
	if testing.Short() {
		runs = 30
	}
	for seed := range uint64(runs) {
		m := newModel(t, seed)
		for range steps {
			m.step()
		}
		m.settle()
	}
}

// memOutbox is an outbox in memory, which can hold what the store never
// will: a hole, as a terminal of the previous version left one.
type memOutbox struct{ evs map[uint64]store.Event }

func (o *memOutbox) Waiting() (uint64, uint64, error) {
	var first, last uint64
	for seq := range o.evs {
		if first == 0 || seq < first {
			first = seq
		}
		last = max(last, seq)
	}
	return first, last, nil
}

func (o *memOutbox) Events(from uint64, fn func(store.Event) bool) error {
	for _, seq := range slices.Sorted(func(yield func(uint64) bool) {
		for s := range o.evs {
			if !yield(s) {
				return
			}
		}
	}) {
		if seq >= from && !fn(o.evs[seq]) {
			return nil
		}
	}
	return nil
}

func (o *memOutbox) Ack(through uint64) (int, error) {
	n := 0
	for seq := range o.evs {
		if seq <= through {
			delete(o.evs, seq)
			n++
		}
	}
	return n, nil
}

// The stall of issue 11: a terminal holding 27 and 32.. (28-31 deleted on
// an ack that skipped 27) sent [27, 32, …], which the portal refuses
// forever. Now a batch stops at a hole, and an ack deletes a prefix: an
// older bridge's ack for duplicates beyond 27 says 27 is stored too (the
// portal stores in order), so the hole heals with the first ack.
func TestHoleLeftByAnOlderVersion(t *testing.T) {
	out := &memOutbox{evs: map[uint64]store.Event{}}
	for _, seq := range []uint64{27, 32, 33, 34} {
		out.evs[seq] = store.Event{Seq: seq}
	}
	s := newSender(out, 5000, 64, 10*time.Second)
	now := time.Now()
	s.restart(now)
	var sent [][]uint64
	s.fill(now, func(b []store.Event) error {
		var seqs []uint64
		for _, ev := range b {
			seqs = append(seqs, ev.Seq)
		}
		sent = append(sent, seqs)
		return nil
	})
	if fmt.Sprint(sent) != "[[27] [32 33 34]]" {
		t.Fatalf("batches %v, want [[27] [32 33 34]]", sent)
	}
	for _, tc := range []struct {
		ranges []protocol.Range
		left   int
	}{
		{[]protocol.Range{{1, 20}}, 4},  // below the first: nothing
		{[]protocol.Range{{28, 31}}, 3}, // an older bridge's duplicates: 27 is stored too
		{[]protocol.Range{{1, 33}}, 1},  // cumulative through 33
		{[]protocol.Range{{1, 34}}, 0},
	} {
		if _, err := s.take(&protocol.Ack{V: 1, Ranges: tc.ranges}, now); err != nil {
			t.Fatal(err)
		}
		if len(out.evs) != tc.left {
			t.Fatalf("after ack %v: %d events left, want %d", tc.ranges, len(out.evs), tc.left)
		}
	}
}

// A refusal holds sending, then sends again from the first event in
// batches half the size, the hold doubling per refusal; a refusal of an
// acknowledged message, or one that comes during the hold, changes
// nothing; an ack that deletes events ends it; a bridge coming online
// ends the hold at once.
func TestRefusalBacksOff(t *testing.T) {
	out := &memOutbox{evs: map[uint64]store.Event{}}
	for seq := uint64(10); seq < 110; seq++ {
		out.evs[seq] = store.Event{Seq: seq}
	}
	s := newSender(out, 5000, 64, 10*time.Second)
	now := time.Unix(1_800_000_000, 0)
	s.restart(now)
	var sizes []int
	send := func(b []store.Event) error { sizes = append(sizes, len(b)); return nil }
	s.fill(now, send)
	refuse := func(seq uint64, at time.Time) bool {
		r, err := s.take(&protocol.Ack{V: 1, Refused: &protocol.Refusal{Seq: seq, Reason: "unknown centre"}}, at)
		if err != nil {
			t.Fatal(err)
		}
		return r.refused
	}
	if !refuse(10, now) || s.refused.Count != 1 || s.hold != time.Second || s.next != 10 {
		t.Fatalf("after a refusal: %+v hold %v next %d", s.refused, s.hold, s.next)
	}
	if refuse(74, now.Add(500*time.Millisecond)) {
		t.Fatal("a refusal during the hold was taken")
	}
	if refuse(5, now.Add(2*time.Second)) {
		t.Fatal("a refusal of acknowledged events was taken")
	}
	sizes = nil
	s.fill(now.Add(500*time.Millisecond), send)
	if len(sizes) != 0 {
		t.Fatalf("sent during the hold: %v", sizes)
	}
	s.fill(now.Add(1100*time.Millisecond), send)
	if sizes[0] != 32 {
		t.Fatalf("batches after the refusal: %v", sizes)
	}
	if !refuse(10, now.Add(1200*time.Millisecond)) || s.hold != 2*time.Second || s.refused.Count != 2 || !s.refused.Since.Equal(now) {
		t.Fatalf("second refusal: %+v hold %v", s.refused, s.hold)
	}
	if s.portalBack(now.Add(1300 * time.Millisecond)); !s.holdUntil.IsZero() {
		t.Fatal("a bridge online did not end the hold")
	}
	r, _ := s.take(&protocol.Ack{V: 1, Ranges: []protocol.Range{{1, 20}}}, now.Add(2*time.Second))
	if !r.cleared || s.refused != nil || s.size != 32 || r.deleted != 11 {
		t.Fatalf("ack after the refusal: %+v refused %+v size %d", r, s.refused, s.size)
	}
}

// The portal lost events this terminal deleted (a store restored from a
// backup) and asks for one of them: the terminal cannot send it, says so,
// and sends again from its first event once, so that the portal learns
// where the gap it must record ends; a second such ack in the same going
// back sends nothing again.
func TestAskedForADeletedEvent(t *testing.T) {
	out := &memOutbox{evs: map[uint64]store.Event{}}
	for seq := uint64(21); seq <= 23; seq++ {
		out.evs[seq] = store.Event{Seq: seq}
	}
	s := newSender(out, 5000, 64, 10*time.Second)
	now := time.Unix(1_800_000_000, 0)
	s.restart(now)
	var sent []uint64
	send := func(b []store.Event) error {
		sent = append(sent, b[0].Seq)
		return nil
	}
	s.fill(now, send)
	r, err := s.take(&protocol.Ack{V: 1, Ranges: []protocol.Range{{1, 10}}, Next: 11}, now)
	if err != nil {
		t.Fatal(err)
	}
	if r.lost == nil || !strings.Contains(r.lost.Error(), "holds events from 21") || !r.resend || s.next != 21 {
		t.Fatalf("asked for 11: %+v next %d", r, s.next)
	}
	s.fill(now, send)
	if fmt.Sprint(sent) != "[21 21]" {
		t.Fatalf("messages began at %v, want [21 21]", sent)
	}
	if r, _ := s.take(&protocol.Ack{V: 1, Ranges: []protocol.Range{{1, 10}}, Next: 11}, now); r.resend || r.lost == nil {
		t.Fatalf("asked again in the same going back: %+v", r)
	}
	if len(out.evs) != 3 {
		t.Fatalf("%d events left, want 3", len(out.evs))
	}
}
