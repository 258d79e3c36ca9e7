// Package config reads kiumbridge's configuration file: TOML, as
// deploy/config/kiumbridge.toml documents every key (internal/confile
// reads it; the JSON of earlier versions is still read). Unknown keys and
// values of the wrong type are errors that name the file, line and key;
// secrets (the broker password, the SMS providers' keys) may live in files
// of their own.
package config

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"kiumtap/internal/cli"
	"kiumtap/internal/confile"
	"kiumtap/portal/sms"
	"kiumtap/protocol"
)

// Duration is a time.Duration written as "10s".
type Duration = confile.Duration

// Config is kiumbridge's configuration.
type Config struct {
	// Broker is the MQTT broker's URL, tcp://host:1883 or ssl://host:8884.
	// Required, or Brokers.
	Broker string `json:"broker" toml:"broker,omitempty"`
	// Brokers lists several brokers instead of Broker (not both): the
	// bridge connects to every one, takes events from all and publishes
	// rosters, acks and commands on each, wherever a terminal is.
	Brokers []string `json:"brokers" toml:"brokers,omitempty"`
	// Username at the broker; default "portal". Password, or PasswordFile
	// to read it from a file of its own (mode 0640 at most).
	Username     string `json:"username" toml:"username,omitempty"`
	Password     string `json:"password" toml:"password,omitempty"`
	PasswordFile string `json:"password_file" toml:"password_file,omitempty"`
	// CA, Cert, Key: PEM files for TLS to the broker.
	CA   string `json:"ca" toml:"ca,omitempty"`
	Cert string `json:"cert" toml:"cert,omitempty"`
	Key  string `json:"key" toml:"key,omitempty"`
	// SigningKey is the roster-signing key file kiumbridge keygen wrote.
	// Required.
	SigningKey string `json:"signing_key" toml:"signing_key,omitempty"`
	// Store is the bridge's database file (bbolt, one process). Required,
	// or Database.
	Store string `json:"store" toml:"store,omitempty"`
	// Database is a PostgreSQL connection URL instead of Store (not both):
	// postgres://kiumbridge@db.example/kiumbridge?sslmode=verify-full,
	// its password in a passfile (passfile=PATH in the URL, or
	// ~/.pgpass). Any number of kiumbridge processes, on several hosts,
	// share one database.
	Database string `json:"database" toml:"database,omitempty"`
	// Sources is the directory of roster sources, CENTRE.json. Required
	// with Store; not with Database, where the sources are kept in the
	// database, shared by every instance (kiumbridge roster push puts
	// them there).
	Sources string `json:"sources" toml:"sources,omitempty"`
	// ClientID names this kiumbridge process at the brokers (its
	// connections are CLIENTID-0, CLIENTID-1…) and in its claims on
	// texts; default kiumbridge-HOSTNAME. Each process needs its own: set
	// it when several run on one host.
	ClientID string `json:"client_id" toml:"client_id,omitempty"`
	// Group is the shared subscription group of several bridge
	// instances; Instances how many run (default 1).
	Group     string `json:"group" toml:"group,omitempty"`
	Instances int    `json:"instances" toml:"instances,omitempty"`
	// AutoCheckOut: "text" (default) texts parents on a departure after
	// an automatic check-out; "hold" keeps the text for staff.
	AutoCheckOut string `json:"auto_check_out" toml:"auto_check_out,omitempty"`
	// Control is the unix socket where the running bridge answers kiumctl
	// and kiumbridge status, texts and export; default kiumbridge.sock
	// beside the store, or /run/kiumbridge/kiumbridge.sock with a
	// database.
	Control string `json:"control" toml:"control,omitempty"`
	// StopTimeout bounds a graceful stop on SIGTERM; default 10s.
	StopTimeout Duration `json:"stop_timeout" toml:"stop_timeout,omitempty"`
	// SMS is the texting provider.
	SMS SMS `json:"sms" toml:"sms,omitempty"`
	// AlimTalk sends parents' messages by KakaoTalk AlimTalk first, with
	// the SMS/LMS fallback, through the SMS provider's company (solapi or
	// nhn; console prints them). Without templates: SMS/LMS only.
	AlimTalk AlimTalk `json:"alimtalk" toml:"alimtalk,omitempty"`
	// Log is the log's format and level.
	Log confile.Log `json:"log" toml:"log,omitempty"`
	// Metrics is where the Prometheus endpoint (/metrics) listens: a
	// host:port, or "unix:PATH"; default "127.0.0.1:9466", this host only;
	// "off": none.
	Metrics string `json:"metrics" toml:"metrics,omitempty"`
	// Web is the staff page (package portal/web).
	Web Web `json:"web" toml:"web,omitempty"`
}

