// Package config reads the terminal's configuration file: TOML, as
// deploy/config/kiumtapd.toml documents every key (internal/confile reads
// it; the JSON of earlier versions is still read). Unknown keys and values
// of the wrong type are errors that name the file, line and key: a
// terminal never starts half-configured.
package config

import (
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/confile"
	"kiumtap/protocol"
)

// Duration is a time.Duration written as "60s" or "72h".
type Duration = confile.Duration

// Config is kiumtapd's configuration.
type Config struct {
	// DeviceID names the terminal, e.g. "mangwon1-door". Required.
	DeviceID string `json:"device_id" toml:"device_id,omitempty"`
	// Store is the database file. Default /var/lib/kiumtap/kiumtap.db.
	Store string `json:"store" toml:"store,omitempty"`
	// Socket is where kiumctl asks questions. Default
	// /run/kiumtap/kiumtapd.sock.
	Socket string `json:"socket" toml:"socket,omitempty"`
	// CentreKey is the per-centre HMAC key for card UIDs, in hex, at least
	// 16 bytes. Required (or CentreKeyFile): events and rosters name cards
	// by HMAC only.
	CentreKey string `json:"centre_key" toml:"centre_key,omitempty"`
	// CentreKeyFile reads the centre key from a file of its own instead
	// (mode 0640 at most).
	CentreKeyFile string `json:"centre_key_file" toml:"centre_key_file,omitempty"`
	// StoreRawUID keeps raw card UIDs in events too. Default false.
	StoreRawUID bool `json:"store_raw_uid" toml:"store_raw_uid,omitempty"`
	// Language of the screen: "ko" (default) or "en".
	Language string `json:"language" toml:"language,omitempty"`
	// Roster is a roster file to load at start when newer than the stored
	// one (until sync delivers rosters).
	Roster string `json:"roster" toml:"roster,omitempty"`
	// Decisions tunes firmware.Settings.
	Decisions struct {
		DuplicateWindow Duration `json:"duplicate_window" toml:"duplicate_window,omitempty"` // default 60s
		StaleAfter      Duration `json:"stale_after" toml:"stale_after,omitempty"`           // default 72h
		CloseGrace      Duration `json:"close_grace" toml:"close_grace,omitempty"`           // default 30m
	} `json:"decisions" toml:"decisions,omitempty"`
	// DiskWarnFree lists free-space levels in MiB below which a warning is
	// logged, most lenient first. Default (absent or empty) [512, 128, 32].
	DiskWarnFree []int64 `json:"disk_warn_free_mib" toml:"disk_warn_free_mib,omitempty"`
	// Display is the screen: "ssd1306" (128×64 on I²C, the default with
	// the Pi reader) or "none".
	Display struct {
		Kind string `json:"kind" toml:"kind,omitempty"`
		I2C  string `json:"i2c" toml:"i2c,omitempty"` // bus name; default the first bus
	} `json:"display" toml:"display,omitempty"`
	// Reader wiring; see kiumtapd -help for the defaults.
	Reader struct {
		// Kind is "pi" (the default: the MFRC522 wired to the Raspberry
		// Pi) or "emu": the emulated MFRC522, for a test install, a
		// training or a test, whose cards kiumctl emu places; the LEDs and
		// buzzer go to the console and the screen is virtual.
		Kind       string   `json:"kind" toml:"kind,omitempty"`
		SPI        string   `json:"spi" toml:"spi,omitempty"`
		RST        string   `json:"rst" toml:"rst,omitempty"`
		IRQ        string   `json:"irq" toml:"irq,omitempty"`
		Green      string   `json:"green" toml:"green,omitempty"`
		Red        string   `json:"red" toml:"red,omitempty"`
		Buzzer     string   `json:"buzzer" toml:"buzzer,omitempty"`
		Poll       Duration `json:"poll" toml:"poll,omitempty"`
		RxGainDB   int      `json:"rx_gain_db" toml:"rx_gain_db,omitempty"`
		AllowClone bool     `json:"allow_clone" toml:"allow_clone,omitempty"`
		// Cards, with kind "emu" only, name virtual cards for kiumctl
		// emu: label → UID in hex (4, 7 or 10 bytes), e.g.
		// {"김민준 카드": "DEADBEEF"}. The roster knows cards only by
		// their HMAC, so a child's name finds a card only when its UID is
		// listed here or was placed by UID before.
		Cards map[string]string `json:"cards" toml:"cards,omitempty"`
	} `json:"reader" toml:"reader,omitempty"`
	// Buttons are the two enrolment push buttons (to ground, with the
	// internal pull-up; see the README's wiring table), by periph pin name:
	// Next scrolls to the next child, Choose chooses the child shown. Both
	// or neither; empty: no buttons, and cards are enrolled from the portal.
	Buttons struct {
		Next   string `json:"next" toml:"next,omitempty"`     // e.g. "GPIO5" (header pin 29)
		Choose string `json:"choose" toml:"choose,omitempty"` // e.g. "GPIO6" (header pin 31)
		// Debounce is how long a button must stay down to count as a
		// press; default 20ms (package button's), at most 1s.
		Debounce Duration `json:"debounce" toml:"debounce,omitempty"`
	} `json:"buttons" toml:"buttons,omitempty"`
	// MQTT is the link to the portal (docs/protocol.md). Without a broker
	// the terminal works offline only and keeps every event.
	MQTT MQTT `json:"mqtt" toml:"mqtt,omitempty"`
	// Log: format "text" (default; systemd's journal adds the time) or
	// "json"; level "debug", "info" (default), "warn" or "error".
	Log confile.Log `json:"log" toml:"log,omitempty"`
	// Metrics is where the Prometheus endpoint (/metrics) listens: a
	// host:port, or "unix:PATH"; default "127.0.0.1:9465", this host
	// only; "off": none.
	Metrics string `json:"metrics" toml:"metrics,omitempty"`
}

