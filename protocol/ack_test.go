package protocol

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
)

// Through: a terminal deletes the prefix of its outbox up to the highest
// sequence an ack names, and nothing when that is below its first event.
func TestAckThrough(t *testing.T) {
	for _, tc := range []struct {
		ranges []Range
		first  uint64
		want   uint64
	}{
		{[]Range{{1, 500}}, 1, 500},
		{[]Range{{1, 500}}, 480, 500},
		{[]Range{{1, 500}}, 501, 0},         // below the first: nothing
		{[]Range{{1, 500}}, 0, 0},           // an empty outbox
		{[]Range{{28, 31}}, 27, 31},         // an older bridge's duplicates: 27 is stored too
		{[]Range{{40, 41}, {2, 3}}, 10, 41}, // any order
		{nil, 5, 0},                         // a next or a refusal alone
	} {
		a := Ack{V: 1, Ranges: tc.ranges}
		if got := a.Through(tc.first); got != tc.want {
			t.Errorf("ranges %v, first %d: through %d, want %d", tc.ranges, tc.first, got, tc.want)
		}
	}
	if c := Cumulative("T-1", "L", 42, time.Now()); len(c.Ranges) != 1 || c.Ranges[0] != (Range{1, 42}) {
		t.Fatalf("cumulative %+v", c)
	}
}

func TestDecodeRefusalAndPresence(t *testing.T) {
	good := `{"v":1,"device":"T-1","log":"","ranges":[],"refused":{"reason":"events: unexpected end of JSON input"},"time":"2026-11-23T06:00:00Z"}`
	if a, err := DecodeAck([]byte(good)); err != nil || a.Refused == nil || a.Refused.Seq != 0 {
		t.Fatalf("a refusal of an unreadable message: %+v %v", a, err)
	}
	for _, bad := range []string{
		`{"v":1,"device":"T-1","log":"L","ranges":[],"refused":{"seq":3,"reason":""}}`,            // no reason
		`{"v":1,"device":"T-1","log":"L","ranges":[],"refused":{"seq":3,"reason":"x","count":2}}`, // a status's fields
		`{"v":1,"device":"T-1","log":"L","ranges":[],"refused":{"seq":3,"reason":"` + strings.Repeat("x", MaxReason+1) + `"}}`,
	} {
		if _, err := DecodeAck([]byte(bad)); err == nil {
			t.Errorf("accepted %.100s", bad)
		}
	}
	for raw, ok := range map[string]bool{
		`{"v":1,"state":"online","time":"2026-11-23T06:00:00Z"}`: true,
		`{"v":1,"state":"offline"}`:                              true,
		`{"v":1,"state":"away"}`:                                 false,
		`{"v":2,"state":"online"}`:                               false,
		`{"v":1,"state":"online","x":1}`:                         false,
	} {
		if _, err := DecodePortalStatus([]byte(raw)); (err == nil) != ok {
			t.Errorf("%s: %v", raw, err)
		}
	}
	if got := PortalStatusTopic("kiumbridge-h1-0"); got != "kium/v1/portal/kiumbridge-h1-0/status" {
		t.Fatal(got)
	}
}

func FuzzDecodePortalStatus(f *testing.F) {
	f.Add([]byte(`{"v":1,"state":"online","time":"2026-11-23T06:00:00Z"}`))
	f.Add([]byte(`{"v":1,"state":"offline"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if st, err := DecodePortalStatus(b); err == nil && st.State != "online" && st.State != "offline" {
			t.Fatalf("state %q accepted", st.State)
		}
	})
}

// docExampleKey is the Ed25519 public key docs/protocol.md's examples are
// signed with.
const docExampleKey = "d1ABeFJ9osEk1ZvGJ7NeTCI+HsWNMagKsgCwwgoBM2c="

// The examples in docs/protocol.md are the contract a portal team
// implements from. Every JSON block there either decodes with the decoder
// of its message (signatures and digests checked; the example delta
// applied to the example snapshot) or says it is abridged with "…": a
// renamed JSON tag, a changed digest rule or a wrong example fails here.
func TestDocExamples(t *testing.T) {
	raw, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(docExampleKey)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(raw), -1)
	seen := map[string]int{}
	var snapshot *firmware.Roster
	var deltas []*Delta
	for _, b := range blocks {
		text := strings.TrimSpace(b[1])
		if strings.Contains(text, "…") {
			seen["abridged"]++
			continue
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, []byte(text)); err != nil {
			t.Errorf("a JSON example that is not JSON (mark an abridged one with …): %v\n%s", err, text)
			continue
		}
		msg := compact.Bytes()
		kind, err := decodeDocExample(pub, msg, &snapshot, &deltas)
		if err != nil {
			t.Errorf("docs/protocol.md's %s example: %v\n%s", kind, err, text)
		}
		seen[kind]++
	}
	for _, d := range deltas {
		if snapshot == nil {
			t.Fatal("a delta example and no snapshot example to apply it to")
		}
		if _, err := d.Apply(snapshot); err != nil {
			t.Errorf("the example delta does not apply to the example snapshot: %v", err)
		}
	}
	for _, want := range []string{"snapshot", "signed snapshot", "delta", "signed delta", "ack", "refusal", "status", "portal presence", "command"} {
		if seen[want] == 0 {
			t.Errorf("docs/protocol.md has no complete %s example (seen %v)", want, seen)
		}
	}
}

// decodeDocExample decodes one example with its message's decoder and
// says which message it is.
func decodeDocExample(pub ed25519.PublicKey, msg []byte, snapshot **firmware.Roster, deltas *[]*Delta) (string, error) {
	has := func(s string) bool { return bytes.Contains(msg, []byte(s)) }
	prefix := ""
	if has(`"payload":`) {
		payload, err := Open(pub, msg, MaxRoster)
		if err != nil {
			return "signed message", err
		}
		msg, prefix = payload, "signed "
	}
	switch {
	case has(`"kind":"snapshot"`):
		r, err := DecodeSnapshot(msg, "mangwon1")
		if err == nil && *snapshot == nil {
			*snapshot = r
		}
		return prefix + "snapshot", err
	case has(`"kind":"delta"`):
		d, err := DecodeDelta(msg, "mangwon1")
		if err == nil {
			*deltas = append(*deltas, d)
		}
		return prefix + "delta", err
	case has(`"refused":`):
		_, err := DecodeAck(msg)
		return "refusal", err
	case has(`"ranges":`):
		_, err := DecodeAck(msg)
		return "ack", err
	case has(`"outbox_depth":`):
		_, err := DecodeStatus(msg)
		return "status", err
	case has(`"state":`):
		_, err := DecodePortalStatus(msg)
		return "portal presence", err
	case has(`"expires":`):
		var c Command
		json.Unmarshal(msg, &c)
		_, err := DecodeCommand(msg, c.Centre, c.Device, c.Expires.Add(-time.Minute))
		return "command", err
	case has(`"events":`):
		_, err := DecodeBatch(msg)
		return "events", err
	case has(`"seq":`):
		_, err := DecodeBatch(append(append([]byte(`{"v":1,"events":[`), msg...), ']', '}'))
		return "event", err
	}
	return "unknown", errors.New("no decoder checks this example: teach TestDocExamples its message")
}
