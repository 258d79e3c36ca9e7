package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"kiumtap/internal/confile"
)

const base = `broker = "tcp://127.0.0.1:1883"
store = "/var/lib/kiumbridge/bridge.db"
sources = "/var/lib/kiumbridge/sources"
signing_key = "/etc/kiumbridge/portal.key"
`

func parse(toml string) (*Config, error) { return ParseFile("kiumbridge.toml", []byte(toml)) }

func TestDefaults(t *testing.T) {
	c, err := parse(base)
	if err != nil {
		t.Fatal(err)
	}
	if c.Control != "/var/lib/kiumbridge/kiumbridge.sock" || c.StopTimeout != Duration(10*time.Second) || c.Metrics != "127.0.0.1:9466" ||
		c.SMS.Provider != "console" || c.Log.Format != "text" || c.Log.Level != "info" {
		t.Errorf("%+v", c)
	}
	c, err = parse(base + "control = \"/run/kb.sock\"\nstop_timeout = \"30s\"\n")
	if err != nil || c.Control != "/run/kb.sock" || c.StopTimeout != Duration(30*time.Second) {
		t.Errorf("%v %+v", err, c)
	}
}

// Each kind of mistake an operator makes, with the exact message they see.
func TestMistakes(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"a typo", base + "brokr = \"tcp://x:1\"\n", `kiumbridge.toml, line 5: brokr: no such key (a typo? the installed example lists every key): the top level takes broker, brokers, username, password, password_file, ca, cert, key, signing_key, store, database, sources, client_id, group, instances, auto_check_out, control, stop_timeout, sms, alimtalk, log, metrics, web`},
		{"a typo in sms", base + "[sms]\nprovidr = \"nhn\"\n", `kiumbridge.toml, line 6: sms.providr: no such key (a typo? the installed example lists every key): [sms] takes provider, from, api_key, api_secret, api_secret_file, app_key, secret_key, secret_key_file, url, secret, secret_file`},
		{"words for a number", base + "instances = \"two\"\n", `kiumbridge.toml, line 5: instances: want a whole number, not a TOML string`},
		{"no broker", "store = \"s\"\nsources = \"d\"\nsigning_key = \"k\"\n", `kiumbridge.toml: broker: required, e.g. ssl://broker.example:8884 (or tcp://127.0.0.1:1883 on one host; brokers = [...] for several)`},
		{"a broker URL without scheme", strings.Replace(base, "tcp://127.0.0.1:1883", "127.0.0.1:1883", 1), `kiumbridge.toml, line 1: broker: "127.0.0.1:1883": want tcp://host:port or ssl://host:port`},
		{"no store", "broker = \"tcp://x:1\"\nsources = \"d\"\nsigning_key = \"k\"\n", `kiumbridge.toml: store: required: the bridge's database file (or database: a PostgreSQL URL)`},
		{"a provider unknown", base + "[sms]\nprovider = \"kakao\"\n", `kiumbridge.toml, line 6: sms.provider: "kakao" is not console, solapi, nhn or webhook`},
		{"solapi without secret", base + "[sms]\nprovider = \"solapi\"\nfrom = \"0212345678\"\napi_key = \"k\"\n", `kiumbridge.toml, line 8: sms.api_key: solapi needs api_key and api_secret (or api_secret_file)`},
		{"no sender", base + "[sms]\nprovider = \"webhook\"\nurl = \"http://x\"\n", `kiumbridge.toml, line 5: sms.from: the registered sender number is required`},
		{"a bad duration", base + "stop_timeout = \"10\"\n", `kiumbridge.toml, line 5: stop_timeout: "10" is not a duration such as 60s or 72h`},
		{"hold or text", base + "auto_check_out = \"keep\"\n", `kiumbridge.toml, line 5: auto_check_out: "keep" is not text or hold`},
		{"ssl without CA", strings.Replace(base, "tcp://", "ssl://", 1), `kiumbridge.toml: ca: an ssl:// broker needs the CA file`},
		{"broker and brokers", base + "brokers = [\"tcp://y:1\"]\n", `kiumbridge.toml, line 5: brokers: set together with broker: keep one (broker for a single broker, brokers for several)`},
		{"a broker twice", strings.Replace(base, "broker = \"tcp://127.0.0.1:1883\"", "brokers = [\"tcp://a:1\", \"tcp://a:1\"]", 1), `kiumbridge.toml, line 1: brokers: "tcp://a:1" is listed twice: list each broker once`},
		{"brokers of two kinds", strings.Replace(base, "broker = \"tcp://127.0.0.1:1883\"", "brokers = [\"tcp://a:1\", \"ssl://b:2\"]\nca = \"ca.pem\"", 1), `kiumbridge.toml, line 1: brokers: mixes tcp:// and ssl:// brokers: list brokers of one kind (over tcp:// what goes to the others over TLS would go in the clear)`},
		{"store and database", base + "database = \"postgres://kb@db/kb\"\n", `kiumbridge.toml, line 5: database: set together with store: keep one (store for one process on this host, database for PostgreSQL)`},
		{"a database URL mangled", strings.Replace(strings.Replace(base, "store = \"/var/lib/kiumbridge/bridge.db\"", "database = \"postgres://kb:s3cret@db:port/kb\"", 1), "sources = \"/var/lib/kiumbridge/sources\"\n", "", 1), "kiumbridge.toml, line 2: database: cannot parse `postgres:xxxxx@db:port/kb`: invalid port: want a PostgreSQL URL, e.g. postgres://kiumbridge@db.example:5432/kiumbridge?sslmode=verify-full"},
		{"sources with a database", strings.Replace(base, "store = \"/var/lib/kiumbridge/bridge.db\"", "database = \"postgres://kb@db/kb\"", 1), `kiumbridge.toml, line 3: sources: set with database: the roster sources are kept in the database, shared by every instance; remove sources and put each centre's source there once with kiumbridge roster push -config FILE /var/lib/kiumbridge/sources/*.json`},
		{"the staff page on the network in the clear", base + "[web]\nlisten = \"0.0.0.0:8466\"\n", `kiumbridge.toml, line 6: web.listen: "0.0.0.0:8466" is reached from other hosts over plain HTTP: staff passwords would cross the network in the clear; set web.cert and web.key, or web.behind_tls = true behind a TLS proxy, or listen on 127.0.0.1`},
		{"an AlimTalk template of no kind", base + "[alimtalk]\ntemplates = { arrivals = \"TP1\" }\n", `kiumbridge.toml, line 6: alimtalk.templates: "arrivals" is no kind of message: the kinds are arrival, departure, auto_check_out and not_arrived`},
		{"AlimTalk through solapi without its channel", base + "[sms]\nprovider = \"solapi\"\nfrom = \"0212345678\"\napi_key = \"k\"\napi_secret = \"s\"\n[alimtalk]\ntemplates = { arrival = \"TP1\" }\n", `kiumbridge.toml, line 10: alimtalk.pf_id: AlimTalk through solapi needs the KakaoTalk channel's pfId (Solapi console, 카카오톡 채널)`},
		{"AlimTalk through nhn without its keys", base + "[sms]\nprovider = \"nhn\"\nfrom = \"0212345678\"\napp_key = \"k\"\nsecret_key = \"s\"\n[alimtalk]\ntemplates = { arrival = \"A1\" }\napp_key = \"a\"\n", `kiumbridge.toml, line 12: alimtalk.app_key: AlimTalk through nhn needs app_key, secret_key (or secret_key_file) and sender_key of NHN Cloud KakaoTalk Bizmessage`},
		{"AlimTalk through a webhook", base + "[sms]\nprovider = \"webhook\"\nfrom = \"0212345678\"\nurl = \"http://x\"\n[alimtalk]\ntemplates = { arrival = \"A1\" }\n", `kiumbridge.toml, line 10: alimtalk.templates: AlimTalk goes through solapi or nhn (or console, printed), not webhook`},
		{"a certificate without its key", base + "[web]\ncert = \"c.pem\"\n", `kiumbridge.toml, line 6: web.cert: set with web.key: both PEM files, or neither`},
		{"a log level", base + "[log]\nlevel = \"loud\"\n", `kiumbridge.toml, line 6: log.level: "loud" is not debug, info, warn or error`},
	} {
		_, err := parse(tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.name, err, tc.want)
		}
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	secret := func(name, v string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(v+"\n"), mode)
		os.Chmod(p, mode)
		return p
	}
	pass := secret("broker.password", "pw", 0o640)
	api := secret("solapi.secret", "sec", 0o600)
	c, err := parse(base + "password_file = \"" + pass + "\"\n[sms]\nprovider = \"solapi\"\nfrom = \"0212345678\"\napi_key = \"k\"\napi_secret_file = \"" + api + "\"\n")
	if err != nil || c.Password != "pw" || c.SMS.APISecret != "sec" {
		t.Fatalf("%v %+v", err, c)
	}
	open := secret("open", "pw", 0o644)
	_, err = parse(base + "password_file = \"" + open + "\"\n")
	if want := "kiumbridge.toml: password_file: " + open + " has mode 0644: a secret file must not be readable by every user nor writable by its group; chmod 0640 " + open + " (owner root, group of the daemon's user)"; err == nil || err.Error() != want {
		t.Fatalf("a secret readable by all:\n got %v\nwant %s", err, want)
	}
	_, err = parse(base + "password = \"x\"\npassword_file = \"" + pass + "\"\n")
	if want := "kiumbridge.toml: password_file: set together with password: keep one"; err == nil || err.Error() != want {
		t.Fatalf("both:\n got %v\nwant %s", err, want)
	}
}

