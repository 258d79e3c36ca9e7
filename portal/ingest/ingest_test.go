package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"kiumtap/protocol"
)

func event(seq uint64) []byte {
	raw, _ := json.Marshal(protocol.Batch{V: 1, Events: []protocol.Event{{V: 1, ID: fmt.Sprintf("T-1-%d", seq), Centre: "m1", Device: "T-1", Log: "L", Seq: seq, Outcome: "check_in"}}})
	return raw
}

// Events are stored in sequence only; duplicates and events beyond a gap
// are not stored; acks name what is stored.
func TestHandleOrderAndAcks(t *testing.T) {
	mem := NewMemory()
	g := New(mem, Options{Centre: func(id string) bool { return id == "m1" }})
	now := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	topic := protocol.Topics{Centre: "m1", Device: "T-1"}.Events()
	for _, tc := range []struct {
		seq  uint64
		want Stats
	}{
		{1, Stats{Stored: 1}},
		{2, Stats{Stored: 2}},
		{2, Stats{Stored: 2, Duplicates: 1}},
		{4, Stats{Stored: 2, Duplicates: 1}}, // held beyond the gap
		{3, Stats{Stored: 4, Duplicates: 1}}, // the gap fills: 3 and 4
		{4, Stats{Stored: 4, Duplicates: 2}},
	} {
		if err := g.Handle(topic, event(tc.seq), now); err != nil {
			t.Fatal(err)
		}
		if got := g.Stats(); got != tc.want {
			t.Fatalf("after seq %d: %+v, want %+v", tc.seq, got, tc.want)
		}
	}
	acks := g.Acks(now)
	if len(acks) != 1 || acks[0].Topic != "kium/v1/c/m1/d/T-1/ack" {
		t.Fatalf("acks %+v", acks)
	}
	a, err := protocol.DecodeAck(acks[0].Payload)
	if err != nil || a.Ranges[0] != (protocol.Range{1, 4}) || a.Log != "L" {
		t.Fatalf("ack %+v, %v", a, err)
	}
	if len(g.Acks(now)) != 0 {
		t.Fatal("acks again with nothing new")
	}
	// A re-sent event is acknowledged again, cumulatively: what is stored
	// is always a prefix, so the ack covers the terminal's first event
	// whichever duplicate came.
	g.Handle(topic, event(3), now)
	if a, _ := protocol.DecodeAck(g.Acks(now)[0].Payload); len(a.Ranges) != 1 || a.Ranges[0] != (protocol.Range{1, 4}) {
		t.Fatalf("re-ack %+v", a.Ranges)
	}
	// A gap that lasts: held, then given up with the sequence expected.
	g.Handle(topic, event(7), now)
	if len(g.Acks(now.Add(100*time.Millisecond))) != 0 {
		t.Fatal("asked for the gap before it lasted")
	}
	a, _ = protocol.DecodeAck(g.Acks(now.Add(time.Second))[0].Payload)
	if a.Next != 5 || len(a.Ranges) != 0 {
		t.Fatalf("ack after a lasting gap: %+v", a)
	}
	zz, _ := json.Marshal(protocol.Batch{V: 1, Events: []protocol.Event{{V: 1, ID: "T-1-1", Centre: "zz", Device: "T-1", Log: "L", Seq: 1, Outcome: "check_in"}}})
	if err := g.Handle("kium/v1/c/zz/d/T-1/events", zz, now); !errors.Is(err, ErrUnknownCentre) {
		t.Fatalf("unknown centre: %v", err)
	}
	for _, bad := range []struct{ topic, raw string }{
		{topic, `{"v":1`},
		{"kium/v1/c/m1/d/T-2/events", string(event(5))},
		{"kium/v1/c/m1/roster", string(event(5))},
	} {
		if err := g.Handle(bad.topic, []byte(bad.raw), now); err == nil {
			t.Errorf("%s %s: accepted", bad.topic, bad.raw)
		}
	}
	if g.Stats().Malformed != 3 || g.Stats().UnknownCentre != 1 || len(mem.Events()) != 4 {
		t.Fatalf("%+v, %d stored", g.Stats(), len(mem.Events()))
	}
}

