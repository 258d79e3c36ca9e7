package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `{
  "device_id": "mangwon1-door",
  "centre_key": "00112233445566778899aabbccddeeff",
  "decisions": {"duplicate_window": "90s"},
  "reader": {"kind": "emu", "poll": "40ms"}
}`

func TestParse(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Settings().DuplicateWindow != 90*time.Second || c.Settings().StaleAfter != 72*time.Hour || c.Language != "ko" || len(c.Key()) != 16 {
		t.Errorf("%+v", c)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"device_id": 7}`, `device_id (line 1): want a string in quotes, got number`},
		{`{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff", "decisons": {}}`, `decisons (line 1): unknown field`},
		{`{"centre_key": "00112233445566778899aabbccddeeff"}`, `key "device_id": required`},
		{`{"device_id": "x", "centre_key": "abcd"}`, `key "centre_key"`},
		{`{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff", "decisions": {"stale_after": "3 days"}}`, `not a duration`},
		{`{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff", "language": "fr"}`, `key "language"`},
		{`{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff", "reader": {"kind": "usb"}}`, `key "reader.kind"`},
		{`{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff", "reader": {"cards": {"김민준": "DEADBEEF"}}}`, `key "reader.cards": virtual cards need reader.kind "emu"`},
		{`{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff", "reader": {"kind": "emu", "cards": {"김민준": 7}}}`, `reader.cards["김민준"] (line 1): want a string in quotes`},
		{`{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff", "disk_warn_free_mib": [10, 100]}`, `key "disk_warn_free_mib"`},
		{`{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff", "reader": {"rx_gain_db": "33"}}`, `reader.rx_gain_db (line 1): want a whole number`},
		{`{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff", "mqtt": {"broker": "mqtt.example:1883"}}`, `key "mqtt.broker"`},
		{`{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff", "mqtt": {"broker": "tcp://h:1883", "centre_id": "a/b"}}`, `key "mqtt.centre_id"`},
		{`{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff", "mqtt": {"broker": "tcp://h:1883", "centre_id": "m1", "portal_key": "xyz"}}`, `key "mqtt.portal_key"`},
		{`{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff", "mqtt": {"broker": "ssl://h:8883", "centre_id": "m1", "portal_key": "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="}}`, `key "mqtt.ca"`},
		{`{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff", "mqtt": {"brokr": "tcp://h:1883"}}`, `mqtt.brokr (line 1): unknown field`},
		{`{} {}`, `data after the JSON value`},
	} {
		_, err := Parse([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

// The buttons are both given or neither, on two pins, with a sane
// debounce time; none is no buttons.
func TestButtons(t *testing.T) {
	const head = `{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff"`
	for _, tc := range []struct {
		in, err      string // err: in the error; "": no error
		next, choose string
		debounce     time.Duration
	}{
		{in: `}`},
		{in: `, "buttons": {}}`},
		{in: `, "buttons": {"next": "GPIO5", "choose": "GPIO6"}}`, next: "GPIO5", choose: "GPIO6"},
		{in: `, "buttons": {"next": "GPIO5", "choose": "GPIO6", "debounce": "35ms"}}`, next: "GPIO5", choose: "GPIO6", debounce: 35 * time.Millisecond},
		{in: `, "buttons": {"next": "GPIO5"}}`, err: `key "buttons.choose": missing`},
		{in: `, "buttons": {"choose": "GPIO6"}}`, err: `key "buttons.next": missing`},
		{in: `, "buttons": {"next": "GPIO5", "choose": "gpio5"}}`, err: `key "buttons.choose": "gpio5" is buttons.next's pin too`},
		{in: `, "buttons": {"debounce": "20ms"}}`, err: `key "buttons.debounce": set without`},
		{in: `, "buttons": {"next": "GPIO5", "choose": "GPIO6", "debounce": "-5ms"}}`, err: `key "buttons.debounce": -5ms is outside`},
		{in: `, "buttons": {"next": "GPIO5", "choose": "GPIO6", "debounce": "2s"}}`, err: `key "buttons.debounce": 2s is outside`},
		{in: `, "buttons": {"next": "GPIO5", "choose": "GPIO6", "debounce": "fast"}}`, err: `not a duration`},
		{in: `, "buttons": {"nxt": "GPIO5"}}`, err: `buttons.nxt (line 1): unknown field`},
	} {
		c, err := Parse([]byte(head + tc.in))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%s) = %v, want an error with %q", tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("Parse(%s): %v", tc.in, err)
		case c.Buttons.Next != tc.next || c.Buttons.Choose != tc.choose || time.Duration(c.Buttons.Debounce) != tc.debounce:
			t.Errorf("Parse(%s): buttons %+v", tc.in, c.Buttons)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiumtapd.json")
	os.WriteFile(path, []byte(`{"device_id": true}`), 0o600)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Load: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"reader": {"poll": "-1s"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		if c.DeviceID == "" || len(c.Key()) < 16 {
			t.Fatalf("accepted a config without device or key: %+v", c)
		}
	})
}

// The reader is the Pi's unless the configuration says "emu"; only the
// emulated one has virtual cards.
func TestReaderKind(t *testing.T) {
	const head = `{"device_id": "x", "centre_key": "00112233445566778899aabbccddeeff"`
	for _, tc := range []struct {
		in, kind string
		cards    map[string]string
	}{
		{in: `}`, kind: "pi"},
		{in: `, "reader": {"kind": "pi"}}`, kind: "pi"},
		{in: `, "reader": {"kind": "emu"}}`, kind: "emu"},
		{in: `, "reader": {"kind": "emu", "cards": {"김민준 카드": "DE AD BE EF", "stranger": "0BADF00D"}}}`, kind: "emu",
			cards: map[string]string{"김민준 카드": "DE AD BE EF", "stranger": "0BADF00D"}},
	} {
		c, err := Parse([]byte(head + tc.in))
		if err != nil {
			t.Errorf("Parse(%s): %v", tc.in, err)
			continue
		}
		if c.Reader.Kind != tc.kind || len(c.Reader.Cards) != len(tc.cards) {
			t.Errorf("Parse(%s): kind %q, cards %v; want %q, %v", tc.in, c.Reader.Kind, c.Reader.Cards, tc.kind, tc.cards)
		}
		for k, v := range tc.cards {
			if c.Reader.Cards[k] != v {
				t.Errorf("Parse(%s): card %q = %q, want %q", tc.in, k, c.Reader.Cards[k], v)
			}
		}
	}
}
