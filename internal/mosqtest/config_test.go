package mosqtest

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestExampleConfigLimits runs the limits of deploy/mosquitto/mosquitto.conf
// on a real broker: the largest roster the protocol allows (a 1 MiB payload,
// protocol.MaxRoster) on the longest roster topic gets through.
func TestExampleConfigLimits(t *testing.T) {
	t.Parallel()
	conf, err := os.ReadFile("../../deploy/mosquitto/mosquitto.conf")
	if err != nil {
		t.Fatalf("reading the example config: %v", err)
	}
	var limits strings.Builder
	for _, name := range []string{"max_queued_messages", "max_inflight_messages", "max_packet_size"} {
		found := false
		for line := range strings.Lines(string(conf)) {
			if strings.HasPrefix(line, name+" ") {
				limits.WriteString(line)
				found = true
			}
		}
		if !found {
			t.Errorf("the example config does not set %s", name)
		}
	}
	b := Start(t, Options{Extra: limits.String()})

	const maxRoster = 1 << 20 // protocol.MaxRoster
	topic := "kium/v1/c/" + strings.Repeat("c", 64) + "/roster/delta"
	payload := bytes.Repeat([]byte{'r'}, maxRoster)
	sub := mustDial(t, client{url: b.URL(), id: "T-1"})
	in := newInbox()
	in.subscribe(t, sub, topic)
	pub := mustDial(t, client{url: b.URL(), id: "portal"})
	done(t, "publishing a roster of the maximal size", pub.Publish(topic, 1, false, payload))
	if m := in.next(t); !bytes.Equal(m.Payload(), payload) {
		t.Fatalf("got %d bytes, want the %d-byte roster", len(m.Payload()), len(payload))
	}
}