// A message refused whole is told to the device that sent it (the one its
// topic names: the broker vouches for that, not for what the message
// says), once per round of acks, with the first sequence it carried and
// why; operators see the latest per device until its events are stored
// again. A terminal that predates refusals gets the plain cumulative ack
// in a message of its own.
func TestRefusalsToldToTheDevice(t *testing.T) {
	mem := NewMemory()
	g := New(mem, Options{Centre: func(id string) bool { return id == "m1" }})
	now := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	topic := protocol.Topics{Centre: "m1", Device: "T-1"}.Events()
	for seq := uint64(1); seq <= 3; seq++ {
		g.Handle(topic, event(seq), now)
	}
	g.Acks(now)
	// An older terminal's batch with a hole: [3, 8].
	e3, e8 := protocol.Event{V: 1, ID: "T-1-3", Centre: "m1", Device: "T-1", Log: "L", Seq: 3, Outcome: "check_in"}, protocol.Event{V: 1, ID: "T-1-8", Centre: "m1", Device: "T-1", Log: "L", Seq: 8, Outcome: "check_in"}
	holed, _ := json.Marshal(protocol.Batch{V: 1, Events: []protocol.Event{e3, e8}})
	for range 3 {
		if err := g.Handle(topic, holed, now); err == nil {
			t.Fatal("a batch with a hole accepted")
		}
	}
	var plain, refusals []*protocol.Ack
	for _, m := range g.Acks(now) {
		a, err := protocol.DecodeAck(m.Payload)
		if err != nil || m.Topic != "kium/v1/c/m1/d/T-1/ack" {
			t.Fatalf("%s %s: %v", m.Topic, m.Payload, err)
		}
		if a.Refused != nil {
			refusals = append(refusals, a)
		} else {
			plain = append(plain, a)
		}
	}
	if len(refusals) != 1 || refusals[0].Refused.Seq != 3 || refusals[0].Log != "L" || len(refusals[0].Ranges) != 0 ||
		!strings.Contains(refusals[0].Refused.Reason, "not the event after T-1-3") {
		t.Fatalf("refusal acks %+v", refusals)
	}
	if len(plain) != 1 || plain[0].Ranges[0] != (protocol.Range{1, 3}) {
		t.Fatalf("plain acks beside the refusal: %+v", plain)
	}
	rs := g.Refusals()
	if len(rs) != 1 || rs[0].Device != "T-1" || rs[0].Count != 3 || rs[0].Seq != 3 {
		t.Fatalf("refusals %+v", rs)
	}
	if acks := g.Acks(now); len(acks) != 0 {
		t.Fatalf("told twice: %d acks", len(acks))
	}
	// Garbage: no sequence to name; another device's events on T-2's topic:
	// T-2 is told, not T-1.
	g.Handle("kium/v1/c/m1/d/T-2/events", event(4), now)
	g.Handle(topic, []byte("not json"), now)
	got := map[string]protocol.Refusal{}
	for _, m := range g.Acks(now) {
		a, _ := protocol.DecodeAck(m.Payload)
		got[m.Topic] = *a.Refused
	}
	if r := got["kium/v1/c/m1/d/T-1/ack"]; r.Seq != 0 || r.Reason == "" {
		t.Fatalf("garbage's refusal %+v", r)
	}
	if r := got["kium/v1/c/m1/d/T-2/ack"]; r.Seq != 4 || !strings.Contains(r.Reason, "events of m1/T-1 on the topic of m1/T-2") {
		t.Fatalf("T-2's refusal %+v", r)
	}
	// Stored again: T-1's refusal is over.
	g.Handle(topic, event(4), now)
	if rs := g.Refusals(); len(rs) != 1 || rs[0].Device != "T-2" {
		t.Fatalf("refusals after T-1's events were stored: %+v", rs)
	}
	// A bridge restarted (a new Ingest on the same store) that first hears
	// of the log through a refused message still says what is stored.
	g = New(mem, Options{Centre: func(id string) bool { return id == "m1" }})
	g.Handle(topic, holed, now)
	var through uint64
	for _, m := range g.Acks(now) {
		if a, _ := protocol.DecodeAck(m.Payload); a.Refused == nil {
			through = a.Through(3)
		}
	}
	if through != 4 {
		t.Fatalf("after a restart, the plain ack beside a refusal covers %d, want 4", through)
	}
	// An unknown centre is told why.
	zz, _ := json.Marshal(protocol.Batch{V: 1, Events: []protocol.Event{{V: 1, ID: "Z-1", Centre: "zz", Device: "Z", Log: "L", Seq: 1, Outcome: "check_in"}}})
	g.Handle("kium/v1/c/zz/d/Z/events", zz, now)
	for _, m := range g.Acks(now) {
		if a, _ := protocol.DecodeAck(m.Payload); m.Topic == "kium/v1/c/zz/d/Z/ack" && !strings.Contains(a.Refused.Reason, "unknown centre") {
			t.Fatalf("unknown centre's refusal %+v", a.Refused)
		}
	}
}

