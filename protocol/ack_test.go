package protocol

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
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

// The examples in docs/protocol.md are the contract a portal team
// implements from: each complete JSON example must decode with the decoder
// of its message, so the document and the code cannot drift apart.
func TestDocExamples(t *testing.T) {
	raw, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(raw), -1)
	decoders := []struct {
		name   string
		is     func(string) bool
		decode func([]byte) error
	}{
		{"ack", func(s string) bool { return strings.Contains(s, `"ranges"`) }, func(b []byte) error { _, err := DecodeAck(b); return err }},
		{"status", func(s string) bool { return strings.Contains(s, `"outbox_depth"`) }, func(b []byte) error { _, err := DecodeStatus(b); return err }},
		{"portal presence", func(s string) bool {
			return strings.HasPrefix(s, `{"v":1,"state"`) && !strings.Contains(s, `"outbox_depth"`)
		}, func(b []byte) error { _, err := DecodePortalStatus(b); return err }},
	}
	seen := map[string]int{}
	for _, b := range blocks {
		text := strings.TrimSpace(b[1])
		for _, d := range decoders {
			if !d.is(text) {
				continue
			}
			seen[d.name]++
			if err := d.decode([]byte(strings.ReplaceAll(text, "\n", ""))); err != nil {
				t.Errorf("docs/protocol.md's %s example does not decode: %v\n%s", d.name, err, text)
			}
		}
	}
	for _, d := range decoders {
		if seen[d.name] == 0 {
			t.Errorf("docs/protocol.md has no %s example", d.name)
		}
	}
	if seen["ack"] < 2 {
		t.Errorf("want the ack and the refusal examples; found %d", seen["ack"])
	}
}