// Web configures the staff page.
type Web struct {
	// Listen is where it answers, host:port; default "127.0.0.1:8466"
	// (this host only: put a TLS reverse proxy before it, or set Cert and
	// Key); "off": none.
	Listen string `json:"listen" toml:"listen,omitempty"`
	// Cert and Key are PEM files to serve it over TLS itself.
	Cert string `json:"cert" toml:"cert,omitempty"`
	Key  string `json:"key" toml:"key,omitempty"`
	// BehindTLS says a TLS reverse proxy serves it to browsers: its
	// cookies are then Secure. Default false.
	BehindTLS bool `json:"behind_tls" toml:"behind_tls,omitempty"`
}

// Secure reports whether browsers reach the staff page over TLS.
func (w Web) Secure() bool { return w.Cert != "" || w.BehindTLS }

// AlimTalk configures KakaoTalk AlimTalk (알림톡).
type AlimTalk struct {
	// Templates are the template of each kind of message: arrival,
	// departure, auto_check_out, not_arrived (Solapi: the template ID;
	// NHN: the template code). A kind without one goes by SMS/LMS. Each
	// is checked at start: it exists, is approved, and uses only the
	// variables #{센터명}, #{아동명}, #{시각}.
	Templates map[string]string `json:"templates" toml:"templates,omitempty"`
	// Solapi: the KakaoTalk channel's pfId.
	PfID string `json:"pf_id" toml:"pf_id,omitempty"`
	// NHN Cloud KakaoTalk Bizmessage: its app key, secret key (or a file
	// of it), the channel's sender key, and another base URL.
	AppKey        string `json:"app_key" toml:"app_key,omitempty"`
	SecretKey     string `json:"secret_key" toml:"secret_key,omitempty"`
	SecretKeyFile string `json:"secret_key_file" toml:"secret_key_file,omitempty"`
	SenderKey     string `json:"sender_key" toml:"sender_key,omitempty"`
	URL           string `json:"url" toml:"url,omitempty"`
	// NotOnKakao (console only, for demos): numbers the console takes
	// as not on KakaoTalk, whose messages fall back to SMS/LMS.
	NotOnKakao []string `json:"not_on_kakao" toml:"not_on_kakao,omitempty"`
}

// templates are the configured templates by kind.
func (a AlimTalk) templates() sms.Templates {
	t := sms.Templates{}
	for k, v := range a.Templates {
		t[sms.Kind(k)] = v
	}
	return t
}

// SMS configures the texting provider. Each secret may instead come from
// a file of its own (the key with _file).
type SMS struct {
	// Provider: "console" (default: texts printed), "solapi", "nhn" or
	// "webhook".
	Provider string `json:"provider" toml:"provider,omitempty"`
	// From is the registered sender number; required but for console.
	From string `json:"from" toml:"from,omitempty"`
	// Solapi's API key and secret.
	APIKey        string `json:"api_key" toml:"api_key,omitempty"`
	APISecret     string `json:"api_secret" toml:"api_secret,omitempty"`
	APISecretFile string `json:"api_secret_file" toml:"api_secret_file,omitempty"`
	// NHN Cloud's app key and secret key.
	AppKey        string `json:"app_key" toml:"app_key,omitempty"`
	SecretKey     string `json:"secret_key" toml:"secret_key,omitempty"`
	SecretKeyFile string `json:"secret_key_file" toml:"secret_key_file,omitempty"`
	// URL: the webhook's, or another base URL for solapi or nhn.
	URL string `json:"url" toml:"url,omitempty"`
	// Secret signs the webhook's requests.
	Secret     string `json:"secret" toml:"secret,omitempty"`
	SecretFile string `json:"secret_file" toml:"secret_file,omitempty"`
}

// DefaultPath is where the package installs the configuration.
const DefaultPath = "/etc/kiumbridge/kiumbridge.toml"

// Load reads and checks a configuration file: TOML, or the JSON of earlier
// versions when its name ends in ".json".
func Load(path string) (*Config, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: -config FILE is required (the package installs %s)", cli.ErrUsage, DefaultPath)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, confile.Mark(fmt.Errorf("configuration: %w (the package installs %s)", err, DefaultPath))
	}
	return ParseFile(path, raw)
}