// FuzzTake: no message from a terminal crashes the ingest or stores what
// does not follow.
func FuzzTake(f *testing.F) {
	f.Add("kium/v1/c/m1/d/T-1/events", event(1))
	f.Add("kium/v1/c/m1/d/T-1/events", []byte(`{"v":1,"events":[]}`))
	f.Add("kium/v1/c/m1/roster", event(2))
	f.Fuzz(func(t *testing.T, topic string, raw []byte) {
		mem := NewMemory()
		g := New(mem, Options{})
		now := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
		if err := g.Handle(topic, raw, now); err != nil {
			return
		}
		g.Acks(now.Add(time.Second))
		for i, e := range mem.Events() {
			if e.Seq != uint64(i+1) {
				t.Fatalf("stored seq %d as event %d", e.Seq, i+1)
			}
		}
	})
}

// A stall this Ingest saw ends when another instance sharing the store
// fills the gap (the terminal's resend went there), though no message of
// that log comes here again.
func TestStallFilledElsewhere(t *testing.T) {
	mem := NewMemory()
	a := New(mem, Options{StallAfter: 30 * time.Second})
	b := New(mem, Options{StallAfter: 30 * time.Second})
	t0 := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	topic := protocol.Topics{Centre: "m1", Device: "T-1"}.Events()
	a.Handle(topic, event(1), t0)
	a.Acks(t0)
	a.Handle(topic, event(3), t0) // 2 went to b, which is slow
	a.Acks(t0.Add(time.Minute))   // held past HoldGap: a asks for 2
	if s := a.Stalled(t0.Add(2 * time.Minute)); len(s) != 0 {
		t.Fatalf("a stall reported before the terminal sent again from its first event: %+v", s)
	}
	a.Handle(topic, event(3), t0.Add(time.Minute)) // the terminal's answer: it holds 3 on
	if s := a.Stalled(t0.Add(2 * time.Minute)); len(s) != 1 || s[0].Last != 1 || s[0].Lowest != 3 {
		t.Fatalf("a's stall: %+v", s)
	}
	b.Handle(topic, event(2), t0.Add(2*time.Minute))
	b.Handle(topic, event(3), t0.Add(2*time.Minute))
	if n := len(mem.Events()); n != 3 {
		t.Fatalf("b stored %d events, want 3", n)
	}
	if s := a.Stalled(t0.Add(3 * time.Minute)); len(s) != 0 {
		t.Fatalf("a still reports a stall filled by b: %+v", s)
	}
}

