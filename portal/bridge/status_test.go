package bridge

import (
	"encoding/json"
	"testing"
	"time"

	"kiumtap/protocol"
)

// message is an MQTT message as a subscription hands it over.
type message struct {
	topic   string
	payload []byte
}

func (m message) Duplicate() bool   { return false }
func (m message) Qos() byte         { return 1 }
func (m message) Retained() bool    { return false }
func (m message) Topic() string     { return m.topic }
func (m message) MessageID() uint16 { return 0 }
func (m message) Payload() []byte   { return m.payload }
func (m message) Ack()              {}

// With several brokers each keeps its last word of a terminal; the
// terminal's status is the newest of them, so a will from the broker it
// failed over from does not mark it offline, and a will from the broker
// it is on does.
func TestStatusAcrossBrokers(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	status := func(state string, at time.Time) message {
		raw, _ := json.Marshal(protocol.Status{V: protocol.Version, State: state, Instance: "i1", Time: at, ClockSynced: true})
		return message{topic: protocol.Topics{Centre: "m1", Device: "T-1"}.Status(), payload: raw}
	}
	for _, tc := range []struct {
		name  string
		steps []struct{ broker, state string }
		want  string
	}{
		{"a will where it is", []struct{ broker, state string }{{"A", "online"}, {"A", "offline"}}, "offline"},
		{"a will where it was", []struct{ broker, state string }{{"A", "online"}, {"B", "online"}, {"A", "offline"}}, "online"},
		{"a will where it failed over to", []struct{ broker, state string }{{"A", "online"}, {"B", "online"}, {"A", "offline"}, {"B", "offline"}}, "offline"},
		{"back on the first", []struct{ broker, state string }{{"A", "online"}, {"B", "online"}, {"A", "offline"}, {"A", "online"}}, "online"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "m1")
			// A will carries the time its connection began: each
			// connection's will is dated at its start, before its
			// online.
			var began time.Time
			conn := map[string]time.Time{}
			for i, s := range tc.steps {
				at := t0.Add(time.Duration(i+1) * time.Minute)
				if s.state == "online" {
					began = at.Add(-time.Second)
					conn[s.broker] = began
				} else {
					at = conn[s.broker]
				}
				h.b.onStatus(s.broker, status(s.state, at))
			}
			ts, err := h.b.Terminals("m1")
			if err != nil || len(ts) != 1 || ts[0].Status == nil {
				t.Fatalf("terminals %+v, %v", ts, err)
			}
			if got := ts[0].Status.State; got != tc.want {
				t.Fatalf("status %s, want %s", got, tc.want)
			}
		})
	}
}