// ParseFile decodes and checks a configuration read from the file named
// path (TOML, or JSON by its name).
func ParseFile(path string, raw []byte) (*Config, error) {
	var c Config
	if err := confile.Parse(path, raw, &c); err != nil {
		return nil, err
	}
	if err := confile.ReadSecrets(path,
		confile.Secret{Key: "password_file", File: c.PasswordFile, Into: &c.Password},
		confile.Secret{Key: "sms.api_secret_file", File: c.SMS.APISecretFile, Into: &c.SMS.APISecret},
		confile.Secret{Key: "sms.secret_key_file", File: c.SMS.SecretKeyFile, Into: &c.SMS.SecretKey},
		confile.Secret{Key: "sms.secret_file", File: c.SMS.SecretFile, Into: &c.SMS.Secret},
		confile.Secret{Key: "alimtalk.secret_key_file", File: c.AlimTalk.SecretKeyFile, Into: &c.AlimTalk.SecretKey},
	); err != nil {
		return nil, err
	}
	if ps := c.check(); len(ps) > 0 {
		return nil, confile.Problems(path, raw, ps)
	}
	return &c, nil
}

// check sets the defaults and checks the values.
func (c *Config) check() []confile.Problem {
	if c.Control == "" && c.Store != "" {
		c.Control = filepath.Join(filepath.Dir(c.Store), "kiumbridge.sock")
	}
	if c.Control == "" && c.Database != "" {
		c.Control = "/run/kiumbridge/kiumbridge.sock"
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = Duration(10 * time.Second)
	}
	if c.Metrics == "" {
		c.Metrics = "127.0.0.1:9466"
	}
	if c.Web.Listen == "" {
		c.Web.Listen = "127.0.0.1:8466"
	}
	if c.SMS.Provider == "" {
		c.SMS.Provider = "console"
	}
	var ps []confile.Problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, confile.Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	key := "broker"
	if len(c.Brokers) > 0 {
		key = "brokers"
	}
	switch {
	case c.Broker != "" && len(c.Brokers) > 0:
		bad("brokers", "set together with broker: keep one (broker for a single broker, brokers for several)")
	case len(c.URLs()) == 0:
		bad("broker", "required, e.g. ssl://broker.example:8884 (or tcp://127.0.0.1:1883 on one host; brokers = [...] for several)")
	}
	tls := confile.Brokers(key, c.URLs(), bad)
	switch {
	case c.Store != "" && c.Database != "":
		bad("database", "set together with store: keep one (store for one process on this host, database for PostgreSQL)")
	case c.Store == "" && c.Database == "":
		bad("store", "required: the bridge's database file (or database: a PostgreSQL URL)")
	case c.Database != "":
		if _, err := pgconn.ParseConfig(c.Database); err != nil {
			bad("database", "%v: want a PostgreSQL URL, e.g. postgres://kiumbridge@db.example:5432/kiumbridge?sslmode=verify-full", redact(err))
		}
	}
	switch {
	case c.Sources == "" && c.Database == "":
		bad("sources", "required: the directory of roster sources, CENTRE.json")
	case c.Sources != "" && c.Database != "" && c.Store == "":
		bad("sources", "set with database: the roster sources are kept in the database, shared by every instance; remove sources and put each centre's source there once with kiumbridge roster push -config FILE %s/*.json", c.Sources)
	}
	switch w := c.Web; {
	case (w.Cert == "") != (w.Key == ""):
		bad("web.cert", "set with web.key: both PEM files, or neither")
	case w.Listen != "off" && !w.Secure() && !loopback(w.Listen):
		bad("web.listen", "%q is reached from other hosts over plain HTTP: staff passwords would cross the network in the clear; set web.cert and web.key, or web.behind_tls = true behind a TLS proxy, or listen on 127.0.0.1", w.Listen)
	}
	if c.SigningKey == "" {
		bad("signing_key", "required: make one with kiumbridge keygen")
	}
	if c.ClientID != "" && !protocol.ValidID(c.ClientID) {
		bad("client_id", "%q: want 1-64 of A-Z a-z 0-9 _ . - (it names the bridge's connections)", c.ClientID)
	}
	if c.StopTimeout < 0 {
		bad("stop_timeout", "negative duration %v", time.Duration(c.StopTimeout))
	}
	if c.Instances < 0 {
		bad("instances", "%d: want 1 or more (0: the default, 1)", c.Instances)
	}
	if c.AutoCheckOut != "" && c.AutoCheckOut != "text" && c.AutoCheckOut != "hold" {
		bad("auto_check_out", "%q is not text or hold", c.AutoCheckOut)
	}
	if (c.Cert == "") != (c.Key == "") {
		bad("cert", "cert and key go together")
	}
	if tls > 0 && c.CA == "" {
		bad("ca", "an ssl:// broker needs the CA file")
	}
	switch c.SMS.Provider {
	case "console":
	case "solapi":
		if c.SMS.APIKey == "" || c.SMS.APISecret == "" {
			bad("sms.api_key", "solapi needs api_key and api_secret (or api_secret_file)")
		}
	case "nhn":
		if c.SMS.AppKey == "" || c.SMS.SecretKey == "" {
			bad("sms.app_key", "nhn needs app_key and secret_key (or secret_key_file)")
		}
	case "webhook":
		if c.SMS.URL == "" {
			bad("sms.url", "webhook needs url")
		}
	default:
		bad("sms.provider", "%q is not console, solapi, nhn or webhook", c.SMS.Provider)
	}
	if (c.SMS.Provider == "solapi" || c.SMS.Provider == "nhn" || c.SMS.Provider == "webhook") && c.SMS.From == "" {
		bad("sms.from", "the registered sender number is required")
	}
	if a := c.AlimTalk; len(a.Templates) > 0 {
		for k := range a.Templates {
			if !slices.Contains(sms.Kinds, sms.Kind(k)) {
				bad("alimtalk.templates", "%q is no kind of message: the kinds are arrival, departure, auto_check_out and not_arrived", k)
			}
		}
		switch c.SMS.Provider {
		case "solapi":
			if a.PfID == "" {
				bad("alimtalk.pf_id", "AlimTalk through solapi needs the KakaoTalk channel's pfId (Solapi console, 카카오톡 채널)")
			}
		case "nhn":
			if a.AppKey == "" || a.SecretKey == "" || a.SenderKey == "" {
				bad("alimtalk.app_key", "AlimTalk through nhn needs app_key, secret_key (or secret_key_file) and sender_key of NHN Cloud KakaoTalk Bizmessage")
			}
		case "console":
		default:
			bad("alimtalk.templates", "AlimTalk goes through solapi or nhn (or console, printed), not %s", c.SMS.Provider)
		}
	}
	return append(ps, c.Log.Check()...)
}