// A gap the terminal cannot fill (its first unacknowledged event is past
// it) is reported as a stall once it has lasted StallAfter, with the
// terminal's first event; a passing gap is not. After Skip, the events
// beyond it are stored.
func TestStallAndSkip(t *testing.T) {
	mem, g, t0, topic := stored(5)
	// A passing gap: 7 before 6, filled within the hold.
	g.Handle(topic, event(7), t0)
	g.Handle(topic, event(6), t0)
	if s := g.Stalled(t0.Add(time.Minute)); len(s) != 0 {
		t.Fatalf("a filled gap reported: %+v", s)
	}
	// The portal lost 8..20 (a store restored from a backup): the terminal
	// sends from 21, again and again.
	for round := range 4 {
		now := t0.Add(time.Duration(round) * 10 * time.Second)
		for seq := uint64(21 + round); seq >= 21; seq-- { // its resend from 21, newest taps too
			g.Handle(topic, event(seq), now)
		}
		for _, a := range g.Acks(now.Add(time.Second)) {
			if a, _ := protocol.DecodeAck(a.Payload); a.Next != 0 && a.Next != 8 {
				t.Fatalf("asked for %d, want 8", a.Next)
			}
		}
		if s := g.Stalled(now.Add(time.Second)); round < 3 && len(s) != 0 {
			t.Fatalf("stalled after %d s: %+v", round*10, s)
		}
	}
	st := g.Stalled(t0.Add(31 * time.Second))
	if len(st) != 1 || st[0].Last != 7 || st[0].Lowest != 21 || st[0].Device != "T-1" || st[0].Log != "L" || st[0].Centre != "m1" {
		t.Fatalf("stall %+v", st)
	}
	mem.Skip("T-1", "L", 20)
	g.Skip("m1", "T-1", "L", 20)
	if s := g.Stalled(t0.Add(time.Hour)); len(s) != 0 {
		t.Fatalf("still stalled after Skip: %+v", s)
	}
	for seq := uint64(21); seq <= 25; seq++ {
		g.Handle(topic, event(seq), t0.Add(time.Hour))
	}
	evs := mem.Events()
	if last := evs[len(evs)-1].Seq; last != 25 || len(evs) != 12 {
		t.Fatalf("after the skip: %d events, last %d", len(evs), last)
	}
}

// Flush and Acks look only at logs with work to do: once a terminal's
// events are stored and acknowledged, its log leaves the active set, and
// comes back with its next message.
func TestOnlyActiveLogsLookedAt(t *testing.T) {
	g := New(NewMemory(), Options{})
	now := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	for d := range 1000 {
		dev := fmt.Sprintf("T-%d", d)
		raw, _ := json.Marshal(protocol.Batch{V: 1, Events: []protocol.Event{{V: 1, ID: dev + "-1", Centre: "m1", Device: dev, Log: "L", Seq: 1, Outcome: "check_in"}}})
		if err := g.Handle(protocol.Topics{Centre: "m1", Device: dev}.Events(), raw, now); err != nil {
			t.Fatal(err)
		}
	}
	if acks := g.Acks(now); len(acks) != 1000 {
		t.Fatalf("%d acks, want 1000", len(acks))
	}
	if len(g.active) != 0 || len(g.logs) != 1000 {
		t.Fatalf("after the acks: %d logs active of %d", len(g.active), len(g.logs))
	}
	if acks := g.Acks(now); len(acks) != 0 {
		t.Fatalf("acks with nothing new: %d", len(acks))
	}
	// A held event (beyond a gap) keeps its log active until it is asked
	// for again.
	raw, _ := json.Marshal(protocol.Batch{V: 1, Events: []protocol.Event{{V: 1, ID: "T-7-3", Centre: "m1", Device: "T-7", Log: "L", Seq: 3, Outcome: "check_in"}}})
	if err := g.Handle(protocol.Topics{Centre: "m1", Device: "T-7"}.Events(), raw, now); err != nil {
		t.Fatal(err)
	}
	if len(g.active) != 1 || len(g.Acks(now)) != 0 || len(g.active) != 1 {
		t.Fatalf("a log with an event held: %d active", len(g.active))
	}
	acks := g.Acks(now.Add(time.Minute)) // past HoldGap: asked for again
	if len(acks) != 1 || len(g.active) != 0 {
		t.Fatalf("after the gap's ask: %d acks, %d active", len(acks), len(g.active))
	}
	a, _ := protocol.DecodeAck(acks[0].Payload)
	if a.Next != 2 {
		t.Fatalf("ack %+v, want next 2", a)
	}
}

