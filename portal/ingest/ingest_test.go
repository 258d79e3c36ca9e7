package ingest

import (
	"encoding/json"
	"fmt"
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
	g := New(mem)
	topic := protocol.Topics{Centre: "m1", Device: "T-1"}.Events()
	for _, tc := range []struct {
		seq  uint64
		want Stats
	}{
		{1, Stats{Stored: 1}},
		{2, Stats{Stored: 2}},
		{2, Stats{Stored: 2, Duplicates: 1}},
		{4, Stats{Stored: 2, Duplicates: 1, OutOfOrder: 1}},
		{3, Stats{Stored: 3, Duplicates: 1, OutOfOrder: 1}},
		{4, Stats{Stored: 4, Duplicates: 1, OutOfOrder: 1}},
	} {
		if err := g.Handle(topic, event(tc.seq)); err != nil {
			t.Fatal(err)
		}
		if got := g.Stats(); got != tc.want {
			t.Fatalf("after seq %d: %+v, want %+v", tc.seq, got, tc.want)
		}
	}
	acks := g.Acks(time.Now())
	if len(acks) != 1 || acks[0].Topic != "kium/v1/c/m1/d/T-1/ack" {
		t.Fatalf("acks %+v", acks)
	}
	a, err := protocol.DecodeAck(acks[0].Payload)
	if err != nil || a.Ranges[0] != (protocol.Range{1, 4}) || a.Log != "L" {
		t.Fatalf("ack %+v, %v", a, err)
	}
	if len(g.Acks(time.Now())) != 0 {
		t.Fatal("acks again with nothing new")
	}
	// A re-sent event is acknowledged again.
	g.Handle(topic, event(2))
	if a, _ := protocol.DecodeAck(g.Acks(time.Now())[0].Payload); a.Ranges[0] != (protocol.Range{2, 4}) {
		t.Fatalf("re-ack %+v", a.Ranges)
	}
	for _, bad := range []struct{ topic, raw string }{
		{topic, `{"v":1`},
		{"kium/v1/c/m1/d/T-2/events", string(event(5))},
		{"kium/v1/c/m1/roster", string(event(5))},
	} {
		if err := g.Handle(bad.topic, []byte(bad.raw)); err == nil {
			t.Errorf("%s %s: accepted", bad.topic, bad.raw)
		}
	}
	if g.Stats().Malformed != 3 || len(mem.Events()) != 4 {
		t.Fatalf("%+v, %d stored", g.Stats(), len(mem.Events()))
	}
}
