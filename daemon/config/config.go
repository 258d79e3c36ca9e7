// Package config reads the terminal's configuration file (JSON). Unknown
// keys and values of the wrong type are errors that name the key: a
// terminal never starts half-configured.
package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/strictjson"
	"kiumtap/protocol"
)

// Duration is a time.Duration written as "60s" or "72h".
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 60s or 72h", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Config is kiumtapd's configuration.
type Config struct {
	// DeviceID names the terminal, e.g. "mangwon1-door". Required.
	DeviceID string `json:"device_id"`
	// Store is the database file. Default /var/lib/kiumtap/kiumtap.db.
	Store string `json:"store"`
	// Socket is where kiumctl asks questions. Default
	// /run/kiumtap/kiumtapd.sock.
	Socket string `json:"socket"`
	// CentreKey is the per-centre HMAC key for card UIDs, in hex, at least
	// 16 bytes. Required: events and rosters name cards by HMAC only.
	CentreKey string `json:"centre_key"`
	// StoreRawUID keeps raw card UIDs in events too. Default false.
	StoreRawUID bool `json:"store_raw_uid"`
	// Language of the screen: "ko" (default) or "en".
	Language string `json:"language"`
	// Roster is a roster file to load at start when newer than the stored
	// one (until sync delivers rosters).
	Roster string `json:"roster"`
	// Decisions tunes firmware.Settings.
	Decisions struct {
		DuplicateWindow Duration `json:"duplicate_window"` // default 60s
		StaleAfter      Duration `json:"stale_after"`      // default 72h
		CloseGrace      Duration `json:"close_grace"`      // default 30m
	} `json:"decisions"`
	// DiskWarnFree lists free-space levels in MiB below which a warning is
	// logged, most lenient first. Default [512, 128, 32].
	DiskWarnFree []int64 `json:"disk_warn_free_mib"`
	// Display is the screen: "ssd1306" (128×64 on I²C, the default with
	// the Pi reader) or "none".
	Display struct {
		Kind string `json:"kind"`
		I2C  string `json:"i2c"` // bus name; default the first bus
	} `json:"display"`
	// Reader wiring; see kiumtapd -help for the defaults.
	Reader struct {
		// Kind is "pi" (the default: the MFRC522 wired to the Raspberry
		// Pi) or "emu": the emulated MFRC522, for a test install, a
		// training or a test, whose cards kiumctl emu places; the LEDs and
		// buzzer go to the console and the screen is virtual.
		Kind       string   `json:"kind"`
		SPI        string   `json:"spi"`
		RST        string   `json:"rst"`
		IRQ        string   `json:"irq"`
		Green      string   `json:"green"`
		Red        string   `json:"red"`
		Buzzer     string   `json:"buzzer"`
		Poll       Duration `json:"poll"`
		RxGainDB   int      `json:"rx_gain_db"`
		AllowClone bool     `json:"allow_clone"`
		// Cards, with kind "emu" only, name virtual cards for kiumctl
		// emu: label → UID in hex (4, 7 or 10 bytes), e.g.
		// {"김민준 카드": "DEADBEEF"}. The roster knows cards only by
		// their HMAC, so a child's name finds a card only when its UID is
		// listed here or was placed by UID before.
		Cards map[string]string `json:"cards"`
	} `json:"reader"`
	// Buttons are the two enrolment push buttons (to ground, with the
	// internal pull-up; see the README's wiring table), by periph pin name:
	// Next scrolls to the next child, Choose chooses the child shown. Both
	// or neither; empty: no buttons, and cards are enrolled from the portal.
	Buttons struct {
		Next   string `json:"next"`   // e.g. "GPIO5" (header pin 29)
		Choose string `json:"choose"` // e.g. "GPIO6" (header pin 31)
		// Debounce is how long a button must stay down to count as a
		// press; default 20ms (package button's), at most 1s.
		Debounce Duration `json:"debounce"`
	} `json:"buttons"`
	// MQTT is the link to the portal (docs/protocol.md). Without a broker
	// the terminal works offline only and keeps every event.
	MQTT MQTT `json:"mqtt"`
}

// MQTT configures the uplink to the portal.
type MQTT struct {
	// Broker URL, tcp://host:1883 or ssl://host:8883; empty: no uplink.
	Broker string `json:"broker"`
	// CentreID is the centre's ID: the MQTT username and a topic level.
	CentreID string `json:"centre_id"`
	Password string `json:"password"`
	// CA, Cert, Key: PEM files for TLS (the broker's CA; this terminal's
	// client certificate and key).
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
	// PortalKey is the portal's Ed25519 public key (base64 or hex): rosters
	// and commands must carry its signature.
	PortalKey string `json:"portal_key"`
	// Window of events in flight; default 5000. Heartbeat of the status;
	// default 30s.
	Window    int      `json:"window"`
	Heartbeat Duration `json:"heartbeat"`
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

// Load reads and checks a configuration file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and checks a configuration.
func Parse(b []byte) (*Config, error) {
	var c Config
	if err := strictjson.Decode(b, 1<<20, "config", &c); err != nil {
		return nil, err
	}
	if c.Store == "" {
		c.Store = "/var/lib/kiumtap/kiumtap.db"
	}
	if c.Socket == "" {
		c.Socket = "/run/kiumtap/kiumtapd.sock"
	}
	if c.Language == "" {
		c.Language = string(firmware.Korean)
	}
	if c.DiskWarnFree == nil {
		c.DiskWarnFree = []int64{512, 128, 32}
	}
	if c.Reader.Kind == "" {
		c.Reader.Kind = "pi"
	}
	if c.Display.Kind == "" {
		c.Display.Kind = "ssd1306"
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("key %q: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DeviceID == "" {
		bad("device_id", "required")
	}
	if k, err := hex.DecodeString(c.CentreKey); err != nil || len(k) < 16 {
		bad("centre_key", "want at least 16 bytes in hex (32 hex digits)")
	}
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
	if m := c.MQTT; m.Broker != "" {
		if !strings.HasPrefix(m.Broker, "tcp://") && !strings.HasPrefix(m.Broker, "ssl://") {
			bad("mqtt.broker", "%q: want tcp://host:port or ssl://host:port", m.Broker)
		}
		if !protocol.ValidID(m.CentreID) {
			bad("mqtt.centre_id", "want 1-64 of A-Z a-z 0-9 _ . - (it is the MQTT username and a topic level)")
		}
		if !protocol.ValidID(c.DeviceID) {
			bad("device_id", "with mqtt, want 1-64 of A-Z a-z 0-9 _ . - (it is the MQTT client ID and a topic level)")
		}
		if _, err := protocol.ParsePublicKey(m.PortalKey); err != nil {
			bad("mqtt.portal_key", "%v", err)
		}
		if strings.HasPrefix(m.Broker, "ssl://") && m.CA == "" {
			bad("mqtt.ca", "an ssl:// broker needs the CA file")
		}
		if (m.Cert == "") != (m.Key == "") {
			bad("mqtt.cert", "cert and key go together")
		}
		if m.Window < 0 || m.Heartbeat < 0 {
			bad("mqtt.window", "window and heartbeat must not be negative")
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &c, nil
}