// A stall seen by one instance ends when another records the gap (or
// stores what was asked for) and the terminal sends again: the first
// instance's next look at the store ends its asking, though it stored
// nothing itself.
func TestStallEndedByAnotherInstance(t *testing.T) {
	mem := NewMemory()
	a, b := New(mem, Options{StallAfter: 30 * time.Second}), New(mem, Options{StallAfter: 30 * time.Second})
	t0 := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	topic := protocol.Topics{Centre: "m1", Device: "T-1"}.Events()
	for seq := uint64(1); seq <= 3; seq++ {
		a.Handle(topic, event(seq), t0)
	}
	// The portal lost 4..9: a hears the terminal send from 10, asks, stalls.
	for round := range 4 {
		now := t0.Add(time.Duration(round) * 10 * time.Second)
		a.Handle(topic, event(10), now)
		a.Acks(now.Add(time.Second))
	}
	if s := a.Stalled(t0.Add(31 * time.Second)); len(s) != 1 {
		t.Fatalf("a's stall: %+v", s)
	}
	// The gap is recorded through b; b stores what follows.
	mem.Skip("T-1", "L", 9)
	b.Skip("m1", "T-1", "L", 9)
	b.Handle(topic, event(10), t0.Add(time.Minute))
	// The terminal's resend reaches a again: a's stall is over.
	a.Handle(topic, event(10), t0.Add(time.Minute))
	if s := a.Stalled(t0.Add(time.Hour)); len(s) != 0 {
		t.Fatalf("a still stalled after another instance stored past the gap: %+v", s)
	}
}

// The terminal's message beginning at its first event (21) did not reach
// this Ingest (no bridge listened yet, or it was refused), the next (22)
// did: asked for 11, the portal must not report 22 as where the
// terminal's events begin, or a gap accepted through 21 would lose 21.
// The stall is reported once the terminal has sent again from its first.
func TestStallWaitsForTheTerminalsFirst(t *testing.T) {
	_, g, t0, topic := stored(10)
	g.Handle(topic, event(22), t0) // 21's message lost on the way
	g.Acks(t0.Add(time.Second))    // asks for 11
	if s := g.Stalled(t0.Add(time.Minute)); len(s) != 0 {
		t.Fatalf("stall reported from 22 alone: %+v", s)
	}
	g.Handle(topic, event(23), t0.Add(time.Minute)) // a new tap
	if s := g.Stalled(t0.Add(2 * time.Minute)); len(s) != 0 {
		t.Fatalf("stall reported from a new tap: %+v", s)
	}
	g.Handle(topic, event(21), t0.Add(2*time.Minute)) // the terminal sends again from its first
	g.Handle(topic, event(22), t0.Add(2*time.Minute))
	s := g.Stalled(t0.Add(2 * time.Minute))
	if len(s) != 1 || s[0].Last != 10 || s[0].Lowest != 21 {
		t.Fatalf("stall %+v, want last 10, lowest 21", s)
	}
}

// stored is an Ingest (StallAfter 30 s) over a memory store holding T-1's
// events 1..n, acknowledged.
func stored(n uint64) (*Memory, *Ingest, time.Time, string) {
	mem := NewMemory()
	g := New(mem, Options{StallAfter: 30 * time.Second})
	t0 := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	topic := protocol.Topics{Centre: "m1", Device: "T-1"}.Events()
	for seq := uint64(1); seq <= n; seq++ {
		g.Handle(topic, event(seq), t0)
	}
	g.Acks(t0)
	return mem, g, t0, topic
}
