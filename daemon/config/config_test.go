package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"kiumtap/internal/confile"
)

const key = `centre_key = "00112233445566778899aabbccddeeff"`

const good = `device_id = "mangwon1-door"
` + key + `

[decisions]
duplicate_window = "90s"

[reader]
kind = "emu"
poll = "40ms"
`

func parse(t *testing.T, toml string) (*Config, error) {
	t.Helper()
	return ParseFile("kiumtapd.toml", []byte(toml))
}

func TestParse(t *testing.T) {
	c, err := parse(t, good)
	if err != nil {
		t.Fatal(err)
	}
	if c.Settings().DuplicateWindow != 90*time.Second || c.Settings().StaleAfter != 72*time.Hour || c.Language != "ko" || len(c.Key()) != 16 ||
		c.Reader.Poll != Duration(40*time.Millisecond) || c.Metrics != "127.0.0.1:9465" || c.Log.Format != "text" {
		t.Errorf("%+v", c)
	}
}

// Each kind of mistake a technician makes, with the exact message they
// see: the file, the line, the key and what to do.
func TestMistakes(t *testing.T) {
	const dev = `device_id = "x"` + "\n" + key + "\n"
	const mqtt = "[mqtt]\nbroker = \"tcp://h:1883\"\ncentre_id = \"m1\"\nportal_key = \"O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=\"\n"
	for _, tc := range []struct{ name, in, want string }{
		{"a typo in a key", dev + "[decisons]\nduplicate_window = \"90s\"\n",
			`kiumtapd.toml, line 3: decisons: no such key (a typo? the installed example lists every key): the top level takes device_id, store, socket, centre_key, centre_key_file, store_raw_uid, language, roster, decisions, disk_warn_free_mib, display, reader, buttons, mqtt, log, metrics`},
		{"a typo in a table", dev + "[mqtt]\nbrokr = \"tcp://h:1883\"\n",
			`kiumtapd.toml, line 4: mqtt.brokr: no such key (a typo? the installed example lists every key): [mqtt] takes broker, brokers, centre_id, password, password_file, ca, cert, key, portal_key, window, heartbeat`},
		{"a number for a string", "device_id = 7\n" + key, `kiumtapd.toml, line 1: device_id: want a string in quotes ("…"), not a TOML integer`},
		{"a string for a number", dev + "[reader]\nrx_gain_db = \"33\"\n", `kiumtapd.toml, line 4: reader.rx_gain_db: want a whole number, not a TOML string`},
		{"a bad duration", dev + "[decisions]\nstale_after = \"3 days\"\n", `kiumtapd.toml, line 4: decisions.stale_after: "3 days" is not a duration such as 60s or 72h`},
		{"not TOML", "device_id = \"x\n", `kiumtapd.toml, line 1: `},
		{"no device", key, `kiumtapd.toml: device_id: required`},
		{"a short key", "device_id = \"x\"\ncentre_key = \"abcd\"\n", `kiumtapd.toml, line 2: centre_key: want at least 16 bytes in hex (32 hex digits; make one with kiumctl key new)`},
		{"a gain the chip lacks", dev + "[reader]\nrx_gain_db = 20\n", `kiumtapd.toml, line 4: reader.rx_gain_db: 20 dB is not one the chip has: 18, 23, 33, 38, 43 or 48 (0: 33)`},
		{"the example's key", "device_id = \"x\"\ncentre_key = \"00000000000000000000000000000000\"\n", `kiumtapd.toml, line 2: centre_key: still the example's placeholder: make the centre's key with kiumctl key new (every terminal of the centre takes the same)`},
		{"a language", dev + "language = \"fr\"\n", `kiumtapd.toml, line 3: language: "fr" is not ko or en`},
		{"a reader", dev + "[reader]\nkind = \"usb\"\n", `kiumtapd.toml, line 4: reader.kind: "usb" is not pi or emu`},
		{"virtual cards on a real reader", dev + "[reader]\ncards = { \"김민준\" = \"DEADBEEF\" }\n", `kiumtapd.toml, line 4: reader.cards: virtual cards need reader.kind "emu"; a real reader reads real cards`},
		{"disk levels", dev + "disk_warn_free_mib = [10, 100]\n", `kiumtapd.toml, line 3: disk_warn_free_mib: want positive levels, most lenient first, got [10 100]`},
		{"a broker without a scheme", dev + "[mqtt]\nbroker = \"mqtt.example:1883\"\ncentre_id = \"m1\"\nportal_key = \"O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=\"\n",
			`kiumtapd.toml, line 4: mqtt.broker: "mqtt.example:1883": want tcp://host:port or ssl://host:port`},
		{"a centre ID with a slash", dev + strings.Replace(mqtt, `"m1"`, `"a/b"`, 1), `kiumtapd.toml, line 5: mqtt.centre_id: want 1-64 of A-Z a-z 0-9 _ . - (it is a topic level)`},
		{"a bad portal key", dev + strings.Replace(mqtt, "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=", "xyz", 1), `kiumtapd.toml, line 6: mqtt.portal_key: not an Ed25519 public key (32 bytes, base64 or hex)`},
		{"TLS without a CA", dev + strings.Replace(mqtt, "tcp://h:1883", "ssl://h:8883", 1), `kiumtapd.toml, line 3: mqtt.ca: an ssl:// broker needs the CA file`},
		{"one button", dev + "[buttons]\nnext = \"GPIO5\"\n", `kiumtapd.toml, line 3: buttons.choose: missing: buttons.next is set, and enrolment needs both buttons (or neither)`},
		{"one pin for both buttons", dev + "[buttons]\nnext = \"GPIO5\"\nchoose = \"gpio5\"\n", `kiumtapd.toml, line 5: buttons.choose: "gpio5" is buttons.next's pin too: wire each button to its own pin`},
		{"a slow button", dev + "[buttons]\nnext = \"GPIO5\"\nchoose = \"GPIO6\"\ndebounce = \"2s\"\n", `kiumtapd.toml, line 6: buttons.debounce: 2s is outside 0 to 1s (0: the default, 20ms)`},
		{"a log format", dev + "[log]\nformat = \"xml\"\n", `kiumtapd.toml, line 4: log.format: "xml" is not text or json`},
		{"both a key and its file", dev + "centre_key_file = \"/etc/kiumtap/centre.key\"\n", `kiumtapd.toml: centre_key_file: set together with centre_key: keep one`},
		{"both broker and brokers", dev + mqtt + "brokers = [\"tcp://h2:1883\"]\n",
			`kiumtapd.toml, line 7: mqtt.brokers: set together with mqtt.broker: keep one (broker for a single broker, brokers for several)`},
		{"a broker of the list without a scheme", dev + strings.Replace(mqtt, `broker = "tcp://h:1883"`, `brokers = ["tcp://h:1883", "h2:1883"]`, 1),
			`kiumtapd.toml, line 4: mqtt.brokers: "h2:1883": want tcp://host:port or ssl://host:port`},
		{"a broker listed twice", dev + strings.Replace(mqtt, `broker = "tcp://h:1883"`, "brokers = [\n  \"tcp://h:1883\",\n  \"tcp://h:1883\",\n]", 1),
			`kiumtapd.toml, line 4: mqtt.brokers: "tcp://h:1883" is listed twice: list each broker once`},
		{"tcp and ssl brokers mixed", dev + strings.Replace(mqtt, `broker = "tcp://h:1883"`, `brokers = ["ssl://h:8883", "tcp://h2:1883"]`, 1) + "ca = \"/etc/kiumtap/ca.pem\"\n",
			`kiumtapd.toml, line 4: mqtt.brokers: mixes tcp:// and ssl:// brokers: list brokers of one kind (over tcp:// what goes to the others over TLS would go in the clear)`},
		{"TLS brokers without a CA", dev + strings.Replace(mqtt, `broker = "tcp://h:1883"`, `brokers = ["ssl://h:8883", "ssl://h2:8883"]`, 1), `kiumtapd.toml, line 3: mqtt.ca: an ssl:// broker needs the CA file`},
	} {
		_, err := parse(t, tc.in)
		if err != nil && !errors.Is(err, confile.ErrConfig) {
			t.Errorf("%s: %v is not a confile.ErrConfig (kiumtapd would not exit 78)", tc.name, err)
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || (tc.name != "not TOML" && err.Error() != tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.name, err, tc.want)
		}
	}
}