// MQTT configures the uplink to the portal.
type MQTT struct {
	// Broker URL, tcp://host:1883 or ssl://host:8883; empty: no uplink.
	Broker string `json:"broker" toml:"broker,omitempty"`
	// Brokers lists several instead of Broker (not both), in the order a
	// terminal tries them: it is connected to one at a time and fails
	// over to the next when it loses that one (docs/protocol.md,
	// "Several brokers"). Independent brokers, or a cluster's nodes.
	Brokers []string `json:"brokers" toml:"brokers,omitempty"`
	// CentreID is the centre's ID: a topic level.
	CentreID string `json:"centre_id" toml:"centre_id,omitempty"`
	// Password, for a broker that checks one per device (username: the
	// device ID); with the shipped broker configuration the certificate
	// is the identity and no password is needed. PasswordFile reads it
	// from a file of its own instead (mode 0640 at most).
	Password     string `json:"password" toml:"password,omitempty"`
	PasswordFile string `json:"password_file" toml:"password_file,omitempty"`
	// CA, Cert, Key: PEM files for TLS (the broker's CA; this terminal's
	// client certificate and key).
	CA   string `json:"ca" toml:"ca,omitempty"`
	Cert string `json:"cert" toml:"cert,omitempty"`
	Key  string `json:"key" toml:"key,omitempty"`
	// PortalKey is the portal's Ed25519 public key (base64 or hex): rosters
	// and commands must carry its signature.
	PortalKey string `json:"portal_key" toml:"portal_key,omitempty"`
	// Window of events in flight; default 5000. Heartbeat of the status;
	// default 30s.
	Window    int      `json:"window" toml:"window,omitempty"`
	Heartbeat Duration `json:"heartbeat" toml:"heartbeat,omitempty"`
}

// URLs returns the brokers' URLs in the order they are tried: Brokers, or
// Broker alone; none without an uplink.
func (m MQTT) URLs() []string {
	if len(m.Brokers) > 0 {
		return m.Brokers
	}
	if m.Broker != "" {
		return []string{m.Broker}
	}
	return nil
}

// Key returns the decoded centre key.
func (c *Config) Key() []byte {
	k, _ := hex.DecodeString(c.CentreKey)
	return k
}

// Settings returns the decision settings.
func (c *Config) Settings() firmware.Settings {
	return firmware.Settings{
		DuplicateWindow: time.Duration(c.Decisions.DuplicateWindow),
		StaleAfter:      time.Duration(c.Decisions.StaleAfter),
		CloseGrace:      time.Duration(c.Decisions.CloseGrace),
	}.WithDefaults()
}

// Load reads and checks a configuration file: TOML, or the JSON of earlier
// versions when its name ends in ".json".
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, confile.Mark(fmt.Errorf("configuration: %w (kiumtapd -config FILE; the package installs /etc/kiumtap/kiumtapd.toml)", err))
	}
	return ParseFile(path, raw)
}

// Parse decodes and checks a JSON configuration (as earlier versions wrote
// it); errors name it "config".
func Parse(raw []byte) (*Config, error) { return ParseFile("kiumtapd.toml", raw) }

// ParseFile decodes and checks a configuration read from the file named
// path (TOML, or JSON by its name).
func ParseFile(path string, raw []byte) (*Config, error) {
	var c Config
	if err := confile.Parse(path, raw, &c); err != nil {
		return nil, err
	}
	if err := c.readSecrets(path); err != nil {
		return nil, err
	}
	if ps := c.check(); len(ps) > 0 {
		return nil, confile.Problems(path, raw, ps)
	}
	return &c, nil
}

// readSecrets takes the secrets given as files.
func (c *Config) readSecrets(path string) error {
	return confile.ReadSecrets(path,
		confile.Secret{Key: "centre_key_file", File: c.CentreKeyFile, Into: &c.CentreKey},
		confile.Secret{Key: "mqtt.password_file", File: c.MQTT.PasswordFile, Into: &c.MQTT.Password})
}