// URLs are the brokers' URLs: Brokers, or Broker alone.
func (c *Config) URLs() []string {
	if len(c.Brokers) > 0 {
		return c.Brokers
	}
	if c.Broker != "" {
		return []string{c.Broker}
	}
	return nil
}

// redact keeps a URL's password out of an error shown: pgconn's errors
// quote what they could not parse.
func redact(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		if j := strings.Index(msg[i:], "@"); j >= 0 {
			if k := strings.Index(msg[i:i+j], ":"); k >= 0 {
				msg = msg[:i+k+1] + "xxxxx" + msg[i+j:]
			}
		}
	}
	return msg
}

// Provider is the configured texting provider; console texts go to
// stdout.
func (c *Config) Provider(stdout io.Writer) sms.Provider {
	a := c.AlimTalk
	switch c.SMS.Provider {
	case "solapi":
		return sms.NewSolapi(sms.SolapiOptions{APIKey: c.SMS.APIKey, APISecret: c.SMS.APISecret, BaseURL: c.SMS.URL, PfID: a.PfID, Templates: a.templates()})
	case "nhn":
		return sms.NewNHN(sms.NHNOptions{AppKey: c.SMS.AppKey, SecretKey: c.SMS.SecretKey, BaseURL: c.SMS.URL,
			AlimTalk: sms.NHNAlimTalk{AppKey: a.AppKey, SecretKey: a.SecretKey, SenderKey: a.SenderKey, BaseURL: a.URL, Templates: a.templates()}})
	case "webhook":
		return sms.NewWebhook(sms.WebhookOptions{URL: c.SMS.URL, Secret: c.SMS.Secret})
	}
	if len(a.Templates) > 0 {
		return sms.NewConsoleAlimTalk(stdout, a.templates(), a.NotOnKakao)
	}
	return sms.NewConsole(stdout)
}

// TLS is the TLS configuration for the broker, nil for tcp://.
func (c *Config) TLS() (*tls.Config, error) { return cli.TLS(c.CA, c.Cert, c.Key) }

// Logger is the bridge's logger as log configures it, writing to w.
func (c *Config) Logger(w io.Writer) *slog.Logger { return c.Log.Logger(w) }

// loopback reports whether a host:port answers this host only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