// One broker or several: mqtt.brokers lists them in the order they are
// tried; mqtt.broker is the list of one; neither is no uplink.
func TestBrokers(t *testing.T) {
	const head = "device_id = \"x\"\n" + key + "\n[mqtt]\ncentre_id = \"m1\"\nportal_key = \"O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=\"\nca = \"/etc/kiumtap/ca.pem\"\n"
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{in: "", want: nil},
		{in: "broker = \"ssl://a:8883\"\n", want: []string{"ssl://a:8883"}},
		{in: "brokers = [\"ssl://a:8883\"]\n", want: []string{"ssl://a:8883"}},
		{in: "brokers = [\"ssl://b:8883\", \"ssl://a:8883\"]\n", want: []string{"ssl://b:8883", "ssl://a:8883"}},
	} {
		c, err := parse(t, head+tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := c.MQTT.URLs(); !slices.Equal(got, tc.want) {
			t.Errorf("%q: brokers %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A secret may live in a file of its own, which every user must not be
// able to read.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	keyFile, pass := filepath.Join(dir, "centre.key"), filepath.Join(dir, "mqtt.pass")
	os.WriteFile(keyFile, []byte("00112233445566778899aabbccddeeff\n"), 0o640)
	os.WriteFile(pass, []byte("s3cret\n"), 0o600)
	c, err := parse(t, "device_id = \"x\"\ncentre_key_file = \""+keyFile+"\"\n[mqtt]\npassword_file = \""+pass+"\"\n")
	if err != nil || len(c.Key()) != 16 || c.MQTT.Password != "s3cret" {
		t.Fatalf("%v %+v", err, c)
	}
	os.Chmod(pass, 0o644)
	_, err = parse(t, "device_id = \"x\"\ncentre_key_file = \""+keyFile+"\"\n[mqtt]\npassword_file = \""+pass+"\"\n")
	if want := "kiumtapd.toml: mqtt.password_file: " + pass + " has mode 0644: a secret file must not be readable by every user nor writable by its group; chmod 0640 " + pass + " (owner root, group of the daemon's user)"; err == nil || err.Error() != want {
		t.Fatalf("a secret readable by all:\n got %v\nwant %s", err, want)
	}
	_, err = parse(t, "device_id = \"x\"\ncentre_key_file = \""+filepath.Join(dir, "none")+"\"\n")
	if want := "kiumtapd.toml: centre_key_file: " + filepath.Join(dir, "none") + " does not exist: write the secret in it (owner root, group of the daemon's user, mode 0640), or give it inline with centre_key"; err == nil || err.Error() != want {
		t.Fatalf("a missing secret file: %v", err)
	}
}

// The installed example documents every key of the configuration, and
// nothing else: a key added to the code without its line there, or a line
// left for a key that is gone, fails here. Untouched, the example stops
// kiumtapd at its placeholder key.
func TestExampleInStep(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/config/kiumtapd.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := confile.Keys(reflect.TypeFor[Config](), "")
	got := confile.ExampleKeys(raw)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("deploy/config/kiumtapd.toml documents\n%v\nthe configuration has\n%v", got, want)
	}
	_, err = ParseFile("/etc/kiumtap/kiumtapd.toml", raw)
	if want := "/etc/kiumtap/kiumtapd.toml, line 16: centre_key: still the example's placeholder: make the centre's key with kiumctl key new (every terminal of the centre takes the same)"; err == nil || err.Error() != want {
		t.Fatalf("the untouched example:\n got %v\nwant %s", err, want)
	}
	// With a key, the example is a working configuration of defaults.
	c, err := ParseFile("kiumtapd.toml", []byte(strings.Replace(string(raw), `"00000000000000000000000000000000"`, `"00112233445566778899aabbccddeeff"`, 1)))
	if err != nil || c.Reader.Kind != "pi" || c.MQTT.Broker != "" || c.Store != "/var/lib/kiumtap/kiumtap.db" {
		t.Fatalf("the example with a key: %v %+v", err, c)
	}
}

// The JSON of earlier versions is still read, and migrates to TOML that
// reads back the same.
func TestJSONStillReadAndMigrated(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "kiumtapd.json")
	os.WriteFile(old, []byte(`{"device_id": "mangwon1-door", "centre_key": "00112233445566778899aabbccddeeff",
 "decisions": {"duplicate_window": "90s"}, "buttons": {"next": "GPIO5", "choose": "GPIO6"},
 "mqtt": {"broker": "tcp://h:1883", "centre_id": "m1", "portal_key": "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="}}`), 0o600)
	c, err := Load(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(old, []byte(`{"device_id": true}`)); err == nil || !strings.Contains(err.Error(), old+": device_id (line 1): want a string in quotes") {
		t.Errorf("a JSON mistake: %v", err)
	}
	var v Config
	out, err := confile.Migrate(old, &v)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseFile("kiumtapd.toml", out)
	if err != nil {
		t.Fatalf("the migrated TOML:\n%s\n%v", out, err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("migrated %+v\n    was %+v", back, c)
	}
}

// The buttons are both given or neither, on two pins, with a sane
// debounce time; none is no buttons.
func TestButtons(t *testing.T) {
	const head = "device_id = \"x\"\n" + key + "\n"
	for _, tc := range []struct {
		in           string
		next, choose string
		debounce     time.Duration
	}{
		{in: ""},
		{in: "[buttons]\n"},
		{in: "[buttons]\nnext = \"GPIO5\"\nchoose = \"GPIO6\"\n", next: "GPIO5", choose: "GPIO6"},
		{in: "[buttons]\nnext = \"GPIO5\"\nchoose = \"GPIO6\"\ndebounce = \"35ms\"\n", next: "GPIO5", choose: "GPIO6", debounce: 35 * time.Millisecond},
	} {
		c, err := parse(t, head+tc.in)
		if err != nil || c.Buttons.Next != tc.next || c.Buttons.Choose != tc.choose || time.Duration(c.Buttons.Debounce) != tc.debounce {
			t.Errorf("%q: %v %+v", tc.in, err, c)
		}
	}
}

// The reader is the Pi's unless the configuration says "emu"; only the
// emulated one has virtual cards.
func TestReaderKind(t *testing.T) {
	const head = "device_id = \"x\"\n" + key + "\n"
	for _, tc := range []struct {
		in, kind string
		cards    map[string]string
	}{
		{in: ``, kind: "pi"},
		{in: "[reader]\nkind = \"pi\"\n", kind: "pi"},
		{in: "[reader]\nkind = \"emu\"\n", kind: "emu"},
		{in: "[reader]\nkind = \"emu\"\n[reader.cards]\n\"김민준 카드\" = \"DE AD BE EF\"\nstranger = \"0BADF00D\"\n", kind: "emu",
			cards: map[string]string{"김민준 카드": "DE AD BE EF", "stranger": "0BADF00D"}},
	} {
		c, err := parse(t, head+tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if c.Reader.Kind != tc.kind || len(c.Reader.Cards) != len(tc.cards) {
			t.Errorf("Parse(%q): kind %q, cards %v; want %q, %v", tc.in, c.Reader.Kind, c.Reader.Cards, tc.kind, tc.cards)
		}
		for k, v := range tc.cards {
			if c.Reader.Cards[k] != v {
				t.Errorf("Parse(%q): card %q = %q, want %q", tc.in, k, c.Reader.Cards[k], v)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("[reader]\npoll = \"-1s\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseFile("kiumtapd.toml", b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		if c.DeviceID == "" || len(c.Key()) < 16 {
			t.Fatalf("accepted a config without device or key: %+v", c)
		}
	})
}
