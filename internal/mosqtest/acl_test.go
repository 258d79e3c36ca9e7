package mosqtest

import (
	"os"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/portal/devices"
)

// TestExampleACL runs the production ACL in deploy/mosquitto/acl on a real
// broker, with a second terminal's block as kiumbridge device acl writes it:
// a terminal (user = its device ID, which the shipped configuration takes
// from its certificate) may publish only on its own device's topics and
// read only its own ack/cmd, its centre's roster and the bridges' presence;
// the portal reads and writes everything.
func TestExampleACL(t *testing.T) {
	t.Parallel()
	acl, err := os.ReadFile("../../deploy/mosquitto/acl")
	if err != nil {
		t.Fatalf("reading the example ACL: %v", err)
	}
	b := Start(t, Options{
		Users: map[string]string{"portal": "portal-pw", "mangwon1-door": "door-pw", "mangwon1-door2": "door2-pw"},
		ACL:   string(acl) + "\n" + devices.Block(devices.Device{Centre: "mangwon1", ID: "mangwon1-door2"}),
	})
	portal := mustDial(t, client{url: b.URL(), id: "portal-bridge", user: "portal", pass: "portal-pw"})
	term := mustDial(t, client{url: b.URL(), id: "mangwon1-door", user: "mangwon1-door", pass: "door-pw"})

	atPortal := newInbox()
	if code := atPortal.subscribe(t, portal, "kium/v1/#"); code != 1 {
		t.Fatalf("portal: SUBACK for kium/v1/# = %#x, want 1", code)
	}

	t.Run("publish", func(t *testing.T) {
		// Denied publishes are acknowledged and dropped. Each is followed by
		// an allowed one from the same client: mosquitto handles a client's
		// messages in order, so once the allowed one reached the portal, the
		// denied one can no longer arrive.
		tests := []struct {
			topic   string
			allowed bool
		}{
			{"kium/v1/c/mangwon1/d/mangwon1-door/events", true},
			{"kium/v1/c/mangwon1/d/mangwon1-door/status", true},
			{"kium/v1/c/mangwon1/d/mangwon1-door/reply", true},
			{"kium/v1/c/mangwon1/d/mangwon1-door/resync", true},
			{"kium/v1/c/other/d/mangwon1-door/events", false},     // another centre
			{"kium/v1/c/mangwon1/d/mangwon1-door2/events", false}, // another device
			{"kium/v1/c/mangwon1/d/mangwon1-door/ack", false},     // read-only
			{"kium/v1/c/mangwon1/d/mangwon1-door/cmd", false},     // read-only
			{"kium/v1/c/mangwon1/roster", false},                  // read-only
			{"kium/v1/portal/kiumbridge-0/status", false},         // read-only: only a bridge says it is online
			{"kium/v1/c/mangwon1/d/mangwon1-door", false},         // not a leaf of the patterns
			{"elsewhere", false},
		}
		for i, tt := range tests {
			payload := "probe"
			publish(t, term, tt.topic, false, payload)
			marker := "after " + tt.topic
			publish(t, term, "kium/v1/c/mangwon1/d/mangwon1-door/events", false, marker)
			delivered := false
			for {
				m := atPortal.next(t)
				if string(m.Payload()) == marker {
					break
				}
				if m.Topic() == tt.topic && string(m.Payload()) == payload {
					delivered = true
				}
			}
			if delivered != tt.allowed {
				t.Errorf("%d: mangwon1-door publishing on %s: delivered %v, want %v", i, tt.topic, delivered, tt.allowed)
			}
		}
	})

	t.Run("read", func(t *testing.T) {
		atTerm := newInbox()
		for _, f := range []string{
			"kium/v1/c/mangwon1/d/mangwon1-door/ack",
			"kium/v1/c/mangwon1/d/mangwon1-door/cmd",
			"kium/v1/c/mangwon1/roster/delta",
			"kium/v1/portal/kiumbridge-0/status",
		} {
			if code := atTerm.subscribe(t, term, f); code != 1 {
				t.Fatalf("mangwon1-door: SUBACK for its own %s = %#x, want 1", f, code)
			}
			publish(t, portal, f, false, "for T-1")
			if m := atTerm.next(t); m.Topic() != f {
				t.Fatalf("mangwon1-door subscribed to %s got a message on %s", f, m.Topic())
			}
		}
	})

	// Mosquitto 2.0.11 grants subscriptions the ACL denies (SUBACK 0x01, not
	// 0x80) and filters by read access when it delivers; later versions may
	// refuse them. Either way, nothing the terminal may not read reaches it.
	subscribeDenied := func(t *testing.T, cl paho.Client, in inbox, filter string) {
		t.Helper()
		code := in.subscribe(t, cl, filter)
		t.Logf("SUBACK for %s = %#x", filter, code)
		if code != 0x80 && code != 1 {
			t.Errorf("SUBACK for %s = %#x, want 0x80 (refused) or 1 (granted, filtered on delivery)", filter, code)
		}
	}

	t.Run("wildcard", func(t *testing.T) {
		// Another device of the same centre subscribes to everything. The
		// portal publishes what it may not read, then its own cmd: messages
		// from one publisher are sent in order, so once the own cmd arrived,
		// the others can no longer arrive. No message is retained yet.
		term2 := mustDial(t, client{url: b.URL(), id: "mangwon1-door2", user: "mangwon1-door2", pass: "door2-pw"})
		atTerm2 := newInbox()
		subscribeDenied(t, term2, atTerm2, "kium/v1/#")
		for _, topic := range []string{
			"kium/v1/c/other/d/mangwon1-door2/cmd",
			"kium/v1/c/other/roster",
			"kium/v1/c/mangwon1/d/mangwon1-door/cmd",
			"kium/v1/c/mangwon1/d/mangwon1-door/events",
			"kium/v1/c/mangwon1/d/mangwon1-door2/cmd",
		} {
			publish(t, portal, topic, false, "from portal")
		}
		if m := atTerm2.next(t); m.Topic() != "kium/v1/c/mangwon1/d/mangwon1-door2/cmd" {
			t.Fatalf("mangwon1-door2 subscribed to kium/v1/# got %s first; want only its own cmd", m.Topic())
		}
	})

	t.Run("retained elsewhere", func(t *testing.T) {
		// Retained rosters of both centres wait in the broker. The terminal
		// subscribes to the other centre's first, then to its own: retained
		// messages are sent in the order of the subscriptions, so once its
		// own roster arrived, the other one can no longer arrive.
		publish(t, portal, "kium/v1/c/other/roster", true, "other roster")
		publish(t, portal, "kium/v1/c/other/d/mangwon1-door/cmd", true, "other cmd")
		publish(t, portal, "kium/v1/c/mangwon1/roster", true, "own roster")
		atTerm := newInbox()
		subscribeDenied(t, term, atTerm, "kium/v1/c/other/roster")
		subscribeDenied(t, term, atTerm, "kium/v1/c/other/d/mangwon1-door/cmd")
		if code := atTerm.subscribe(t, term, "kium/v1/c/mangwon1/roster"); code != 1 {
			t.Fatalf("mangwon1-door: SUBACK for its own roster = %#x, want 1", code)
		}
		m := atTerm.next(t)
		if m.Topic() != "kium/v1/c/mangwon1/roster" || string(m.Payload()) != "own roster" {
			t.Fatalf("mangwon1-door got %s %q first; want its own retained roster", m.Topic(), m.Payload())
		}
	})
}