// The installed example documents every key, and nothing else; as
// installed it names the files an operator makes next.
func TestExampleInStep(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/config/kiumbridge.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := confile.Keys(reflect.TypeFor[Config](), "")
	got := confile.ExampleKeys(raw)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("deploy/config/kiumbridge.toml documents\n%v\nthe configuration has\n%v", got, want)
	}
	_, err = ParseFile(DefaultPath, raw)
	if want := DefaultPath + ": password_file: /etc/kiumbridge/broker.password does not exist: write the secret in it (owner root, group of the daemon's user, mode 0640), or give it inline with password"; err == nil || err.Error() != want {
		t.Fatalf("the untouched example:\n got %v\nwant %s", err, want)
	}
	dir := t.TempDir()
	pass := filepath.Join(dir, "pw")
	os.WriteFile(pass, []byte("pw"), 0o600)
	c, err := ParseFile(DefaultPath, []byte(strings.Replace(string(raw), "/etc/kiumbridge/broker.password", pass, 1)))
	if err != nil || c.Broker != "ssl://localhost:8884" || c.Username != "" || c.Password != "pw" || c.Store != "/var/lib/kiumbridge/bridge.db" {
		t.Fatalf("the example with a password: %v %+v", err, c)
	}
}

// The JSON of earlier versions is still read, and migrates to TOML that
// reads back the same.
func TestJSONStillReadAndMigrated(t *testing.T) {
	old := filepath.Join(t.TempDir(), "bridge.json")
	os.WriteFile(old, []byte(`{"broker": "tcp://127.0.0.1:1883", "store": "/tmp/b.db", "sources": "/tmp/s", "signing_key": "/tmp/k",
 "stop_timeout": "20s", "sms": {"provider": "webhook", "url": "http://127.0.0.1:9/hook", "from": "0212345678"}}`), 0o600)
	c, err := Load(old)
	if err != nil {
		t.Fatal(err)
	}
	var v Config
	out, err := confile.Migrate(old, &v)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseFile("kiumbridge.toml", out)
	if err != nil {
		t.Fatalf("the migrated TOML:\n%s\n%v", out, err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("migrated %+v\n    was %+v", back, c)
	}
	if _, err := Load(""); err == nil || !strings.Contains(err.Error(), "-config FILE is required") {
		t.Errorf("no file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(base + "[sms]\nprovider = \"nhn\"\napp_key = \"a\"\nsecret_key = \"b\"\nfrom = \"1\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseFile("kiumbridge.toml", b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		if c.Broker == "" || c.Store == "" || c.SigningKey == "" || c.Control == "" {
			t.Fatalf("accepted a config without its required keys: %+v", c)
		}
	})
}