// check sets the defaults and checks the values.
func (c *Config) check() []confile.Problem {
	if c.Store == "" {
		c.Store = "/var/lib/kiumtap/kiumtap.db"
	}
	if c.Socket == "" {
		c.Socket = "/run/kiumtap/kiumtapd.sock"
	}
	if c.Language == "" {
		c.Language = string(firmware.Korean)
	}
	if len(c.DiskWarnFree) == 0 {
		c.DiskWarnFree = []int64{512, 128, 32}
	}
	if c.Reader.Kind == "" {
		c.Reader.Kind = "pi"
	}
	if c.Display.Kind == "" {
		c.Display.Kind = "ssd1306"
	}
	if c.Metrics == "" {
		c.Metrics = "127.0.0.1:9465"
	}
	var ps []confile.Problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, confile.Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.DeviceID == "" {
		bad("device_id", "required")
	}
	switch k, err := hex.DecodeString(c.CentreKey); {
	case err != nil || len(k) < 16:
		bad("centre_key", "want at least 16 bytes in hex (32 hex digits; make one with kiumctl key new)")
	case strings.Trim(c.CentreKey, "0") == "":
		bad("centre_key", "still the example's placeholder: make the centre's key with kiumctl key new (every terminal of the centre takes the same)")
	}
	ps = append(ps, c.Log.Check()...)
	if c.Language != string(firmware.Korean) && c.Language != string(firmware.English) {
		bad("language", "%q is not ko or en", c.Language)
	}
	for k, d := range map[string]Duration{"decisions.duplicate_window": c.Decisions.DuplicateWindow, "decisions.stale_after": c.Decisions.StaleAfter, "decisions.close_grace": c.Decisions.CloseGrace, "reader.poll": c.Reader.Poll} {
		if d < 0 {
			bad(k, "negative duration %v", time.Duration(d))
		}
	}
	for i, v := range c.DiskWarnFree {
		if v <= 0 || (i > 0 && v >= c.DiskWarnFree[i-1]) {
			bad("disk_warn_free_mib", "want positive levels, most lenient first, got %v", c.DiskWarnFree)
			break
		}
	}
	if c.Display.Kind != "ssd1306" && c.Display.Kind != "none" {
		bad("display.kind", "%q is not ssd1306 or none", c.Display.Kind)
	}
	if c.Reader.Kind != "pi" && c.Reader.Kind != "emu" {
		bad("reader.kind", "%q is not pi or emu", c.Reader.Kind)
	}
	switch c.Reader.RxGainDB {
	case 0, 18, 23, 33, 38, 43, 48:
	default:
		bad("reader.rx_gain_db", "%d dB is not one the chip has: 18, 23, 33, 38, 43 or 48 (0: 33)", c.Reader.RxGainDB)
	}
	if len(c.Reader.Cards) > 0 && c.Reader.Kind != "emu" {
		bad("reader.cards", `virtual cards need reader.kind "emu"; a real reader reads real cards`)
	}
	switch b := c.Buttons; {
	case b.Next == "" && b.Choose == "" && b.Debounce != 0:
		bad("buttons.debounce", "set without buttons.next and buttons.choose")
	case b.Next == "" && b.Choose != "":
		bad("buttons.next", "missing: buttons.choose is set, and enrolment needs both buttons (or neither)")
	case b.Next != "" && b.Choose == "":
		bad("buttons.choose", "missing: buttons.next is set, and enrolment needs both buttons (or neither)")
	case b.Next != "" && strings.EqualFold(b.Next, b.Choose):
		bad("buttons.choose", "%q is buttons.next's pin too: wire each button to its own pin", b.Choose)
	case b.Debounce < 0 || time.Duration(b.Debounce) > time.Second:
		bad("buttons.debounce", "%v is outside 0 to 1s (0: the default, 20ms)", time.Duration(b.Debounce))
	}
	if m := c.MQTT; m.Broker != "" && len(m.Brokers) > 0 {
		bad("mqtt.brokers", "set together with mqtt.broker: keep one (broker for a single broker, brokers for several)")
	}
	if m := c.MQTT; len(m.URLs()) > 0 {
		key := "mqtt.broker"
		if len(m.Brokers) > 0 {
			key = "mqtt.brokers"
		}
		tls := confile.Brokers(key, m.URLs(), bad)
		if !protocol.ValidID(m.CentreID) {
			bad("mqtt.centre_id", "want 1-64 of A-Z a-z 0-9 _ . - (it is a topic level)")
		}
		if !protocol.ValidID(c.DeviceID) {
			bad("device_id", "with mqtt, want 1-64 of A-Z a-z 0-9 _ . - (it is the MQTT client ID and a topic level)")
		}
		if _, err := protocol.ParsePublicKey(m.PortalKey); err != nil {
			bad("mqtt.portal_key", "%v", err)
		}
		if tls > 0 && m.CA == "" {
			bad("mqtt.ca", "an ssl:// broker needs the CA file")
		}
		if (m.Cert == "") != (m.Key == "") {
			bad("mqtt.cert", "cert and key go together")
		}
		if m.Window < 0 || m.Heartbeat < 0 {
			bad("mqtt.window", "window and heartbeat must not be negative")
		}
	}
	return ps
}

// Logger is the daemon's logger as log configures it, writing to w.
func (c *Config) Logger(w io.Writer) *slog.Logger { return c.Log.Logger(w) }
